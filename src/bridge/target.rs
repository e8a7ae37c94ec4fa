//! Delivery targets: which ones a handoff goes to, and one HTTP attempt against one of them.

use super::config::BridgeConfig;
use super::retry::{StatusClass, classify_status};
use super::{ari, transfer, webhook};
use crate::protocol::Provider;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest piece of a refusing answer's body kept in the outbox state and events.
const ERROR_BODY_CHARS: usize = 200;

/// Most bytes of a refusing answer's body read at all: enough for the provider's error code;
/// the rest is never received (a huge or endless body costs nothing).
const ERROR_BODY_BYTES: usize = 4096;

/// Where a handoff is delivered; the name is the `target` of delivery events and outbox state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The signed JSON webhook.
    Webhook,
    /// Twilio call update.
    Twilio,
    /// Telnyx `actions/transfer`.
    Telnyx,
    /// Vonage call transfer.
    Vonage,
    /// Plivo call transfer.
    Plivo,
    /// Asterisk ARI: channel variables, then continue or redirect.
    Asterisk,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 6] = [
        Target::Webhook,
        Target::Twilio,
        Target::Telnyx,
        Target::Vonage,
        Target::Plivo,
        Target::Asterisk,
    ];

    /// `webhook`, `twilio`, `telnyx`, `vonage`, `plivo` or `asterisk`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Webhook => "webhook",
            Target::Twilio => "twilio",
            Target::Telnyx => "telnyx",
            Target::Vonage => "vonage",
            Target::Plivo => "plivo",
            Target::Asterisk => "asterisk",
        }
    }

    /// The inverse of [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether `cfg` has settings for this target.
    pub fn is_configured(self, cfg: &BridgeConfig) -> bool {
        match self {
            Target::Webhook => cfg.webhook.is_some(),
            Target::Twilio => cfg.twilio.is_some(),
            Target::Telnyx => cfg.telnyx.is_some(),
            Target::Vonage => cfg.vonage.is_some(),
            Target::Plivo => cfg.plivo.is_some(),
            Target::Asterisk => cfg.asterisk.is_some(),
        }
    }

    /// The targets a handoff from `provider` goes to: the webhook when configured, plus the
    /// transfer hook its adapter names, when configured (a Twilio call can only be moved by
    /// Twilio; FreeSWITCH names none: the webhook only).
    pub fn for_provider(cfg: &BridgeConfig, provider: Provider) -> Vec<Target> {
        Self::ALL
            .into_iter()
            .filter(|t| t.is_configured(cfg))
            .filter(|t| *t == Target::Webhook || provider.spec().transfer == Some(t.name()))
            .collect()
    }
}

/// What one delivery needs, computed once per handoff.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The handoff's id.
    pub handoff_id: String,
    /// The provider's call id (Twilio CallSid, Telnyx call_control_id, Vonage/Plivo call uuid).
    pub call_id: String,
    /// The handoff event as JSON: the webhook body, signed byte for byte.
    pub body: Vec<u8>,
    /// The handoff's route target (`[[routing]]`), replacing the configured agent of the
    /// Twilio, Telnyx and Vonage transfers for this handoff (Plivo's `aleg_url` stays).
    pub agent: Option<String>,
    /// A short reason (the strongest signal's name), for transfers that carry one
    /// (Asterisk's `WARMLINE_REASON`).
    pub reason: String,
}

