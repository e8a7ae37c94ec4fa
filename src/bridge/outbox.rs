//! The persisted outbox: one JSON file per pending handoff, so a restart resumes exactly where
//! delivery stopped. Writes go through [`super::journal`], which commits them in batches.
//!
//! Layout under `outbox_dir`:
//! - `<handoff>.json`: pending (at least one target neither delivered nor failed);
//! - `failed/<handoff>.json`: a target failed for good; kept with its final state for an operator
//!   (`warmline outbox list|retry`);
//! - `corrupt/<file>`: files that are not entries this build can read (unparsable, unknown
//!   `version`, larger than [`MAX_ENTRY_BYTES`], id not matching the request); never redelivered;
//! - `.<handoff>.json.<n>.tmp`: a write in progress (removed on any write error and at start-up);
//! - `.lock`: held (advisory, exclusive) by the one gateway that owns the directory.
//!
//! Delivered handoffs are removed. Synchronous `std::fs`; the async bridge reaches it through the
//! journal's writer thread.
//!
//! Size: ~710 lines of code in one file because the write-ahead log, its recovery and its group
//! commit share one invariant (a decided handoff is on disk before it is announced) that is
//! easier to check in one place; the rest is its crash and corruption tests.

use super::HandoffRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Version of the file layout, bumped on incompatible changes.
pub const OUTBOX_VERSION: u32 = 1;

/// Largest entry file read. A handoff with its summary is a few KiB; anything near this is not
/// ours, and reading it whole would let one file cost the gateway its memory.
pub const MAX_ENTRY_BYTES: u64 = 1024 * 1024;

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
    /// A file is not an outbox entry this build can deliver (moved to `corrupt/`).
    #[error("outbox file {path} is not a valid entry: {reason}")]
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory cannot be written (checked at start-up, before any call is accepted).
    #[error("outbox directory {dir} is not writable: {source}")]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process (a second gateway) holds the directory's lock.
    #[error(
        "outbox directory {dir} is in use by another warmline process (lock {lock} is held); \
         give each gateway its own `bridge.outbox_dir`"
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
}

impl OutboxError {
    /// A copy for a second receiver (a batch-wide failure is reported to every submitter).
    pub fn duplicate(&self) -> Self {
        let copy = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            OutboxError::Io { op, path, source } => OutboxError::Io {
                op,
                path: path.clone(),
                source: copy(source),
            },
            OutboxError::Corrupt { path, reason } => OutboxError::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            OutboxError::NotWritable { dir, source } => OutboxError::NotWritable {
                dir: dir.clone(),
                source: copy(source),
            },
            OutboxError::Locked { dir, lock } => OutboxError::Locked {
                dir: dir.clone(),
                lock: lock.clone(),
            },
        }
    }
}

/// Maps an I/O error of `op` on `path` to [`OutboxError::Io`].
pub(super) fn io<'p>(
    op: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> OutboxError + 'p {
    move |source| OutboxError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> OutboxError {
    OutboxError::Corrupt {
        path: path.to_owned(),
        reason: reason.into(),
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

    /// Failed targets become pending again with a fresh attempt budget; delivered ones stay
    /// delivered (an operator's retry never calls a target twice).
    pub fn reset_failed(&mut self) {
        for t in self.targets.values_mut().filter(|t| t.failed) {
            t.failed = false;
            t.attempts = 0;
        }
    }
}

/// One change to the outbox, applied by [`Outbox::apply_batch`] (and recorded in the batch
/// log as one JSON line, see [`super::wal`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", content = "arg", rename_all = "snake_case")]
pub enum Op {
    /// Write (create or replace) the pending file.
    Write(OutboxEntry),
    /// Delivered everywhere: remove the pending file.
    Remove(String),
    /// A target failed for good: the entry goes to `failed/`, the pending file away.
    Fail(OutboxEntry),
}

/// The outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    /// The exclusive lock, released when the last clone goes or [`Self::release_lock`] is
    /// called (`None` inside for read-only tools).
    lock: Arc<Mutex<Option<File>>>,
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

/// Distinguishes temp files of writes to one entry in one batch.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// What [`Outbox::load_pending`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Entries to resume, in file name order.
    pub entries: Vec<OutboxEntry>,
    /// Files set aside in `corrupt/`, with why.
    pub corrupt: Vec<OutboxError>,
    /// Files whose name did not match their id, renamed (or removed as duplicates).
    pub renamed: usize,
}

