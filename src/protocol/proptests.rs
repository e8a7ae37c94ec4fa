//! Property tests: whatever a peer sends (arbitrary bytes as text or binary, JSON of the right
//! shape with the wrong types, huge numbers, nested garbage, hostile chunk counters after a
//! valid start), every provider's adapter and a [`Session`] behind it return errors, never panic,
//! and never buffer more audio than they were sent.

use super::session::{MAX_GAP_FILL_CHUNKS, Session};
use super::{Provider, RenderSpec, WireMessage, b64};
use crate::codec::Codec;
use crate::event::Track;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const EVENTS: &[&str] = &[
    "connected",
    "start",
    "media",
    "dtmf",
    "mark",
    "stop",
    "error",
    "clear",
    "playedStream",
    "played",
    "clearedAudio",
    "playFailed",
    "websocket:connected",
    "websocket:dtmf",
    "websocket:cleared",
    "websocket:notify",
];

const KEYS: &[&str] = &[
    "event",
    "sequenceNumber",
    "sequence_number",
    "streamSid",
    "stream_sid",
    "stream_id",
    "streamId",
    "start",
    "media",
    "dtmf",
    "mark",
    "stop",
    "connected",
    "extra_headers",
    "content-type",
    "uuid",
    "headers",
    "digit",
    "name",
    "payload",
    "x-telnyx-streaming-auth-token",
];

const BODY_KEYS: &[&str] = &[
    "callSid",
    "call_sid",
    "callId",
    "call_control_id",
    "call_session_id",
    "accountSid",
    "account_sid",
    "accountId",
    "streamSid",
    "stream_sid",
    "streamId",
    "tracks",
    "customParameters",
    "custom_parameters",
    "mediaFormat",
    "media_format",
    "from",
    "to",
    "track",
    "chunk",
    "timestamp",
    "payload",
    "digit",
    "name",
];

const FORMAT_KEYS: &[&str] = &[
    "encoding",
    "sampleRate",
    "sample_rate",
    "channels",
    "bit_rate",
];

const WORDS: &[&str] = &[
    "inbound",
    "outbound",
    "both",
    "inbound_track",
    "audio/x-mulaw",
    "PCMU",
    "PCMA",
    "L16",
    "audio/x-l16",
    "audio/l16;rate=16000",
    "audio/l16;rate=0",
    "audio/x-l16;rate=99999999999999999999",
    "base64",
    "8000",
    "16000",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "1e400",
    "NaN",
    "",
    "k=v;=;;==;x",
];

