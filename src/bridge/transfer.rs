//! Provider transfer APIs: the bodies and URLs that move a live caller to a human.
//!
//! Body builders are pure (tests check them without a network); `*_request` wraps them into a
//! `reqwest` request. Every call moves the caller *and* carries the `handoff_id` in band where
//! the provider offers a place for it, so the agent side can fetch the full handoff:
//!
//! | provider | where the `handoff_id` travels |
//! |---|---|
//! | Twilio `sip:` | SIP URI header `X-Handoff-Id` on the `<Sip>` INVITE |
//! | Twilio `client:` | `<Parameter name="handoff_id">` of the `<Client>` |
//! | Twilio number | `statusCallback` query `handoff_id=…` when `status_callback` is set; otherwise only the webhook (keyed by the same `call_id`) carries it, because `<Number>` has no custom field |
//! | Twilio `queue:` | TaskRouter task attributes when `workflow_sid` is set; otherwise the webhook only |
//! | Telnyx | `client_state` = base64(handoff_id), `command_id` = handoff_id, and SIP header `X-Handoff-Id` for `sip:` targets (warm: see [`super::warm_telnyx`]) |
//! | Vonage | SIP header `X-Handoff-Id` for `sip:` agents; numbers: webhook only (warm: the conversation name and `event_url`, see [`super::warm_vonage`]) |
//! | Plivo | `handoff_id=…` query parameter of `aleg_url` (warm: see [`super::warm_plivo`]) |
//!
//! Twilio `queue:NAME` uses `<Enqueue>` rather than `<Dial><Queue>`: `<Dial><Queue>` is what an
//! *agent* uses to take a caller out of a queue; a caller is put into one with `<Enqueue>`.

use super::config::{PlivoConfig, TelnyxConfig, TwilioConfig, VonageConfig};
use base64::Engine as _;
use reqwest::Url;
use serde_json::{Value, json};

