//! The persisted outbox: one JSON file per pending handoff, written atomically before the first
//! delivery attempt and after every attempt, so a restart resumes exactly where delivery stopped.
//!
//! Layout under `outbox_dir`:
//! - `<handoff>.json`: pending (at least one target neither delivered nor failed);
//! - `failed/<handoff>.json`: a target failed for good; kept with its final state for an operator;
//! - `.<handoff>.json.tmp`: a write in progress (left over only by a crash; ignored and removed).
//!
//! Delivered handoffs are removed. Synchronous `std::fs`; the async bridge calls it through
//! `spawn_blocking`.

use super::HandoffRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the file layout, bumped on incompatible changes.
pub const OUTBOX_VERSION: u32 = 1;

/// Outbox file trouble.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// A filesystem call failed.
    #[error("outbox {op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `write`, `rename`, …).
        op: &'static str,
        /// Which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not an outbox entry (moved to `failed/` by [`Outbox::load_pending`]).
    #[error("outbox file {path} is not a valid entry: {source}")]
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> OutboxError + 'p {
    move |source| OutboxError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Delivery state of one target of one handoff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// Attempts made so far (across restarts).
    pub attempts: u32,
    /// The target acknowledged (2xx); never called again.
    pub delivered: bool,
    /// The target failed for good (permanent answer or attempts used up).
    pub failed: bool,
    /// Last HTTP status, if the target answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Last error text, if the attempt did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl TargetState {
    /// Neither delivered nor failed.
    pub fn is_pending(&self) -> bool {
        !self.delivered && !self.failed
    }
}

/// One outbox file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// [`OUTBOX_VERSION`] at write time.
    pub version: u32,
    /// The handoff's id (also in `request`, repeated for people reading the file).
    pub handoff_id: String,
    /// What to deliver.
    pub request: HandoffRequest,
    /// Per target name (`webhook`, `twilio`, …).
    pub targets: BTreeMap<String, TargetState>,
}

impl OutboxEntry {
    /// Some target still needs work.
    pub fn is_pending(&self) -> bool {
        self.targets.values().any(TargetState::is_pending)
    }

    /// Some target failed for good.
    pub fn has_failed(&self) -> bool {
        self.targets.values().any(|t| t.failed)
    }
}

/// The outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// File stem for a handoff id. Ids are ours (the detector makes them), but they end up in a path,
/// so anything outside a conservative alphabet is replaced by a hash instead of trusted.
pub fn file_stem(handoff_id: &str) -> String {
    let safe = !handoff_id.is_empty()
        && handoff_id.len() <= 128
        && !handoff_id.starts_with('.')
        && handoff_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if safe {
        handoff_id.to_owned()
    } else {
        let digest = Sha256::digest(handoff_id.as_bytes());
        format!("h-{}", hex::encode(&digest[..16]))
    }
}

impl Outbox {
    /// Opens (creating) `dir` and `dir/failed`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, OutboxError> {
        let dir = dir.into();
        let failed = dir.join("failed");
        fs::create_dir_all(&failed).map_err(io("create", &failed))?;
        Ok(Self { dir })
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a pending handoff's file lives.
    pub fn pending_path(&self, handoff_id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_stem(handoff_id)))
    }

    /// Where a failed handoff's file lives.
    pub fn failed_path(&self, handoff_id: &str) -> PathBuf {
        self.dir
            .join("failed")
            .join(format!("{}.json", file_stem(handoff_id)))
    }

    /// Writes the entry as the pending file, atomically.
    pub fn write(&self, entry: &OutboxEntry) -> Result<(), OutboxError> {
        write_atomic(&self.pending_path(&entry.handoff_id), entry)
    }

    /// Reads the pending file of a handoff, if there is one.
    pub fn read_pending(&self, handoff_id: &str) -> Result<Option<OutboxEntry>, OutboxError> {
        let path = self.pending_path(handoff_id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| OutboxError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Every pending entry, oldest file name order. Unreadable entries are moved to `failed/`
    /// and reported next to the good ones; stale temp files are removed.
    pub fn load_pending(&self) -> Result<(Vec<OutboxEntry>, Vec<OutboxError>), OutboxError> {
        let mut names: Vec<PathBuf> = Vec::new();
        for item in fs::read_dir(&self.dir).map_err(io("list", &self.dir))? {
            let item = item.map_err(io("list", &self.dir))?;
            let path = item.path();
            if !path.is_file() {
                continue;
            }
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A crash mid-write; the rename never happened, so the previous state (if any)
                // is still in the real file.
                let _ = fs::remove_file(&path);
            } else if name.ends_with(".json") && !name.starts_with('.') {
                names.push(path);
            }
        }
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        let mut bad = Vec::new();
        for path in names {
            let parsed = fs::read(&path)
                .map_err(io("read", &path))
                .and_then(|bytes| {
                    serde_json::from_slice::<OutboxEntry>(&bytes).map_err(|source| {
                        OutboxError::Corrupt {
                            path: path.clone(),
                            source,
                        }
                    })
                });
            match parsed {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    if let Some(name) = path.file_name() {
                        let dest = self.dir.join("failed").join(name);
                        let _ = fs::rename(&path, dest);
                    }
                    bad.push(e);
                }
            }
        }
        Ok((entries, bad))
    }

    /// Delivered everywhere: the pending file goes away.
    pub fn remove(&self, handoff_id: &str) -> Result<(), OutboxError> {
        let path = self.pending_path(handoff_id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &path)(e)),
        }
    }

    /// A target failed for good: the entry with its final state goes to `failed/`.
    pub fn move_to_failed(&self, entry: &OutboxEntry) -> Result<(), OutboxError> {
        write_atomic(&self.failed_path(&entry.handoff_id), entry)?;
        self.remove(&entry.handoff_id)
    }
}

