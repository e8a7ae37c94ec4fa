//! `[bridge.asterisk]`: the Asterisk ARI transfer's keys (see [`crate::bridge::ari`]) and
//! their validation.

use super::{ConfigError, check_http_url, check_non_empty, invalid};
use serde::{Deserialize, Serialize};

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
    /// Continue: the priority; unset lets Asterisk choose (1 for another extension).
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
