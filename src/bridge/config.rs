//! `[bridge]` settings: where the outbox lives, how hard to retry, and which targets to deliver to.
//!
//! Owns parsing defaults and validation only; nothing here does I/O.
//!
//! Size: ~520 lines of code, all of it the `[bridge]` section's types, defaults and validation.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A `[bridge]` value that cannot work, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key holds a value outside what the bridge accepts.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// Full TOML key, e.g. `bridge.webhook.url`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// `[bridge]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// Pending handoffs survive restarts here.
    pub outbox_dir: PathBuf,
    /// Handoffs queued between the calls and the delivery task.
    pub queue_capacity: usize,
    /// Attempts per target before a delivery is declared failed (the first try counts).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles after each failure.
    pub initial_backoff_ms: u64,
    /// Upper bound of the wait between attempts.
    pub max_backoff_ms: u64,
    /// Whole-request timeout of one HTTP attempt (connect included).
    pub request_timeout_ms: u64,
    /// HTTP requests in flight at once across all handoffs and targets.
    pub max_concurrent_requests: usize,
    /// Signed JSON webhook.
    pub webhook: Option<WebhookConfig>,
    /// Twilio call update (used for calls that came from Twilio).
    pub twilio: Option<TwilioConfig>,
    /// Telnyx `actions/transfer` (used for calls that came from Telnyx).
    pub telnyx: Option<TelnyxConfig>,
    /// Vonage call transfer (used for calls that came from Vonage).
    pub vonage: Option<VonageConfig>,
    /// Plivo call transfer (used for calls that came from Plivo).
    pub plivo: Option<PlivoConfig>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            outbox_dir: PathBuf::from("./warmline-outbox"),
            queue_capacity: 1024,
            max_attempts: 8,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            request_timeout_ms: 5_000,
            max_concurrent_requests: 64,
            webhook: None,
            twilio: None,
            telnyx: None,
            vonage: None,
            plivo: None,
        }
    }
}

/// `[bridge.webhook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where the handoff event is POSTed.
    pub url: String,
    /// HMAC-SHA256 key of `X-Warmline-Signature`.
    #[serde(default)]
    pub secret: String,
    /// The key being rotated out: while set, every webhook carries a second `v1=` signed with
    /// it, so receivers can move to `secret` one at a time. Remove it when all have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
}

impl WebhookConfig {
    /// The signing secrets, the current one first.
    pub fn secrets(&self) -> Vec<&str> {
        let mut v = vec![self.secret.as_str()];
        if let Some(p) = self
            .previous_secret
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            v.push(p);
        }
        v
    }
}

fn default_twilio_base() -> String {
    "https://api.twilio.com".into()
}
fn default_telnyx_base() -> String {
    "https://api.telnyx.com".into()
}
fn default_vonage_base() -> String {
    "https://api.nexmo.com".into()
}
fn default_plivo_base() -> String {
    "https://api.plivo.com".into()
}
fn default_say() -> String {
    "Please hold while I connect you with a colleague.".into()
}

fn default_answer_timeout_s() -> u64 {
    30
}

/// How a Twilio caller reaches the human.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// Not set: warm when `caller_id` is set and Twilio can call this gateway back
    /// (`callback_base` or `server.public_url`), else blind with a start-up warning, so a
    /// config written before warm transfers existed keeps starting. Settled by
    /// [`TwilioConfig::resolve_mode`].
    #[default]
    Auto,
    /// Caller on hold in a conference, agent dialled with a whispered brief, status tracked,
    /// fallback on no answer.
    Warm,
    /// One `<Say>` and a `<Dial>`: nothing tracked after the call update.
    Blind,
}

