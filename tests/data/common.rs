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

/// Default settings, except that a caller repeating a line (`loop`) weighs in instead of
/// escalating on its own, as before the playbook (#19) made it escalate. The synthetic calls'
/// transcripts repeat the same two acted sentences, so under the new default every one of them,
/// calm or not, hands off on the third repeat (~12 s) whatever the voice does; the tone checks
/// (tests/data/line.rs, tone.rs) measure the voice, so they take the loop out of the decision.
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