/// Scalars that stress the lenient readers.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        proptest::sample::select(WORDS).prop_map(|w| Value::String(w.to_owned())),
        proptest::sample::select(EVENTS).prop_map(|w| Value::String(w.to_owned())),
        any::<u64>().prop_map(|n| Value::String(n.to_string())),
        "\\PC{0,24}".prop_map(Value::String),
        vec(any::<u8>(), 0..700).prop_map(|b| Value::String(b64(&b))),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec(("\\PC{0,8}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object whose keys come from `keys` and whose values come from `value`.
fn object(
    keys: &'static [&'static str],
    value: impl Strategy<Value = Value> + Clone,
) -> impl Strategy<Value = Value> {
    vec((proptest::sample::select(keys), value), 0..8).prop_map(|kv| {
        Value::Object(
            kv.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

/// A message with a plausible envelope and plausible-but-wrong content.
fn json_message() -> impl Strategy<Value = Value> {
    let format = object(FORMAT_KEYS, prop_oneof![scalar(), json_value()]);
    let body_value = prop_oneof![3 => scalar(), 1 => json_value(), 2 => format];
    let body = object(BODY_KEYS, body_value);
    let top_value = prop_oneof![2 => scalar(), 1 => json_value(), 3 => body];
    let event = prop_oneof![
        4 => proptest::sample::select(EVENTS).prop_map(|e| json!(e)),
        1 => scalar(),
    ];
    (event, object(KEYS, top_value)).prop_map(|(event, mut msg)| {
        if let Value::Object(m) = &mut msg {
            m.insert("event".into(), event);
        }
        msg
    })
}

/// A media message of the shape every JSON provider uses, with hostile counters and payloads.
fn hostile_media() -> impl Strategy<Value = Value> {
    let track = prop_oneof![
        Just(json!("inbound")),
        Just(json!("outbound")),
        Just(Value::Null),
        scalar()
    ];
    let counter = prop_oneof![
        (0u64..40).prop_map(Value::from),
        (0u64..40).prop_map(|n| json!(n.to_string())),
        Just(json!(u64::MAX)),
        Just(json!((u64::MAX - 1).to_string())),
        Just(json!(1e19)),
        any::<u64>().prop_map(Value::from),
        scalar(),
    ];
    let payload = prop_oneof![
        4 => vec(any::<u8>(), 0..1000).prop_map(|b| json!(b64(&b))),
        1 => scalar(),
    ];
    (track, counter.clone(), counter, payload).prop_map(|(track, chunk, timestamp, payload)| {
        json!({"event":"media","sequenceNumber":chunk.clone(),
            "media":{"track":track,"chunk":chunk,"timestamp":timestamp,"payload":payload}})
    })
}

/// Adversarial media for the JSON providers, built to amplify: chunk counters that jump by
/// just under and over the gap-fill limit (and backwards, and to huge values), payloads from
/// one byte to several seconds, and tracks that alternate so each keeps its own counter.
fn adversarial_media() -> impl Strategy<Value = Vec<Value>> {
    let step = prop_oneof![
        Just(1u64),
        2u64..=12,
        (MAX_GAP_FILL_CHUNKS - 8)..=(MAX_GAP_FILL_CHUNKS + 2),
        Just(u64::MAX / 2),
    ];
    let payload_bytes = prop_oneof![1usize..=4, 100usize..=400, 4000usize..=24_000];
    vec(
        (
            step,
            payload_bytes,
            any::<bool>(),
            proptest::bool::weighted(0.1),
        ),
        1..48,
    )
    .prop_map(|steps| {
        let mut next = [1u64; 2];
        steps
            .into_iter()
            .map(|(step, bytes, agent, backwards)| {
                let t = usize::from(agent);
                let n = next[t];
                next[t] = if backwards {
                    n.saturating_sub(step)
                } else {
                    n.saturating_add(step)
                };
                let track = if agent { "outbound" } else { "inbound" };
                json!({"event":"media","sequenceNumber":n.to_string(),
                    "media":{"track":track,"chunk":n.to_string(),"timestamp":"0",
                        "payload":b64(&vec![0x55; bytes])}})
            })
            .collect()
    })
}

/// The providers whose media carries a chunk counter (JSON media messages).
const COUNTED: [Provider; 4] = [
    Provider::Twilio,
    Provider::Telnyx,
    Provider::Plivo,
    Provider::Exotel,
];

/// Feeds frames to one provider's adapter and a session; panics are the failure.
fn feed(provider: Provider, frames: &[WireMessage]) -> usize {
    let mut adapter = provider.adapter();
    let mut session = Session::new();
    let mut sent_bytes = 0usize;
    let mut audio = 0usize;
    for f in frames {
        let ev = match f {
            WireMessage::Text(t) => {
                sent_bytes += t.len();
                adapter.parse_text(t)
            }
            WireMessage::Binary(b) => {
                sent_bytes += b.len();
                adapter.parse_binary(b)
            }
        };
        if let Ok(ev) = ev {
            let _ = session.apply(ev);
        }
        for t in Track::ALL {
            audio += session.take_audio(t).len();
        }
        // Gap filling may add silence, but never unbounded amounts: at most what a full
        // reorder window of the largest chunk could stand for, per byte received.
        assert!(
            audio <= (sent_bytes + 1) * 64,
            "{provider}: {audio} samples from {sent_bytes} bytes"
        );
    }
    session.flush_pending();
    for t in Track::ALL {
        audio += session.take_audio(t).len();
    }
    audio
}

/// The frames up to and including a valid start for `provider`.
fn valid_start(provider: Provider, codec: Codec, rate: u32) -> Vec<WireMessage> {
    let spec = RenderSpec::new("prop", codec, rate);
    let msgs = provider.render(&spec, &[0; 8], None);
    let first_media = msgs
        .iter()
        .position(|m| match m {
            WireMessage::Text(t) => t.contains("\"media\""),
            WireMessage::Binary(_) => true,
        })
        .unwrap_or(msgs.len());
    msgs[..first_media].to_vec()
}

fn codec_and_rate() -> impl Strategy<Value = (Codec, u32)> {
    (
        proptest::sample::select(&[Codec::Mulaw, Codec::Alaw, Codec::L16][..]),
        proptest::sample::select(&[8000u32, 16000, 24000][..]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(frames in vec(vec(any::<u8>(), 0..600), 1..8)) {
        for provider in Provider::ALL {
            let mut wire = Vec::new();
            for b in &frames {
                wire.push(WireMessage::Text(String::from_utf8_lossy(b).into_owned()));
                wire.push(WireMessage::Binary(b.clone()));
            }
            feed(provider, &wire);
        }
    }

    #[test]
    fn json_shaped_garbage_never_panics(msgs in vec(json_message(), 1..12)) {
        let wire: Vec<WireMessage> =
            msgs.iter().map(|m| WireMessage::Text(m.to_string())).collect();
        for provider in Provider::ALL {
            feed(provider, &wire);
        }
    }

    #[test]
    fn hostile_media_after_a_valid_start_never_panics(
        (codec, rate) in codec_and_rate(),
        media in vec(hostile_media(), 1..40),
        binary in vec(vec(any::<u8>(), 0..1000), 0..10),
    ) {
        for provider in Provider::ALL {
            let mut wire = valid_start(provider, codec, rate);
            wire.extend(media.iter().map(|m| WireMessage::Text(m.to_string())));
            wire.extend(binary.iter().cloned().map(WireMessage::Binary));
            feed(provider, &wire);
        }
    }

    #[test]
    fn garbage_after_a_valid_start_never_panics(
        (codec, rate) in codec_and_rate(),
        msgs in vec(json_message(), 1..12),
    ) {
        for provider in Provider::ALL {
            let mut wire = valid_start(provider, codec, rate);
            wire.extend(msgs.iter().map(|m| WireMessage::Text(m.to_string())));
            feed(provider, &wire);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn adversarial_chunk_sequences_stay_within_the_bound(
        codec in proptest::sample::select(&[Codec::Mulaw, Codec::L16][..]),
        rate in proptest::sample::select(&[8000u32, 16000][..]),
        media in adversarial_media(),
    ) {
        for provider in COUNTED {
            let mut wire = valid_start(provider, codec, rate);
            wire.extend(media.iter().map(|m| WireMessage::Text(m.to_string())));
            feed(provider, &wire);
        }
    }
}

#[test]
fn second_long_chunks_with_gap_fill_jumps_stay_within_the_bound() {
    // Issue #16: a chunk of the sender's chosen size, then counter jumps just inside the
    // gap-fill limit, used to fill 249 x the chunk's samples (2 M samples per ~11 KB message).
    for provider in COUNTED {
        let mut wire = valid_start(provider, Codec::Mulaw, 8000);
        let payload = b64(&[0x55; 8000]);
        for k in 0..8u64 {
            let chunk = 1 + k * (MAX_GAP_FILL_CHUNKS - 1);
            wire.push(WireMessage::Text(
                json!({"event":"media","sequenceNumber":"2",
                    "media":{"track":"inbound","chunk":chunk.to_string(),"payload":payload}})
                .to_string(),
            ));
        }
        let audio = feed(provider, &wire);
        assert!(
            audio >= 8 * 8000,
            "{provider}: the chunks themselves got through: {audio}"
        );
    }
}

#[test]
fn a_huge_chunk_jump_does_not_allocate_a_huge_gap() {
    // chunk 1, then a full reorder window of chunks near u64::MAX.
    for provider in [
        Provider::Twilio,
        Provider::Telnyx,
        Provider::Plivo,
        Provider::Exotel,
    ] {
        let mut wire = valid_start(provider, Codec::Mulaw, 8000);
        let payload = b64(&[0xff; 160]);
        for chunk in std::iter::once(1u64).chain((0..12).map(|k| u64::MAX - 12 + k)) {
            wire.push(WireMessage::Text(
                json!({"event":"media","sequenceNumber":"2",
                    "media":{"track":"inbound","chunk":chunk.to_string(),"payload":payload}})
                .to_string(),
            ));
        }
        // The first chunk (160 samples) got through; the forged ones did not add 2^64 chunks.
        let audio = feed(provider, &wire);
        assert!((160..=13 * 160).contains(&audio), "{provider}: {audio}");
    }
}

#[test]
fn hostile_media_reaches_the_session() {
    // Guards the generators: media of the hostile shape must decode, or the properties above
    // would only ever exercise the error paths.
    let mut wire = valid_start(Provider::Twilio, Codec::Mulaw, 8000);
    wire.push(WireMessage::Text(
        json!({"event":"media","sequenceNumber":"3","sequence_number":"1",
            "media":{"track":"inbound","chunk":1,"timestamp":"x","payload":b64(&[0xff; 160])}})
        .to_string(),
    ));
    assert_eq!(feed(Provider::Twilio, &wire), 160);
}

#[test]
fn only_documented_sample_rates_are_accepted() {
    // Issue #16: any rate in 8000..=48000 was accepted; a prime one costs megabytes of
    // resampler state per call.
    let documented: [(Provider, Codec, &[u32]); 5] = [
        (Provider::Twilio, Codec::Mulaw, &[8000]),
        (Provider::Telnyx, Codec::L16, &[8000, 16000, 24000]),
        (Provider::Plivo, Codec::L16, &[8000, 16000]),
        (Provider::Exotel, Codec::L16, &[8000, 16000, 24000]),
        (Provider::Vonage, Codec::L16, &[8000, 16000, 24000]),
    ];
    for (provider, codec, rates) in documented {
        let start = |rate: u32| {
            let mut wire = valid_start(provider, codec, 8000);
            for m in &mut wire {
                if let WireMessage::Text(t) = m {
                    *t = t.replace("8000", &rate.to_string());
                }
            }
            let mut adapter = provider.adapter();
            let mut session = Session::new();
            let mut res = Ok(());
            for m in &wire {
                let WireMessage::Text(t) = m else { continue };
                match adapter.parse_text(t) {
                    Ok(ev) => {
                        let _ = session.apply(ev);
                    }
                    Err(e) => res = Err(e),
                }
            }
            res.map(|()| session.start().map(|s| s.sample_rate_hz))
        };
        for &rate in rates {
            assert_eq!(start(rate).ok(), Some(Some(rate)), "{provider} {rate}");
        }
        for rate in [11025u32, 22050, 22051, 32000, 44100, 48000] {
            assert!(
                matches!(
                    start(rate),
                    Err(super::ProtocolError::UnsupportedRate { .. })
                ),
                "{provider} {rate}: {:?}",
                start(rate)
            );
        }
    }
}