/// `[bridge.twilio]`: move the live caller to the agent, warm (conference) or blind (`<Dial>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `AC…`; also the Basic-auth user.
    pub account_sid: String,
    /// Basic-auth password.
    #[serde(default)]
    pub auth_token: String,
    /// REST base; tests point it at a local server.
    #[serde(default = "default_twilio_base")]
    pub api_base: String,
    /// `+E164` number, `sip:` URI, `client:IDENTITY` or `queue:NAME` the caller is moved to.
    pub agent: String,
    /// Said to the caller before the dial; empty for none. Never the agent whisper.
    #[serde(default = "default_say")]
    pub say: String,
    /// Optional URL Twilio calls as the agent leg progresses, with `?handoff_id=…` appended, so
    /// the agent's desktop can fetch the handoff for plain numbers too.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// TaskRouter workflow for `queue:` agents; lets the handoff id ride in the task attributes.
    #[serde(default)]
    pub workflow_sid: Option<String>,
    /// `auto` (default: warm when it can work, else blind with a warning), `warm` or `blind`.
    #[serde(default)]
    pub mode: TransferMode,
    /// Warm: seconds the agent leg may ring before the next fallback target is tried.
    #[serde(default = "default_answer_timeout_s")]
    pub answer_timeout_s: u64,
    /// Warm: tried in order after `agent` does not answer: numbers, `sip:`, `client:` (dialled
    /// with the whisper), then `queue:NAME`, `voicemail` or `bot:wss://…` (end the chain).
    /// Voicemail is used when the list runs out.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Warm: the `From` of the agent leg (a Twilio number of the account).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Warm: public `https://` origin of this gateway, where Twilio sends status callbacks;
    /// defaults to `server.public_url` with `wss`→`https`.
    #[serde(default)]
    pub callback_base: Option<String>,
    /// Warm: hold music for the caller (`waitUrl`); Twilio's default hold music when unset.
    #[serde(default)]
    pub hold_url: Option<String>,
}

impl TwilioConfig {
    /// A config with these credentials and agent and every other key at its default.
    pub fn new(account_sid: &str, auth_token: &str, agent: &str) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            api_base: default_twilio_base(),
            agent: agent.into(),
            say: default_say(),
            status_callback: None,
            workflow_sid: None,
            mode: TransferMode::Auto,
            answer_timeout_s: default_answer_timeout_s(),
            fallback: Vec::new(),
            caller_id: None,
            callback_base: None,
            hold_url: None,
        }
    }

    /// Whether the warm flow applies: warm mode and an agent that can be whispered to (a
    /// `queue:` agent is enqueued directly).
    pub fn is_warm(&self) -> bool {
        self.wants_warm() && (self.mode == TransferMode::Warm || self.callback_base.is_some())
    }

    /// Whether the config asks for the warm flow: `warm`, or `auto` with a `caller_id` (its
    /// warm keys are then checked); a `queue:` agent never is.
    fn wants_warm(&self) -> bool {
        let has_caller_id = self
            .caller_id
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty());
        let mode_warm = match self.mode {
            TransferMode::Warm => true,
            TransferMode::Auto => has_caller_id,
            TransferMode::Blind => false,
        };
        mode_warm && !self.agent.trim().starts_with("queue:")
    }

    /// Settles the mode at start-up: `callback_base` defaults to `public_url`'s origin, and
    /// `auto` becomes `warm` when `caller_id` and a callback origin are there, else `blind`.
    /// Returns the warning to log when `auto` fell back to blind.
    ///
    /// In a `[cluster]` fleet (`in_fleet`) a transfer's state lives in one instance while any
    /// instance's worker may deliver its handoff (putting the caller on hold with nobody
    /// dialling the agent), so `auto` is blind there and an explicit `warm` is refused.
    pub fn resolve_mode(
        &mut self,
        public_url: Option<&str>,
        in_fleet: bool,
    ) -> Result<Option<String>, ConfigError> {
        if in_fleet && self.wants_warm() {
            if self.mode == TransferMode::Warm {
                return Err(invalid(
                    "bridge.twilio.mode",
                    "warm transfers are not shared across a [cluster] fleet yet; \
                     set mode = \"blind\"",
                ));
            }
            self.mode = TransferMode::Blind;
            return Ok(Some(
                "[bridge.twilio] mode is not set and [cluster] is: Twilio handoffs are blind \
                 transfers (warm transfers are not shared across a fleet yet)"
                    .into(),
            ));
        }
        Ok(self.resolve_single(public_url))
    }

    fn resolve_single(&mut self, public_url: Option<&str>) -> Option<String> {
        if self.mode != TransferMode::Blind && self.callback_base.is_none() {
            self.callback_base = public_url.map(http_origin);
        }
        if self.mode != TransferMode::Auto {
            return None;
        }
        if self.agent.trim().starts_with("queue:") {
            // Enqueued directly either way.
            self.mode = TransferMode::Blind;
            return None;
        }
        let mut missing = Vec::new();
        if !self.wants_warm() {
            missing.push("bridge.twilio.caller_id");
        }
        if self.callback_base.is_none() {
            missing.push("bridge.twilio.callback_base (or server.public_url)");
        }
        if missing.is_empty() {
            self.mode = TransferMode::Warm;
            return None;
        }
        self.mode = TransferMode::Blind;
        Some(format!(
            "[bridge.twilio] mode is not set and {} is missing: Twilio handoffs are blind \
             transfers (<Say> + <Dial>, nothing tracked); set them for warm transfers, or \
             mode = \"blind\" to silence this",
            missing.join(" and ")
        ))
    }
}