impl Outbox {
    /// Opens (creating) `dir`, `dir/failed` and `dir/corrupt`, takes the directory's exclusive
    /// lock and proves it writable, so a gateway refuses to start rather than accept calls whose
    /// handoffs it cannot keep.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, OutboxError> {
        let dir = dir.into();
        for sub in ["failed", "corrupt"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|source| OutboxError::NotWritable {
                dir: dir.clone(),
                source,
            })?;
        }
        let lock_path = dir.join(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| OutboxError::NotWritable {
                dir: dir.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(OutboxError::Locked {
                    dir,
                    lock: lock_path,
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(OutboxError::NotWritable { dir, source });
            }
        }
        let outbox = Self {
            dir,
            lock: Arc::new(Mutex::new(Some(lock))),
        };
        outbox.probe()?;
        Ok(outbox)
    }

    /// Opens `dir` without the lock, for tools that only read or move `failed/` entries (which a
    /// running gateway never touches).
    pub fn inspect(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock: Arc::default(),
        }
    }

    /// Gives up the directory (a gateway that stopped within this process, so another may
    /// start on it). Writes still work; only the exclusion is gone.
    pub fn release_lock(&self) {
        let mut g = match self.lock.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = None;
    }

    /// Writes, fsyncs and removes a probe file.
    fn probe(&self) -> Result<(), OutboxError> {
        let path = self.dir.join(".probe.tmp");
        let res = (|| {
            let mut f = File::create(&path)?;
            f.write_all(b"warmline outbox write check\n")?;
            f.sync_all()?;
            fs::remove_file(&path)
        })();
        res.map_err(|source| {
            let _ = fs::remove_file(&path);
            OutboxError::NotWritable {
                dir: self.dir.clone(),
                source,
            }
        })
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

    /// Writes the entry as the pending file, durably (a batch of one).
    pub fn write(&self, entry: &OutboxEntry) -> Result<(), OutboxError> {
        self.apply_one(Op::Write(entry.clone()))
    }

    /// Delivered everywhere: the pending file goes away.
    pub fn remove(&self, handoff_id: &str) -> Result<(), OutboxError> {
        self.apply_one(Op::Remove(handoff_id.to_owned()))
    }

    /// A target failed for good: the entry with its final state goes to `failed/`.
    pub fn move_to_failed(&self, entry: &OutboxEntry) -> Result<(), OutboxError> {
        self.apply_one(Op::Fail(entry.clone()))
    }

    fn apply_one(&self, op: Op) -> Result<(), OutboxError> {
        let mut r = self.apply_batch(std::slice::from_ref(&op));
        r.pop().unwrap_or(Ok(()))
    }

    /// Applies `ops` in order and makes them durable together: every new file is written to a
    /// temp file, all temp files are fsynced, renamed into place, and each touched directory is
    /// fsynced once. One result per op; an op is durable exactly when its result is `Ok`.
    pub fn apply_batch(&self, ops: &[Op]) -> Vec<Result<(), OutboxError>> {
        self.apply_batch_with(ops, &|f: &mut File, bytes: &[u8]| f.write_all(bytes), true)
    }

    /// [`Self::apply_batch`] without any fsync: the files are visible at once, and durable only
    /// through the batch log that already holds these ops (until its next checkpoint applies
    /// them again with [`Self::apply_batch`]).
    pub fn apply_batch_unsynced(&self, ops: &[Op]) -> Vec<Result<(), OutboxError>> {
        self.apply_batch_with(ops, &|f: &mut File, bytes: &[u8]| f.write_all(bytes), false)
    }

    /// [`Self::apply_batch`] with the byte writer injected, so tests can make writes fail
    /// (a full disk) and check that no temp file stays behind.
    fn apply_batch_with(
        &self,
        ops: &[Op],
        write: &dyn Fn(&mut File, &[u8]) -> std::io::Result<()>,
        sync: bool,
    ) -> Vec<Result<(), OutboxError>> {
        struct Staged {
            tmp: PathBuf,
            dest: PathBuf,
            file: Option<File>,
        }
        let mut results: Vec<Result<(), OutboxError>> = Vec::with_capacity(ops.len());
        let mut staged: Vec<Option<Staged>> = Vec::with_capacity(ops.len());
        // 1. Write every new file's bytes to a temp file.
        for op in ops {
            let (entry, dest) = match op {
                Op::Write(e) => (e, self.pending_path(&e.handoff_id)),
                Op::Fail(e) => (e, self.failed_path(&e.handoff_id)),
                Op::Remove(_) => {
                    results.push(Ok(()));
                    staged.push(None);
                    continue;
                }
            };
            match stage(&dest, entry, write) {
                Ok((tmp, file)) => {
                    results.push(Ok(()));
                    staged.push(Some(Staged {
                        tmp,
                        dest,
                        file: Some(file),
                    }));
                }
                Err(e) => {
                    results.push(Err(e));
                    staged.push(None);
                }
            }
        }
        // 2. One fsync per file, issued concurrently: the filesystem folds fsyncs that wait
        //    together into one journal commit, while one thread's fsyncs in a row each wait for
        //    their own (ext4 here: 3.8 ms each in a row, 0.26 ms each 32 at a time).
        let files: Vec<(usize, File)> = staged
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_mut()?.file.take()?)))
            .collect();
        let failed = if sync {
            sync_all_concurrently(files)
        } else {
            Vec::new()
        };
        for (i, e) in failed {
            if let Some(st) = staged[i].take() {
                let _ = fs::remove_file(&st.tmp);
                results[i] = Err(io("fsync", &st.tmp)(e));
            }
        }
        // 3. Renames and removals, in submission order.
        let mut failed_dir_touched = false;
        for ((op, s), r) in ops.iter().zip(staged.iter()).zip(results.iter_mut()) {
            if r.is_err() {
                continue;
            }
            if let Some(st) = s
                && let Err(e) = fs::rename(&st.tmp, &st.dest)
            {
                let _ = fs::remove_file(&st.tmp);
                *r = Err(io("rename", &st.dest)(e));
                continue;
            }
            let removal = match op {
                Op::Write(_) => None,
                Op::Fail(e) => {
                    failed_dir_touched = true;
                    Some(self.pending_path(&e.handoff_id))
                }
                Op::Remove(id) => Some(self.pending_path(id)),
            };
            if let Some(path) = removal {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => *r = Err(io("remove", &path)(e)),
                }
            }
        }
        // 4. One fsync per directory makes every rename and removal of the batch durable.
        let mut dirs = vec![self.dir.clone()];
        if failed_dir_touched {
            dirs.push(self.dir.join("failed"));
        }
        for d in dirs.into_iter().filter(|_| sync) {
            if let Err(e) = sync_dir(&d) {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.duplicate());
                }
            }
        }
        results
    }

    /// Reads one entry file, refusing files over [`MAX_ENTRY_BYTES`] without reading them.
    pub fn read_entry(path: &Path) -> Result<OutboxEntry, OutboxError> {
        let f = File::open(path).map_err(io("open", path))?;
        let len = f.metadata().map_err(io("stat", path))?.len();
        if len > MAX_ENTRY_BYTES {
            return Err(corrupt(
                path,
                format!("{len} bytes, more than the {MAX_ENTRY_BYTES} an entry may have"),
            ));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        // The file may grow between stat and read; the cap holds regardless.
        f.take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io("read", path))?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(corrupt(path, "grew past the size cap while being read"));
        }
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(path, format!("no readable `version`: {e}")))?;
        if v.version != OUTBOX_VERSION {
            return Err(corrupt(
                path,
                format!(
                    "unknown version {} (this build reads version {OUTBOX_VERSION}); \
                     left for a build that knows it",
                    v.version
                ),
            ));
        }
        let entry: OutboxEntry =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
        if entry.request.handoff_id() != Some(entry.handoff_id.as_str()) {
            return Err(corrupt(
                path,
                "`handoff_id` does not match the handoff event it carries",
            ));
        }
        Ok(entry)
    }

    /// Every pending entry, in file name order. Files that are not valid entries are moved to
    /// `corrupt/` and reported; a file whose name is not its id's is renamed to it (or removed
    /// when the right file exists too) so that finishing the entry removes it; stale temp files
    /// are removed.
    pub fn load_pending(&self) -> Result<Loaded, OutboxError> {
        clean_temp_files(&self.dir.join("failed"));
        let names = clean_temp_files(&self.dir);
        let mut loaded = Loaded::default();
        let mut seen = HashSet::new();
        let mut changed = false;
        for path in names {
            let entry = match Self::read_entry(&path) {
                Ok(e) => e,
                Err(e) => {
                    self.set_aside(&path);
                    changed = true;
                    loaded.corrupt.push(e);
                    continue;
                }
            };
            let expected = self.pending_path(&entry.handoff_id);
            if path != expected {
                // Trust the id: delivery finishes by removing the id's file, so a stray name
                // would be delivered again on every start.
                changed = true;
                loaded.renamed += 1;
                if expected.exists() || seen.contains(&entry.handoff_id) {
                    let _ = fs::remove_file(&path);
                    continue;
                }
                fs::rename(&path, &expected).map_err(io("rename", &expected))?;
            }
            if seen.insert(entry.handoff_id.clone()) {
                loaded.entries.push(entry);
            }
        }
        if changed {
            sync_dir(&self.dir)?;
        }
        Ok(loaded)
    }

    /// Moves a file that is not a valid entry to `corrupt/` (never redelivered, kept for people).
    fn set_aside(&self, path: &Path) {
        if let Some(name) = path.file_name() {
            let dest = self.dir.join("corrupt").join(name);
            if fs::rename(path, &dest).is_err() {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Pending entries (name order) and failed ones, for `warmline outbox list`; unreadable
    /// files are reported, not moved.
    pub fn list(&self) -> Result<Listing, OutboxError> {
        let mut out = Listing::default();
        for (dir, failed) in [(self.dir.clone(), false), (self.dir.join("failed"), true)] {
            for path in entry_files(&dir)? {
                match Self::read_entry(&path) {
                    Ok(e) if failed => out.failed.push(e),
                    Ok(e) => out.pending.push(e),
                    Err(e) => out.unreadable.push(e),
                }
            }
        }
        Ok(out)
    }

    /// Moves the failed entry `handoff_id` back to pending with its failed targets reset; the
    /// next `warmline serve` on this directory delivers it. `false` when there is no such entry.
    pub fn retry_failed(&self, handoff_id: &str) -> Result<bool, OutboxError> {
        let path = self.failed_path(handoff_id);
        if !path.exists() {
            return Ok(false);
        }
        let mut entry = Self::read_entry(&path)?;
        entry.reset_failed();
        let mut r = self.apply_batch(&[Op::Write(entry)]);
        r.pop().unwrap_or(Ok(()))?;
        fs::remove_file(&path).map_err(io("remove", &path))?;
        sync_dir(&self.dir.join("failed"))?;
        Ok(true)
    }
}

/// What `warmline outbox list` shows.
#[derive(Debug, Default)]
pub struct Listing {
    /// Waiting for delivery.
    pub pending: Vec<OutboxEntry>,
    /// A target failed for good.
    pub failed: Vec<OutboxEntry>,
    /// Files that could not be read as entries.
    pub unreadable: Vec<OutboxError>,
}

/// `*.json` entry files of `dir`, sorted.
fn entry_files(dir: &Path) -> Result<Vec<PathBuf>, OutboxError> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(io("list", dir))? {
        let item = item.map_err(io("list", dir))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".json") && !name.starts_with('.') && item.path().is_file() {
            names.push(item.path());
        }
    }
    names.sort();
    Ok(names)
}

