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
