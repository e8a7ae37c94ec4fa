//! The transcript signals over the shared calls' sidecar transcripts (no audio): the read
//! sentences of RAVDESS ("Kids are talking by the door") must never look like a request for a
//! human, a high-stakes topic or negative sentiment, and must not hand off on their own.

use crate::common::data_dir;
use std::sync::Arc;
use warmline::detect::tone::ToneModel;
use warmline::detect::{Detector, DetectorConfig, TranscriptLine};
use warmline::event::{EventKind, Signal};

#[test]
fn sidecar_transcripts_alone_never_hand_off() {
    let dir = data_dir();
    let index = std::fs::read_to_string(dir.join("calls/index.csv")).unwrap();
    let mut header = index.lines().next().unwrap().split(',');
    let col = header.position(|c| c == "transcript").unwrap();
    let model = Arc::new(ToneModel::bundled());
    let mut calls = 0;
    let mut lines = 0;
    let mut loops = 0;
    for row in index.lines().skip(1).filter(|l| !l.is_empty()) {
        let path = dir.join(row.split(',').nth(col).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        let mut d = Detector::new(row, &DetectorConfig::default(), model.clone());
        let mut out = Vec::new();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let line: TranscriptLine = serde_json::from_str(l).unwrap();
            d.on_transcript(line.t_ms.unwrap_or(0), &line, &mut out);
            lines += 1;
        }
        d.finish(80_000, &mut out);
        for e in &out {
            match &e.kind {
                EventKind::Handoff(_) => {
                    panic!("{}: handoff from transcript alone", path.display())
                }
                EventKind::Signal(s) if s.signal == Signal::Loop => loops += 1,
                EventKind::Signal(s) => panic!("{}: unexpected {:?}", path.display(), s),
                _ => {}
            }
        }
        calls += 1;
    }
    eprintln!("{calls} calls, {lines} lines, {loops} loop signals, 0 handoffs");
    assert_eq!(calls, 24);
}
