//! Provider wire protocols. Each provider is one file whose [`Adapter`] maps that provider's
//! WebSocket messages onto the provider-agnostic [`ProviderEvent`]; everything after the adapter
//! ([`session`], the pipeline) never sees provider JSON. Each file also renders the provider's
//! messages from PCM ([`twilio::render`] and its siblings), for fixtures, `demo` and the load
//! generator; a render parses back, through a [`session::Session`], to the same PCM after the
//! codec round trip.
//!
//! Pure: no sockets, no clock. Parsing borrows from the message where it can (the base64 payload
//! is not copied), and a media message is parsed once.

pub mod asterisk;
pub mod audiohook;
pub mod audiosocket;
pub mod call_id;
pub mod exotel;
mod framing;
pub mod freeswitch;
pub mod genesys;
mod lenient;
pub mod plivo;
#[cfg(test)]
mod proptests;
mod provider;
pub mod session;
pub mod telnyx;
pub mod track;
pub mod twilio;
pub mod vonage;

pub use call_id::{CallId, CallIdError, CallIdRule, token_safe};
pub use provider::{AuthRule, Provider, ProviderSpec};

use crate::codec::Codec;
use std::borrow::Cow;
use std::collections::BTreeMap;
pub use track::Track;

/// What a provider's start message tells us about the stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamStart {
    /// The provider's call id (Twilio `callSid`, Telnyx `call_control_id`, Plivo `callId`,
    /// Exotel `call_sid`, Vonage a header or generated).
    pub call_id: CallId,
    /// The provider's stream id, where it has one.
    pub stream_id: Option<String>,
    /// The provider account, where given.
    pub account_id: Option<String>,
    /// Codec of inbound media (never assumed; read from the start message).
    pub codec: Option<Codec>,
    /// Sample rate of inbound media.
    pub sample_rate_hz: u32,
    /// Channels (1 for every provider here).
    pub channels: u16,
    /// Tracks the provider will send.
    pub tracks: Vec<Track>,
    /// Custom parameters / extra headers.
    pub custom_parameters: BTreeMap<String, String>,
    /// Caller number, where given.
    pub from: Option<String>,
    /// Called number, where given.
    pub to: Option<String>,
}

