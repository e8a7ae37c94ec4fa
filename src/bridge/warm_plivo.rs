//! Plivo's side of the warm transfer: the REST requests that carry out
//! [`super::warm::Action`]s, the XML warmline serves to Plivo, and the reader of Plivo's
//! callbacks.
//!
//! The flow (protocols.md §12.4): the bridge's delivery transfers the caller's A leg to
//! warmline's XML (`GET|POST /v1/providers/plivo/xml?leg=caller…`), which `<Speak>`s the `say`
//! line and holds them in `<Conference startConferenceOnEnter="false">warmline-{handoff_id}`
//! (`waitSound` = `hold_url`; the conference's `callbackUrl` reports the caller leaving). The
//! agent leg is `POST /v1/Account/{id}/Call/` whose `answer_url` is warmline's XML for the agent:
//! Plivo fetching it *is* the answer, and the XML `<Speak>`s the whisper, then joins and starts
//! the conference. Its `hangup_url` reports how an unanswered leg ended. The `handoff_id` rides
//! in every URL and as the SIP header `X-PH-HandoffId` (Plivo's prefix for `sip_headers`).
//!
//! Authentication: protocols.md does not give the `X-Plivo-Signature-V3` scheme, so warmline
//! does not check it; instead every URL it gives Plivo carries `token` = hex HMAC-SHA256, keyed
//! by the account's auth token, of the route and the query before it, checked in constant time
//! (a URL nobody but Plivo and warmline knows, that cannot be altered).

use super::config::PlivoConfig;
use super::transfer::{TransferError, api_url, xml_escape};
use super::warm::{Action, Input, LegStatus, Terminal, WarmTransfer};
use super::warm_run::{Executed, LegIdOf, refused, send};
use hmac::{Hmac, Mac};
use reqwest::Url;
use serde_json::json;

/// The XML route (caller's hold, the agent's whisper, terminals).
pub const XML_PATH: &str = "/v1/providers/plivo/xml";
/// The callback route (the agent leg's hang-up, the caller leaving the conference).
pub const STATUS_PATH: &str = "/v1/providers/plivo/status";

/// The conference both legs meet in.
pub fn room(handoff_id: &str) -> String {
    format!("warmline-{handoff_id}")
}

