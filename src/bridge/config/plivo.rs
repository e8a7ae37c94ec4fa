//! `[bridge.plivo]`: credentials, the agent target and the transfer mode of Plivo calls.

use super::*;

fn default_plivo_base() -> String {
    "https://api.plivo.com".into()
}

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

    fn missing_for_warm(&self) -> Vec<&'static str> {
        unset(&[
            ("bridge.plivo.agent", self.agent.as_deref()),
            ("bridge.plivo.caller_id", self.caller_id.as_deref()),
        ])
    }

    /// Checks this section's keys (part of [`BridgeConfig::validate`]).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_non_empty("bridge.plivo.auth_id", &self.auth_id)?;
        check_non_empty("bridge.plivo.auth_token", &self.auth_token)?;
        check_http_url("bridge.plivo.api_base", &self.api_base)?;
        if self.wants_warm() {
            self.check_warm()?;
            check_non_empty("bridge.plivo.agent", self.agent.as_deref().unwrap_or(""))?;
        } else {
            check_http_url("bridge.plivo.aleg_url", &self.aleg_url)?;
        }
        Ok(())
    }
}

warm_section!(PlivoConfig, PLIVO_KEYS, auto);