/// Temp file + fsync + rename + directory fsync: a reader (or a restart) sees the old or the new
/// content, never a torn one.
pub fn write_atomic(path: &Path, entry: &OutboxEntry) -> Result<(), OutboxError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "entry".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = serde_json::to_vec_pretty(entry).map_err(|source| OutboxError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io("rename", path))?;
    sync_dir(dir)
}

/// Makes a rename durable. Directories cannot be opened for sync everywhere; where they cannot,
/// the rename is still atomic, only its durability across power loss is weaker.
fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Handoff, Summary};

    fn entry(id: &str) -> OutboxEntry {
        let request = HandoffRequest {
            event: Event {
                call_id: "CA1".into(),
                t_ms: 1234,
                kind: EventKind::Handoff(Handoff {
                    handoff_id: id.into(),
                    reasons: vec![],
                    score: 0.8,
                    summary: Summary::default(),
                    provider: Some("twilio".into()),
                    route: None,
                    pre_call: false,
                }),
            },
            provider: "twilio".into(),
        };
        let mut targets = BTreeMap::new();
        targets.insert("webhook".into(), TargetState::default());
        targets.insert(
            "twilio".into(),
            TargetState {
                attempts: 2,
                delivered: true,
                last_status: Some(200),
                ..TargetState::default()
            },
        );
        OutboxEntry {
            version: OUTBOX_VERSION,
            handoff_id: id.into(),
            request,
            targets,
        }
    }

    #[test]
    fn write_then_load_round_trips_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let e = entry("h-1");
        ob.write(&e).unwrap();
        assert!(dir.path().join("h-1.json").is_file());
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|d| d.ok())
            .filter(|d| d.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        let (loaded, bad) = ob.load_pending().unwrap();
        assert!(bad.is_empty());
        assert_eq!(loaded, vec![e.clone()]);
        assert_eq!(ob.read_pending("h-1").unwrap(), Some(e));
        assert_eq!(ob.read_pending("h-2").unwrap(), None);
    }

    #[test]
    fn rewrite_replaces_state() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let mut e = entry("h-1");
        ob.write(&e).unwrap();
        if let Some(t) = e.targets.get_mut("webhook") {
            t.attempts = 3;
            t.last_error = Some("connection refused".into());
        }
        ob.write(&e).unwrap();
        assert_eq!(ob.read_pending("h-1").unwrap(), Some(e));
    }

    #[test]
    fn stale_temp_is_removed_and_corrupt_file_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        ob.write(&entry("good")).unwrap();
        fs::write(dir.path().join(".half.json.tmp"), b"{\"version\":").unwrap();
        fs::write(dir.path().join("broken.json"), b"not json").unwrap();
        let (loaded, bad) = ob.load_pending().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].handoff_id, "good");
        assert_eq!(bad.len(), 1);
        assert!(!dir.path().join(".half.json.tmp").exists());
        assert!(!dir.path().join("broken.json").exists());
        assert!(dir.path().join("failed/broken.json").is_file());
    }

    #[test]
    fn failed_entries_move_with_their_state() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let e = entry("h-9");
        ob.write(&e).unwrap();
        ob.move_to_failed(&e).unwrap();
        assert!(!ob.pending_path("h-9").exists());
        let kept: OutboxEntry =
            serde_json::from_slice(&fs::read(ob.failed_path("h-9")).unwrap()).unwrap();
        assert_eq!(kept, e);
        assert!(ob.load_pending().unwrap().0.is_empty());
    }

    #[test]
    fn unsafe_ids_never_escape_the_directory() {
        assert_eq!(file_stem("h-abc_1.2"), "h-abc_1.2");
        for id in ["../etc/passwd", "", ".hidden", "a/b", "a\\b", "é"] {
            let stem = file_stem(id);
            assert!(
                stem.starts_with("h-") && stem.len() == 34,
                "{id:?} -> {stem}"
            );
        }
    }
}
