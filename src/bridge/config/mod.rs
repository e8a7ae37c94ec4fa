//! `[bridge]` settings: where the outbox lives, how hard to retry, and which targets to deliver to.
//!
//! Owns parsing defaults and validation only; nothing here does I/O.
//!
//! One file per provider section ([`twilio`], [`telnyx`], [`vonage`], [`plivo`],
//! [`asterisk`]); [`warm`] holds the warm-transfer keys the first four share (mode, fallback
//! chain, callback origin, validation).

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
    /// Asterisk ARI continue/redirect (calls from `chan_websocket` and AudioSocket).
    pub asterisk: Option<AsteriskConfig>,
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
            asterisk: None,
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

mod asterisk;
mod plivo;
mod telnyx;
mod twilio;
mod vonage;
mod warm;

pub use asterisk::{AriMode, AsteriskConfig};
pub use plivo::PlivoConfig;
pub use telnyx::TelnyxConfig;
pub use twilio::TwilioConfig;
pub use vonage::VonageConfig;
pub use warm::{TransferMode, http_origin};
use warm::{
    WarmKeys, default_answer_timeout_s, default_say, mode_wants_warm, resolve_warm, unset,
    validate_warm, warm_applies, warm_section,
};

fn no_callback(key: &'static str) -> ConfigError {
    invalid(
        key,
        "a warm transfer needs the provider to reach this gateway: set it or server.public_url \
         (or mode = \"blind\")",
    )
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
        if let (Some(a), Some(v)) = (
            self.asterisk.as_mut(),
            env("WARMLINE_BRIDGE_ASTERISK_PASSWORD"),
        ) {
            a.password = v;
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
            t.validate()?;
        }
        if let Some(t) = &self.telnyx {
            t.validate()?;
        }
        if let Some(v) = &self.vonage {
            v.validate()?;
        }
        if let Some(p) = &self.plivo {
            p.validate()?;
        }
        if let Some(a) = &self.asterisk {
            a.validate()?;
        }
        Ok(())
    }

    /// Settles every provider's transfer `mode` at start-up (see
    /// [`TwilioConfig::resolve_mode`]) and returns the warnings to log; a warm provider that
    /// cannot be called back is an error.
    pub fn resolve_modes(
        &mut self,
        public_url: Option<&str>,
        in_fleet: bool,
    ) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        if let Some(t) = self.twilio.as_mut() {
            warnings.extend(t.settle(public_url, in_fleet)?);
        }
        if let Some(t) = self.telnyx.as_mut() {
            warnings.extend(t.settle(public_url, in_fleet)?);
        }
        if let Some(t) = self.vonage.as_mut() {
            warnings.extend(t.settle(public_url, in_fleet)?);
        }
        if let Some(t) = self.plivo.as_mut() {
            warnings.extend(t.settle(public_url, in_fleet)?);
        }
        Ok(warnings)
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
    fn telnyx_auto_is_warm_with_its_keys_and_explicit_warm_requires_them() {
        let base = TelnyxConfig::new("KEY", "+15551234567");
        // A config from before Telnyx warm transfers: blind, the warning names what is missing.
        let mut t = base.clone();
        let w = t.resolve_mode(Some("wss://gw.example.com"), false).unwrap();
        let w = w.unwrap_or_default();
        assert_eq!(t.mode, TransferMode::Blind);
        for k in ["caller_id", "connection_id", "public_key"] {
            assert!(w.contains(&format!("bridge.telnyx.{k}")), "{w}");
        }
        let full = TelnyxConfig {
            caller_id: Some("+15550000000".into()),
            connection_id: Some("c1".into()),
            public_key: Some("pk".into()),
            ..base.clone()
        };
        let mut t = full.clone();
        assert_eq!(
            t.resolve_mode(Some("wss://gw.example.com/x"), false),
            Ok(None)
        );
        assert_eq!(t.mode, TransferMode::Warm);
        assert_eq!(t.callback_base.as_deref(), Some("https://gw.example.com/x"));
        assert!(t.is_warm());
        // In a fleet: auto is blind, explicit warm refused.
        let mut t = full.clone();
        assert!(t.resolve_mode(None, true).unwrap().is_some());
        assert_eq!(t.mode, TransferMode::Blind);
        let mut t = TelnyxConfig {
            mode: TransferMode::Warm,
            ..full.clone()
        };
        let e = t.resolve_mode(None, true).unwrap_err().to_string();
        assert!(e.contains("bridge.telnyx.mode"), "{e}");
        // Explicit warm without its keys is invalid, naming the key; and without a callback
        // origin it cannot start.
        let cfg = |t: TelnyxConfig| BridgeConfig {
            telnyx: Some(t),
            ..BridgeConfig::default()
        };
        let e = cfg(TelnyxConfig {
            mode: TransferMode::Warm,
            caller_id: Some("+1555".into()),
            ..base.clone()
        })
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("bridge.telnyx.connection_id"), "{e}");
        let mut c = cfg(TelnyxConfig {
            mode: TransferMode::Warm,
            ..full.clone()
        });
        c.validate().unwrap();
        let e = c.resolve_modes(None, false).unwrap_err().to_string();
        assert!(e.contains("bridge.telnyx.callback_base"), "{e}");
        assert!(
            c.clone()
                .resolve_modes(Some("wss://gw"), false)
                .unwrap()
                .is_empty()
        );
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
