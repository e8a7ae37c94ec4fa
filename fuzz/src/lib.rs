//! The fuzz targets' bodies and oracles. Each target feeds one kind of peer- or disk-supplied
//! input through warmline's public API; a panic, or a broken resource bound, is the finding.

use std::sync::{Arc, OnceLock};
use warmline::codec::Codec;
use warmline::detect::TranscriptLine;
use warmline::event::Track;
use warmline::pipeline::{Call, PipelineSettings, TranscriptLimits};
use warmline::protocol::session::Session;
use warmline::protocol::{Provider, RenderSpec, WireMessage};

/// Samples a session may hand out (or hold) per byte it was sent: gap filling adds silence, but
/// never more than the audio received, and audio is at most one sample per wire byte.
pub const SAMPLES_PER_BYTE: usize = 64;

/// The frames up to a valid start for `provider`, so the fuzzer reaches media handling at once.
fn valid_start(provider: Provider, selector: u8) -> Vec<WireMessage> {
    let codec = [Codec::Mulaw, Codec::Alaw, Codec::L16][usize::from(selector % 3)];
    let rate = [8000, 16000, 24000][usize::from(selector / 3 % 3)];
    let msgs = provider.render(&RenderSpec::new("fuzz", codec, rate), &[0; 8], None);
    let first_media = msgs
        .iter()
        .position(|m| match m {
            WireMessage::Text(t) => t.contains("\"media\""),
            WireMessage::Binary(_) => true,
        })
        .unwrap_or(msgs.len());
    msgs[..first_media].to_vec()
}

/// Input layout: byte 0 bit 0 set = start with a valid start (byte 1 picks codec and rate);
/// the rest are frames separated by `\n`, a frame beginning with `0x00` sent as binary.
pub fn provider_stream(provider: Provider, data: &[u8]) {
    let mut frames: Vec<WireMessage> = Vec::new();
    let mut rest = data;
    if let [flags, selector, tail @ ..] = data
        && flags & 1 == 1
    {
        frames = valid_start(provider, *selector);
        rest = tail;
    }
    for f in rest.split(|b| *b == b'\n') {
        match f.split_first() {
            Some((0, bin)) => frames.push(WireMessage::Binary(bin.to_vec())),
            _ => frames.push(WireMessage::Text(String::from_utf8_lossy(f).into_owned())),
        }
    }
    let mut adapter = provider.adapter();
    let mut session = Session::new();
    let (mut sent, mut audio) = (0usize, 0usize);
    for f in &frames {
        let ev = match f {
            WireMessage::Text(t) => {
                sent += t.len();
                adapter.parse_text(t)
            }
            WireMessage::Binary(b) => {
                sent += b.len();
                adapter.parse_binary(b)
            }
        };
        if let Ok(ev) = ev {
            let _ = session.apply(ev);
        }
        for t in Track::ALL {
            audio += session.take_audio(t).len();
        }
        let bound = (sent + 1) * SAMPLES_PER_BYTE;
        assert!(
            audio <= bound,
            "{provider}: {audio} samples from {sent} bytes"
        );
        // Buffers may round up and keep scratch, but never scale beyond the input.
        assert!(
            session.capacity_samples() <= 4 * bound + 65_536,
            "{provider}: {} samples held after {sent} bytes",
            session.capacity_samples()
        );
    }
    session.flush_pending();
    for t in Track::ALL {
        audio += session.take_audio(t).len();
    }
    assert!(audio <= (sent + 1) * SAMPLES_PER_BYTE);
}

fn settings() -> Arc<PipelineSettings> {
    static S: OnceLock<Arc<PipelineSettings>> = OnceLock::new();
    S.get_or_init(|| Arc::new(PipelineSettings::default()))
        .clone()
}

const LIMITS: TranscriptLimits = TranscriptLimits {
    max_lines: 16,
    max_bytes: 4096,
};

/// Lines separated by `\n`, each parsed as the HTTP route does, pushed into a started call.
pub fn transcript_lines(data: &[u8]) {
    let mut call = Call::new(Provider::Twilio, settings(), "fuzz");
    call.set_transcript_limits(LIMITS);
    let mut out = Vec::new();
    for m in valid_start(Provider::Twilio, 0) {
        if let WireMessage::Text(t) = m {
            let _ = call.on_text(&t, &mut out);
        }
    }
    for raw in data.split(|b| *b == b'\n') {
        let Ok(line) = serde_json::from_slice::<TranscriptLine>(raw) else {
            continue;
        };
        let _ = call.try_push_transcript(line, &mut out);
        out.clear();
        if let Some(p) = call.pipeline() {
            let (lines, bytes) = p.pending_transcript();
            assert!(lines <= LIMITS.max_lines, "{lines} lines waiting");
            assert!(bytes <= LIMITS.max_bytes, "{bytes} bytes waiting");
        }
    }
    call.finish("stop", &mut out);
}

/// One pending file of arbitrary bytes, loaded as at start-up.
pub fn outbox_load(data: &[u8]) {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("warmline-fuzz-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    });
    let Ok(outbox) = warmline::bridge::outbox::Outbox::open(dir.clone()) else {
        return;
    };
    let _ = std::fs::write(dir.join("h-fuzz.json"), data);
    // The same bytes as a batch log left by a crash: replayed (up to a torn line) or refused,
    // never a panic.
    let _ = std::fs::write(dir.join(warmline::bridge::wal::LOG_NAME), data);
    let _ = warmline::bridge::wal::recover(&outbox);
    if let Ok(loaded) = outbox.load_pending() {
        for e in loaded.entries {
            // What loads must be usable: it serialises back.
            assert!(serde_json::to_vec(&e).is_ok());
        }
    }
    // Leave the directory as found for the next input (a replayed log may have written files).
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

/// Input: `public_url`, `Forwarded`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `Host` and the
/// path, separated by `\n` (a missing field is absent; an empty `public_url` means none).
pub fn twilio_urls(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\n');
    let public_url = fields.next().filter(|u| !u.is_empty());
    let mut headers = http::HeaderMap::new();
    for name in ["forwarded", "x-forwarded-proto", "x-forwarded-host", "host"] {
        if let Some(v) = fields.next()
            && let Ok(v) = http::HeaderValue::from_str(v)
        {
            headers.insert(name, v);
        }
    }
    let path = fields.next().unwrap_or("/v1/media/twilio");
    let urls = warmline::server::auth::twilio_candidate_urls(public_url, &headers, path);
    // Two host spellings, each with and without the sorted-query variant.
    assert!(urls.len() <= 4, "{urls:?}");
    for u in &urls {
        assert!(u.starts_with("ws://") || u.starts_with("wss://"), "{u}");
    }
}
