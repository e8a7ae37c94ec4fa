//! Whole-call replay speed: a 70 s call through the live pipeline on one core, from PCM (as
//! `replay X.wav` feeds it) and from a recorded Twilio stream (as `replay X.twilio.jsonl` and
//! `serve` feed it). Target: under 50 ms per 70 s call (≥ 1,400x real time).
//!
//! `cargo bench --bench replay`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use warmline::codec::Codec;
use warmline::event::Track;
use warmline::pipeline::{Call, CallInfo, CallPipeline, FrameStats, PipelineSettings};
use warmline::protocol::{Provider, RenderSpec, WireMessage};
use warmline::synth::{Segment, speech};

fn call_70s() -> Vec<i16> {
    speech(
        &[
            Segment::silence(0.5),
            Segment::calm(39.5, 120.0),
            Segment::agitated(30.0, 120.0),
        ],
        8000,
        11,
    )
}

fn bench(c: &mut Criterion) {
    let pcm = call_70s();
    let settings = Arc::new(PipelineSettings::default());
    let mut g = c.benchmark_group("replay_70s_call");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("pcm_8k", |b| {
        b.iter(|| {
            let info = CallInfo {
                call_id: warmline::protocol::CallId::from_name("bench"),
                provider: warmline::event::CallSource::Wav,
                codec: warmline::codec::Codec::L16,
                sample_rate_hz: 8000,
                tracks: vec![Track::Caller],
                stream_id: None,
                custom_parameters: Default::default(),
            };
            let (mut p, _) = CallPipeline::new(info, &settings).unwrap();
            let mut out = Vec::new();
            for chunk in pcm.chunks(160) {
                p.push_audio(Track::Caller, chunk, &mut out);
                out.clear();
            }
            p.finish(FrameStats::default(), "end_of_input", &mut out);
            black_box(out.len())
        })
    });
    let msgs: Vec<String> = Provider::Twilio
        .render(&RenderSpec::new("CAbench", Codec::Mulaw, 8000), &pcm, None)
        .into_iter()
        .filter_map(|m| match m {
            WireMessage::Text(t) => Some(t),
            WireMessage::Binary(_) => None,
        })
        .collect();
    g.bench_function("twilio_jsonl", |b| {
        b.iter(|| {
            let mut call = Call::new(Provider::Twilio, settings.clone(), "bench");
            let mut out = Vec::new();
            for m in &msgs {
                let _ = call.on_text(m, &mut out);
                out.clear();
            }
            call.finish("stop", &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
