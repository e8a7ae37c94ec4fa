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
        warm_applies(self.mode, self.wants_warm(), self.callback_base.as_deref())
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
        if self.mode == TransferMode::Auto && self.agent.trim().starts_with("queue:") {
            // Enqueued directly either way.
            self.mode = TransferMode::Blind;
            return Ok(None);
        }
        let missing = if self.wants_warm() {
            vec![]
        } else {
            vec!["bridge.twilio.caller_id"]
        };
        let wants = self.wants_warm();
        resolve_warm(
            &TWILIO_KEYS,
            &mut self.mode,
            &mut self.callback_base,
            wants,
            missing,
            public_url,
            in_fleet,
        )
    }
}

/// The warm-transfer keys a provider section shares, by their full names.
struct WarmKeys {
    /// `Twilio`.
    provider: &'static str,
    /// `bridge.twilio`.
    section: &'static str,
    mode: &'static str,
    answer_timeout_s: &'static str,
    caller_id: &'static str,
    fallback: &'static str,
    callback_base: &'static str,
    hold_url: &'static str,
    /// The missing callback origin, as the start-up warning names it.
    callback_hint: &'static str,
    /// What a blind transfer of this provider is, for the start-up warning.
    blind: &'static str,
}

const TWILIO_KEYS: WarmKeys = WarmKeys {
    provider: "Twilio",
    section: "bridge.twilio",
    mode: "bridge.twilio.mode",
    answer_timeout_s: "bridge.twilio.answer_timeout_s",
    caller_id: "bridge.twilio.caller_id",
    fallback: "bridge.twilio.fallback",
    callback_base: "bridge.twilio.callback_base",
    hold_url: "bridge.twilio.hold_url",
    callback_hint: "bridge.twilio.callback_base (or server.public_url)",
    blind: "<Say> + <Dial>, nothing tracked",
};

const TELNYX_KEYS: WarmKeys = WarmKeys {
    provider: "Telnyx",
    section: "bridge.telnyx",
    mode: "bridge.telnyx.mode",
    answer_timeout_s: "bridge.telnyx.answer_timeout_s",
    caller_id: "bridge.telnyx.caller_id",
    fallback: "bridge.telnyx.fallback",
    callback_base: "bridge.telnyx.callback_base",
    hold_url: "bridge.telnyx.hold_url",
    callback_hint: "bridge.telnyx.callback_base (or server.public_url)",
    blind: "actions/transfer, nothing tracked",
};

const VONAGE_KEYS: WarmKeys = WarmKeys {
    provider: "Vonage",
    section: "bridge.vonage",
    mode: "bridge.vonage.mode",
    answer_timeout_s: "bridge.vonage.answer_timeout_s",
    caller_id: "bridge.vonage.caller_id",
    fallback: "bridge.vonage.fallback",
    callback_base: "bridge.vonage.callback_base",
    hold_url: "bridge.vonage.hold_url",
    callback_hint: "bridge.vonage.callback_base (or server.public_url)",
    blind: "talk + connect, nothing tracked",
};

const PLIVO_KEYS: WarmKeys = WarmKeys {
    provider: "Plivo",
    section: "bridge.plivo",
    mode: "bridge.plivo.mode",
    answer_timeout_s: "bridge.plivo.answer_timeout_s",
    caller_id: "bridge.plivo.caller_id",
    fallback: "bridge.plivo.fallback",
    callback_base: "bridge.plivo.callback_base",
    hold_url: "bridge.plivo.hold_url",
    callback_hint: "bridge.plivo.callback_base (or server.public_url)",
    blind: "the A leg to aleg_url, nothing tracked",
};

