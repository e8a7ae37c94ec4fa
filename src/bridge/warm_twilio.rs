//! Twilio's side of the warm transfer: the TwiML and REST requests that carry out
//! [`super::warm::Action`]s, and the callback URLs whose reports come back as
//! [`super::warm::Input`]s.
//!
//! The flow (protocols.md §12.1): the caller's call is updated to `<Dial><Conference
//! startConferenceOnEnter="false">warmline-{handoff_id}</Conference>` (hold music meanwhile,
//! a conference `statusCallback` on `leave` tells us if they hang up); the agent leg is a new call
//! (`POST Calls.json`) whose TwiML `<Say>`s the whisper and then joins the same conference,
//! starting it; its status callbacks come to `/v1/providers/twilio/status`. The `handoff_id`
//! rides in the URLs of both callbacks, as `X-Handoff-Id` on `sip:` agents and as a custom
//! parameter on `client:` agents. Builders are pure; [`execute`] sends one request.

use super::config::TwilioConfig;
use super::transfer::{TransferError, api_url, pct, xml_escape};
use super::warm::{Action, Terminal};
use super::warm_run::{Executed, refused, send};
use reqwest::Url;

/// Path of the Twilio status callback route.
pub const STATUS_PATH: &str = "/v1/providers/twilio/status";

/// The conference both legs meet in.
pub fn room(handoff_id: &str) -> String {
    format!("warmline-{handoff_id}")
}

/// `{callback_base}/v1/providers/twilio/status?handoff_id=…&leg=…[&attempt=…]`, or `None` when
/// no callback base is set.
pub fn status_url(
    cfg: &TwilioConfig,
    handoff_id: &str,
    leg: &str,
    attempt: Option<u32>,
) -> Result<Option<String>, TransferError> {
    let Some(base) = cfg.callback_base.as_deref() else {
        return Ok(None);
    };
    let base = base.trim_end_matches('/');
    let mut u = Url::parse(&format!("{base}{STATUS_PATH}")).map_err(|e| TransferError::BadUrl {
        url: base.to_owned(),
        reason: e.to_string(),
    })?;
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("handoff_id", handoff_id)
            .append_pair("leg", leg);
        if let Some(a) = attempt {
            q.append_pair("attempt", &a.to_string());
        }
    }
    Ok(Some(u.into()))
}

/// The caller's TwiML: one line, then hold in the conference until the agent starts it.
pub fn hold_twiml(cfg: &TwilioConfig, handoff_id: &str) -> Result<String, TransferError> {
    let mut x = String::from("<Response>");
    if !cfg.say.trim().is_empty() {
        x.push_str(&format!("<Say>{}</Say>", xml_escape(&cfg.say)));
    }
    let mut attrs = String::from(
        " startConferenceOnEnter=\"false\" endConferenceOnExit=\"true\" beep=\"false\"",
    );
    if let Some(h) = &cfg.hold_url {
        attrs.push_str(&format!(" waitUrl=\"{}\"", xml_escape(h)));
    }
    if let Some(cb) = status_url(cfg, handoff_id, "caller", None)? {
        attrs.push_str(&format!(
            " statusCallback=\"{}\" statusCallbackEvent=\"leave\"",
            xml_escape(&cb)
        ));
    }
    x.push_str(&format!(
        "<Dial><Conference{attrs}>{}</Conference></Dial></Response>",
        xml_escape(&room(handoff_id))
    ));
    Ok(x)
}

/// The agent leg's TwiML: the whisper, then into the conference (starting it).
pub fn agent_twiml(handoff_id: &str, whisper: &str) -> String {
    let mut x = String::from("<Response>");
    if !whisper.trim().is_empty() {
        x.push_str(&format!("<Say>{}</Say>", xml_escape(whisper)));
    }
    x.push_str(&format!(
        "<Dial><Conference startConferenceOnEnter=\"true\" endConferenceOnExit=\"true\" \
         beep=\"false\">{}</Conference></Dial></Response>",
        xml_escape(&room(handoff_id))
    ));
    x
}