fn token(auth_token: &str, route: &str, query: &str) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(route.as_bytes());
    mac.update(b"?");
    mac.update(query.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `{callback_base}{route}?{pairs}&token=…`.
pub fn signed_url(
    cfg: &PlivoConfig,
    route: &str,
    pairs: &[(&str, &str)],
) -> Result<String, TransferError> {
    let base = cfg
        .callback_base
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    let mut u = Url::parse(&format!("{base}{route}")).map_err(|e| TransferError::BadUrl {
        url: base.to_owned(),
        reason: e.to_string(),
    })?;
    u.query_pairs_mut().extend_pairs(pairs);
    let query = u.query().unwrap_or("").to_owned();
    let tok = token(&cfg.auth_token, route, &query);
    u.query_pairs_mut().append_pair("token", &tok);
    Ok(u.into())
}

/// Checks the `token` of a request to `route` with this raw query (the token last, as
/// [`signed_url`] puts it) and returns the query's pairs.
pub fn verify(
    auth_token: &str,
    route: &str,
    raw_query: &str,
) -> Result<Vec<(String, String)>, &'static str> {
    use subtle::ConstantTimeEq as _;
    let (query, tok) = raw_query
        .rsplit_once("&token=")
        .ok_or("no token in the callback URL")?;
    let expected = token(auth_token, route, query);
    if auth_token.is_empty() || !bool::from(expected.as_bytes().ct_eq(tok.as_bytes())) {
        return Err("token does not match");
    }
    Ok(Url::parse(&format!("http://x/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default())
}

/// The caller's XML: the `say` line, then hold in the conference until the agent starts it.
pub fn hold_xml(cfg: &PlivoConfig, handoff_id: &str) -> Result<String, TransferError> {
    let mut x = String::from("<Response>");
    if !cfg.say.trim().is_empty() {
        x.push_str(&format!("<Speak>{}</Speak>", xml_escape(&cfg.say)));
    }
    let cb = signed_url(
        cfg,
        STATUS_PATH,
        &[("handoff_id", handoff_id), ("leg", "caller")],
    )?;
    let mut attrs = format!(
        " startConferenceOnEnter=\"false\" endConferenceOnExit=\"true\" callbackUrl=\"{}\" \
         callbackMethod=\"POST\"",
        xml_escape(&cb)
    );
    if let Some(h) = &cfg.hold_url {
        attrs.push_str(&format!(" waitSound=\"{}\"", xml_escape(h)));
    }
    x.push_str(&format!(
        "<Conference{attrs}>{}</Conference></Response>",
        xml_escape(&room(handoff_id))
    ));
    Ok(x)
}

/// The agent's XML: the whisper, then into the conference (starting it).
pub fn agent_xml(handoff_id: &str, whisper: &str) -> String {
    let mut x = String::from("<Response>");
    if !whisper.trim().is_empty() {
        x.push_str(&format!("<Speak>{}</Speak>", xml_escape(whisper)));
    }
    x.push_str(&format!(
        "<Conference startConferenceOnEnter=\"true\" endConferenceOnExit=\"true\">{}\
         </Conference></Response>",
        xml_escape(&room(handoff_id))
    ));
    x
}

/// The XML that ends a leg nobody waits for any more.
pub const HANGUP_XML: &str = "<Response><Hangup/></Response>";

/// The caller's XML for a terminal. Plivo has no call queue: `queue:NAME` holds the caller in
/// the conference `NAME` (with `hold_url`), which agents join to take them.
pub fn terminal_xml(cfg: &PlivoConfig, t: &Terminal) -> String {
    let body = match t {
        Terminal::Queue(name) => {
            let wait = cfg
                .hold_url
                .as_deref()
                .map(|h| format!(" waitSound=\"{}\"", xml_escape(h)))
                .unwrap_or_default();
            format!(
                "<Speak>Everyone is busy; you are next in line.</Speak><Conference \
                 startConferenceOnEnter=\"false\"{wait}>{}</Conference>",
                xml_escape(name)
            )
        }
        Terminal::Voicemail => "<Speak>Sorry, no one could take your call. Please leave a \
                                message after the tone.</Speak><Record maxLength=\"120\" \
                                playBeep=\"true\"/>"
            .to_owned(),
        Terminal::Bot(url) => format!(
            "<Speak>Sorry, no one is free right now.</Speak><Stream bidirectional=\"true\" \
             keepCallAlive=\"true\" contentType=\"audio/x-mulaw;rate=8000\">{}</Stream>",
            xml_escape(url)
        ),
    };
    format!("<Response>{body}</Response>")
}

/// What an XML request asks for, read from its verified query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlRequest {
    /// The caller's hold.
    Caller {
        /// The handoff.
        handoff_id: String,
    },
    /// Agent leg `attempt` answered and wants its script.
    Agent {
        /// The handoff.
        handoff_id: String,
        /// Which attempt.
        attempt: u32,
        /// The brief.
        whisper: String,
    },
    /// The caller, off hold, to a terminal.
    Terminal(Terminal),
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Reads a verified XML query.
pub fn read_xml_request(q: &[(String, String)]) -> Result<XmlRequest, &'static str> {
    let handoff_id = get(q, "handoff_id").ok_or("no handoff_id")?.to_owned();
    match get(q, "leg") {
        Some("caller") => Ok(XmlRequest::Caller { handoff_id }),
        Some("agent") => Ok(XmlRequest::Agent {
            handoff_id,
            attempt: get(q, "attempt")
                .and_then(|a| a.parse().ok())
                .ok_or("no attempt")?,
            whisper: get(q, "whisper").unwrap_or("").to_owned(),
        }),
        Some("terminal") => get(q, "terminal")
            .and_then(Terminal::parse)
            .map(XmlRequest::Terminal)
            .ok_or("no terminal"),
        _ => Err("leg is caller, agent or terminal"),
    }
}

/// Reads a Plivo `CallStatus` (else `HangupCause`) of an agent leg's hang-up.
pub fn leg_status(call_status: Option<&str>, hangup_cause: Option<&str>) -> LegStatus {
    match (call_status, hangup_cause) {
        (Some("busy"), _) | (_, Some("USER_BUSY" | "CALL_REJECTED")) => LegStatus::Busy,
        (Some("no-answer" | "timeout"), _) | (_, Some("NO_ANSWER")) => LegStatus::NoAnswer,
        (Some("cancel"), _) | (_, Some("ORIGINATOR_CANCEL")) => LegStatus::Canceled,
        (Some("completed"), _) | (_, Some("NORMAL_CLEARING")) => LegStatus::Completed,
        _ => LegStatus::Failed,
    }
}

/// Reads a verified status callback: its handoff id and input, `None` for events that change
/// nothing (a caller entering the conference).
pub fn read_status(
    query: &[(String, String)],
    form: &[(String, String)],
) -> Result<Option<(String, Input)>, &'static str> {
    let handoff_id = get(query, "handoff_id").ok_or("no handoff_id")?.to_owned();
    let input = match get(query, "leg") {
        Some("agent") => Input::LegStatus {
            attempt: get(query, "attempt")
                .and_then(|a| a.parse().ok())
                .ok_or("no attempt")?,
            status: leg_status(get(form, "CallStatus"), get(form, "HangupCause")),
        },
        Some("caller") if get(form, "ConferenceAction") == Some("exit") => Input::CallerLeft,
        Some("caller") => return Ok(None),
        _ => return Err("leg is agent or caller"),
    };
    Ok(Some((handoff_id, input)))
}

/// Form of the A-leg transfer to `aleg_url`.
fn transfer_form(aleg_url: String) -> Vec<(&'static str, String)> {
    vec![
        ("legs", "aleg".to_owned()),
        ("aleg_url", aleg_url),
        ("aleg_method", "POST".to_owned()),
    ]
}

/// The caller's hold, the bridge's delivery in warm mode: the A leg to warmline's hold XML.
pub fn hold_form(
    cfg: &PlivoConfig,
    handoff_id: &str,
) -> Result<Vec<(&'static str, String)>, TransferError> {
    let url = signed_url(
        cfg,
        XML_PATH,
        &[("handoff_id", handoff_id), ("leg", "caller")],
    )?;
    Ok(transfer_form(url))
}

/// `POST Call/` body of agent leg `attempt` to `target`.
pub fn agent_leg_body(
    cfg: &PlivoConfig,
    handoff_id: &str,
    attempt: u32,
    target: &str,
    whisper: &str,
) -> Result<serde_json::Value, TransferError> {
    let n = attempt.to_string();
    let answer = signed_url(
        cfg,
        XML_PATH,
        &[
            ("handoff_id", handoff_id),
            ("leg", "agent"),
            ("attempt", &n),
            ("whisper", whisper),
        ],
    )?;
    let hangup = signed_url(
        cfg,
        STATUS_PATH,
        &[
            ("handoff_id", handoff_id),
            ("leg", "agent"),
            ("attempt", &n),
        ],
    )?;
    Ok(json!({
        "from": cfg.caller_id.as_deref().unwrap_or(""),
        "to": target.trim(),
        "answer_url": answer,
        "answer_method": "POST",
        "hangup_url": hangup,
        "hangup_method": "POST",
        "ring_timeout": cfg.answer_timeout_s,
        "sip_headers": format!("HandoffId={handoff_id}"),
    }))
}

/// Sends the request of one action of transfer `t`. [`Action::Emit`] and
/// [`Action::JoinCaller`] (the agent's XML joins by itself) give [`Executed::Done`].
pub async fn execute(
    client: &reqwest::Client,
    cfg: &PlivoConfig,
    t: &WarmTransfer,
    action: &Action,
) -> Executed {
    let account = |rest: &[&str]| {
        let mut segs = vec!["v1", "Account", cfg.auth_id.as_str()];
        segs.extend_from_slice(rest);
        api_url(&cfg.api_base, &segs, true)
    };
    let built = match action {
        Action::DialAgent {
            attempt,
            target,
            whisper,
        } => account(&["Call"]).and_then(|u| {
            let body = agent_leg_body(cfg, &t.handoff_id, *attempt, target, whisper)?;
            Ok(client.post(u).json(&body))
        }),
        // A ringing leg is still a "request"; cancelling it stops the ringing.
        Action::CancelLeg { leg_id } => account(&["Request", leg_id]).map(|u| client.delete(u)),
        Action::RouteCaller(terminal) => {
            let target = match terminal {
                Terminal::Queue(name) => format!("queue:{name}"),
                Terminal::Voicemail => "voicemail".to_owned(),
                Terminal::Bot(url) => format!("bot:{url}"),
            };
            let pairs = [
                ("handoff_id", t.handoff_id.as_str()),
                ("leg", "terminal"),
                ("terminal", target.as_str()),
            ];
            signed_url(cfg, XML_PATH, &pairs).and_then(|aleg| {
                Ok(client
                    .post(account(&["Call", &t.call_id])?)
                    .form(&transfer_form(aleg)))
            })
        }
        Action::Emit(_) | Action::JoinCaller { .. } => return Executed::Done,
    };
    let req = match built {
        Ok(r) => r.basic_auth(&cfg.auth_id, Some(&cfg.auth_token)),
        Err(e) => return refused(action, e.to_string()),
    };
    let leg_id: LegIdOf = match action {
        Action::DialAgent { .. } => Some(|v| v["request_uuid"].as_str()),
        _ => None,
    };
    send(req, leg_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PlivoConfig {
        PlivoConfig {
            agent: Some("+15551112222".into()),
            caller_id: Some("+15550000000".into()),
            callback_base: Some("https://gw.example.com/".into()),
            hold_url: Some("https://x.example/hold.xml?a=1&b=2".into()),
            say: "Please hold.".into(),
            ..PlivoConfig::new("MA1", "ptok", "")
        }
    }

    fn doc(x: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(x).unwrap_or_else(|e| panic!("{e}: {x}"))
    }

    fn query(url: &str) -> &str {
        url.split_once('?').map_or("", |(_, q)| q)
    }

    #[test]
    fn signed_urls_verify_and_any_change_is_refused() {
        let u = signed_url(&cfg(), XML_PATH, &[("handoff_id", "h&1"), ("leg", "agent")]).unwrap();
        assert!(u.starts_with("https://gw.example.com/v1/providers/plivo/xml?handoff_id=h%261"));
        let q = verify("ptok", XML_PATH, query(&u)).unwrap();
        assert_eq!(get(&q, "handoff_id"), Some("h&1"));
        assert_eq!(get(&q, "token"), None);
        let tampered = query(&u).replace("leg=agent", "leg=caller");
        assert!(verify("ptok", XML_PATH, &tampered).is_err());
        assert!(verify("other", XML_PATH, query(&u)).is_err());
        assert!(
            verify("ptok", STATUS_PATH, query(&u)).is_err(),
            "bound to its route"
        );
        assert!(verify("", XML_PATH, query(&u)).is_err());
        assert!(verify("ptok", XML_PATH, "handoff_id=h").is_err());
    }

    #[test]
    fn hold_xml_waits_for_the_agent_and_reports_the_caller_leaving() {
        let x = hold_xml(&cfg(), "h<1").unwrap();
        let d = doc(&x);
        let names: Vec<&str> = d
            .root_element()
            .children()
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(names, ["Speak", "Conference"]);
        let c = d
            .descendants()
            .find(|n| n.has_tag_name("Conference"))
            .unwrap();
        assert_eq!(c.text(), Some("warmline-h<1"));
        assert_eq!(c.attribute("startConferenceOnEnter"), Some("false"));
        assert_eq!(
            c.attribute("waitSound"),
            Some("https://x.example/hold.xml?a=1&b=2")
        );
        let cb = c.attribute("callbackUrl").unwrap();
        let q = verify("ptok", STATUS_PATH, query(cb)).unwrap();
        assert_eq!(get(&q, "leg"), Some("caller"));
    }

    #[test]
    fn agent_leg_answers_into_the_whisper_then_the_conference() {
        let b = agent_leg_body(&cfg(), "h1", 2, " sip:b@pbx ", "Caller <upset>.").unwrap();
        assert_eq!(b["to"], "sip:b@pbx");
        assert_eq!(b["from"], "+15550000000");
        assert_eq!(b["ring_timeout"], 30);
        assert_eq!(b["sip_headers"], "HandoffId=h1");
        let q = verify("ptok", XML_PATH, query(b["answer_url"].as_str().unwrap())).unwrap();
        assert_eq!(
            read_xml_request(&q),
            Ok(XmlRequest::Agent {
                handoff_id: "h1".into(),
                attempt: 2,
                whisper: "Caller <upset>.".into()
            })
        );
        let q = verify(
            "ptok",
            STATUS_PATH,
            query(b["hangup_url"].as_str().unwrap()),
        )
        .unwrap();
        let form = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(
            read_status(&q, &form("CallStatus", "busy")),
            Ok(Some((
                "h1".into(),
                Input::LegStatus {
                    attempt: 2,
                    status: LegStatus::Busy
                }
            )))
        );
        let x = agent_xml("h1", "Caller <upset>.");
        let d = doc(&x);
        let names: Vec<&str> = d
            .root_element()
            .children()
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(names, ["Speak", "Conference"], "whisper first: {x}");
        let c = d
            .descendants()
            .find(|n| n.has_tag_name("Conference"))
            .unwrap();
        assert_eq!(c.attribute("startConferenceOnEnter"), Some("true"));
    }

    #[test]
    fn statuses_and_causes_map_to_leg_statuses() {
        for (status, cause, want) in [
            (Some("no-answer"), None, LegStatus::NoAnswer),
            (Some("timeout"), None, LegStatus::NoAnswer),
            (None, Some("CALL_REJECTED"), LegStatus::Busy),
            (Some("cancel"), None, LegStatus::Canceled),
            (
                Some("completed"),
                Some("NORMAL_CLEARING"),
                LegStatus::Completed,
            ),
            (
                Some("failed"),
                Some("UNALLOCATED_NUMBER"),
                LegStatus::Failed,
            ),
        ] {
            assert_eq!(leg_status(status, cause), want, "{status:?} {cause:?}");
        }
        let q = vec![
            ("handoff_id".to_owned(), "h1".to_owned()),
            ("leg".to_owned(), "caller".to_owned()),
        ];
        let action = |a: &str| vec![("ConferenceAction".to_owned(), a.to_owned())];
        assert_eq!(
            read_status(&q, &action("exit")),
            Ok(Some(("h1".into(), Input::CallerLeft)))
        );
        assert_eq!(read_status(&q, &action("enter")), Ok(None));
    }

    #[test]
    fn terminals_are_well_formed() {
        for t in [
            Terminal::Queue("support & co".into()),
            Terminal::Voicemail,
            Terminal::Bot("wss://bot.example/ws?x=1&y=2".into()),
        ] {
            doc(&terminal_xml(&cfg(), &t));
        }
        let x = terminal_xml(&cfg(), &Terminal::Bot("wss://b/ws".into()));
        let d = doc(&x);
        let s = d.descendants().find(|n| n.has_tag_name("Stream")).unwrap();
        assert_eq!(s.text(), Some("wss://b/ws"));
        doc(HANGUP_XML);
    }
}