/// The keys of `required` that are unset or blank.
fn unset(required: &[(&'static str, Option<&str>)]) -> Vec<&'static str> {
    required
        .iter()
        .filter(|(_, v)| v.is_none_or(|c| c.trim().is_empty()))
        .map(|(k, _)| *k)
        .collect()
}

/// Whether a section asks for the warm flow: `warm`, or `auto` with nothing it needs `missing`.
fn mode_wants_warm(mode: TransferMode, missing: &[&str]) -> bool {
    match mode {
        TransferMode::Warm => true,
        TransferMode::Auto => missing.is_empty(),
        TransferMode::Blind => false,
    }
}

/// Whether the warm flow applies: asked for, and either explicit or with a callback origin.
fn warm_applies(mode: TransferMode, wants: bool, callback_base: Option<&str>) -> bool {
    wants && (mode == TransferMode::Warm || callback_base.is_some())
}

/// Settles a provider section's `mode` at start-up (see [`TwilioConfig::resolve_mode`]):
/// `callback_base` defaults to `public_url`'s origin; `auto` becomes `warm` when nothing in
/// `missing` (the keys auto mode lacks) and a callback origin are there, else `blind` with the
/// returned warning. `wants` is whether the section asks for warm at all.
fn resolve_warm(
    keys: &WarmKeys,
    mode: &mut TransferMode,
    callback_base: &mut Option<String>,
    wants: bool,
    mut missing: Vec<&'static str>,
    public_url: Option<&str>,
    in_fleet: bool,
) -> Result<Option<String>, ConfigError> {
    if in_fleet && wants {
        if *mode == TransferMode::Warm {
            return Err(invalid(
                keys.mode,
                "warm transfers are not shared across a [cluster] fleet yet; set mode = \"blind\"",
            ));
        }
        *mode = TransferMode::Blind;
        return Ok(Some(format!(
            "[{}] mode is not set and [cluster] is: {} handoffs are blind transfers (warm \
             transfers are not shared across a fleet yet)",
            keys.section, keys.provider
        )));
    }
    if *mode != TransferMode::Blind && callback_base.is_none() {
        *callback_base = public_url.map(http_origin);
    }
    if *mode != TransferMode::Auto {
        return Ok(None);
    }
    if callback_base.is_none() {
        missing.push(keys.callback_hint);
    }
    if missing.is_empty() {
        *mode = TransferMode::Warm;
        return Ok(None);
    }
    *mode = TransferMode::Blind;
    Ok(Some(format!(
        "[{}] mode is not set and {} is missing: {} handoffs are blind transfers ({}); set \
         them for warm transfers, or mode = \"blind\" to silence this",
        keys.section,
        missing.join(" and "),
        keys.provider,
        keys.blind
    )))
}

/// Checks the warm keys of a section that asks for warm transfers.
fn validate_warm(
    keys: &WarmKeys,
    answer_timeout_s: u64,
    caller_id: Option<&str>,
    callback_base: Option<&str>,
    hold_url: Option<&str>,
    fallback: &[String],
) -> Result<(), ConfigError> {
    if !(1..=600).contains(&answer_timeout_s) {
        return Err(invalid(
            keys.answer_timeout_s,
            format!("{answer_timeout_s} is outside 1..=600"),
        ));
    }
    check_non_empty(keys.caller_id, caller_id.unwrap_or("")).map_err(|_| {
        invalid(
            keys.caller_id,
            "required with mode = \"warm\" (the agent leg's From); or set mode = \"blind\"",
        )
    })?;
    if let Some(cb) = callback_base {
        check_http_url(keys.callback_base, cb)?;
    }
    if let Some(h) = hold_url {
        check_http_url(keys.hold_url, h)?;
    }
    for f in fallback {
        check_non_empty(keys.fallback, f)?;
        if let Some(url) = f.strip_prefix("bot:")
            && !(url.starts_with("wss://") || url.starts_with("ws://"))
        {
            return Err(invalid(
                keys.fallback,
                format!("`{f}`: a bot fallback is bot:wss://…"),
            ));
        }
    }
    Ok(())
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

/// `[bridge.telnyx]`: Call Control, warm (caller on hold, agent dialled, briefed and bridged)
/// or blind (`actions/transfer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelnyxConfig {
    /// Bearer API key.
    #[serde(default)]
    pub api_key: String,
    /// REST base; tests point it at a local server.
    #[serde(default = "default_telnyx_base")]
    pub api_base: String,
    /// `+E164` number or `sip:` URI of the human.
    pub to: String,
    /// Base64 Ed25519 public key of the account (portal → Keys & Credentials → Public Key);
    /// checks `telnyx-signature-ed25519` on `POST /v1/providers/telnyx/webhook`.
    #[serde(default)]
    pub public_key: Option<String>,
    /// `auto` (default: warm when it can work, else blind with a warning), `warm` or `blind`.
    #[serde(default)]
    pub mode: TransferMode,
    /// Warm: spoken to the caller as they go on hold (when `hold_url` is not set); empty for none.
    #[serde(default = "default_say")]
    pub say: String,
    /// Warm: Telnyx `voice` of the spoken lines (hold line, whisper, fallback lines).
    #[serde(default = "default_telnyx_voice")]
    pub voice: String,
    /// Warm: Telnyx `language` of the spoken lines.
    #[serde(default = "default_telnyx_language")]
    pub language: String,
    /// Warm: seconds the agent leg may ring (`timeout_secs`) before the next target is tried.
    #[serde(default = "default_answer_timeout_s")]
    pub answer_timeout_s: u64,
    /// Warm: tried in order after `to` does not answer, as `[bridge.twilio] fallback`
    /// (`client:` targets are Twilio's and not dialled here).
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Warm: the `from` of the agent leg (a number of the account).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Warm: the Call Control application (`connection_id`) that places the agent leg.
    #[serde(default)]
    pub connection_id: Option<String>,
    /// Warm: public origin of this gateway, the agent leg's `webhook_url`; defaults to
    /// `server.public_url` with `wss`→`https`.
    #[serde(default)]
    pub callback_base: Option<String>,
    /// Warm: audio looped to the caller on hold (`actions/playback_start`); the `say` line is
    /// spoken instead when unset.
    #[serde(default)]
    pub hold_url: Option<String>,
}

fn default_telnyx_voice() -> String {
    "female".into()
}
fn default_telnyx_language() -> String {
    "en-US".into()
}

impl TelnyxConfig {
    /// A config with this key and agent and every other key at its default.
    pub fn new(api_key: &str, to: &str) -> Self {
        Self {
            api_key: api_key.into(),
            api_base: default_telnyx_base(),
            to: to.into(),
            public_key: None,
            mode: TransferMode::Auto,
            say: default_say(),
            voice: default_telnyx_voice(),
            language: default_telnyx_language(),
            answer_timeout_s: default_answer_timeout_s(),
            fallback: Vec::new(),
            caller_id: None,
            connection_id: None,
            callback_base: None,
            hold_url: None,
        }
    }

    /// Whether the warm flow applies (see [`TwilioConfig::is_warm`]).
    pub fn is_warm(&self) -> bool {
        warm_applies(self.mode, self.wants_warm(), self.callback_base.as_deref())
    }

    /// `warm`, or `auto` with the keys only a warm transfer uses (`caller_id`, `connection_id`).
    fn wants_warm(&self) -> bool {
        mode_wants_warm(self.mode, &self.missing_for_warm())
    }

    fn missing_for_warm(&self) -> Vec<&'static str> {
        unset(&[
            ("bridge.telnyx.caller_id", self.caller_id.as_deref()),
            ("bridge.telnyx.connection_id", self.connection_id.as_deref()),
            ("bridge.telnyx.public_key", self.public_key.as_deref()),
        ])
    }

    /// Settles the mode at start-up, as [`TwilioConfig::resolve_mode`]: `auto` is warm when
    /// `caller_id`, `connection_id`, `public_key` and a callback origin are there.
    pub fn resolve_mode(
        &mut self,
        public_url: Option<&str>,
        in_fleet: bool,
    ) -> Result<Option<String>, ConfigError> {
        let (wants, missing) = (self.wants_warm(), self.missing_for_warm());
        resolve_warm(
            &TELNYX_KEYS,
            &mut self.mode,
            &mut self.callback_base,
            wants,
            missing,
            public_url,
            in_fleet,
        )
    }
}

/// `[bridge.vonage]`: warm (caller into a named conversation on hold, agent called with a
/// whisper into it) or blind (`PUT /v1/calls/{uuid}` with an NCCO that connects the agent).
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
    /// Said to the caller before connecting (blind) or before the hold (warm); empty for none.
    #[serde(default = "default_say")]
    pub say: String,
    /// `auto` (default: warm when it can work, else blind with a warning), `warm` or `blind`.
    #[serde(default)]
    pub mode: TransferMode,
    /// Warm: seconds the agent leg may ring (`ringing_timer`) before the next target is tried.
    #[serde(default = "default_answer_timeout_s")]
    pub answer_timeout_s: u64,
    /// Warm: tried in order after `agent` does not answer, as `[bridge.twilio] fallback`.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Warm: the `from` number of the agent leg (a number of the application).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Warm: public origin of this gateway, the agent leg's `event_url`; defaults to
    /// `server.public_url` with `wss`→`https`.
    #[serde(default)]
    pub callback_base: Option<String>,
    /// Warm: the conversation's `musicOnHoldUrl` (an audio file); silence when unset.
    #[serde(default)]
    pub hold_url: Option<String>,
    /// Warm: the account's signature secret, which checks the signed JWT Vonage puts in the
    /// `Authorization` of its webhooks to `POST /v1/providers/vonage/event`.
    #[serde(default)]
    pub signature_secret: Option<String>,
}

impl VonageConfig {
    /// A blind config with this JWT and agent and every other key at its default.
    pub fn new(jwt: &str, agent: &str) -> Self {
        Self {
            jwt: jwt.into(),
            api_base: default_vonage_base(),
            agent: agent.into(),
            say: default_say(),
            mode: TransferMode::Auto,
            answer_timeout_s: default_answer_timeout_s(),
            fallback: Vec::new(),
            caller_id: None,
            callback_base: None,
            hold_url: None,
            signature_secret: None,
        }
    }

    /// Whether the warm flow applies (see [`TwilioConfig::is_warm`]).
    pub fn is_warm(&self) -> bool {
        warm_applies(self.mode, self.wants_warm(), self.callback_base.as_deref())
    }

    /// `warm`, or `auto` with the keys only a warm transfer uses.
    fn wants_warm(&self) -> bool {
        mode_wants_warm(self.mode, &self.missing_for_warm())
    }

    fn missing_for_warm(&self) -> Vec<&'static str> {
        unset(&[
            ("bridge.vonage.caller_id", self.caller_id.as_deref()),
            (
                "bridge.vonage.signature_secret",
                self.signature_secret.as_deref(),
            ),
        ])
    }

    /// Settles the mode at start-up, as [`TwilioConfig::resolve_mode`]: `auto` is warm when
    /// `caller_id`, `signature_secret` and a callback origin are there.
    pub fn resolve_mode(
        &mut self,
        public_url: Option<&str>,
        in_fleet: bool,
    ) -> Result<Option<String>, ConfigError> {
        let (wants, missing) = (self.wants_warm(), self.missing_for_warm());
        resolve_warm(
            &VONAGE_KEYS,
            &mut self.mode,
            &mut self.callback_base,
            wants,
            missing,
            public_url,
            in_fleet,
        )
    }
}