/// Removes temp files a crash left in `dir` (the rename never happened, so the previous state,
/// if any, is still in the real file) and returns the entry files.
fn clean_temp_files(dir: &Path) -> Vec<PathBuf> {
    if let Ok(items) = fs::read_dir(dir) {
        for item in items.flatten() {
            if item.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(item.path());
            }
        }
    }
    entry_files(dir).unwrap_or_default()
}

/// Writes `entry` to a fresh temp file next to `dest`; on any error the temp file is removed.
fn stage(
    dest: &Path,
    entry: &OutboxEntry,
    write: &dyn Fn(&mut File, &[u8]) -> std::io::Result<()>,
) -> Result<(PathBuf, File), OutboxError> {
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "entry".into());
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{seq}.tmp"));
    let bytes = serde_json::to_vec_pretty(entry).map_err(|e| corrupt(dest, e.to_string()))?;
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    if let Err(e) = write(&mut f, &bytes) {
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(io("write", &tmp)(e));
    }
    Ok((tmp, f))
}

/// Most threads one batch fsyncs its files with.
const FSYNC_THREADS: usize = 32;

/// fsyncs `files` (tagged with their index), several at a time on scoped threads when there
/// are several; returns the failures with their index.
fn sync_all_concurrently(files: Vec<(usize, File)>) -> Vec<(usize, std::io::Error)> {
    let sync = |chunk: &[(usize, File)]| -> Vec<(usize, std::io::Error)> {
        chunk
            .iter()
            .filter_map(|(i, f)| f.sync_all().err().map(|e| (*i, e)))
            .collect()
    };
    if files.len() <= 1 {
        return sync(&files);
    }
    let threads = files.len().min(FSYNC_THREADS);
    let per_thread = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(per_thread)
            .map(|chunk| {
                (
                    chunk,
                    std::thread::Builder::new().spawn_scoped(scope, move || sync(chunk)),
                )
            })
            .collect();
        let mut failed = Vec::new();
        for (chunk, h) in handles {
            match h {
                Ok(h) => failed.extend(h.join().unwrap_or_else(|_| {
                    chunk
                        .iter()
                        .map(|(i, _)| (*i, std::io::Error::other("fsync thread panicked")))
                        .collect()
                })),
                // No thread to be had: this chunk is synced here, one after another.
                Err(_) => failed.extend(sync(chunk)),
            }
        }
        failed
    })
}