/// `cfg` with its agent replaced by the handoff's route target, when it has one.
fn with_agent<'a, T: Clone>(
    cfg: &'a T,
    agent: Option<&str>,
    set: impl FnOnce(&mut T, String),
) -> std::borrow::Cow<'a, T> {
    match agent {
        Some(a) => {
            let mut c = cfg.clone();
            set(&mut c, a.to_owned());
            std::borrow::Cow::Owned(c)
        }
        None => std::borrow::Cow::Borrowed(cfg),
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Worth another attempt.
    Retry {
        /// The status, if there was an answer.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// A server's `Retry-After`, in seconds.
        retry_after_s: Option<u64>,
    },
    /// Never going to work with these bytes.
    Permanent {
        /// The status, if there was an answer.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// Unix seconds for the signature (the wall clock is right here: receivers compare it to theirs).
fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `{e}: {source}: {source}…`, since reqwest's own text hides the cause (refused, DNS, …).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The requests of one attempt at `target`, in order: one for most targets, the variables and
/// then continue/redirect for Asterisk ARI.
fn build(
    client: &reqwest::Client,
    cfg: &BridgeConfig,
    target: Target,
    p: &Prepared,
) -> Option<Result<Vec<reqwest::RequestBuilder>, transfer::TransferError>> {
    let one = |r: Result<reqwest::RequestBuilder, transfer::TransferError>| r.map(|r| vec![r]);
    match target {
        Target::Webhook => cfg.webhook.as_ref().map(|w| {
            Ok(vec![webhook::request(
                client,
                w,
                &p.handoff_id,
                &p.body,
                unix_now_s(),
            )])
        }),
        Target::Twilio => cfg.twilio.as_ref().map(|c| {
            let c = with_agent(c, p.agent.as_deref(), |c, a| c.agent = a);
            one(transfer::twilio_request(
                client,
                &c,
                &p.call_id,
                &p.handoff_id,
            ))
        }),
        Target::Telnyx => cfg.telnyx.as_ref().map(|c| {
            let c = with_agent(c, p.agent.as_deref(), |c, a| c.to = a);
            one(transfer::telnyx_request(
                client,
                &c,
                &p.call_id,
                &p.handoff_id,
            ))
        }),
        Target::Vonage => cfg.vonage.as_ref().map(|c| {
            let c = with_agent(c, p.agent.as_deref(), |c, a| c.agent = a);
            one(transfer::vonage_request(
                client,
                &c,
                &p.call_id,
                &p.handoff_id,
            ))
        }),
        Target::Plivo => cfg.plivo.as_ref().map(|c| {
            one(transfer::plivo_request(
                client,
                c,
                &p.call_id,
                &p.handoff_id,
            ))
        }),
        Target::Asterisk => cfg
            .asterisk
            .as_ref()
            .map(|c| ari::requests(client, c, &p.call_id, &p.handoff_id, &p.reason)),
    }
}

/// Makes one attempt at `target`: its requests in order, stopping at the first that is not
/// delivered (a later step never runs before an earlier one succeeded).
pub async fn attempt(
    client: &reqwest::Client,
    cfg: &BridgeConfig,
    target: Target,
    p: &Prepared,
) -> AttemptOutcome {
    let requests = match build(client, cfg, target, p) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return AttemptOutcome::Permanent {
                status: None,
                error: e.to_string(),
            };
        }
        None => {
            return AttemptOutcome::Permanent {
                status: None,
                error: format!("target `{}` is not configured", target.name()),
            };
        }
    };
    let mut outcome = AttemptOutcome::Permanent {
        status: None,
        error: format!("target `{}` has nothing to send", target.name()),
    };
    for request in requests {
        outcome = send(request, cfg).await;
        if let (Target::Asterisk, Some(a)) = (target, cfg.asterisk.as_ref()) {
            outcome = ari_outcome(outcome, a);
        }
        if !matches!(outcome, AttemptOutcome::Delivered { .. }) {
            break;
        }
    }
    outcome
}

/// ARI's refusals named; a 409 (the channel is not in the Stasis app) is final here, unlike
/// other APIs' conflicts: the channel does not re-enter the app by itself.
fn ari_outcome(
    outcome: AttemptOutcome,
    cfg: &crate::bridge::config::AsteriskConfig,
) -> AttemptOutcome {
    let status = match &outcome {
        AttemptOutcome::Retry {
            status: Some(s), ..
        }
        | AttemptOutcome::Permanent {
            status: Some(s), ..
        } => *s,
        _ => return outcome,
    };
    let Some(why) = ari::explain(status, cfg) else {
        return outcome;
    };
    match outcome {
        AttemptOutcome::Retry { error, .. } if status == 409 => AttemptOutcome::Permanent {
            status: Some(status),
            error: format!("{why}: {error}"),
        },
        AttemptOutcome::Retry {
            error,
            retry_after_s,
            ..
        } => AttemptOutcome::Retry {
            status: Some(status),
            error: format!("{why}: {error}"),
            retry_after_s,
        },
        AttemptOutcome::Permanent { error, .. } => AttemptOutcome::Permanent {
            status: Some(status),
            error: format!("{why}: {error}"),
        },
        other => other,
    }
}

