//! Configuration: one TOML file, a default for every key, secrets also from `WARMLINE_*`
//! environment variables. Unknown keys and invalid values stop start-up with a message that
//! names the key.
//!
//! Environment variables are read through a lookup function handed in by the binary, so tests
//! never touch the process environment.
//!
//! Size: ~550 lines of code, all of it the top-level sections' types, defaults, environment
//! secrets and validation (one place that says what a valid config is); the rest is its tests.

use crate::bridge::BridgeConfig;
use crate::detect::DetectorConfig;
use crate::detect::playbook::{Playbook, PreCallRule, RoutingRule};
use crate::dsp::DspConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[dsp]`
    pub dsp: DspConfig,
    /// `[detector]`
    pub detector: DetectorConfig,
    /// `[bridge]`
    pub bridge: BridgeConfig,
    /// `[[routing]]`: which human a handoff goes to.
    pub routing: Vec<RoutingRule>,
    /// `[[pre_call]]`: rules on the caller's stream-start attributes.
    pub pre_call: Vec<PreCallRule>,
    /// `[store]`: features-only call records and feedback.
    pub store: StoreConfig,
    /// `[cluster]` (absent: a single instance)
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// `[store]`: the SQLite file of features-only call records (never audio).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The database file; `""` turns the store off.
    pub path: String,
    /// Records older than this are deleted.
    pub retention_days: u32,
    /// At most this many call records; the oldest go first.
    pub max_calls: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "warmline.db".into(),
            retention_days: 30,
            max_calls: 100_000,
        }
    }
}

impl Config {
    /// The routing and pre-call rules for the pipeline.
    pub fn playbook(&self) -> Playbook {
        Playbook {
            routing: self.routing.clone(),
            pre_call: self.pre_call.clone(),
        }
    }
}

/// `[server]`: listening, admission and per-connection limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// The URL providers dial (e.g. `wss://gw.example.com`), for Twilio signature checks behind
    /// a proxy. Without it the URL is rebuilt from `X-Forwarded-*`/`Host`.
    pub public_url: Option<String>,
    /// Concurrent calls admitted; further upgrades get 503.
    pub max_calls: usize,
    /// Largest WebSocket message accepted; larger ones close the stream with 1009.
    pub max_message_bytes: usize,
    /// Time allowed from upgrade to the provider's start message.
    pub first_message_timeout_ms: u64,
    /// Time allowed between messages once started.
    pub idle_timeout_ms: u64,
    /// Interval of server pings.
    pub ping_interval_ms: u64,
    /// On shutdown, time open calls get to finish their bookkeeping.
    pub shutdown_grace_ms: u64,
    /// Transcript lines queued per call before `POST …/transcript` answers 503.
    pub transcript_queue: usize,
    /// Transcript lines one call holds waiting for the media clock to reach their `t_ms`;
    /// further lines are dropped (logged, counted).
    pub max_pending_transcript_lines: usize,
    /// Text bytes one call holds in such waiting lines.
    pub max_pending_transcript_bytes: usize,
    /// How far ahead of the call's media clock a posted line's `t_ms` may be; further is a 400.
    pub max_transcript_lead_ms: u64,
    /// How far a live stream's media time may run ahead of wall-clock time since its start
    /// before the gateway stops reading it until the wall clock catches up (room for a
    /// provider's catch-up burst after a stall). `0` = off (tests, load benchmarks).
    pub max_media_lead_s: f64,
    /// Bind `/metrics` on a separate address instead of the main listener.
    pub metrics_listen: Option<String>,
    /// Open TCP connections (HTTP and upgraded streams together); further ones are closed as
    /// soon as they are accepted. Default: derived from the open-file limit
    /// ([`derived_max_connections`]), so the gateway never runs out of descriptors.
    pub max_connections: Option<usize>,
    /// Time a connection gets to send a complete request head (also between keep-alive
    /// requests); slower ones are closed.
    pub header_read_timeout_ms: u64,
    /// Runtime worker threads. Default: the CPUs this process may run on (its affinity mask,
    /// so `taskset -c 0` gives one). Calls are independent tasks, so capacity scales with
    /// workers until the shared metrics and the bridge queue contend (see BENCHMARKS.md).
    pub worker_threads: Option<usize>,
}

