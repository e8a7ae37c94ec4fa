//! Upgrade authentication, pure: Twilio's `X-Twilio-Signature` (HMAC-SHA1 over the URL Twilio
//! dialled, which has to be rebuilt behind proxies) and the shared bearer token accepted from
//! the other providers (`Authorization: Bearer`/`Basic`, Telnyx's
//! `x-telnyx-streaming-auth-token`), and the checks of a Twilio `start` that a replayed
//! upgrade signature cannot pass (the account, the per-call token). No I/O; every comparison
//! is constant time.

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Twilio's signature: base64(HMAC-SHA1(auth_token, url ‖ name₁ ‖ value₁ ‖ …)) with the params
/// sorted by name (then value), byte order. A WebSocket upgrade has no params.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC takes keys of any length; the error case cannot happen, and an empty signature
    // never verifies.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `header_sig` is Twilio's signature of any of `candidate_urls` (from
/// [`twilio_candidate_urls`]; each is the whole signed string). Every candidate is checked, in
/// constant time, so the timing says nothing about which one matched. An empty token or
/// header never verifies.
pub fn verify_twilio(auth_token: &str, header_sig: &str, candidate_urls: &[String]) -> bool {
    let header_sig = header_sig.trim();
    if auth_token.is_empty() || header_sig.is_empty() {
        return false;
    }
    let mut ok = subtle::Choice::from(0);
    for url in candidate_urls {
        let expected = twilio_signature(auth_token, url, &[]);
        ok |= expected.as_bytes().ct_eq(header_sig.as_bytes());
    }
    ok.into()
}

/// The URLs Twilio may have signed for an upgrade of `path_and_query`, most likely first.
///
/// The origin is `public_url` if configured (any scheme; `https`→`wss`, `http`→`ws`; a path in
/// it is a prefix a proxy stripped), else `X-Forwarded-Proto`/`X-Forwarded-Host`, else
/// `Forwarded` (`proto=`, `host=`), else `Host` with `ws` (a plain upgrade). Each origin comes
/// with and without its scheme's default port (`:443` for `wss`, `:80` for `ws`). With a query,
/// the variant Twilio's own tooling signs is added too: the query stripped and its decoded
/// params sorted and appended. Empty when no host is known.
pub fn twilio_candidate_urls(
    public_url: Option<&str>,
    headers: &HeaderMap,
    path_and_query: &str,
) -> Vec<String> {
    let (scheme, host, prefix) = match public_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("wss", url));
            let (host, prefix) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            let prefix = prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            };
            (ws_scheme(scheme), host.to_owned(), prefix)
        }
        None => {
            let forwarded = header(headers, "forwarded").map(parse_forwarded);
            let proto = first_value(headers, "x-forwarded-proto")
                .or_else(|| forwarded.as_ref().and_then(|f| f.0.clone()));
            let host = first_value(headers, "x-forwarded-host")
                .or_else(|| forwarded.as_ref().and_then(|f| f.1.clone()))
                .or_else(|| first_value(headers, "host"));
            let Some(host) = host else {
                return Vec::new();
            };
            (
                proto.as_deref().map_or("ws", ws_scheme),
                host,
                String::new(),
            )
        }
    };
    if host.is_empty() {
        return Vec::new();
    }
    let default_port = if scheme == "wss" { "443" } else { "80" };
    let (hostname, port) = split_port(&host);
    let hosts: Vec<String> = match port {
        None => vec![hostname.to_owned(), format!("{hostname}:{default_port}")],
        Some(p) if p == default_port => vec![hostname.to_owned(), host.clone()],
        Some(_) => vec![host.clone()],
    };
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query.as_str(), None),
    };
    let mut out = Vec::with_capacity(hosts.len() * 2);
    for h in &hosts {
        out.push(format!("{scheme}://{h}{prefix}{path_and_query}"));
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let mut params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        params.sort();
        let tail: String = params.iter().flat_map(|(k, v)| [k.as_str(), v]).collect();
        for h in &hosts {
            out.push(format!("{scheme}://{h}{prefix}{path}{tail}"));
        }
    }
    out.dedup();
    out
}

