//! `[bridge.vonage]`: application credentials, the agent target and the transfer mode of Vonage calls.

use super::*;

fn default_vonage_base() -> String {
    "https://api.nexmo.com".into()
}

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

    fn missing_for_warm(&self) -> Vec<&'static str> {
        unset(&[
            ("bridge.vonage.caller_id", self.caller_id.as_deref()),
            (
                "bridge.vonage.signature_secret",
                self.signature_secret.as_deref(),
            ),
        ])
    }

    /// Checks this section's keys (part of [`BridgeConfig::validate`]).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_non_empty("bridge.vonage.jwt", &self.jwt)?;
        check_http_url("bridge.vonage.api_base", &self.api_base)?;
        check_non_empty("bridge.vonage.agent", &self.agent)?;
        if self.wants_warm() {
            self.check_warm()?;
            check_non_empty(
                "bridge.vonage.signature_secret",
                self.signature_secret.as_deref().unwrap_or(""),
            )?;
        }
        Ok(())
    }
}

warm_section!(VonageConfig, VONAGE_KEYS, auto);