/// File descriptors kept free of connections: the listeners, the outbox, webhook clients, logs.
pub const RESERVED_FDS: u64 = 64;

/// The default `[server] max_connections` under an open-file limit of `nofile`: a tenth of it
/// (at least [`RESERVED_FDS`]) stays free for everything else, and at least 16 connections
/// are always allowed.
pub fn derived_max_connections(nofile: u64) -> usize {
    let reserve = (nofile / 10).max(RESERVED_FDS);
    usize::try_from(nofile.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX)
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            max_calls: 2000,
            max_message_bytes: 64 * 1024,
            first_message_timeout_ms: 10_000,
            idle_timeout_ms: 20_000,
            ping_interval_ms: 10_000,
            shutdown_grace_ms: 10_000,
            transcript_queue: 64,
            max_pending_transcript_lines: 256,
            max_pending_transcript_bytes: 1024 * 1024,
            max_transcript_lead_ms: 60_000,
            max_media_lead_s: 10.0,
            metrics_listen: None,
            max_connections: None,
            header_read_timeout_ms: 10_000,
            worker_threads: None,
        }
    }
}

/// `[auth]`: who may open streams and use the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Refuse streams without valid credentials (default true).
    pub required: bool,
    /// `[auth.twilio]`
    pub twilio: Option<TwilioAuth>,
    /// `[auth.token]`
    pub token: Option<TokenAuth>,
    /// `[auth.audiohook]`: Genesys AudioHook's API key and client secret.
    pub audiohook: Option<AudioHookAuth>,
    /// Whether the dashboard and `/v1/*` need the token. With `required = true` they always
    /// do (`false` is refused); with `required = false` only when this is `true`.
    pub protect_api: Option<bool>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            required: true,
            twilio: None,
            token: None,
            audiohook: None,
            protect_api: None,
        }
    }
}

/// `[auth.twilio]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioAuth {
    /// Validates `X-Twilio-Signature`.
    pub auth_token: String,
    /// The account (`AC…`) whose streams are accepted; a `start` naming another account is
    /// closed with 1008. A captured signature then cannot open streams for other accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    /// Secret of the per-call token: when set, every Twilio `start` must carry
    /// `customParameters.warmline_token` = hex(HMAC-SHA256(secret, callSid)) (put there with
    /// `<Parameter>`), else the stream is closed with 1008. A replayed upgrade signature then
    /// cannot name another call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_token_secret: Option<String>,
}

/// `[auth.audiohook]`: how Genesys AudioHook upgrades are checked (`/v1/media/genesys`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioHookAuth {
    /// The integration's API key: `X-API-KEY` must equal it (and be the signature's `keyid`).
    pub api_key: String,
    /// The integration's client secret (base64, as Genesys shows it): when set, every upgrade
    /// must carry a valid HTTP Message Signature made with it, at most 10 s old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// `[auth.token]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenAuth {
    /// Bearer/basic token accepted from the other providers and the HTTP API.
    pub value: String,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type (serde names the key).
    #[error("config {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        detail: String,
    },
    /// A value of the right type but outside what works.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `server.max_calls`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Secrets that may come from the environment: (variable, what it sets).
pub const SECRET_ENV_VARS: [&str; 10] = [
    "WARMLINE_AUTH_TWILIO_AUTH_TOKEN",
    "WARMLINE_AUTH_AUDIOHOOK_API_KEY",
    "WARMLINE_AUTH_AUDIOHOOK_CLIENT_SECRET",
    "WARMLINE_AUTH_TWILIO_CALL_TOKEN_SECRET",
    "WARMLINE_AUTH_TOKEN_VALUE",
    "WARMLINE_BRIDGE_WEBHOOK_SECRET",
    "WARMLINE_BRIDGE_TWILIO_AUTH_TOKEN",
    "WARMLINE_BRIDGE_TELNYX_API_KEY",
    "WARMLINE_BRIDGE_VONAGE_JWT",
    "WARMLINE_BRIDGE_PLIVO_AUTH_TOKEN",
];