/// `https://host[/prefix]` from a `server.public_url` (`wss`→`https`, `ws`→`http`).
pub fn http_origin(public_url: &str) -> String {
    let u = public_url.trim().trim_end_matches('/');
    if let Some(rest) = u.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = u.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        u.to_owned()
    }
}

/// `[bridge.telnyx]`: Call Control `actions/transfer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelnyxConfig {
    /// Bearer API key.
    #[serde(default)]
    pub api_key: String,
    /// REST base; tests point it at a local server.
    #[serde(default = "default_telnyx_base")]
    pub api_base: String,
    /// `+E164` number or `sip:` URI to transfer to.
    pub to: String,
    /// Base64 Ed25519 public key of the account (portal → Keys & Credentials → Public Key);
    /// checks `telnyx-signature-ed25519` on `POST /v1/providers/telnyx/webhook`.
    #[serde(default)]
    pub public_key: Option<String>,
}

/// `[bridge.vonage]`: `PUT /v1/calls/{uuid}` with an NCCO that connects to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageConfig {
    /// Application JWT sent as bearer token (warmline does not mint JWTs; give a long-lived one).
    #[serde(default)]
    pub jwt: String,
    /// REST base; tests point it at a local server.
    #[serde(default = "default_vonage_base")]
    pub api_base: String,
    /// `+E164` number or `sip:` URI the caller is connected to.
    pub agent: String,
    /// Said to the caller before connecting; empty for none.
    #[serde(default = "default_say")]
    pub say: String,
}

/// `[bridge.plivo]`: transfer the A leg to an XML URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoConfig {
    /// Basic-auth user and account path segment.
    pub auth_id: String,
    /// Basic-auth password.
    #[serde(default)]
    pub auth_token: String,
    /// REST base; tests point it at a local server.
    #[serde(default = "default_plivo_base")]
    pub api_base: String,
    /// Plivo XML that dials the agent; `handoff_id=…` is appended to its query.
    pub aleg_url: String,
}

fn check_http_url(key: &'static str, value: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        Ok(u) => Err(invalid(
            key,
            format!(
                "`{value}` must be an http(s) URL with a host, not `{}`",
                u.scheme()
            ),
        )),
        Err(e) => Err(invalid(key, format!("`{value}` is not a URL: {e}"))),
    }
}

fn check_non_empty(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(invalid(key, "must not be empty"))
    } else {
        Ok(())
    }
}

