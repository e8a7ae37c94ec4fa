//! The signed webhook: `X-Warmline-Signature` signing and verification, and the POST itself.
//!
//! Signature: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. Binding the time into
//! the MAC lets receivers refuse replays older than a tolerance; the body is signed byte for byte,
//! so a receiver must verify the raw bytes before parsing them.
//!
//! Rotation (Stripe-style): with `previous_secret` set, the header carries one `v1=` per secret,
//! the new one first (`t=…,v1=<new>,v1=<old>`), so receivers holding either secret verify while
//! they are switched over one by one.

use super::config::WebhookConfig;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "X-Warmline-Signature";
/// Name of the idempotency header (value: the handoff id).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

fn mac(secret: &str, t: u64, body: &[u8]) -> HmacSha256 {
    // invariant: HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut m = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Warmline-Signature` value for `body` sent at unix time `t`.
pub fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// The `X-Warmline-Signature` value with one `v1=` per secret, in the order given.
pub fn sign_all(secrets: &[&str], t: u64, body: &[u8]) -> String {
    let mut h = format!("t={t}");
    for secret in secrets {
        let tag = mac(secret, t, body).finalize().into_bytes();
        h.push_str(",v1=");
        h.push_str(&hex::encode(tag));
    }
    h
}

/// Checks a `X-Warmline-Signature` value against the raw body: the MAC must match (constant-time
/// compare) and `t` must lie within `tolerance_s` of `now` (unix seconds). Several `v1=` entries
/// are allowed (one per secret during a rotation); any matching one is enough.
pub fn verify(secret: &str, header: &str, body: &[u8], now: u64, tolerance_s: u64) -> bool {
    let mut t: Option<u64> = None;
    let mut tags: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return false;
        };
        match k {
            "t" => match v.parse() {
                Ok(x) if t.is_none() => t = Some(x),
                _ => return false,
            },
            "v1" => match hex::decode(v) {
                Ok(b) => tags.push(b),
                Err(_) => return false,
            },
            // Later schemes may add keys; they do not weaken v1.
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now.abs_diff(t) > tolerance_s {
        return false;
    }
    tags.iter()
        .any(|tag| mac(secret, t, body).verify_slice(tag).is_ok())
}

/// The webhook POST for one attempt: body = the handoff event JSON, signed at `now_unix_s`.
pub fn request(
    client: &reqwest::Client,
    cfg: &WebhookConfig,
    handoff_id: &str,
    body: &[u8],
    now_unix_s: u64,
) -> reqwest::RequestBuilder {
    client
        .post(&cfg.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(IDEMPOTENCY_HEADER, handoff_id)
        .header(SIGNATURE_HEADER, sign_all(&cfg.secrets(), now_unix_s, body))
        .body(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // Computed independently:
        // python3 -c "import hmac,hashlib;print(hmac.new(b'secret',b'1700000000.{}',hashlib.sha256).hexdigest())"
        assert_eq!(
            sign("secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn signature_round_trips_within_tolerance() {
        let body = br#"{"event":"handoff","handoff_id":"h1"}"#;
        let h = sign("s3cret", 1000, body);
        assert!(h.starts_with("t=1000,v1="));
        assert_eq!(h.len(), "t=1000,v1=".len() + 64);
        assert!(verify("s3cret", &h, body, 1000, 300));
        assert!(verify("s3cret", &h, body, 1300, 300));
        assert!(verify("s3cret", &h, body, 700, 300));
    }

    #[test]
    fn tampering_wrong_secret_and_staleness_fail() {
        let body = br#"{"a":1}"#;
        let h = sign("k", 5000, body);
        assert!(!verify("k", &h, br#"{"a":2}"#, 5000, 300));
        assert!(!verify("other", &h, body, 5000, 300));
        assert!(!verify("k", &h, body, 5301, 300));
        // Moving t breaks the MAC even inside the tolerance.
        let moved = h.replace("t=5000", "t=5001");
        assert!(!verify("k", &moved, body, 5000, 300));
        for junk in [
            "",
            "t=5000",
            "v1=00",
            "t=x,v1=00",
            "t=5000,v1=zz",
            "garbage",
        ] {
            assert!(!verify("k", junk, body, 5000, 300), "{junk:?}");
        }
    }

    #[test]
    fn rotation_signs_with_both_secrets_new_first() {
        let body = br#"{"event":"handoff"}"#;
        let h = sign_all(&["new", "old"], 77, body);
        let one = sign("new", 77, body);
        assert!(h.starts_with(&one), "{h}");
        assert_eq!(h.matches("v1=").count(), 2);
        // A receiver on either secret accepts it; one on neither does not.
        assert!(verify("new", &h, body, 77, 0));
        assert!(verify("old", &h, body, 77, 0));
        assert!(!verify("other", &h, body, 77, 0));
        assert_eq!(sign_all(&["new"], 77, body), one);
    }

    #[test]
    fn any_of_several_v1_tags_may_match() {
        let body = b"x";
        let good = sign("new", 10, body);
        let tag = good.split("v1=").nth(1).unwrap();
        let header = format!("t=10,v1={},v1={tag}", "00".repeat(32));
        assert!(verify("new", &header, body, 10, 0));
    }

    proptest::proptest! {
        #[test]
        fn sign_verify_round_trip(
            secret in ".{1,40}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            t in 0u64..4_000_000_000,
            flip in 0usize..300,
        ) {
            let h = sign(&secret, t, &body);
            proptest::prop_assert!(verify(&secret, &h, &body, t, 0));
            if !body.is_empty() {
                let mut other = body.clone();
                let i = flip % other.len();
                other[i] ^= 0x01;
                proptest::prop_assert!(!verify(&secret, &h, &other, t, 0));
            }
        }
    }
}
