//! `[bridge.twilio]`: credentials, the agent target and the transfer mode of Twilio calls.

use super::*;

fn default_twilio_base() -> String {
    "https://api.twilio.com".into()
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
        self.settle_warm(self.wants_warm(), missing, public_url, in_fleet)
    }

    /// Checks this section's keys (part of [`BridgeConfig::validate`]).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_non_empty("bridge.twilio.account_sid", &self.account_sid)?;
        check_non_empty("bridge.twilio.auth_token", &self.auth_token)?;
        check_http_url("bridge.twilio.api_base", &self.api_base)?;
        check_non_empty("bridge.twilio.agent", &self.agent)?;
        if let Some(name) = self.agent.strip_prefix("queue:") {
            check_non_empty("bridge.twilio.agent", name)?;
        }
        if let Some(cb) = &self.status_callback {
            check_http_url("bridge.twilio.status_callback", cb)?;
        }
        if self.wants_warm() {
            self.check_warm()?;
        }
        Ok(())
    }
}

warm_section!(TwilioConfig, TWILIO_KEYS, custom);