/// `[bridge.plivo]`: warm (caller into a conference warmline's XML holds them in, agent dialled
/// with a whisper) or blind (the A leg transferred to your XML URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoConfig {
    /// Basic-auth user and account path segment.
    pub auth_id: String,
    /// Basic-auth password; also keys the tokens of the callback URLs warmline gives Plivo.
    #[serde(default)]
    pub auth_token: String,
    /// REST base; tests point it at a local server.
    #[serde(default = "default_plivo_base")]
    pub api_base: String,
    /// Blind: Plivo XML that dials the agent; `handoff_id=…` is appended to its query.
    #[serde(default)]
    pub aleg_url: String,
    /// `auto` (default: warm when it can work, else blind with a warning), `warm` or `blind`.
    #[serde(default)]
    pub mode: TransferMode,
    /// Warm: `+E164` number or `sip:` URI of the human.
    #[serde(default)]
    pub agent: Option<String>,
    /// Warm: `<Speak>` to the caller before the hold; empty for none.
    #[serde(default = "default_say")]
    pub say: String,
    /// Warm: seconds the agent leg may ring (`ring_timeout`) before the next target is tried.
    #[serde(default = "default_answer_timeout_s")]
    pub answer_timeout_s: u64,
    /// Warm: tried in order after `agent` does not answer, as `[bridge.twilio] fallback`.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Warm: the `from` of the agent leg (a number of the account).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Warm: public origin of this gateway, where Plivo fetches the hold and agent XML and
    /// reports the legs; defaults to `server.public_url` with `wss`→`https`.
    #[serde(default)]
    pub callback_base: Option<String>,
    /// Warm: the conference's `waitSound` (a URL returning `<Play>`/`<Speak>` XML); Plivo's
    /// silence when unset.
    #[serde(default)]
    pub hold_url: Option<String>,
}

