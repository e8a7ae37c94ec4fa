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

    /// Checks this section's keys (part of [`BridgeConfig::validate`]).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_non_empty("bridge.vonage.jwt", &self.jwt)?;
        check_http_url("bridge.vonage.api_base", &self.api_base)?;
        check_non_empty("bridge.vonage.agent", &self.agent)?;
        if self.wants_warm() {
            validate_warm(
                &VONAGE_KEYS,
                self.answer_timeout_s,
                self.caller_id.as_deref(),
                self.callback_base.as_deref(),
                self.hold_url.as_deref(),
                &self.fallback,
            )?;
            check_non_empty(
                "bridge.vonage.signature_secret",
                self.signature_secret.as_deref().unwrap_or(""),
            )?;
        }
        Ok(())
    }

    /// [`Self::resolve_mode`]; a warm section that cannot be called back is an error.
    pub(super) fn settle(
        &mut self,
        public_url: Option<&str>,
        in_fleet: bool,
    ) -> Result<Option<String>, ConfigError> {
        let warning = self.resolve_mode(public_url, in_fleet)?;
        if self.is_warm() && self.callback_base.is_none() {
            return Err(no_callback(VONAGE_KEYS.callback_base));
        }
        Ok(warning)
    }
}