/// The `<Parameter>` name (`start.customParameters`) carrying the per-call token.
pub const CALL_TOKEN_PARAMETER: &str = "warmline_token";

/// The per-call token of `call_sid`: lowercase hex of HMAC-SHA256(`secret`, `call_sid`). The
/// TwiML that starts the stream puts it in `<Parameter name="warmline_token">`; Twilio drops
/// query strings on stream URLs, so a parameter is the one place it survives.
pub fn call_token(secret: &str, call_sid: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(call_sid.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a Twilio `start`: its `accountSid` against `account_sid` and, with a
/// `call_token_secret`, its per-call token against the `callSid`. A captured upgrade
/// signature opens a socket but cannot pass these for another account or call. `Err` holds a
/// metric label and the close reason.
pub fn check_twilio_start(
    account_sid: Option<&str>,
    call_token_secret: Option<&str>,
    start_account: Option<&str>,
    call_sid: &str,
    given_token: Option<&str>,
) -> Result<(), (&'static str, &'static str)> {
    if let Some(want) = account_sid
        && !start_account.is_some_and(|got| token_eq(want, got))
    {
        return Err((
            "account_sid",
            "start.accountSid is not the configured account",
        ));
    }
    if let Some(secret) = call_token_secret {
        let Some(given) = given_token else {
            return Err((
                "call_token_missing",
                "start.customParameters.warmline_token is missing",
            ));
        };
        if !token_eq(&call_token(secret, call_sid), given.trim()) {
            return Err((
                "call_token_invalid",
                "start.customParameters.warmline_token does not match the callSid",
            ));
        }
    }
    Ok(())
}

/// Whether the request carries `expected` as `Authorization: Bearer <t>`, as
/// `Authorization: Basic base64(user:<t>)` (any user; or the whole `user:pass` equal to the
/// token, for providers that put the token in the URL's userinfo), or as
/// `x-telnyx-streaming-auth-token: <t>`. Constant time; an empty expected token matches nothing.
pub fn token_matches(expected: &str, headers: &HeaderMap) -> bool {
    if expected.is_empty() {
        return false;
    }
    let mut ok = false;
    for value in headers.get_all("authorization") {
        let Ok(value) = value.to_str() else { continue };
        let value = value.trim();
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            ok |= token_eq(expected, credentials);
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
                continue;
            };
            let decoded = String::from_utf8_lossy(&decoded);
            let password = decoded.split_once(':').map_or("", |(_, p)| p);
            ok |= token_eq(expected, password) | token_eq(expected, &decoded);
        }
    }
    for value in headers.get_all("x-telnyx-streaming-auth-token") {
        if let Ok(value) = value.to_str() {
            ok |= token_eq(expected, value.trim());
        }
    }
    ok
}

