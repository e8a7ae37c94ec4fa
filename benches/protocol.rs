//! Media messages decoded per second on one core: adapter parse + `Session::apply` +
//! `take_audio`, over realistic rendered streams (20 ms chunks of speech-like audio).
//! Twilio JSON mu-law 8 kHz (160-byte payloads), Telnyx JSON mu-law 8 kHz, Vonage binary L16
//! 16 kHz (640-byte frames). Run: `cargo bench --bench protocol`.

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::time::Duration;
use warmline::codec::Codec;
use warmline::event::Track;
use warmline::protocol::session::Session;
use warmline::protocol::{Adapter, Provider, RenderSpec, WireMessage};

/// Ten seconds of a voiced, amplitude-modulated tone with a little noise: payloads that look
/// like speech to the codecs (not constant bytes).
fn speechlike(rate_hz: u32) -> Vec<i16> {
    let mut seed = 0x2545_f491_u32;
    (0..rate_hz as usize * 10)
        .map(|i| {
            let t = i as f32 / rate_hz as f32;
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed % 512) as f32 - 256.0;
            let envelope = 0.5 + 0.5 * (t * 3.0).sin();
            (envelope * 9000.0 * (t * 2.0 * std::f32::consts::PI * 140.0).sin() + noise) as i16
        })
        .collect()
}

/// The stream split into everything up to start (applied in setup) and the media after it.
fn stream(provider: Provider, codec: Codec, rate_hz: u32) -> (Vec<WireMessage>, Vec<WireMessage>) {
    let mut spec = RenderSpec::new("CAbench", codec, rate_hz);
    spec.send_stop = false;
    let msgs = provider.render(&spec, &speechlike(rate_hz), None);
    let media_at = msgs
        .iter()
        .position(|m| match m {
            WireMessage::Text(t) => t.contains("\"event\":\"media\""),
            WireMessage::Binary(_) => true,
        })
        .unwrap_or(msgs.len());
    let media = msgs[media_at..].to_vec();
    (msgs[..media_at].to_vec(), media)
}

fn started(provider: Provider, head: &[WireMessage]) -> (Box<dyn Adapter>, Session) {
    let mut adapter = provider.adapter();
    let mut session = Session::new();
    for m in head {
        let WireMessage::Text(t) = m else {
            panic!("binary before media")
        };
        session.apply(adapter.parse_text(t).unwrap()).unwrap();
    }
    (adapter, session)
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol_decode");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for (name, provider, codec, rate_hz) in [
        ("twilio_json_mulaw_8k", Provider::Twilio, Codec::Mulaw, 8000),
        ("telnyx_json_mulaw_8k", Provider::Telnyx, Codec::Mulaw, 8000),
        ("vonage_binary_l16_16k", Provider::Vonage, Codec::L16, 16000),
    ] {
        let (head, media) = stream(provider, codec, rate_hz);
        group.throughput(Throughput::Elements(media.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || started(provider, &head),
                |(adapter, session)| {
                    let mut samples = 0usize;
                    for m in &media {
                        let ev = match m {
                            WireMessage::Text(t) => adapter.parse_text(t),
                            WireMessage::Binary(bytes) => adapter.parse_binary(bytes),
                        };
                        // invariant: rendered streams parse and apply.
                        session.apply(ev.unwrap()).unwrap();
                        samples += session.take_audio(Track::Caller).len();
                    }
                    black_box(samples)
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