impl BridgeConfig {
    /// Fills secrets from `WARMLINE_BRIDGE_*` environment variables (looked up through `env`)
    /// into the sections the file configures, so secrets need not live in the file.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if let (Some(w), Some(v)) = (self.webhook.as_mut(), env("WARMLINE_BRIDGE_WEBHOOK_SECRET")) {
            w.secret = v;
        }
        if let (Some(w), Some(v)) = (
            self.webhook.as_mut(),
            env("WARMLINE_BRIDGE_WEBHOOK_PREVIOUS_SECRET"),
        ) {
            w.previous_secret = Some(v);
        }
        if let (Some(t), Some(v)) = (
            self.twilio.as_mut(),
            env("WARMLINE_BRIDGE_TWILIO_AUTH_TOKEN"),
        ) {
            t.auth_token = v;
        }
        if let (Some(t), Some(v)) = (self.telnyx.as_mut(), env("WARMLINE_BRIDGE_TELNYX_API_KEY")) {
            t.api_key = v;
        }
        if let (Some(t), Some(v)) = (self.vonage.as_mut(), env("WARMLINE_BRIDGE_VONAGE_JWT")) {
            t.jwt = v;
        }
        if let (Some(t), Some(v)) = (self.plivo.as_mut(), env("WARMLINE_BRIDGE_PLIVO_AUTH_TOKEN")) {
            t.auth_token = v;
        }
    }

    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.outbox_dir.as_os_str().is_empty() {
            return Err(invalid("bridge.outbox_dir", "must not be empty"));
        }
        if self.queue_capacity == 0 {
            return Err(invalid("bridge.queue_capacity", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("bridge.max_attempts", "must be at least 1"));
        }
        if self.initial_backoff_ms == 0 {
            return Err(invalid("bridge.initial_backoff_ms", "must be at least 1"));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(invalid(
                "bridge.max_backoff_ms",
                format!(
                    "{} is below initial_backoff_ms {}",
                    self.max_backoff_ms, self.initial_backoff_ms
                ),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("bridge.request_timeout_ms", "must be at least 1"));
        }
        if self.max_concurrent_requests == 0 {
            return Err(invalid(
                "bridge.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if let Some(w) = &self.webhook {
            check_http_url("bridge.webhook.url", &w.url)?;
            check_non_empty("bridge.webhook.secret", &w.secret)?;
        }
        if let Some(t) = &self.twilio {
            check_non_empty("bridge.twilio.account_sid", &t.account_sid)?;
            check_non_empty("bridge.twilio.auth_token", &t.auth_token)?;
            check_http_url("bridge.twilio.api_base", &t.api_base)?;
            check_non_empty("bridge.twilio.agent", &t.agent)?;
            if let Some(name) = t.agent.strip_prefix("queue:") {
                check_non_empty("bridge.twilio.agent", name)?;
            }
            if let Some(cb) = &t.status_callback {
                check_http_url("bridge.twilio.status_callback", cb)?;
            }
            if t.wants_warm() {
                if !(1..=600).contains(&t.answer_timeout_s) {
                    return Err(invalid(
                        "bridge.twilio.answer_timeout_s",
                        format!("{} is outside 1..=600", t.answer_timeout_s),
                    ));
                }
                check_non_empty(
                    "bridge.twilio.caller_id",
                    t.caller_id.as_deref().unwrap_or(""),
                )
                .map_err(|_| {
                    invalid(
                        "bridge.twilio.caller_id",
                        "required with mode = \"warm\" (the agent leg's From); or set mode = \"blind\"",
                    )
                })?;
                if let Some(cb) = &t.callback_base {
                    check_http_url("bridge.twilio.callback_base", cb)?;
                }
                if let Some(h) = &t.hold_url {
                    check_http_url("bridge.twilio.hold_url", h)?;
                }
                for f in &t.fallback {
                    check_non_empty("bridge.twilio.fallback", f)?;
                    if let Some(url) = f.strip_prefix("bot:")
                        && !(url.starts_with("wss://") || url.starts_with("ws://"))
                    {
                        return Err(invalid(
                            "bridge.twilio.fallback",
                            format!("`{f}`: a bot fallback is bot:wss://…"),
                        ));
                    }
                }
            }
        }
        if let Some(t) = &self.telnyx {
            check_non_empty("bridge.telnyx.api_key", &t.api_key)?;
            check_http_url("bridge.telnyx.api_base", &t.api_base)?;
            check_non_empty("bridge.telnyx.to", &t.to)?;
        }
        if let Some(v) = &self.vonage {
            check_non_empty("bridge.vonage.jwt", &v.jwt)?;
            check_http_url("bridge.vonage.api_base", &v.api_base)?;
            check_non_empty("bridge.vonage.agent", &v.agent)?;
        }
        if let Some(p) = &self.plivo {
            check_non_empty("bridge.plivo.auth_id", &p.auth_id)?;
            check_non_empty("bridge.plivo.auth_token", &p.auth_token)?;
            check_http_url("bridge.plivo.api_base", &p.api_base)?;
            check_http_url("bridge.plivo.aleg_url", &p.aleg_url)?;
        }
        Ok(())
    }

    /// Timeout of one HTTP attempt.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gives_defaults() {
        let cfg: BridgeConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, BridgeConfig::default());
        assert_eq!(cfg.max_attempts, 8);
        assert_eq!(cfg.initial_backoff_ms, 500);
        assert_eq!(cfg.max_backoff_ms, 30_000);
        assert_eq!(cfg.request_timeout_ms, 5_000);
        cfg.validate().unwrap();
    }

    #[test]
    fn contract_keys_parse_and_api_base_defaults() {
        let cfg: BridgeConfig = toml::from_str(
            r#"
            outbox_dir = "/tmp/x"
            [webhook]
            url = "http://127.0.0.1:9000/handoff"
            secret = "s3cret"
            [twilio]
            account_sid = "AC1"
            auth_token = "tok"
            agent = "+15551234567"
            "#,
        )
        .unwrap();
        // A config from before warm transfers (no mode, no caller_id) stays valid.
        cfg.validate().unwrap();
        let t = cfg.twilio.unwrap();
        assert_eq!(t.api_base, "https://api.twilio.com");
        assert_eq!((t.mode, t.answer_timeout_s), (TransferMode::Auto, 30));
        assert!(!t.is_warm());
        assert_eq!(cfg.webhook.unwrap().secret, "s3cret");
    }

    #[test]
    fn auto_mode_is_warm_only_when_it_can_work_else_blind_with_a_warning() {
        let base = TwilioConfig::new("AC1", "tok", "+15551234567");
        // No caller_id: blind, and the warning names the key.
        let mut t = base.clone();
        let w = t
            .resolve_mode(Some("wss://gw.example.com"), false)
            .unwrap()
            .unwrap();
        assert_eq!(t.mode, TransferMode::Blind);
        assert!(w.contains("bridge.twilio.caller_id"), "{w}");
        assert!(!t.is_warm());
        // caller_id but nowhere for Twilio to call back: blind too.
        let mut t = TwilioConfig {
            caller_id: Some("+15550000000".into()),
            ..base.clone()
        };
        assert!(
            BridgeConfig {
                twilio: Some(t.clone()),
                ..BridgeConfig::default()
            }
            .validate()
            .is_ok()
        );
        let w = t.resolve_mode(None, false).unwrap().unwrap();
        assert!(w.contains("callback_base"), "{w}");
        assert_eq!(t.mode, TransferMode::Blind);
        // Both: warm, the callback origin from public_url.
        let mut t = TwilioConfig {
            caller_id: Some("+15550000000".into()),
            ..base.clone()
        };
        assert_eq!(
            t.resolve_mode(Some("wss://gw.example.com/x"), false),
            Ok(None)
        );
        assert_eq!(t.mode, TransferMode::Warm);
        assert_eq!(t.callback_base.as_deref(), Some("https://gw.example.com/x"));
        assert!(t.is_warm());
        // An explicit mode is never changed; explicit warm still requires caller_id.
        let mut t = TwilioConfig {
            mode: TransferMode::Warm,
            ..base.clone()
        };
        assert_eq!(t.resolve_mode(None, false), Ok(None));
        assert_eq!(t.mode, TransferMode::Warm);
        // In a fleet: explicit warm is refused, auto is blind.
        let e = t.clone().resolve_mode(None, true).unwrap_err().to_string();
        assert!(e.contains("bridge.twilio.mode"), "{e}");
        let mut a = TwilioConfig {
            caller_id: Some("+15550000000".into()),
            callback_base: Some("https://gw.example.com".into()),
            ..base.clone()
        };
        assert!(a.resolve_mode(None, true).unwrap().is_some());
        assert_eq!(a.mode, TransferMode::Blind);
        let e = BridgeConfig {
            twilio: Some(t),
            ..BridgeConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("bridge.twilio.caller_id"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err =
            toml::from_str::<BridgeConfig>("[webhook]\nurl='http://a'\nsecret='s'\nsecrte='x'")
                .unwrap_err();
        assert!(err.to_string().contains("secrte"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut cfg = BridgeConfig {
            webhook: Some(WebhookConfig {
                url: "ftp://example.com/x".into(),
                secret: "s".into(),
                previous_secret: None,
            }),
            ..BridgeConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("bridge.webhook.url"), "{e}");

        cfg.webhook = Some(WebhookConfig {
            url: "https://example.com/x".into(),
            secret: " ".into(),
            previous_secret: None,
        });
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("bridge.webhook.secret"), "{e}");

        cfg.webhook = None;
        cfg.max_backoff_ms = 10;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("bridge.max_backoff_ms"), "{e}");
    }
}
