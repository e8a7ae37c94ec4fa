//! Locating the shared data set.

use std::path::PathBuf;

/// The data root: `$WARMLINE_DATA`, else `../shared/data` beside the repo. Panics with a clear
/// message when it is missing, so a run without the data never passes silently.
pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("WARMLINE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        dir.join("calls/index.csv").is_file(),
        "shared data not found at {} (set WARMLINE_DATA to the folder holding calls/, emotion/, pitch/, rate/)",
        dir.display()
    );
    dir
}

/// Default settings, except that a caller repeating a line (`loop`) only weighs in: the tone
/// checks (tests/data/line.rs, tone.rs) measure the voice, and the synthetic calls' transcripts
/// repeat the same two acted sentences. (Between the playbook merge, #19, and main's 1e6f1bf
/// those repeats handed every call off at ~12 s; main now escalates loops only on asks, so on
/// these calls this equals the default.)
pub fn tone_settings() -> warmline::pipeline::PipelineSettings {
    let mut s = warmline::pipeline::PipelineSettings::default();
    s.detector.signals.insert(
        "loop".into(),
        warmline::detect::SignalRoleConfig {
            role: warmline::detect::Role::Weight,
        },
    );
    s
}