/// A media payload as it came off the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    /// Base64 text (JSON providers).
    Base64(Cow<'a, str>),
    /// Raw bytes (Vonage binary frames).
    Raw(&'a [u8]),
    /// Raw bytes of two interleaved channels, caller first (FreeSWITCH stereo). The chunk's
    /// `track` is ignored.
    RawStereo(&'a [u8]),
}

/// One chunk of audio for one track.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaChunk<'a> {
    /// Which side.
    pub track: Track,
    /// The message's sequence number (counts all messages), where the provider sends one.
    pub sequence: Option<u64>,
    /// The per-track chunk counter, where the provider sends one. Used to reorder and spot gaps.
    pub chunk: Option<u64>,
    /// The provider's timestamp in ms (semantics differ per provider; informational only).
    pub timestamp_ms: Option<u64>,
    /// The audio.
    pub payload: Payload<'a>,
}

/// Everything a provider can tell us, provider-agnostic.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent<'a> {
    /// The socket-level hello (`connected`); Telnyx may carry its stream auth token here.
    Connected {
        /// In-band auth token, if the provider sends one.
        auth_token: Option<String>,
    },
    /// The stream started.
    Start(StreamStart),
    /// Audio.
    Media(MediaChunk<'a>),
    /// A DTMF digit.
    Dtmf {
        /// The digit.
        digit: String,
    },
    /// A mark / checkpoint echo.
    Mark {
        /// Its name.
        name: String,
    },
    /// The provider ended the stream.
    Stop,
    /// A known message warmline has no use for (playback acks, provider-side errors).
    Ignored {
        /// The provider's event name.
        kind: &'static str,
    },
}

/// Why a provider message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not valid JSON, or JSON of the wrong shape for its `event`. Fatal: close 1007.
    #[error("malformed {provider} message: {detail}")]
    Malformed {
        /// Provider name.
        provider: &'static str,
        /// serde's description, with line and column.
        detail: String,
    },
    /// A well-formed message with an `event` this adapter does not know. Recoverable: logged,
    /// counted and skipped (providers add events over time).
    #[error("unknown {provider} event {event:?}")]
    UnknownEvent {
        /// Provider name.
        provider: &'static str,
        /// The event name as sent (truncated to 64 bytes).
        event: String,
    },
    /// The start message names a codec warmline does not decode. Fatal: close 1003.
    #[error("unsupported codec {encoding:?} from {provider}")]
    UnsupportedCodec {
        /// Provider name.
        provider: &'static str,
        /// The encoding as sent.
        encoding: String,
    },
    /// A sample rate the provider does not document. Fatal: close 1003.
    #[error("unsupported sample rate {rate:?} from {provider}")]
    UnsupportedRate {
        /// Provider name.
        provider: &'static str,
        /// The rate as sent.
        rate: String,
    },
    /// A binary frame on a JSON-only protocol. Fatal: close 1003.
    #[error("binary frame on {provider}'s JSON protocol")]
    UnexpectedBinary {
        /// Provider name.
        provider: &'static str,
    },
    /// Binary audio before the stream's format is known (Vonage). Fatal: close 1008.
    #[error("binary audio before websocket:connected on {provider}")]
    BinaryBeforeStart {
        /// Provider name.
        provider: &'static str,
    },
    /// The start message's call id breaks the provider's [`CallIdRule`] (a newline, an escape,
    /// a `/`, a dot segment, too long). Fatal: close 1008.
    #[error("refused {provider} start: {reason}")]
    BadCallId {
        /// Provider name.
        provider: &'static str,
        /// What is wrong with it (never the id itself).
        reason: CallIdError,
    },
    /// `/v1/media/{provider}` with an unknown provider. HTTP 404.
    #[error("unknown provider {0:?} (expected {names})", names = provider_names())]
    UnknownProvider(String),
    /// A recorded stream whose first lines no adapter recognises.
    #[error(
        "no provider recognises this recording's first lines (expected {}); name one with --provider",
        provider_names()
    )]
    UnknownRecording,
}

fn provider_names() -> String {
    Provider::ALL.map(Provider::name).join(", ")
}

impl ProtocolError {
    /// Whether the stream can go on after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, ProtocolError::UnknownEvent { .. })
    }
}

/// A WebSocket message to send (rendering) or as received (replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// What to render: ids, codec and chunking, as a provider would send them.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSpec {
    /// Call id to put in the start message.
    pub call_id: String,
    /// Stream id to put in the start message.
    pub stream_id: String,
    /// Wire codec.
    pub codec: Codec,
    /// Wire sample rate (the PCM passed to render is at this rate).
    pub sample_rate_hz: u32,
    /// Chunk length in ms (20 for most providers; Exotel sends ~100).
    pub chunk_ms: u32,
    /// Custom parameters to include.
    pub custom_parameters: BTreeMap<String, String>,
    /// Whether to end with the provider's stop message (false: the socket just closes).
    pub send_stop: bool,
}

impl RenderSpec {
    /// A 20 ms, stop-terminated spec with the provider's usual codec.
    pub fn new(call_id: &str, codec: Codec, sample_rate_hz: u32) -> Self {
        Self {
            call_id: call_id.to_owned(),
            stream_id: format!("MZ{call_id}"),
            codec,
            sample_rate_hz,
            chunk_ms: 20,
            custom_parameters: BTreeMap::new(),
            send_stop: true,
        }
    }

    /// Samples per chunk at the spec's rate.
    pub fn chunk_samples(&self) -> usize {
        (self.sample_rate_hz as usize * self.chunk_ms as usize / 1000).max(1)
    }
}

/// An adapter for one stream of one provider. Holds whatever per-stream state the provider's
/// protocol needs (e.g. Vonage's content type from its first text frame).
pub trait Adapter: Send {
    /// Which provider.
    fn provider(&self) -> Provider;