/// The `To` of an agent leg, carrying the handoff id where the target type has room for it.
pub fn agent_to(target: &str, handoff_id: &str) -> String {
    let t = target.trim();
    if t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:")) {
        let sep = if t.contains('?') { '&' } else { '?' };
        format!("{t}{sep}X-Handoff-Id={}", pct(handoff_id))
    } else if t.starts_with("client:") {
        let sep = if t.contains('?') { '&' } else { '?' };
        format!("{t}{sep}handoff_id={}", pct(handoff_id))
    } else {
        t.to_owned()
    }
}

/// Form of `POST Calls.json` that places agent leg `attempt`.
pub fn agent_leg_form(
    cfg: &TwilioConfig,
    handoff_id: &str,
    attempt: u32,
    target: &str,
    whisper: &str,
) -> Result<Vec<(&'static str, String)>, TransferError> {
    let mut f = vec![
        ("To", agent_to(target, handoff_id)),
        ("From", cfg.caller_id.clone().unwrap_or_default()),
        ("Twiml", agent_twiml(handoff_id, whisper)),
        ("Timeout", cfg.answer_timeout_s.to_string()),
    ];
    if let Some(cb) = status_url(cfg, handoff_id, "agent", Some(attempt))? {
        f.push(("StatusCallback", cb));
        f.push(("StatusCallbackMethod", "POST".into()));
        for ev in ["initiated", "ringing", "answered", "completed"] {
            f.push(("StatusCallbackEvent", ev.into()));
        }
    }
    Ok(f)
}

/// The caller's TwiML for a terminal: off hold to a queue, voicemail or back to a bot.
pub fn terminal_twiml(t: &Terminal, handoff_id: &str) -> String {
    let body = match t {
        Terminal::Queue(name) => format!(
            "<Say>Everyone is busy; you are next in line.</Say><Enqueue>{}</Enqueue>",
            xml_escape(name)
        ),
        Terminal::Voicemail => "<Say>Sorry, no one could take your call. Please leave a message \
                                after the tone.</Say><Record maxLength=\"120\" playBeep=\"true\"/>"
            .to_owned(),
        Terminal::Bot(url) => format!(
            "<Say>Sorry, no one is free right now.</Say><Connect><Stream url=\"{}\">\
             <Parameter name=\"handoff_id\" value=\"{}\"/></Stream></Connect>",
            xml_escape(url),
            xml_escape(handoff_id)
        ),
    };
    format!("<Response>{body}</Response>")
}

fn calls_url(cfg: &TwilioConfig, call_sid: Option<&str>) -> Result<Url, TransferError> {
    let last = match call_sid {
        Some(sid) => format!("{sid}.json"),
        None => "Calls.json".to_owned(),
    };
    let mut segs = vec!["2010-04-01", "Accounts", cfg.account_sid.as_str()];
    if call_sid.is_some() {
        segs.push("Calls");
    }
    segs.push(&last);
    api_url(&cfg.api_base, &segs, false)
}

