//! The registry: [`Provider`] is the only list of providers, and [`Provider::spec`] the only
//! place that maps one to its adapter file. Everything a provider needs lives in that file's
//! `SPEC` ([`ProviderSpec`]): its parser, its renderer, its call-id rule, its auth rule, the
//! name of its transfer hook and how to recognise its recorded streams. Adding a provider is
//! one file plus one variant and one `spec` arm here.

use super::{Adapter, CallIdRule, ProtocolError, RenderSpec, WireMessage};
use super::{asterisk, exotel, freeswitch, genesys, plivo, telnyx, twilio, vonage};
use crate::codec::Codec;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The telephony providers warmline speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Twilio Media Streams (the default: `simulate` streams as Twilio unless told otherwise).
    #[default]
    Twilio,
    /// Telnyx Media Streaming.
    Telnyx,
    /// Plivo Audio Streaming.
    Plivo,
    /// Exotel Voicebot/Stream applet.
    Exotel,
    /// Vonage Voice API WebSocket.
    Vonage,
    /// FreeSWITCH `mod_audio_fork` (and jambonz `listen`).
    Freeswitch,
    /// Asterisk `chan_websocket`.
    Asterisk,
    /// Genesys Cloud AudioHook v2.
    Genesys,
}

/// How a provider's media upgrade is authenticated. The server asks the adapter which rule
/// applies and keeps the checking code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRule {
    /// `X-Twilio-Signature` over the URL when `[auth.twilio]` is set, else the shared token.
    TwilioSignature,
    /// The shared `[auth.token]`, as `Authorization: Bearer` or in one of these headers.
    Token {
        /// Extra headers that may carry the token (lower case).
        headers: &'static [&'static str],
    },
    /// Genesys AudioHook: `X-API-KEY` and the HTTP Message Signature when `[auth.audiohook]` is
    /// set, else the shared token (as Bearer or `X-API-KEY`).
    AudioHook,
}

/// Renders a whole call (`caller`, optional `agent` PCM) as a provider sends it.
pub type RenderFn = fn(&RenderSpec, &[i16], Option<&[i16]>) -> Vec<WireMessage>;

/// Everything warmline knows about one provider, declared in its adapter file.
#[derive(Clone, Copy)]
pub struct ProviderSpec {
    /// The path segment and event name (`twilio`, …).
    pub name: &'static str,
    /// Which call ids its start message may carry.
    pub call_id: CallIdRule,
    /// The codec and rate it usually sends (what `simulate` streams).
    pub usual_format: (Codec, u32),
    /// Whether one stream can carry the agent's track too.
    pub two_tracks: bool,
    /// How its upgrade is authenticated.
    pub auth: AuthRule,
    /// WebSocket subprotocols it asks for, one of which the upgrade must select (FreeSWITCH's
    /// `mod_audio_fork` aborts the connection otherwise); empty for most.
    pub subprotocols: &'static [&'static str],
    /// The bridge target that moves its calls (`twilio`, …), or `None`: the signed webhook
    /// only, and the operator's flow moves the call.
    pub transfer: Option<&'static str>,
    /// Whether the first lines of a recorded stream (JSONL) are this provider's.
    pub detect: fn(&str) -> bool,
    /// A fresh adapter for one stream on connection `connection_id` (which names the call
    /// when the stream does not).
    pub adapter: fn(&str) -> Box<dyn Adapter>,
    /// Renders a whole call as it would send it.
    pub render: RenderFn,
    /// The codec a render asked for `codec` puts on its wire (Telnyx's L16 is big-endian,
    /// FreeSWITCH sends L16 only).
    pub wire_codec: fn(Codec) -> Codec,
    /// Its documented sample messages (text frames), each of which must parse.
    pub samples: &'static [&'static str],
}

impl fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 8] = [
        Provider::Twilio,
        Provider::Telnyx,
        Provider::Plivo,
        Provider::Exotel,
        Provider::Vonage,
        Provider::Freeswitch,
        Provider::Asterisk,
        Provider::Genesys,
    ];

    /// Its adapter file's declaration.
    pub fn spec(self) -> &'static ProviderSpec {
        match self {
            Provider::Twilio => &twilio::SPEC,
            Provider::Telnyx => &telnyx::SPEC,
            Provider::Plivo => &plivo::SPEC,
            Provider::Exotel => &exotel::SPEC,
            Provider::Vonage => &vonage::SPEC,
            Provider::Freeswitch => &freeswitch::SPEC,
            Provider::Asterisk => &asterisk::SPEC,
            Provider::Genesys => &genesys::SPEC,
        }
    }

    /// The path segment and event name (`twilio`, …).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// A fresh adapter for one stream.
    pub fn adapter(self) -> Box<dyn Adapter> {
        self.adapter_for("")
    }

    /// A fresh adapter for one stream on connection `connection_id`, which names the call when
    /// the stream itself does not (Vonage without a call id header: `vonage-<connection_id>`).
    pub fn adapter_for(self, connection_id: &str) -> Box<dyn Adapter> {
        (self.spec().adapter)(connection_id)
    }

    /// Renders a whole call as this provider would send it.
    pub fn render(
        self,
        spec: &RenderSpec,
        caller: &[i16],
        agent: Option<&[i16]>,
    ) -> Vec<WireMessage> {
        (self.spec().render)(spec, caller, agent)
    }

    /// Which provider a recorded stream (its first lines) comes from: each adapter's detection
    /// rule is asked in turn; none matching is an error, never a guess.
    pub fn detect(text: &str) -> Result<Provider, ProtocolError> {
        let head: String = text.lines().take(4).collect::<Vec<_>>().join("\n");
        Provider::ALL
            .into_iter()
            .find(|p| (p.spec().detect)(&head))
            .ok_or(ProtocolError::UnknownRecording)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ProtocolError::UnknownProvider(s.to_owned()))
    }
}