    /// Parses one text frame.
    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError>;

    /// Parses one binary frame. JSON-only providers refuse it.
    fn parse_binary<'a>(&mut self, _bytes: &'a [u8]) -> Result<ProviderEvent<'a>, ProtocolError> {
        Err(ProtocolError::UnexpectedBinary {
            provider: self.provider().name(),
        })
    }

    /// A text frame the gateway must send back on the media socket (AudioHook's `opened`,
    /// `pong`, `closed`, `disconnect`), oldest first. Most providers expect nothing.
    fn take_reply(&mut self) -> Option<String> {
        None
    }

    /// The call was handed off: a provider that moves calls in-band (AudioHook's `disconnect`
    /// back to the Architect flow) queues the message here.
    fn on_handoff(&mut self, _handoff_id: &str, _summary: &str) {}
}

#[cfg(test)]
pub(crate) use framing::unb64;
pub(crate) use framing::{
    MediaKeys, audio_x_encoding, b64, call_id, channels, check_rate, codec_from_encoding,
    dtmf_event, for_each_chunk, malformed, mark_event, media_event, missing, parse_as,
    parse_envelope, rate_from_content_type, raw_frame, render_media_strings, tracks_from_names,
    unknown_event,
};
pub(crate) use lenient::{LenientParams, LenientString, LenientU64};

#[cfg(test)]
mod tests {
    use super::session::{Session, Step};
    use super::*;

    /// Every codec and rate each provider really offers.
    const SUPPORTED: &[(Provider, Codec, u32)] = &[
        (Provider::Twilio, Codec::Mulaw, 8000),
        (Provider::Telnyx, Codec::Mulaw, 8000),
        (Provider::Telnyx, Codec::Alaw, 8000),
        (Provider::Telnyx, Codec::L16Be, 8000),
        (Provider::Telnyx, Codec::L16Be, 16000),
        (Provider::Plivo, Codec::L16, 8000),
        (Provider::Plivo, Codec::L16, 16000),
        (Provider::Plivo, Codec::Mulaw, 8000),
        (Provider::Exotel, Codec::L16, 8000),
        (Provider::Exotel, Codec::L16, 16000),
        (Provider::Exotel, Codec::L16, 24000),
        (Provider::Exotel, Codec::Mulaw, 8000),
        (Provider::Vonage, Codec::L16, 8000),
        (Provider::Vonage, Codec::L16, 16000),
        (Provider::Freeswitch, Codec::L16, 8000),
        (Provider::Freeswitch, Codec::L16, 16000),
        (Provider::Asterisk, Codec::Mulaw, 8000),
        (Provider::Asterisk, Codec::Alaw, 8000),
        (Provider::Asterisk, Codec::L16, 16000),
    ];