/// Constant-time token comparison that does not leak the length either (both sides are
/// hashed first). Also for in-band tokens such as Telnyx's `connected` frame.
pub fn token_eq(expected: &str, given: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

fn ws_scheme(scheme: &str) -> &'static str {
    if ["https", "wss"]
        .iter()
        .any(|s| scheme.trim().eq_ignore_ascii_case(s))
    {
        "wss"
    } else {
        "ws"
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The first of a comma-separated proxy header (the hop nearest the client).
fn first_value(headers: &HeaderMap, name: &str) -> Option<String> {
    header(headers, name)
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `proto` and `host` of the first element of an RFC 7239 `Forwarded` header.
fn parse_forwarded(value: &str) -> (Option<String>, Option<String>) {
    let first = value.split(',').next().unwrap_or_default();
    let mut proto = None;
    let mut host = None;
    for pair in first.split(';') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => proto = Some(v),
            "host" => host = Some(v),
            _ => {}
        }
    }
    (proto, host)
}

/// `example.com:443` → (`example.com`, Some(`443`)); IPv6 literals keep their brackets.
fn split_port(host: &str) -> (&str, Option<&str>) {
    let after_bracket = host.rfind(']').map_or(0, |i| i + 1);
    match host[after_bracket..].rfind(':') {
        Some(i) => {
            let i = after_bracket + i;
            (&host[..i], Some(&host[i + 1..]))
        }
        None => (host, None),
    }
}

/// Form-style percent decoding (`+` is a space); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reproduces_twilios_published_vector() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .rev()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn verifies_the_websocket_vector_behind_a_tls_proxy() {
        let sig = "7PR3qMkpDyEJtMrVOY/LDyNq8J8=";
        assert_eq!(
            twilio_signature("12345", "wss://example.com/media", &[]),
            sig
        );
        let h = headers(&[
            ("host", "10.0.0.7:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "example.com"),
        ]);
        let urls = twilio_candidate_urls(None, &h, "/media");
        assert_eq!(
            urls,
            ["wss://example.com/media", "wss://example.com:443/media"]
        );
        assert!(verify_twilio("12345", sig, &urls));
        // Twilio signed with an explicit :443 that the proxy did not forward.
        let with_port = twilio_signature("12345", "wss://example.com:443/media", &[]);
        assert!(verify_twilio("12345", &with_port, &urls));
        // The proxy forwarded :443 that Twilio did not sign.
        let h = headers(&[
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "example.com:443"),
        ]);
        assert!(verify_twilio(
            "12345",
            sig,
            &twilio_candidate_urls(None, &h, "/media")
        ));
    }

    #[test]
    fn rebuilds_from_forwarded_public_url_or_plain_host() {
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=https;host=\"example.com\", for=10.0.0.1",
        )]);
        assert_eq!(
            twilio_candidate_urls(None, &h, "/media")[0],
            "wss://example.com/media"
        );
        // The configured public URL wins over any header.
        let h = headers(&[("host", "internal:8080"), ("x-forwarded-proto", "http")]);
        let urls = twilio_candidate_urls(Some("https://example.com/"), &h, "/media");
        assert_eq!(
            urls,
            ["wss://example.com/media", "wss://example.com:443/media"]
        );
        let urls = twilio_candidate_urls(Some("wss://example.com/gw"), &h, "/media");
        assert_eq!(urls[0], "wss://example.com/gw/media");
        // A plain upgrade: ws, with and without :80.
        let h = headers(&[("host", "127.0.0.1:80")]);
        assert_eq!(
            twilio_candidate_urls(None, &h, "/media"),
            ["ws://127.0.0.1/media", "ws://127.0.0.1:80/media"]
        );
        let h = headers(&[("host", "[::1]:8080")]);
        assert_eq!(
            twilio_candidate_urls(None, &h, "/media"),
            ["ws://[::1]:8080/media"]
        );
        assert!(twilio_candidate_urls(None, &HeaderMap::new(), "/media").is_empty());
    }

    #[test]
    fn a_query_is_tried_in_place_and_as_sorted_params() {
        let h = headers(&[("host", "example.com"), ("x-forwarded-proto", "https")]);
        let urls = twilio_candidate_urls(None, &h, "/media?b=2&a=x%20y+z");
        assert!(urls.contains(&"wss://example.com/media?b=2&a=x%20y+z".to_owned()));
        assert!(urls.contains(&"wss://example.com/mediaax y zb2".to_owned()));
        let params = [
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "x y z".to_owned()),
        ];
        let sig = twilio_signature("12345", "wss://example.com/media", &params);
        assert!(verify_twilio("12345", &sig, &urls));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%e2%82%ac"), "A€");
    }

    #[test]
    fn wrong_or_missing_signatures_are_refused() {
        let urls = vec!["wss://example.com/media".to_owned()];
        assert!(verify_twilio(
            "12345",
            " 7PR3qMkpDyEJtMrVOY/LDyNq8J8= ",
            &urls
        ));
        assert!(!verify_twilio(
            "12345",
            "7PR3qMkpDyEJtMrVOY/LDyNq8J8",
            &urls
        ));
        assert!(!verify_twilio(
            "54321",
            "7PR3qMkpDyEJtMrVOY/LDyNq8J8=",
            &urls
        ));
        assert!(!verify_twilio("12345", "", &urls));
        assert!(!verify_twilio("", "7PR3qMkpDyEJtMrVOY/LDyNq8J8=", &urls));
        assert!(!verify_twilio("12345", "7PR3qMkpDyEJtMrVOY/LDyNq8J8=", &[]));
        let other = vec!["wss://example.com/other".to_owned()];
        assert!(!verify_twilio(
            "12345",
            "7PR3qMkpDyEJtMrVOY/LDyNq8J8=",
            &other
        ));
    }

    #[test]
    fn a_start_must_name_the_account_and_carry_its_calls_token() {
        let acct = Some("AC1");
        let secret = Some("k");
        let tok = call_token("k", "CA1");
        assert_eq!(tok.len(), 64);
        assert_eq!(check_twilio_start(None, None, None, "CA1", None), Ok(()));
        assert_eq!(
            check_twilio_start(acct, secret, Some("AC1"), "CA1", Some(&tok)),
            Ok(())
        );
        let label = |r: Result<(), (&'static str, &'static str)>| r.unwrap_err().0;
        assert_eq!(
            label(check_twilio_start(acct, None, Some("AC2"), "CA1", None)),
            "account_sid"
        );
        assert_eq!(
            label(check_twilio_start(acct, None, None, "CA1", None)),
            "account_sid"
        );
        assert_eq!(
            label(check_twilio_start(None, secret, None, "CA1", None)),
            "call_token_missing"
        );
        // A token for one call does not open another (the replay/squatting case).
        assert_eq!(
            label(check_twilio_start(None, secret, None, "CA2", Some(&tok))),
            "call_token_invalid"
        );
        assert_ne!(call_token("k", "CA1"), call_token("k2", "CA1"));
    }

    #[test]
    fn tokens_are_accepted_in_every_documented_place_and_nowhere_else() {
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let good = [
            headers(&[("authorization", "Bearer s3cret")]),
            headers(&[("authorization", "bearer  s3cret ")]),
            headers(&[("authorization", &basic("exotel-key:s3cret"))]),
            headers(&[("authorization", &basic("s3cret"))]),
            headers(&[("x-telnyx-streaming-auth-token", "s3cret")]),
        ];
        for h in &good {
            assert!(token_matches("s3cret", h), "{h:?}");
        }
        // A whole `user:pass` may be the token.
        let h = headers(&[("authorization", &basic("key:pass"))]);
        assert!(token_matches("key:pass", &h));
        let bad = [
            HeaderMap::new(),
            headers(&[("authorization", "Bearer s3cre")]),
            headers(&[("authorization", "Bearer s3cret2")]),
            headers(&[("authorization", "s3cret")]),
            headers(&[("authorization", &basic("s3cret:nope"))]),
            headers(&[("authorization", "Basic !!!")]),
            headers(&[("x-telnyx-streaming-auth-token", "wrong")]),
            headers(&[("x-api-key", "s3cret")]),
        ];
        for h in &bad {
            assert!(!token_matches("s3cret", h), "{h:?}");
        }
        assert!(!token_matches(
            "",
            &headers(&[("authorization", "Bearer ")])
        ));
        assert!(token_eq("tok_7c1f", "tok_7c1f"));
        assert!(!token_eq("tok_7c1f", "tok_7c1"));
        assert!(!token_eq("", ""));
    }
}