/// Sends the request for one action on the call `call_sid` of handoff `handoff_id`.
/// [`Action::Emit`] and [`Action::JoinCaller`] (the agent's TwiML joins by itself) are not
/// requests and give [`Executed::Done`].
pub async fn execute(
    client: &reqwest::Client,
    cfg: &TwilioConfig,
    call_sid: &str,
    handoff_id: &str,
    action: &Action,
) -> Executed {
    let built = match action {
        Action::DialAgent {
            attempt,
            target,
            whisper,
        } => agent_leg_form(cfg, handoff_id, *attempt, target, whisper)
            .and_then(|f| Ok((calls_url(cfg, None)?, f))),
        Action::CancelLeg { leg_id } => {
            calls_url(cfg, Some(leg_id)).map(|u| (u, vec![("Status", "canceled".to_owned())]))
        }
        Action::RouteCaller(t) => calls_url(cfg, Some(call_sid))
            .map(|u| (u, vec![("Twiml", terminal_twiml(t, handoff_id))])),
        Action::Emit(_) | Action::JoinCaller { .. } => return Executed::Done,
    };
    let (url, form) = match built {
        Ok(b) => b,
        Err(e) => return refused(action, e.to_string()),
    };
    let req = client
        .post(url)
        .basic_auth(&cfg.account_sid, Some(&cfg.auth_token))
        .form(&form);
    let sid: super::warm_run::LegIdOf = match action {
        Action::DialAgent { .. } => Some(|v| v.get("sid").and_then(|s| s.as_str())),
        _ => None,
    };
    send(req, sid).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TwilioConfig {
        TwilioConfig {
            caller_id: Some("+15550000000".into()),
            callback_base: Some("https://gw.example.com/".into()),
            hold_url: Some("https://x.example/hold?a=1&b=2".into()),
            say: "Please hold.".into(),
            ..TwilioConfig::new("AC1", "tok", "+15551112222")
        }
    }

    fn doc(x: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(x).unwrap_or_else(|e| panic!("{e}: {x}"))
    }

    #[test]
    fn hold_twiml_puts_the_caller_in_a_conference_that_waits_for_the_agent() {
        let x = hold_twiml(&cfg(), "h&1").unwrap();
        let d = doc(&x);
        let say = d.descendants().find(|n| n.has_tag_name("Say")).unwrap();
        assert_eq!(say.text(), Some("Please hold."));
        let c = d
            .descendants()
            .find(|n| n.has_tag_name("Conference"))
            .unwrap();
        assert_eq!(c.text(), Some("warmline-h&1"));
        assert_eq!(c.attribute("startConferenceOnEnter"), Some("false"));
        assert_eq!(
            c.attribute("waitUrl"),
            Some("https://x.example/hold?a=1&b=2")
        );
        assert_eq!(c.attribute("statusCallbackEvent"), Some("leave"));
        assert_eq!(
            c.attribute("statusCallback"),
            Some("https://gw.example.com/v1/providers/twilio/status?handoff_id=h%261&leg=caller")
        );
        // The blind builder hands warm configs to this one.
        assert_eq!(super::super::transfer::twiml(&cfg(), "h&1").unwrap(), x);
    }

    #[test]
    fn agent_leg_whispers_then_joins_and_reports_its_status() {
        let f = agent_leg_form(&cfg(), "h1", 2, "sip:a@pbx", "Caller <angry> & late.").unwrap();
        let get = |k: &str| -> Vec<&str> {
            f.iter()
                .filter(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("To"), ["sip:a@pbx?X-Handoff-Id=h1"]);
        assert_eq!(get("From"), ["+15550000000"]);
        assert_eq!(get("Timeout"), ["30"]);
        assert_eq!(
            get("StatusCallback"),
            ["https://gw.example.com/v1/providers/twilio/status?handoff_id=h1&leg=agent&attempt=2"]
        );
        assert_eq!(
            get("StatusCallbackEvent"),
            ["initiated", "ringing", "answered", "completed"]
        );
        let tw = get("Twiml")[0];
        let d = doc(tw);
        let names: Vec<&str> = d
            .root_element()
            .children()
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(names, ["Say", "Dial"], "whisper first: {tw}");
        let say = d.descendants().find(|n| n.has_tag_name("Say")).unwrap();
        assert_eq!(say.text(), Some("Caller <angry> & late."));
        let c = d
            .descendants()
            .find(|n| n.has_tag_name("Conference"))
            .unwrap();
        assert_eq!(c.attribute("startConferenceOnEnter"), Some("true"));
        assert_eq!(agent_to("client:bob", "h 1"), "client:bob?handoff_id=h%201");
        assert_eq!(agent_to("+1555", "h1"), "+1555");
    }

    #[test]
    fn terminals_are_well_formed() {
        for t in [
            Terminal::Queue("support & co".into()),
            Terminal::Voicemail,
            Terminal::Bot("wss://bot.example/ws?x=1&y=2".into()),
        ] {
            let x = terminal_twiml(&t, "h\"1");
            doc(&x);
        }
        let x = terminal_twiml(&Terminal::Bot("wss://b/ws".into()), "h1");
        let d = doc(&x);
        let s = d.descendants().find(|n| n.has_tag_name("Stream")).unwrap();
        assert_eq!(s.attribute("url"), Some("wss://b/ws"));
    }
}