    /// A chirp over most of the i16 range, `len` samples, different per seed.
    fn signal(len: usize, seed: f32) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = i as f32;
                (((t * (0.01 + seed * 0.003) + t * t * 1e-6).sin()) * 30000.0) as i16
            })
            .collect()
    }

    /// Feeds rendered messages through a fresh adapter and session; returns the start and the
    /// audio of both tracks.
    fn run(provider: Provider, msgs: &[WireMessage]) -> (StreamStart, [Vec<i16>; 2], bool) {
        let mut adapter = provider.adapter();
        let mut session = Session::new();
        let mut audio = [Vec::new(), Vec::new()];
        let mut stopped = false;
        for m in msgs {
            let ev = match m {
                WireMessage::Text(t) => adapter.parse_text(t),
                WireMessage::Binary(b) => adapter.parse_binary(b),
            }
            .unwrap();
            if session.apply(ev).unwrap() == Step::Stopped {
                stopped = true;
            }
            for t in Track::ALL {
                audio[t.index()].extend_from_slice(&session.take_audio(t));
            }
        }
        session.flush_pending();
        for t in Track::ALL {
            audio[t.index()].extend_from_slice(&session.take_audio(t));
        }
        (session.start().cloned().unwrap(), audio, stopped)
    }

    #[test]
    fn render_parse_session_reproduces_the_pcm_for_every_provider_and_codec() {
        for &(provider, codec, rate) in SUPPORTED {
            let mut spec = RenderSpec::new("call-7", codec, rate);
            spec.custom_parameters
                .insert("tenant".into(), "acme".into());
            if provider == Provider::Exotel {
                spec.chunk_ms = 100;
            }
            // Not a whole number of chunks, so the short last chunk is exercised.
            let caller = signal(rate as usize * 3 / 2 + 37, 1.0);
            let agent = signal(rate as usize, 2.0);
            let two_tracks = provider.spec().two_tracks;
            let msgs = provider.render(&spec, &caller, two_tracks.then_some(&agent[..]));
            let (start, audio, stopped) = run(provider, &msgs);
            let what = format!("{provider} {codec:?} {rate}");
            assert_eq!(start.call_id, "call-7", "{what}");
            assert_eq!(start.codec, Some(codec), "{what}");
            assert_eq!(start.sample_rate_hz, rate, "{what}");
            assert_eq!(start.custom_parameters["tenant"], "acme", "{what}");
            let expect: Vec<i16> = caller.iter().map(|&s| codec.round_trip(s)).collect();
            let got = &audio[Track::Caller.index()];
            if provider == Provider::Vonage {
                // Whole 20 ms frames: the tail is padded with silence.
                assert_eq!(got.len() % (rate as usize / 50), 0, "{what}");
                assert!(got[expect.len()..].iter().all(|&s| s == 0), "{what}");
                assert_eq!(&got[..expect.len()], &expect[..], "{what}");
            } else {
                assert_eq!(got, &expect, "{what}");
            }
            // Vonage and FreeSWITCH have no stop message: the socket just closes.
            if !matches!(provider, Provider::Vonage | Provider::Freeswitch) {
                assert!(stopped, "{what}");
            }
            if two_tracks {
                assert_eq!(start.tracks, Track::ALL.to_vec(), "{what}");
                let expect: Vec<i16> = agent.iter().map(|&s| codec.round_trip(s)).collect();
                let got = &audio[Track::Agent.index()];
                // Stereo frames pad the shorter side with silence.
                assert!(got[expect.len()..].iter().all(|&s| s == 0), "{what}");
                assert_eq!(&got[..expect.len()], &expect[..], "{what}");
            } else {
                assert!(audio[Track::Agent.index()].is_empty(), "{what}");
            }
        }
    }

    #[test]
    fn renders_with_any_codec_still_round_trip() {
        // Codecs a provider does not offer are named in its style rather than mislabelled.
        for provider in Provider::ALL {
            for codec in [Codec::Mulaw, Codec::Alaw, Codec::L16] {
                let spec = RenderSpec::new("c", codec, 8000);
                let caller = signal(800, 3.0);
                let (start, audio, _) = run(provider, &provider.render(&spec, &caller, None));
                // Telnyx's L16 is an RTP payload: big-endian on its wire; FreeSWITCH sends L16.
                let on_wire = (provider.spec().wire_codec)(codec);
                assert_eq!(start.codec, Some(on_wire), "{provider} {codec:?}");
                let expect: Vec<i16> = caller.iter().map(|&s| on_wire.round_trip(s)).collect();
                assert_eq!(audio[0], expect, "{provider} {codec:?}");
            }
        }
    }

    #[test]
    fn every_registered_provider_is_complete_and_round_trips_its_fixtures() {
        for provider in Provider::ALL {
            let spec = provider.spec();
            assert_eq!(spec.name.parse::<Provider>().unwrap(), provider);
            assert!(!spec.samples.is_empty(), "{provider} documents no sample");
            for sample in spec.samples {
                let parsed = provider.adapter_for("c1").parse_text(sample);
                assert!(parsed.is_ok(), "{provider}: {sample}: {parsed:?}");
            }
            let (codec, rate) = spec.usual_format;
            let caller = signal(rate as usize, 1.0);
            let agent = signal(rate as usize, 2.0);
            let msgs = provider.render(
                &RenderSpec::new("c-1", codec, rate),
                &caller,
                spec.two_tracks.then_some(&agent[..]),
            );
            let head: Vec<&str> = msgs
                .iter()
                .filter_map(|m| match m {
                    WireMessage::Text(t) => Some(t.as_str()),
                    WireMessage::Binary(_) => None,
                })
                .take(4)
                .collect();
            assert_eq!(Provider::detect(&head.join("\n")).unwrap(), provider);
            let (start, audio, _) = run(provider, &msgs);
            assert_eq!(start.call_id, "c-1", "{provider}");
            assert_eq!(start.codec, Some((spec.wire_codec)(codec)), "{provider}");
            assert_eq!(start.sample_rate_hz, rate, "{provider}");
            assert!(audio[0].len() >= caller.len(), "{provider}");
            let agent_heard = !audio[1].is_empty();
            assert_eq!(agent_heard, spec.two_tracks, "{provider}");
        }
        assert!(matches!(
            Provider::detect("{\"hello\":1}\n"),
            Err(ProtocolError::UnknownRecording)
        ));
    }

    #[test]
    fn every_provider_refuses_an_unsafe_call_id_at_start() {
        let long = "a".repeat(129);
        for provider in Provider::ALL {
            for bad in [
                "CA1\n2026-12-06 INFO forged",
                "\u{1b}[31mCA1",
                "..",
                "v3:a/b",
                &long,
            ] {
                let spec = RenderSpec::new(bad, Codec::L16, 8000);
                let mut a = provider.adapter();
                let err = provider
                    .render(&spec, &[0; 160], None)
                    .iter()
                    .find_map(|m| match m {
                        WireMessage::Text(t) => a.parse_text(t).err(),
                        WireMessage::Binary(b) => a.parse_binary(b).err(),
                    })
                    .unwrap_or_else(|| panic!("{provider} accepted {bad:?}"));
                assert!(
                    matches!(err, ProtocolError::BadCallId { .. }),
                    "{provider} {bad:?}: {err}"
                );
                assert!(!err.to_string().contains("forged"), "{err}");
            }
            // The documented forms pass.
            let spec = RenderSpec::new("12345678-1234-1234-1234-123456789abc", Codec::L16, 8000);
            let (start, _, _) = run(provider, &provider.render(&spec, &[0; 160], None));
            assert_eq!(start.call_id, "12345678-1234-1234-1234-123456789abc");
        }
        let twilio_long = "C".repeat(65);
        let spec = RenderSpec::new(&twilio_long, Codec::Mulaw, 8000);
        let msgs = Provider::Twilio.render(&spec, &[0; 160], None);
        let WireMessage::Text(start) = &msgs[1] else {
            panic!()
        };
        assert!(matches!(
            Provider::Twilio.adapter().parse_text(start),
            Err(ProtocolError::BadCallId { .. })
        ));
    }

    #[test]
    fn lenient_numbers_and_params() {
        let n = |s: &str| serde_json::from_str::<LenientU64>(s).unwrap().0;
        assert_eq!(n("7"), Some(7));
        assert_eq!(n("\" 7 \""), Some(7));
        assert_eq!(n("-3"), None);
        assert_eq!(n("1e300"), Some(u64::MAX));
        assert_eq!(n("\"x\""), None);
        assert_eq!(n("null"), None);
        assert!(serde_json::from_str::<LenientU64>("[1]").is_err());
        let p = |s: &str| serde_json::from_str::<LenientParams>(s).unwrap().0;
        assert_eq!(p(r#""a=1; b = 2;;c""#).len(), 3);
        assert_eq!(p(r#""a=1;b=2""#)["b"], "2");
        assert_eq!(
            p(r#"[{"name":"k","value":"v"},{"name":"n","value":5},3]"#),
            BTreeMap::from([("k".into(), "v".into()), ("n".into(), "5".into())])
        );
        assert_eq!(
            p(r#"{"a":1.5,"b":true,"c":null,"d":{"x":1}}"#)["d"],
            r#"{"x":1}"#
        );
        assert!(p("42").is_empty());
    }
}