/// Makes renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Handoff, Summary};
    use crate::protocol::Provider;

    pub(crate) fn entry(id: &str) -> OutboxEntry {
        let request = HandoffRequest {
            event: Event {
                call_id: "CA1".into(),
                t_ms: 1234,
                kind: EventKind::Handoff(Handoff {
                    handoff_id: id.into(),
                    reasons: vec![],
                    score: 0.8,
                    summary: Summary::default(),
                    provider: Some(Provider::Twilio.into()),
                    route: None,
                    pre_call: false,
                }),
            },
            provider: Provider::Twilio,
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

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|d| d.ok())
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn write_then_load_round_trips_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let e = entry("h-1");
        ob.write(&e).unwrap();
        assert!(dir.path().join("h-1.json").is_file());
        assert!(temp_files(dir.path()).is_empty());
        let loaded = ob.load_pending().unwrap();
        assert!(loaded.corrupt.is_empty());
        assert_eq!(loaded.entries, vec![e]);
    }

    #[test]
    fn rewrite_replaces_state_also_twice_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let mut e = entry("h-1");
        ob.write(&e).unwrap();
        let first = e.clone();
        if let Some(t) = e.targets.get_mut("webhook") {
            t.attempts = 3;
            t.last_error = Some("connection refused".into());
        }
        let r = ob.apply_batch(&[Op::Write(first), Op::Write(e.clone())]);
        assert!(r.iter().all(Result::is_ok), "{r:?}");
        assert_eq!(ob.load_pending().unwrap().entries, vec![e]);
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn a_batch_commits_many_entries_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let ops: Vec<Op> = (0..50)
            .map(|i| Op::Write(entry(&format!("h-{i:02}"))))
            .collect();
        assert!(ob.apply_batch(&ops).iter().all(Result::is_ok));
        let ops: Vec<Op> = (0..25)
            .map(|i| Op::Remove(format!("h-{i:02}")))
            .chain([Op::Fail(entry("h-49"))])
            .collect();
        assert!(ob.apply_batch(&ops).iter().all(Result::is_ok));
        let ids: Vec<String> = ob
            .load_pending()
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.handoff_id)
            .collect();
        let want: Vec<String> = (25..49).map(|i| format!("h-{i:02}")).collect();
        assert_eq!(ids, want);
        assert!(ob.failed_path("h-49").is_file());
    }

    #[test]
    fn stale_temp_is_removed_and_corrupt_file_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        ob.write(&entry("good")).unwrap();
        fs::write(dir.path().join(".half.json.7.tmp"), b"{\"version\":").unwrap();
        fs::write(dir.path().join("failed/.x.json.1.tmp"), b"{").unwrap();
        fs::write(dir.path().join("broken.json"), b"not json").unwrap();
        let loaded = ob.load_pending().unwrap();
        assert_eq!(loaded.entries.len(), 1);
        assert_eq!(loaded.entries[0].handoff_id, "good");
        assert_eq!(loaded.corrupt.len(), 1);
        assert!(temp_files(dir.path()).is_empty());
        assert!(temp_files(&dir.path().join("failed")).is_empty());
        assert!(!dir.path().join("broken.json").exists());
        assert!(dir.path().join("corrupt/broken.json").is_file());
    }

    #[test]
    fn a_file_named_unlike_its_id_is_renamed_so_finishing_it_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let bytes = serde_json::to_vec(&entry("h-7")).unwrap();
        fs::write(dir.path().join("copied-by-hand.json"), &bytes).unwrap();
        let loaded = ob.load_pending().unwrap();
        assert_eq!(loaded.entries.len(), 1);
        assert_eq!(loaded.renamed, 1);
        assert!(!dir.path().join("copied-by-hand.json").exists());
        // Delivered: removing by id leaves nothing to redeliver at the next start.
        ob.remove("h-7").unwrap();
        assert!(ob.load_pending().unwrap().entries.is_empty());

        // A stray copy next to the real file is a duplicate: removed, loaded once.
        ob.write(&entry("h-8")).unwrap();
        fs::write(
            dir.path().join("a-copy.json"),
            serde_json::to_vec(&entry("h-8")).unwrap(),
        )
        .unwrap();
        let loaded = ob.load_pending().unwrap();
        assert_eq!(loaded.entries.len(), 1);
        assert!(!dir.path().join("a-copy.json").exists());
    }

    #[test]
    fn unknown_version_and_mismatched_ids_are_set_aside_not_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let mut future = entry("h-v2");
        future.version = OUTBOX_VERSION + 1;
        fs::write(
            ob.pending_path("h-v2"),
            serde_json::to_vec(&future).unwrap(),
        )
        .unwrap();
        let mut lying = entry("h-a");
        lying.handoff_id = "h-b".into();
        fs::write(ob.pending_path("h-b"), serde_json::to_vec(&lying).unwrap()).unwrap();
        let loaded = ob.load_pending().unwrap();
        assert!(loaded.entries.is_empty());
        assert_eq!(loaded.corrupt.len(), 2);
        let text = loaded
            .corrupt
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("unknown version 2"), "{text}");
        assert!(dir.path().join("corrupt/h-v2.json").is_file());
        assert!(dir.path().join("corrupt/h-b.json").is_file());
    }

    #[test]
    fn an_oversized_file_is_set_aside_without_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let path = dir.path().join("huge.json");
        // Sparse: costs no disk, and reading it whole would cost 300 MB of memory.
        File::create(&path)
            .unwrap()
            .set_len(300 * 1024 * 1024)
            .unwrap();
        let err = Outbox::read_entry(&path).unwrap_err().to_string();
        assert!(err.contains("more than the 1048576"), "{err}");
        let loaded = ob.load_pending().unwrap();
        assert!(loaded.entries.is_empty());
        assert!(dir.path().join("corrupt/huge.json").is_file());
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let enospc = |_: &mut File, _: &[u8]| Err(std::io::Error::from_raw_os_error(28));
        let r = ob.apply_batch_with(
            &[Op::Write(entry("h-1")), Op::Remove("h-0".into())],
            &enospc,
            true,
        );
        let err = r[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("write"), "{err}");
        assert!(r[1].is_ok());
        assert!(temp_files(dir.path()).is_empty());
        assert!(!ob.pending_path("h-1").exists());
    }

    #[test]
    fn a_second_owner_is_refused_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = Outbox::open(dir.path()).unwrap();
        let err = Outbox::open(dir.path()).unwrap_err();
        assert!(matches!(err, OutboxError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
        // The lock lives as long as any clone of the first owner.
        let clone = first.clone();
        drop(first);
        assert!(Outbox::open(dir.path()).is_err());
        drop(clone);
        let again = Outbox::open(dir.path()).unwrap();
        again.release_lock();
        Outbox::open(dir.path()).unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let err = Outbox::open(&file).unwrap_err();
        assert!(matches!(err, OutboxError::NotWritable { .. }), "{err}");
        assert!(err.to_string().contains("not writable"), "{err}");
    }

    #[test]
    fn failed_entries_move_with_their_state_and_retry_resets_only_failed_targets() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let mut e = entry("h-9");
        if let Some(t) = e.targets.get_mut("webhook") {
            t.attempts = 8;
            t.failed = true;
            t.last_error = Some("HTTP 500".into());
        }
        ob.write(&e).unwrap();
        ob.move_to_failed(&e).unwrap();
        assert!(!ob.pending_path("h-9").exists());
        assert_eq!(Outbox::read_entry(&ob.failed_path("h-9")).unwrap(), e);
        assert!(ob.load_pending().unwrap().entries.is_empty());
        let listing = ob.list().unwrap();
        assert_eq!(listing.failed.len(), 1);

        assert!(ob.retry_failed("h-9").unwrap());
        assert!(!ob.retry_failed("h-9").unwrap());
        let back = ob.load_pending().unwrap().entries;
        assert_eq!(back.len(), 1);
        let webhook = &back[0].targets["webhook"];
        assert!(webhook.is_pending() && webhook.attempts == 0);
        assert!(back[0].targets["twilio"].delivered);
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
