//! The warm-transfer keys every provider section shares: [`TransferMode`], the fallback chain,
//! the callback origin and hold audio, and how `auto` settles into warm or blind at start-up.

use super::*;

pub(super) fn default_say() -> String {
    "Please hold while I connect you with a colleague.".into()
}

pub(super) fn default_answer_timeout_s() -> u64 {
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

/// The warm-transfer keys a provider section shares, by their full names.
pub(super) struct WarmKeys {
    /// `Twilio`.
    pub(super) provider: &'static str,
    /// `bridge.twilio`.
    pub(super) section: &'static str,
    pub(super) mode: &'static str,
    pub(super) answer_timeout_s: &'static str,
    pub(super) caller_id: &'static str,
    pub(super) fallback: &'static str,
    pub(super) callback_base: &'static str,
    pub(super) hold_url: &'static str,
    /// The missing callback origin, as the start-up warning names it.
    pub(super) callback_hint: &'static str,
    /// What a blind transfer of this provider is, for the start-up warning.
    pub(super) blind: &'static str,
}

/// The keys of `required` that are unset or blank.
pub(super) fn unset(required: &[(&'static str, Option<&str>)]) -> Vec<&'static str> {
    required
        .iter()
        .filter(|(_, v)| v.is_none_or(|c| c.trim().is_empty()))
        .map(|(k, _)| *k)
        .collect()
}

/// Whether a section asks for the warm flow: `warm`, or `auto` with nothing it needs `missing`.
pub(super) fn mode_wants_warm(mode: TransferMode, missing: &[&str]) -> bool {
    match mode {
        TransferMode::Warm => true,
        TransferMode::Auto => missing.is_empty(),
        TransferMode::Blind => false,
    }
}

/// Whether the warm flow applies: asked for, and either explicit or with a callback origin.
pub(super) fn warm_applies(mode: TransferMode, wants: bool, callback_base: Option<&str>) -> bool {
    wants && (mode == TransferMode::Warm || callback_base.is_some())
}

/// Settles a provider section's `mode` at start-up (see [`TwilioConfig::resolve_mode`]):
/// `callback_base` defaults to `public_url`'s origin; `auto` becomes `warm` when nothing in
/// `missing` (the keys auto mode lacks) and a callback origin are there, else `blind` with the
/// returned warning. `wants` is whether the section asks for warm at all.
pub(super) fn resolve_warm(
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
pub(super) fn validate_warm(
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

/// The warm-key methods every provider section has, from the shared field names (`mode`,
/// `answer_timeout_s`, `caller_id`, `callback_base`, `hold_url`, `fallback`) and its
/// [`WarmKeys`]. `auto` also writes `wants_warm` (warm, or auto with nothing in
/// `missing_for_warm()`) and `resolve_mode`; `custom` leaves both to the section.
macro_rules! warm_section {
    ($ty:ident, $keys:ident, auto) => {
        impl $ty {
            /// `warm`, or `auto` with every key only a warm transfer uses.
            fn wants_warm(&self) -> bool {
                mode_wants_warm(self.mode, &self.missing_for_warm())
            }

            /// Settles the mode at start-up, as [`TwilioConfig::resolve_mode`]: `auto` is warm
            /// when nothing in `missing_for_warm()` is unset and a callback origin is there.
            pub fn resolve_mode(
                &mut self,
                public_url: Option<&str>,
                in_fleet: bool,
            ) -> Result<Option<String>, ConfigError> {
                self.settle_warm(
                    self.wants_warm(),
                    self.missing_for_warm(),
                    public_url,
                    in_fleet,
                )
            }
        }
        warm_section!($ty, $keys, custom);
    };
    ($ty:ident, $keys:ident, custom) => {
        impl $ty {
            /// Whether the warm flow applies: asked for, and explicit or with a callback origin.
            pub fn is_warm(&self) -> bool {
                warm_applies(self.mode, self.wants_warm(), self.callback_base.as_deref())
            }

            /// [`resolve_warm`] on this section's mode and callback origin.
            fn settle_warm(
                &mut self,
                wants: bool,
                missing: Vec<&'static str>,
                public_url: Option<&str>,
                in_fleet: bool,
            ) -> Result<Option<String>, ConfigError> {
                resolve_warm(
                    &$keys,
                    &mut self.mode,
                    &mut self.callback_base,
                    wants,
                    missing,
                    public_url,
                    in_fleet,
                )
            }

            /// The shared warm keys, checked when the section asks for warm transfers.
            fn check_warm(&self) -> Result<(), ConfigError> {
                if !self.wants_warm() {
                    return Ok(());
                }
                validate_warm(
                    &$keys,
                    self.answer_timeout_s,
                    self.caller_id.as_deref(),
                    self.callback_base.as_deref(),
                    self.hold_url.as_deref(),
                    &self.fallback,
                )
            }

            /// [`Self::resolve_mode`]; a warm section that cannot be called back is an error.
            pub(super) fn settle(
                &mut self,
                public_url: Option<&str>,
                in_fleet: bool,
            ) -> Result<Option<String>, ConfigError> {
                let warning = self.resolve_mode(public_url, in_fleet)?;
                if self.is_warm() && self.callback_base.is_none() {
                    return Err(no_callback($keys.callback_base));
                }
                Ok(warning)
            }
        }
    };
}
pub(super) use warm_section;