impl Config {
    /// Reads `path` (or defaults when `None`), applies environment secrets through `env`, and
    /// validates.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    path: p.to_owned(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|detail| ConfigError::Parse {
                    path: p.to_owned(),
                    detail,
                })?
            }
        };
        cfg.apply_env(env);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text (no environment, no validation).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if let Some(v) = env("WARMLINE_AUTH_TWILIO_AUTH_TOKEN") {
            self.auth
                .twilio
                .get_or_insert_with(TwilioAuth::default)
                .auth_token = v;
        }
        if let Some(v) = env("WARMLINE_AUTH_TWILIO_CALL_TOKEN_SECRET") {
            self.auth
                .twilio
                .get_or_insert_with(TwilioAuth::default)
                .call_token_secret = Some(v);
        }
        if let Some(v) = env("WARMLINE_AUTH_TOKEN_VALUE") {
            self.auth.token = Some(TokenAuth { value: v });
        }
        if let Some(v) = env("WARMLINE_AUTH_AUDIOHOOK_API_KEY") {
            self.auth
                .audiohook
                .get_or_insert_with(AudioHookAuth::default)
                .api_key = v;
        }
        if let Some(v) = env("WARMLINE_AUTH_AUDIOHOOK_CLIENT_SECRET") {
            self.auth
                .audiohook
                .get_or_insert_with(AudioHookAuth::default)
                .client_secret = Some(v);
        }
        self.bridge.apply_env(env);
        if let Some(c) = &mut self.cluster {
            c.apply_env(env);
        }
    }

    /// Checks values the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        let s = &self.server;
        s.listen.parse::<SocketAddr>().map_err(|e| {
            bad(
                "server.listen",
                format!("{:?} is not a socket address: {e}", s.listen),
            )
        })?;
        if let Some(m) = &s.metrics_listen {
            m.parse::<SocketAddr>().map_err(|e| {
                bad(
                    "server.metrics_listen",
                    format!("{m:?} is not a socket address: {e}"),
                )
            })?;
        }
        if let Some(u) = &s.public_url
            && !(u.starts_with("wss://")
                || u.starts_with("ws://")
                || u.starts_with("https://")
                || u.starts_with("http://"))
        {
            return Err(bad(
                "server.public_url",
                format!("{u:?} must start with wss://, ws://, https:// or http://"),
            ));
        }
        if s.max_calls == 0 {
            return Err(bad("server.max_calls", "must be at least 1".into()));
        }
        if !(1024..=64 * 1024 * 1024).contains(&s.max_message_bytes) {
            return Err(bad(
                "server.max_message_bytes",
                format!("{} is outside 1024..=67108864", s.max_message_bytes),
            ));
        }
        for (key, v) in [
            (
                "server.first_message_timeout_ms",
                s.first_message_timeout_ms,
            ),
            ("server.idle_timeout_ms", s.idle_timeout_ms),
            ("server.ping_interval_ms", s.ping_interval_ms),
        ] {
            if v < 10 {
                return Err(bad(key, format!("{v} ms is too short (at least 10)")));
            }
        }
        if s.header_read_timeout_ms < 10 {
            return Err(bad(
                "server.header_read_timeout_ms",
                format!("{} ms is too short (at least 10)", s.header_read_timeout_ms),
            ));
        }
        if s.max_connections == Some(0) {
            return Err(bad("server.max_connections", "must be at least 1".into()));
        }
        if s.transcript_queue == 0 {
            return Err(bad("server.transcript_queue", "must be at least 1".into()));
        }
        if s.max_pending_transcript_lines == 0 {
            return Err(bad(
                "server.max_pending_transcript_lines",
                "must be at least 1".into(),
            ));
        }
        if s.max_pending_transcript_bytes < 16 * 1024 {
            return Err(bad(
                "server.max_pending_transcript_bytes",
                "must be at least 16384 (one line of the largest size)".into(),
            ));
        }
        if let Some(n) = s.worker_threads
            && !(1..=1024).contains(&n)
        {
            return Err(bad(
                "server.worker_threads",
                format!("{n} must be between 1 and 1024"),
            ));
        }
        if !(s.max_media_lead_s.is_finite() && s.max_media_lead_s >= 0.0) {
            return Err(bad(
                "server.max_media_lead_s",
                format!(
                    "{} must be 0 (off) or a positive number of seconds",
                    s.max_media_lead_s
                ),
            ));
        }
        if let Some(t) = &self.auth.twilio
            && t.auth_token.is_empty()
        {
            return Err(bad("auth.twilio.auth_token", "is empty".into()));
        }
        if let Some(t) = &self.auth.twilio {
            if t.account_sid.as_deref().is_some_and(str::is_empty) {
                return Err(bad("auth.twilio.account_sid", "is empty".into()));
            }
            if t.call_token_secret.as_deref().is_some_and(str::is_empty) {
                return Err(bad("auth.twilio.call_token_secret", "is empty".into()));
            }
        }
        if let Some(t) = &self.auth.token
            && t.value.is_empty()
        {
            return Err(bad("auth.token.value", "is empty".into()));
        }
        if let Some(a) = &self.auth.audiohook {
            if a.api_key.is_empty() {
                return Err(bad("auth.audiohook.api_key", "is empty".into()));
            }
            if let Some(secret) = &a.client_secret {
                use base64::Engine as _;
                if base64::engine::general_purpose::STANDARD
                    .decode(secret)
                    .map_or(true, |k| k.is_empty())
                {
                    return Err(bad(
                        "auth.audiohook.client_secret",
                        "must be the base64 client secret Genesys shows".into(),
                    ));
                }
            }
        }
        self.validate_api_access()?;
        if self.dsp.hop_ms != 10 && self.dsp.hop_ms != 20 {
            return Err(bad(
                "dsp.hop_ms",
                format!("{} must be 10 or 20", self.dsp.hop_ms),
            ));
        }
        self.detector.validate().map_err(|e| match &e {
            crate::detect::DetectorConfigError::OutOfRange {
                key,
                value,
                expected,
            } => bad(
                &format!("detector.{key}"),
                format!("{value} is out of range (expected {expected})"),
            ),
            crate::detect::DetectorConfigError::UnknownSignal { name, .. } => {
                bad(&format!("detector.signals.{name}"), e.to_string())
            }
            other => bad("detector.topic", other.to_string()),
        })?;
        self.playbook()
            .validate()
            .map_err(|e| bad("routing/pre_call", e.to_string()))?;
        if self.store.retention_days == 0 || self.store.max_calls == 0 {
            return Err(bad(
                "store",
                "retention_days and max_calls must be at least 1".into(),
            ));
        }
        self.bridge.validate().map_err(|e| match e {
            crate::bridge::ConfigError::Invalid { key, reason } => bad(key, reason),
        })?;
        if let Some(c) = &self.cluster {
            c.validate().map_err(|(key, reason)| bad(key, reason))?;
        }
        Ok(())
    }

    /// A loud start-up warning about authentication, if one is due.
    pub fn auth_warning(&self) -> Option<&'static str> {
        if !self.auth.required {
            Some(
                "AUTHENTICATION IS OFF ([auth] required = false): anyone who can reach this port can open media streams",
            )
        } else if self.auth.twilio.is_none() && self.auth.token.is_none() {
            Some(
                "no credentials configured ([auth.twilio] auth_token / [auth.token] value or WARMLINE_AUTH_*): every media stream will be refused with 401",
            )
        } else if self.auth.token.is_none() {
            Some(
                "no [auth.token] value (or WARMLINE_AUTH_TOKEN_VALUE): the dashboard and /v1/* answer 401 to everyone",
            )
        } else {
            None
        }
    }

    /// Whether the dashboard and `/v1/*` require the token. With `auth.required` they always
    /// do: without a token configured they are then closed to everyone (401).
    pub fn api_protected(&self) -> bool {
        self.auth.required || self.auth.protect_api == Some(true)
    }

    /// The API access rule: with `auth.required` the API is never open. `protect_api = false`
    /// is refused, and without `[auth.token]` a non-loopback listener is refused (the API
    /// would be closed to its own operators, and a Twilio-only setup is most often a mistake
    /// here). On a loopback address the gateway starts with the API closed and a warning: a
    /// tunnel (ngrok and the like) makes loopback public, so loopback is not trusted either.
    fn validate_api_access(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        if !a.required {
            return Ok(());
        }
        if a.protect_api == Some(false) {
            return Err(ConfigError::Invalid {
                key: "auth.protect_api".into(),
                reason: "cannot be false while [auth] required = true: the dashboard and /v1/* \
                         always need [auth.token] value"
                    .into(),
            });
        }
        if a.token.is_none() && !self.listens_on_loopback() {
            return Err(ConfigError::Invalid {
                key: "auth.token.value".into(),
                reason: format!(
                    "must be set (or WARMLINE_AUTH_TOKEN_VALUE) to listen on {}: the dashboard \
                     and /v1/* (calls, transcripts, handoffs, events) need it; only a loopback \
                     address may go without",
                    self.server.listen
                ),
            });
        }
        Ok(())
    }

    /// Whether `server.listen` is a loopback address.
    pub fn listens_on_loopback(&self) -> bool {
        self.server
            .listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg = Config::from_toml(text).map_err(|detail| ConfigError::Parse {
            path: "test.toml".into(),
            detail,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn defaults_run_and_warn_about_missing_credentials() {
        let cfg = Config::load(None, &no_env).unwrap();
        assert!(cfg.auth.required);
        assert!(cfg.auth_warning().unwrap().contains("refused"));
        let cfg = parse("[auth]\nrequired = false\n").unwrap();
        assert!(cfg.auth_warning().unwrap().contains("OFF"));
        assert_eq!(cfg.server.max_calls, 2000);
        assert_eq!(cfg.server.max_message_bytes, 65536);
    }

    #[test]
    fn worker_threads_are_bounded() {
        let cfg = parse("[auth]\nrequired=false\n[server]\nworker_threads = 2\n").unwrap();
        assert_eq!(cfg.server.worker_threads, Some(2));
        let err = parse("[auth]\nrequired=false\n[server]\nworker_threads = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.worker_threads"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("[server]\nmax_cals = 3\n").unwrap_err().to_string();
        assert!(err.contains("max_cals"), "{err}");
        let err = parse("[servr]\n").unwrap_err().to_string();
        assert!(err.contains("servr"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse("[auth]\nrequired=false\n[server]\nlisten = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.listen"), "{err}");
        let err = parse("[auth]\nrequired=false\n[server]\nmax_calls = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.max_calls"), "{err}");
        let err = parse("[auth]\nrequired=false\n[server]\nmax_calls = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_calls"), "{err}");
    }

    #[test]
    fn the_api_is_never_open_while_auth_is_required() {
        let twilio_only = "[auth.twilio]\nauth_token = \"t\"\n";
        // The README's old example: Twilio only, public address. Refused, naming the key.
        let err = parse(&format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\n{twilio_only}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.token.value"), "{err}");
        let err = parse(&format!("[server]\nlisten = \"[::]:8080\"\n{twilio_only}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.token.value"), "{err}");
        // Loopback starts, with the API closed and a warning.
        let cfg = parse(twilio_only).unwrap();
        assert!(cfg.api_protected());
        assert!(cfg.auth_warning().unwrap().contains("401"));
        let err = parse("[auth]\nprotect_api = false\n[auth.token]\nvalue = \"v\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.protect_api"), "{err}");
        // Open only on request, with authentication off.
        let cfg = parse("[auth]\nrequired = false\n").unwrap();
        assert!(!cfg.api_protected());
    }

    #[test]
    fn connection_limits_default_below_the_open_file_limit() {
        assert_eq!(derived_max_connections(1024), 922);
        assert_eq!(derived_max_connections(256), 192);
        assert_eq!(derived_max_connections(10), 16);
        assert_eq!(derived_max_connections(1 << 20), (1 << 20) - (1 << 20) / 10);
        let cfg = Config::default();
        assert_eq!(cfg.server.max_connections, None);
        assert_eq!(cfg.server.header_read_timeout_ms, 10_000);
        let err = parse("[server]\nmax_connections = 0\n[auth]\nrequired = false\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.max_connections"), "{err}");
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let env = |k: &str| (k == "WARMLINE_AUTH_TWILIO_AUTH_TOKEN").then(|| "s3cret".to_owned());
        let cfg = Config::load(None, &env).unwrap();
        assert_eq!(cfg.auth.twilio.unwrap().auth_token, "s3cret");
    }

    #[test]
    fn the_contract_example_parses() {
        let text = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "wss://gw.example.com"
max_calls = 2000
max_message_bytes = 65536
[auth]
required = true
[auth.twilio]
auth_token = "abc"
[auth.token]
value = "tok"
[detector]
model = "models/default.json"
[bridge]
outbox_dir = "./warmline-outbox"
"#;
        let cfg = parse(text).unwrap();
        assert_eq!(
            cfg.server.public_url.as_deref(),
            Some("wss://gw.example.com")
        );
    }
}
