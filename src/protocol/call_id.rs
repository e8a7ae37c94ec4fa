//! The call id, validated where it enters: a provider's start message. Past that point the id
//! goes into logs, metric-free event JSON, outbox file names and provider API paths, so it must
//! not carry a newline or an escape (forged log lines), a `/`, `.` or `..` (a different URL
//! path), or unbounded length. Each adapter names its [`CallIdRule`]; a start message whose id
//! breaks it is refused with close 1008 and a reason that names the problem without echoing
//! the bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Which call ids a provider sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallIdRule {
    /// Longest id accepted, in bytes.
    pub max_bytes: usize,
    /// Bytes allowed besides ASCII letters and digits.
    pub punctuation: &'static str,
}

impl CallIdRule {
    /// The generic safe form: `[A-Za-z0-9._:-]`, 1 to 128 bytes, never `.` or `..`. Covers
    /// UUIDs (Plivo, Vonage, Genesys, FreeSWITCH, Asterisk), Telnyx `v3:` control ids
    /// (base64url) and Exotel's hex sids.
    pub const GENERIC: CallIdRule = CallIdRule {
        max_bytes: 128,
        punctuation: "._:-",
    };

    fn allows(&self, b: u8) -> bool {
        b.is_ascii_alphanumeric() || (b != 0 && self.punctuation.as_bytes().contains(&b))
    }
}

/// Why a call id was refused. Never contains the id itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallIdError {
    /// Empty or absent.
    #[error("call id is empty")]
    Empty,
    /// Longer than the rule allows.
    #[error("call id is {len_bytes} bytes long (at most {max_bytes})")]
    TooLong {
        /// Its length.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A byte outside the allowed set.
    #[error(
        "call id has byte 0x{byte:02x} at offset {offset} (allowed: letters, digits{})",
        allowed_punctuation(punctuation)
    )]
    BadByte {
        /// The byte.
        byte: u8,
        /// Where.
        offset: usize,
        /// The punctuation the rule allows.
        punctuation: &'static str,
    },
    /// `.` or `..`, which URL builders drop as path segments.
    #[error("call id is a dot segment")]
    DotSegment,
}

fn allowed_punctuation(p: &str) -> String {
    if p.is_empty() {
        String::new()
    } else {
        format!(
            " and {}",
            p.chars().map(String::from).collect::<Vec<_>>().join(" ")
        )
    }
}

/// A call id that passed its provider's [`CallIdRule`] (or the generic one). Serialised as a
/// plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CallId(String);

impl CallId {
    /// Validates `raw` against `rule`.
    pub fn parse(rule: &CallIdRule, raw: &str) -> Result<Self, CallIdError> {
        if raw.is_empty() {
            return Err(CallIdError::Empty);
        }
        if raw.len() > rule.max_bytes {
            return Err(CallIdError::TooLong {
                len_bytes: raw.len(),
                max_bytes: rule.max_bytes,
            });
        }
        if let Some((offset, &byte)) = raw
            .as_bytes()
            .iter()
            .enumerate()
            .find(|(_, b)| !rule.allows(**b))
        {
            return Err(CallIdError::BadByte {
                byte,
                offset,
                punctuation: rule.punctuation,
            });
        }
        if raw == "." || raw == ".." {
            return Err(CallIdError::DotSegment);
        }
        Ok(Self(raw.to_owned()))
    }

    /// A call id made from a name that is not a provider's (a replayed file's stem): every byte
    /// the generic rule refuses becomes `_`, and it is cut to 128 bytes; an empty or dot name
    /// becomes `call`.
    pub fn from_name(name: &str) -> Self {
        let rule = CallIdRule::GENERIC;
        let mut id: String = name
            .bytes()
            .take(rule.max_bytes)
            .map(|b| if rule.allows(b) { b as char } else { '_' })
            .collect();
        if id.is_empty() || id == "." || id == ".." {
            id = "call".to_owned();
        }
        Self(id)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `s` with every character outside `[A-Za-z0-9_-]` replaced by `_`: an id made safe as one file
/// name part or one NATS subject token (ids may hold `.`, `/`, `*`, `>`).
pub fn token_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CallId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CallId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for CallId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CallId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<CallId> for String {
    fn from(id: CallId) -> String {
        id.0
    }
}

impl Serialize for CallId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Reading an id back (recorded events) applies the generic rule.
impl<'de> Deserialize<'de> for CallId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        CallId::parse(&CallIdRule::GENERIC, &raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_rule_accepts_the_documented_forms() {
        for ok in [
            "CA00000000000000000000000000000002",
            "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ-IiE4pqg",
            "12345678-1234-1234-1234-123456789abc",
            "2f1e4c7a9b8d6e5f4a3b2c1d0e9f8a7b",
            "a.b",
            "...",
        ] {
            assert_eq!(CallId::parse(&CallIdRule::GENERIC, ok).unwrap(), ok);
        }
    }

    #[test]
    fn refuses_injection_paths_and_length_without_echoing_the_id() {
        let g = CallIdRule::GENERIC;
        let e = CallId::parse(&g, "CA1\n2026 INFO forged").unwrap_err();
        assert_eq!(
            e,
            CallIdError::BadByte {
                byte: b'\n',
                offset: 3,
                punctuation: "._:-"
            }
        );
        assert!(!e.to_string().contains("forged"), "{e}");
        assert!(e.to_string().contains("0x0a at offset 3"), "{e}");
        assert!(matches!(
            CallId::parse(&g, "\u{1b}[31mred"),
            Err(CallIdError::BadByte { byte: 0x1b, .. })
        ));
        assert!(matches!(
            CallId::parse(&g, "a/b"),
            Err(CallIdError::BadByte { byte: b'/', .. })
        ));
        assert!(matches!(
            CallId::parse(&g, "é"),
            Err(CallIdError::BadByte { byte: 0xc3, .. })
        ));
        assert_eq!(CallId::parse(&g, "."), Err(CallIdError::DotSegment));
        assert_eq!(CallId::parse(&g, ".."), Err(CallIdError::DotSegment));
        assert_eq!(CallId::parse(&g, ""), Err(CallIdError::Empty));
        assert_eq!(
            CallId::parse(&g, &"a".repeat(129)),
            Err(CallIdError::TooLong {
                len_bytes: 129,
                max_bytes: 128
            })
        );
        assert!(CallId::parse(&g, &"a".repeat(128)).is_ok());
    }

    #[test]
    fn a_narrower_rule_names_its_punctuation() {
        let r = CallIdRule {
            max_bytes: 64,
            punctuation: "-",
        };
        assert!(CallId::parse(&r, "CA00000000000000000000000000000002").is_ok());
        let e = CallId::parse(&r, "CA:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "call id has byte 0x3a at offset 2 (allowed: letters, digits and -)"
        );
        assert!(CallId::parse(&r, &"A".repeat(65)).is_err());
    }

    #[test]
    fn names_become_safe_ids_and_serde_validates() {
        assert_eq!(CallId::from_name("my call\n1"), "my_call_1");
        assert_eq!(CallId::from_name(".."), "call");
        assert_eq!(CallId::from_name(""), "call");
        assert_eq!(
            serde_json::to_string(&CallId::from_name("CA1")).unwrap(),
            "\"CA1\""
        );
        assert!(serde_json::from_str::<CallId>("\"a\\nb\"").is_err());
        assert_eq!(serde_json::from_str::<CallId>("\"CA1\"").unwrap(), "CA1");
    }
}
