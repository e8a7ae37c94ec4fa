//! `[bridge.telnyx]`: Call Control credentials, the agent target and the transfer mode of Telnyx calls.

use super::*;

fn default_telnyx_base() -> String {
    "https://api.telnyx.com".into()
}

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

    fn missing_for_warm(&self) -> Vec<&'static str> {
        unset(&[
            ("bridge.telnyx.caller_id", self.caller_id.as_deref()),
            ("bridge.telnyx.connection_id", self.connection_id.as_deref()),
            ("bridge.telnyx.public_key", self.public_key.as_deref()),
        ])
    }

    /// Checks this section's keys (part of [`BridgeConfig::validate`]).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_non_empty("bridge.telnyx.api_key", &self.api_key)?;
        check_http_url("bridge.telnyx.api_base", &self.api_base)?;
        check_non_empty("bridge.telnyx.to", &self.to)?;
        if self.wants_warm() {
            self.check_warm()?;
            if self.say.trim().is_empty() && self.hold_url.is_none() {
                return Err(invalid(
                    "bridge.telnyx.say",
                    "a warm transfer needs the hold line or bridge.telnyx.hold_url",
                ));
            }
            for (key, v) in [
                ("bridge.telnyx.connection_id", &self.connection_id),
                ("bridge.telnyx.public_key", &self.public_key),
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
        Ok(())
    }
}

warm_section!(TelnyxConfig, TELNYX_KEYS, auto);