/// A transfer request that cannot be built (a bad base URL or call id); never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A call id that cannot be one path segment: empty, `.` or `..` (which URL normalisation
    /// would drop or turn into "up one level", changing which API endpoint is called).
    #[error("call id {id:?} cannot be used in a provider API path")]
    BadCallId {
        /// The offending id.
        id: String,
    },
    /// The configured base or callback URL cannot carry the path or query.
    #[error("cannot build a request URL from `{url}`: {reason}")]
    BadUrl {
        /// The offending URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Escapes text for XML content and double-quoted attributes.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters and two noncharacters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `:` (a `pchar` that
/// cannot delimit anything inside a non-first segment, and that Telnyx's `v3:` call control
/// ids carry literally).
pub(super) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `handoff_id=<id>` added to its query.
pub fn with_handoff_query(url: &str, handoff_id: &str) -> Result<String, TransferError> {
    let mut u = Url::parse(url).map_err(|e| TransferError::BadUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    u.query_pairs_mut().append_pair("handoff_id", handoff_id);
    Ok(u.into())
}

/// `base` with `segments` appended as path segments, each percent-encoded byte by byte
/// (everything but RFC 3986 unreserved characters). Call ids come from the provider's stream
/// and must not be able to change the path: an id that is empty, `.` or `..` is refused, since
/// no encoding keeps those from being read as "this" or "parent" directory (the `url` crate
/// drops them, so Telnyx would receive `POST /v2/calls/actions/transfer`).
pub fn api_url(base: &str, segments: &[&str], trailing_slash: bool) -> Result<Url, TransferError> {
    let bad = |reason: String| TransferError::BadUrl {
        url: base.to_owned(),
        reason,
    };
    for seg in segments {
        if matches!(*seg, "" | "." | "..") {
            return Err(TransferError::BadCallId {
                id: (*seg).to_owned(),
            });
        }
    }
    let mut u = Url::parse(base).map_err(|e| bad(e.to_string()))?;
    if u.cannot_be_a_base() {
        return Err(bad("cannot be a base".into()));
    }
    let mut path = u.path().trim_end_matches('/').to_owned();
    for seg in segments {
        path.push('/');
        path.push_str(&pct(seg));
    }
    if trailing_slash {
        path.push('/');
    }
    u.set_path(&path);
    Ok(u)
}

/// Where a Twilio caller is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioAgent<'a> {
    /// A phone number.
    Number(&'a str),
    /// A `sip:` URI.
    Sip(&'a str),
    /// A Twilio Client identity (`client:NAME`).
    Client(&'a str),
    /// A queue (`queue:NAME`).
    Queue(&'a str),
}

impl<'a> TwilioAgent<'a> {
    /// Reads the `agent` setting.
    pub fn parse(agent: &'a str) -> Self {
        let agent = agent.trim();
        if agent
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("sip:"))
        {
            TwilioAgent::Sip(agent)
        } else if let Some(name) = agent.strip_prefix("client:") {
            TwilioAgent::Client(name)
        } else if let Some(name) = agent.strip_prefix("queue:") {
            TwilioAgent::Queue(name)
        } else {
            TwilioAgent::Number(agent)
        }
    }
}

/// The `Twiml` that says one line to the caller and moves them to the agent: in warm mode to
/// hold in the handoff's conference (see [`super::warm_twilio::hold_twiml`]), in blind mode
/// straight to the agent.
pub fn twiml(cfg: &TwilioConfig, handoff_id: &str) -> Result<String, TransferError> {
    if cfg.is_warm() {
        return super::warm_twilio::hold_twiml(cfg, handoff_id);
    }
    let mut x = String::from("<Response>");
    if !cfg.say.trim().is_empty() {
        x.push_str("<Say>");
        x.push_str(&xml_escape(&cfg.say));
        x.push_str("</Say>");
    }
    let callback = match &cfg.status_callback {
        Some(cb) => format!(
            " statusCallback=\"{}\" statusCallbackEvent=\"answered completed\"",
            xml_escape(&with_handoff_query(cb, handoff_id)?)
        ),
        None => String::new(),
    };
    match TwilioAgent::parse(&cfg.agent) {
        TwilioAgent::Number(n) => {
            x.push_str(&format!(
                "<Dial><Number{callback}>{}</Number></Dial>",
                xml_escape(n)
            ));
        }
        TwilioAgent::Sip(uri) => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            let uri = format!("{uri}{sep}X-Handoff-Id={}", pct(handoff_id));
            x.push_str(&format!(
                "<Dial><Sip{callback}>{}</Sip></Dial>",
                xml_escape(&uri)
            ));
        }
        TwilioAgent::Client(name) => {
            x.push_str(&format!(
                "<Dial><Client{callback}><Identity>{}</Identity>\
                 <Parameter name=\"handoff_id\" value=\"{}\"/></Client></Dial>",
                xml_escape(name),
                xml_escape(handoff_id)
            ));
        }
        TwilioAgent::Queue(name) => match &cfg.workflow_sid {
            Some(wf) => {
                let task = json!({"handoff_id": handoff_id, "queue": name}).to_string();
                x.push_str(&format!(
                    "<Enqueue workflowSid=\"{}\"><Task>{}</Task></Enqueue>",
                    xml_escape(wf),
                    xml_escape(&task)
                ));
            }
            None => {
                x.push_str(&format!("<Enqueue>{}</Enqueue>", xml_escape(name)));
            }
        },
    }
    x.push_str("</Response>");
    Ok(x)
}

/// Twilio call update: new TwiML for the live call `call_sid`.
pub fn twilio_request(
    client: &reqwest::Client,
    cfg: &TwilioConfig,
    call_sid: &str,
    handoff_id: &str,
) -> Result<reqwest::RequestBuilder, TransferError> {
    // `{sid}.json` is one segment, so `..` would survive as `...json`; refuse it all the same.
    if matches!(call_sid, "" | "." | "..") {
        return Err(TransferError::BadCallId {
            id: call_sid.to_owned(),
        });
    }
    let url = api_url(
        &cfg.api_base,
        &[
            "2010-04-01",
            "Accounts",
            &cfg.account_sid,
            "Calls",
            &format!("{call_sid}.json"),
        ],
        false,
    )?;
    let body = twiml(cfg, handoff_id)?;
    Ok(client
        .post(url)
        .basic_auth(&cfg.account_sid, Some(&cfg.auth_token))
        .form(&[("Twiml", body.as_str())]))
}

/// Telnyx `actions/transfer` body.
pub fn telnyx_body(cfg: &TelnyxConfig, handoff_id: &str) -> Value {
    let mut body = json!({
        "to": cfg.to,
        "client_state": base64::engine::general_purpose::STANDARD.encode(handoff_id),
        "command_id": handoff_id,
    });
    if cfg
        .to
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("sip:"))
    {
        body["custom_headers"] = json!([{"name": "X-Handoff-Id", "value": handoff_id}]);
    }
    body
}

/// Telnyx transfer of the call `call_control_id`: in warm mode the caller's hold (see
/// [`super::warm_telnyx::hold`]), in blind mode `actions/transfer` to the agent.
pub fn telnyx_request(
    client: &reqwest::Client,
    cfg: &TelnyxConfig,
    call_control_id: &str,
    handoff_id: &str,
) -> Result<reqwest::RequestBuilder, TransferError> {
    if cfg.is_warm() {
        let (url, body) = super::warm_telnyx::hold(cfg, call_control_id, handoff_id)?;
        return Ok(client.post(url).bearer_auth(&cfg.api_key).json(&body));
    }
    let url = api_url(
        &cfg.api_base,
        &["v2", "calls", call_control_id, "actions", "transfer"],
        false,
    )?;
    Ok(client
        .post(url)
        .bearer_auth(&cfg.api_key)
        .json(&telnyx_body(cfg, handoff_id)))
}

/// Vonage call modify body: transfer to an NCCO that talks one line and connects the agent; in
/// warm mode, to the hold in the handoff's conversation (see [`super::warm_vonage::hold_body`]).
pub fn vonage_body(cfg: &VonageConfig, handoff_id: &str) -> Value {
    if cfg.is_warm() {
        return super::warm_vonage::hold_body(cfg, handoff_id);
    }
    let endpoint = vonage_endpoint(&cfg.agent, handoff_id);
    let mut ncco = Vec::new();
    if !cfg.say.trim().is_empty() {
        ncco.push(json!({"action": "talk", "text": cfg.say}));
    }
    ncco.push(json!({"action": "connect", "endpoint": [endpoint]}));
    json!({"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}})
}

/// The Vonage endpoint of a number or `sip:` target (the SIP one carries `X-Handoff-Id`).
pub fn vonage_endpoint(target: &str, handoff_id: &str) -> Value {
    let t = target.trim();
    if t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:")) {
        json!({"type": "sip", "uri": t, "headers": {"X-Handoff-Id": handoff_id}})
    } else {
        // Vonage wants E.164 digits without the plus.
        json!({"type": "phone", "number": t.trim_start_matches('+')})
    }
}

/// Vonage `PUT /v1/calls/{uuid}`.
pub fn vonage_request(
    client: &reqwest::Client,
    cfg: &VonageConfig,
    uuid: &str,
    handoff_id: &str,
) -> Result<reqwest::RequestBuilder, TransferError> {
    let url = api_url(&cfg.api_base, &["v1", "calls", uuid], false)?;
    Ok(client
        .put(url)
        .bearer_auth(&cfg.jwt)
        .json(&vonage_body(cfg, handoff_id)))
}

/// Plivo transfer form fields.
pub fn plivo_form(
    cfg: &PlivoConfig,
    handoff_id: &str,
) -> Result<Vec<(&'static str, String)>, TransferError> {
    Ok(vec![
        ("legs", "aleg".to_owned()),
        ("aleg_url", with_handoff_query(&cfg.aleg_url, handoff_id)?),
        ("aleg_method", "POST".to_owned()),
    ])
}

/// Plivo `POST /v1/Account/{auth_id}/Call/{call_uuid}/`.
pub fn plivo_request(
    client: &reqwest::Client,
    cfg: &PlivoConfig,
    call_uuid: &str,
    handoff_id: &str,
) -> Result<reqwest::RequestBuilder, TransferError> {
    let url = api_url(
        &cfg.api_base,
        &["v1", "Account", &cfg.auth_id, "Call", call_uuid],
        true,
    )?;
    // Warm: the A leg goes to warmline's own hold XML (see `warm_plivo`).
    let form = if cfg.is_warm() {
        super::warm_plivo::hold_form(cfg, handoff_id)?
    } else {
        plivo_form(cfg, handoff_id)?
    };
    Ok(client
        .post(url)
        .basic_auth(&cfg.auth_id, Some(&cfg.auth_token))
        .form(&form))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twilio(agent: &str) -> TwilioConfig {
        TwilioConfig {
            say: "Hold on <now> & \"stay\"".into(),
            mode: crate::bridge::config::TransferMode::Blind,
            ..TwilioConfig::new("AC1", "t", agent)
        }
    }

    fn parse(x: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(x).unwrap_or_else(|e| panic!("{e}: {x}"))
    }

    #[test]
    fn number_agent_dials_the_number_and_escapes_the_say_line() {
        let x = twiml(&twilio("+15551234567"), "h-1").unwrap();
        let doc = parse(&x);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "Response");
        let say = root.children().find(|n| n.has_tag_name("Say")).unwrap();
        assert_eq!(say.text(), Some("Hold on <now> & \"stay\""));
        let num = root
            .descendants()
            .find(|n| n.has_tag_name("Number"))
            .unwrap();
        assert_eq!(num.text(), Some("+15551234567"));
        assert_eq!(num.parent().unwrap().tag_name().name(), "Dial");
    }

    #[test]
    fn number_agent_carries_the_id_in_the_status_callback() {
        let mut cfg = twilio("+15551234567");
        cfg.status_callback = Some("https://crm.example/cb?x=1".into());
        let x = twiml(&cfg, "h 1&2").unwrap();
        let doc = parse(&x);
        let num = doc
            .descendants()
            .find(|n| n.has_tag_name("Number"))
            .unwrap();
        let cb = Url::parse(num.attribute("statusCallback").unwrap()).unwrap();
        let pairs: Vec<(String, String)> = cb.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("x".into(), "1".into()),
                ("handoff_id".into(), "h 1&2".into())
            ]
        );
    }

    #[test]
    fn sip_agent_gets_the_id_as_uri_header() {
        let x = twiml(&twilio("sip:agent@pbx.example.com"), "h/<1>").unwrap();
        let doc = parse(&x);
        let sip = doc.descendants().find(|n| n.has_tag_name("Sip")).unwrap();
        assert_eq!(
            sip.text(),
            Some("sip:agent@pbx.example.com?X-Handoff-Id=h%2F%3C1%3E")
        );
        let x = twiml(&twilio("sip:a@b?X-Other=1"), "h1").unwrap();
        assert!(x.contains("sip:a@b?X-Other=1&amp;X-Handoff-Id=h1"), "{x}");
    }

    #[test]
    fn client_and_queue_agents() {
        let x = twiml(&twilio("client:alice"), "h\"1").unwrap();
        let doc = parse(&x);
        let p = doc
            .descendants()
            .find(|n| n.has_tag_name("Parameter"))
            .unwrap();
        assert_eq!(p.attribute("name"), Some("handoff_id"));
        assert_eq!(p.attribute("value"), Some("h\"1"));
        let id = doc
            .descendants()
            .find(|n| n.has_tag_name("Identity"))
            .unwrap();
        assert_eq!(id.text(), Some("alice"));

        let x = twiml(&twilio("queue:support & billing"), "h1").unwrap();
        let doc = parse(&x);
        let q = doc
            .descendants()
            .find(|n| n.has_tag_name("Enqueue"))
            .unwrap();
        assert_eq!(q.text(), Some("support & billing"));

        let mut cfg = twilio("queue:support");
        cfg.workflow_sid = Some("WW1".into());
        let x = twiml(&cfg, "h1").unwrap();
        let doc = parse(&x);
        let task = doc.descendants().find(|n| n.has_tag_name("Task")).unwrap();
        let attrs: Value = serde_json::from_str(task.text().unwrap()).unwrap();
        assert_eq!(attrs["handoff_id"], "h1");
    }

    #[test]
    fn empty_say_is_left_out() {
        let mut cfg = twilio("+1555");
        cfg.say = String::new();
        assert_eq!(
            twiml(&cfg, "h").unwrap(),
            "<Response><Dial><Number>+1555</Number></Dial></Response>"
        );
    }

    #[test]
    fn control_characters_cannot_break_the_xml() {
        let mut cfg = twilio("+1555");
        cfg.say = "a\u{0}b\u{1b}c\u{FFFE}".into();
        parse(&twiml(&cfg, "h").unwrap());
    }

    #[test]
    fn urls_encode_call_ids_as_one_segment() {
        let u = api_url(
            "http://127.0.0.1:9/base/",
            &["v2", "calls", "a/../b?c", "x"],
            false,
        )
        .unwrap();
        assert_eq!(u.path(), "/base/v2/calls/a%2F..%2Fb%3Fc/x");
        // Every byte outside the unreserved set is encoded, so nothing a peer sends can be read
        // as a delimiter, a dot segment or a second encoding layer by the provider.
        let u = api_url("http://h", &["v1", "%2e%2E;x=1#f é\\"], false).unwrap();
        assert_eq!(u.path(), "/v1/%252e%252E%3Bx%3D1%23f%20%C3%A9%5C");
        for id in ["", ".", ".."] {
            assert_eq!(
                api_url("http://h/v2", &["calls", id, "actions"], false),
                Err(TransferError::BadCallId { id: id.into() })
            );
        }
        let u = api_url("https://api.plivo.com", &["v1", "Call", "u1"], true).unwrap();
        assert_eq!(u.as_str(), "https://api.plivo.com/v1/Call/u1/");
    }

    #[test]
    fn telnyx_vonage_plivo_bodies() {
        let t = TelnyxConfig::new("k", "sip:agent@pbx");
        let b = telnyx_body(&t, "h1");
        assert_eq!(b["to"], "sip:agent@pbx");
        assert_eq!(b["client_state"], "aDE=");
        assert_eq!(b["command_id"], "h1");
        assert_eq!(b["custom_headers"][0]["value"], "h1");

        let v = VonageConfig {
            say: "hold".into(),
            ..VonageConfig::new("j", "+15551234567")
        };
        let b = vonage_body(&v, "h1");
        assert_eq!(b["action"], "transfer");
        assert_eq!(b["destination"]["type"], "ncco");
        assert_eq!(b["destination"]["ncco"][1]["action"], "connect");
        assert_eq!(
            b["destination"]["ncco"][1]["endpoint"][0]["number"],
            "15551234567"
        );

        let p = PlivoConfig::new("MA1", "t", "https://x.example/agent.xml");
        let f = plivo_form(&p, "h1").unwrap();
        assert_eq!(f[0], ("legs", "aleg".to_owned()));
        assert_eq!(
            f[1],
            (
                "aleg_url",
                "https://x.example/agent.xml?handoff_id=h1".to_owned()
            )
        );
    }

    proptest::proptest! {
        #[test]
        fn twiml_is_always_well_formed_and_keeps_the_values(
            say in ".{0,40}", target in "[^\u{0}-\u{1f}]{1,30}", id in ".{1,30}",
        ) {
            for agent in [target.clone(), format!("sip:{target}"), format!("client:{target}")] {
                let mut cfg = twilio(&agent);
                cfg.say = say.clone();
                let x = twiml(&cfg, &id).unwrap();
                let doc = roxmltree::Document::parse(&x)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}: {x}")))?;
                proptest::prop_assert_eq!(doc.root_element().tag_name().name(), "Response");
                proptest::prop_assert!(doc.descendants().any(|n| n.has_tag_name("Dial")));
            }
        }
    }
}