/// Sends one request and reads what its answer means.
async fn send(request: reqwest::RequestBuilder, cfg: &BridgeConfig) -> AttemptOutcome {
    let resp = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let error = if e.is_timeout() {
                format!("no answer within {} ms", cfg.request_timeout_ms)
            } else {
                error_chain(&e)
            };
            return AttemptOutcome::Retry {
                status: None,
                error,
                retry_after_s: None,
            };
        }
    };
    let status = resp.status().as_u16();
    let retry_after_s = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after_s(v, SystemTime::now()));
    let class = classify_status(status);
    if class == StatusClass::Delivered {
        return AttemptOutcome::Delivered { status };
    }
    let location = (300..400).contains(&status).then(|| {
        resp.headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(ERROR_BODY_CHARS)
            .collect::<String>()
    });
    // The body of a refusal usually says why (Twilio 20404, Telnyx 90018); keep its start.
    let text = body_start(resp).await;
    let snippet: String = text.chars().take(ERROR_BODY_CHARS).collect();
    let mut error = format!("HTTP {status}");
    if let Some(loc) = location {
        error.push_str(&format!(
            " redirect to `{loc}` not followed (a redirected POST loses its body; point the setting at the final URL)"
        ));
    }
    if !snippet.trim().is_empty() {
        error.push_str(": ");
        error.push_str(snippet.trim());
    }
    match class {
        StatusClass::Permanent => AttemptOutcome::Permanent {
            status: Some(status),
            error,
        },
        _ => AttemptOutcome::Retry {
            status: Some(status),
            error,
            retry_after_s,
        },
    }
}

/// The first [`ERROR_BODY_BYTES`] of a body, read chunk by chunk (the client's request timeout
/// bounds a slow one); the rest is dropped unread with the connection.
async fn body_start(mut resp: reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let room = ERROR_BODY_BYTES - buf.len();
                buf.extend_from_slice(&c[..c.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// `Retry-After` as seconds from `now`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). A date
/// in the past means "now" (0); anything unreadable is ignored. The caller caps the wait.
pub fn retry_after_s(value: &str, now: SystemTime) -> Option<u64> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .map_or(0, |d| d.as_secs_f64().ceil() as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::config::{TwilioConfig, WebhookConfig};

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after_s("120", now), Some(120));
        assert_eq!(retry_after_s(" 0 ", now), Some(0));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            retry_after_s("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(30)
        );
        assert_eq!(retry_after_s("Tue, 14 Nov 2023 22:00:00 GMT", now), Some(0));
        for junk in ["", "-5", "soon", "1.5"] {
            assert_eq!(retry_after_s(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn webhook_always_transfer_only_for_its_own_provider() {
        let mut cfg = BridgeConfig {
            webhook: Some(WebhookConfig {
                url: "http://x".into(),
                secret: "s".into(),
                previous_secret: None,
            }),
            ..BridgeConfig::default()
        };
        assert_eq!(
            Target::for_provider(&cfg, Provider::Twilio),
            [Target::Webhook]
        );
        cfg.twilio = Some(TwilioConfig {
            api_base: "http://x".into(),
            say: String::new(),
            ..TwilioConfig::new("AC", "t", "+1")
        });
        assert_eq!(
            Target::for_provider(&cfg, Provider::Twilio),
            [Target::Webhook, Target::Twilio]
        );
        assert_eq!(
            Target::for_provider(&cfg, Provider::Telnyx),
            [Target::Webhook]
        );
        cfg.webhook = None;
        assert!(Target::for_provider(&cfg, Provider::Exotel).is_empty());
        for t in Target::ALL {
            assert_eq!(Target::from_name(t.name()), Some(t));
        }
    }
}