impl PlivoConfig {
    /// A blind config with these credentials and XML URL and every other key at its default.
    pub fn new(auth_id: &str, auth_token: &str, aleg_url: &str) -> Self {
        Self {
            auth_id: auth_id.into(),
            auth_token: auth_token.into(),
            api_base: default_plivo_base(),
            aleg_url: aleg_url.into(),
            mode: TransferMode::Auto,
            agent: None,
            say: default_say(),
            answer_timeout_s: default_answer_timeout_s(),
            fallback: Vec::new(),
            caller_id: None,
            callback_base: None,
            hold_url: None,
        }
    }

    /// Whether the warm flow applies (see [`TwilioConfig::is_warm`]).
    pub fn is_warm(&self) -> bool {
        warm_applies(self.mode, self.wants_warm(), self.callback_base.as_deref())
    }

    /// `warm`, or `auto` with the keys only a warm transfer uses (`agent`, `caller_id`).
    fn wants_warm(&self) -> bool {
        mode_wants_warm(self.mode, &self.missing_for_warm())
    }

    fn missing_for_warm(&self) -> Vec<&'static str> {
        unset(&[
            ("bridge.plivo.agent", self.agent.as_deref()),
            ("bridge.plivo.caller_id", self.caller_id.as_deref()),
        ])
    }

    /// Settles the mode at start-up, as [`TwilioConfig::resolve_mode`]: `auto` is warm when
    /// `agent`, `caller_id` and a callback origin are there.
    pub fn resolve_mode(
        &mut self,
        public_url: Option<&str>,
        in_fleet: bool,
    ) -> Result<Option<String>, ConfigError> {
        let (wants, missing) = (self.wants_warm(), self.missing_for_warm());
        resolve_warm(
            &PLIVO_KEYS,
            &mut self.mode,
            &mut self.callback_base,
            wants,
            missing,
            public_url,
            in_fleet,
        )
    }
}

