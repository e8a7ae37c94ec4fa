//! Upgrade authentication (placeholder until the full module lands).

use axum::http::HeaderMap;

/// Twilio signature over a URL and params.
pub fn twilio_signature(_auth_token: &str, _url: &str, _params: &[(String, String)]) -> String {
    String::new()
}

/// Whether the signature matches any candidate URL.
pub fn verify_twilio(_auth_token: &str, _header_sig: &str, _candidate_urls: &[String]) -> bool {
    false
}

/// URLs Twilio may have signed.
pub fn twilio_candidate_urls(
    _public_url: Option<&str>,
    _headers: &HeaderMap,
    _path_and_query: &str,
) -> Vec<String> {
    Vec::new()
}

/// Whether the request carries the token.
pub fn token_matches(expected: &str, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == expected)
}
