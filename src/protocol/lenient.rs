//! Serde readers for the loose typing providers use: numbers sent as strings, ids sent as
//! numbers, custom parameters in three shapes. They read odd values as absent instead of failing
//! a message whose audio is fine.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Providers send numbers as strings or numbers; accept both. Values that are not a
/// non-negative integer (negative, `"abc"`, `1e400`) read as absent rather than failing the
/// message: counters are advisory. Objects, arrays and booleans are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LenientU64(pub Option<u64>);

impl<'de> Deserialize<'de> for LenientU64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor: `untagged` would buffer every value first, and this runs
        // three times per media message.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LenientU64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LenientU64, E> {
                Ok(LenientU64(Some(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LenientU64, E> {
                Ok(LenientU64(u64::try_from(v).ok()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LenientU64, E> {
                // `as` saturates; a fraction of a counter is still that counter.
                Ok(LenientU64((v.is_finite() && v >= 0.0).then_some(v as u64)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LenientU64, E> {
                Ok(LenientU64(v.trim().parse().ok()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<LenientU64, E> {
                Ok(LenientU64(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<LenientU64, E> {
                Ok(LenientU64(None))
            }
            fn visit_some<D2: serde::Deserializer<'de>>(
                self,
                d: D2,
            ) -> Result<LenientU64, D2::Error> {
                d.deserialize_any(V)
            }
        }
        d.deserialize_any(V)
    }
}

/// An id or name that should be a string but may arrive as a number. Anything else reads as
/// absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LenientString(pub Option<String>);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LenientString(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }))
    }
}

/// Custom parameters in every shape providers use: a JSON object (values that are not strings
/// keep their JSON text, so numbers stay numbers), a list of `{"name","value"}` pairs (Telnyx's
/// request shape), or a `"k=v;k2=v2"` string (Plivo `extra_headers`). Never fails: parameters
/// are informational.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LenientParams(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for LenientParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        let text = |v: Value| match v {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        let mut out = BTreeMap::new();
        match Value::deserialize(d)? {
            Value::Object(map) => {
                for (k, v) in map {
                    if let Some(v) = text(v) {
                        out.insert(k, v);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    let Value::Object(mut pair) = item else {
                        continue;
                    };
                    let name = pair.remove("name").and_then(text);
                    let value = pair.remove("value").and_then(text);
                    if let (Some(k), Some(v)) = (name, value) {
                        out.insert(k, v);
                    }
                }
            }
            Value::String(s) => out = parse_kv_pairs(&s),
            _ => {}
        }
        Ok(LenientParams(out))
    }
}

/// Parses `"k=v;k2=v2"`; pieces without `=` are kept with an empty value.
pub(crate) fn parse_kv_pairs(s: &str) -> BTreeMap<String, String> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}