// ---- `[bridge.asterisk]` (ARI) -------------------------------------------------------------

/// What ARI does with the caller's channel on a handoff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AriMode {
    /// `POST /ari/channels/{id}/continue`: the channel leaves the Stasis app and the dialplan
    /// takes over at `context`/`extension`/`priority` (a queue, an agent's extension).
    #[default]
    Continue,
    /// `POST /ari/channels/{id}/redirect?endpoint=…`: the channel is sent to `endpoint`
    /// (e.g. `PJSIP/agent`).
    Redirect,
}

/// `[bridge.asterisk]`: moves an Asterisk caller through ARI, blind: the handoff id and reason
/// are set as channel variables first, then the channel continues in the dialplan or is
/// redirected. The channel must be in the Stasis app `app` (ARI answers 409 otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsteriskConfig {
    /// Asterisk's HTTP server, e.g. `http://pbx:8088` (`/ari/...` is appended).
    pub ari_url: String,
    /// ARI user (`ari.conf`).
    pub username: String,
    /// ARI password; or `WARMLINE_BRIDGE_ASTERISK_PASSWORD`.
    #[serde(default)]
    pub password: String,
    /// The Stasis app that owns the callers' channels (named when ARI answers 409).
    #[serde(default)]
    pub app: String,
    /// `continue` (default) or `redirect`.
    #[serde(default)]
    pub mode: AriMode,
    /// Continue: the dialplan context to continue in (required for `continue`).
    #[serde(default)]
    pub context: Option<String>,
    /// Continue: the extension; Asterisk keeps the channel's own when unset.
    #[serde(default)]
    pub extension: Option<String>,
    /// Continue: the priority (default 1 when an extension is set).
    #[serde(default)]
    pub priority: Option<u32>,
    /// Redirect: the endpoint the channel is sent to, e.g. `PJSIP/agent` (required for
    /// `redirect`).
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl AsteriskConfig {
    /// A `continue` config to `context` with these credentials, every other key unset.
    pub fn new(ari_url: &str, username: &str, password: &str, context: &str) -> Self {
        Self {
            ari_url: ari_url.into(),
            username: username.into(),
            password: password.into(),
            app: String::new(),
            mode: AriMode::Continue,
            context: Some(context.into()),
            extension: None,
            priority: None,
            endpoint: None,
        }
    }

    /// Checks the section, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_http_url("bridge.asterisk.ari_url", &self.ari_url)?;
        check_non_empty("bridge.asterisk.username", &self.username)?;
        check_non_empty("bridge.asterisk.password", &self.password).map_err(|_| {
            invalid(
                "bridge.asterisk.password",
                "must not be empty (ARI uses basic auth; or set WARMLINE_BRIDGE_ASTERISK_PASSWORD)",
            )
        })?;
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match self.mode {
            AriMode::Continue => {
                if self.endpoint.is_some() {
                    return Err(invalid(
                        "bridge.asterisk.endpoint",
                        "only used with mode = \"redirect\"; mode \"continue\" goes to context/extension/priority",
                    ));
                }
                if !set(&self.context) {
                    return Err(invalid(
                        "bridge.asterisk.context",
                        "required with mode = \"continue\" (the dialplan context that takes the caller); \
                         or set mode = \"redirect\" with endpoint",
                    ));
                }
                if self
                    .extension
                    .as_deref()
                    .is_some_and(|e| e.trim().is_empty())
                {
                    return Err(invalid("bridge.asterisk.extension", "must not be empty"));
                }
                if self.priority == Some(0) {
                    return Err(invalid("bridge.asterisk.priority", "must be at least 1"));
                }
            }
            AriMode::Redirect => {
                for (key, v) in [
                    ("bridge.asterisk.context", &self.context),
                    ("bridge.asterisk.extension", &self.extension),
                ] {
                    if v.is_some() {
                        return Err(invalid(
                            key,
                            "only used with mode = \"continue\"; mode \"redirect\" goes to endpoint",
                        ));
                    }
                }
                if self.priority.is_some() {
                    return Err(invalid(
                        "bridge.asterisk.priority",
                        "only used with mode = \"continue\"; mode \"redirect\" goes to endpoint",
                    ));
                }
                if !set(&self.endpoint) {
                    return Err(invalid(
                        "bridge.asterisk.endpoint",
                        "required with mode = \"redirect\" (e.g. \"PJSIP/agent\"); \
                         or set mode = \"continue\" with context",
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---- end of `[bridge.asterisk]` -------------------------------------------------------------

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
                validate_warm(
                    &TWILIO_KEYS,
                    t.answer_timeout_s,
                    t.caller_id.as_deref(),
                    t.callback_base.as_deref(),
                    t.hold_url.as_deref(),
                    &t.fallback,
                )?;
            }
        }
        if let Some(t) = &self.telnyx {
            check_non_empty("bridge.telnyx.api_key", &t.api_key)?;
            check_http_url("bridge.telnyx.api_base", &t.api_base)?;
            check_non_empty("bridge.telnyx.to", &t.to)?;
            if t.wants_warm() {
                validate_warm(
                    &TELNYX_KEYS,
                    t.answer_timeout_s,
                    t.caller_id.as_deref(),
                    t.callback_base.as_deref(),
                    t.hold_url.as_deref(),
                    &t.fallback,
                )?;
                if t.say.trim().is_empty() && t.hold_url.is_none() {
                    return Err(invalid(
                        "bridge.telnyx.say",
                        "a warm transfer needs the hold line or bridge.telnyx.hold_url",
                    ));
                }
                for (key, v) in [
                    ("bridge.telnyx.connection_id", &t.connection_id),
                    ("bridge.telnyx.public_key", &t.public_key),
                ] {
                    check_non_empty(key, v.as_deref().unwrap_or("")).map_err(|_| {
                        invalid(
                            key,
                            "required with mode = \"warm\" (the agent leg and its webhooks); \
                             or set mode = \"blind\"",
                        )
                    })?;
                }
            }
        }
        if let Some(v) = &self.vonage {
            check_non_empty("bridge.vonage.jwt", &v.jwt)?;
            check_http_url("bridge.vonage.api_base", &v.api_base)?;
            check_non_empty("bridge.vonage.agent", &v.agent)?;
            if v.wants_warm() {
                validate_warm(
                    &VONAGE_KEYS,
                    v.answer_timeout_s,
                    v.caller_id.as_deref(),
                    v.callback_base.as_deref(),
                    v.hold_url.as_deref(),
                    &v.fallback,
                )?;
                check_non_empty(
                    "bridge.vonage.signature_secret",
                    v.signature_secret.as_deref().unwrap_or(""),
                )?;
            }
        }
        if let Some(p) = &self.plivo {
            check_non_empty("bridge.plivo.auth_id", &p.auth_id)?;
            check_non_empty("bridge.plivo.auth_token", &p.auth_token)?;
            check_http_url("bridge.plivo.api_base", &p.api_base)?;
            if p.wants_warm() {
                validate_warm(
                    &PLIVO_KEYS,
                    p.answer_timeout_s,
                    p.caller_id.as_deref(),
                    p.callback_base.as_deref(),
                    p.hold_url.as_deref(),
                    &p.fallback,
                )?;
                check_non_empty("bridge.plivo.agent", p.agent.as_deref().unwrap_or(""))?;
            } else {
                check_http_url("bridge.plivo.aleg_url", &p.aleg_url)?;
            }
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
            warnings.extend(t.resolve_mode(public_url, in_fleet)?);
            if t.is_warm() && t.callback_base.is_none() {
                return Err(no_callback(TWILIO_KEYS.callback_base));
            }
        }
        if let Some(t) = self.telnyx.as_mut() {
            warnings.extend(t.resolve_mode(public_url, in_fleet)?);
            if t.is_warm() && t.callback_base.is_none() {
                return Err(no_callback(TELNYX_KEYS.callback_base));
            }
        }
        if let Some(t) = self.vonage.as_mut() {
            warnings.extend(t.resolve_mode(public_url, in_fleet)?);
            if t.is_warm() && t.callback_base.is_none() {
                return Err(no_callback(VONAGE_KEYS.callback_base));
            }
        }
        if let Some(t) = self.plivo.as_mut() {
            warnings.extend(t.resolve_mode(public_url, in_fleet)?);
            if t.is_warm() && t.callback_base.is_none() {
                return Err(no_callback(PLIVO_KEYS.callback_base));
            }
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
