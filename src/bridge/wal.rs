//! The outbox's batch log: what makes a batch of changes durable with one `fdatasync`.
//!
//! Per-handoff files cost a journal commit per batch for the files and another for the
//! directory, several milliseconds each on a busy disk. The writer instead appends the whole
//! batch to `batch.log` (one JSON line per change) and syncs that one file; the per-handoff files
//! are then written without fsync, for readers to see at once. A checkpoint, after
//! [`CHECKPOINT_OPS`] changes or [`CHECKPOINT_BYTES`] of log, applies the logged changes again
//! the durable way ([`Outbox::apply_batch`]) and empties the log. At start, [`recover`] does
//! the same with whatever the log holds, so a crash between a sync and a checkpoint loses
//! nothing: replaying changes in order is idempotent (a write rewrites the same bytes, a removal
//! of an absent file is fine). A torn last line (a crash mid-append) was never acknowledged and
//! is dropped.

use super::outbox::{Op, Outbox, OutboxError, io};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read as _, Write};
use std::path::{Path, PathBuf};

/// Changes logged before a checkpoint applies them durably and empties the log.
pub const CHECKPOINT_OPS: usize = 4096;
/// Log bytes before a checkpoint.
pub const CHECKPOINT_BYTES: u64 = 8 * 1024 * 1024;
/// Longest log line read at recovery (an entry file's cap, with room for the envelope).
const MAX_LINE_BYTES: usize = super::outbox::MAX_ENTRY_BYTES as usize + 1024;

/// The log's file name in the outbox directory.
pub const LOG_NAME: &str = "batch.log";

/// The open batch log of one outbox (only the writer thread holds it).
#[derive(Debug)]
pub struct BatchLog {
    path: PathBuf,
    file: File,
    bytes: u64,
    /// Changes logged since the last checkpoint, in order.
    since_checkpoint: Vec<Op>,
    line: Vec<u8>,
}

impl BatchLog {
    /// Opens (creating) the log of `outbox`; call [`recover`] first.
    pub fn open(outbox: &Outbox) -> Result<Self, OutboxError> {
        let path = outbox.dir().join(LOG_NAME);
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path,
            file,
            bytes,
            since_checkpoint: Vec::new(),
            line: Vec::with_capacity(4096),
        })
    }

    /// Appends `ops` and syncs the log: when this returns `Ok`, they survive a crash.
    pub fn append(&mut self, ops: &[Op]) -> Result<(), OutboxError> {
        self.line.clear();
        for op in ops {
            serde_json::to_writer(&mut self.line, op)
                .map_err(|e| io("encode", &self.path)(std::io::Error::other(e)))?;
            self.line.push(b'\n');
        }
        self.file
            .write_all(&self.line)
            .map_err(io("write", &self.path))?;
        self.file.sync_data().map_err(io("fsync", &self.path))?;
        self.bytes += self.line.len() as u64;
        self.since_checkpoint.extend_from_slice(ops);
        Ok(())
    }

    /// Whether enough has been logged that a checkpoint is due.
    pub fn checkpoint_due(&self) -> bool {
        self.since_checkpoint.len() >= CHECKPOINT_OPS || self.bytes >= CHECKPOINT_BYTES
    }

    /// Applies everything logged since the last checkpoint durably, then empties the log. On
    /// failure the log is kept (and tried again at the next checkpoint or start).
    pub fn checkpoint(&mut self, outbox: &Outbox) -> Result<(), OutboxError> {
        if self.since_checkpoint.is_empty() && self.bytes == 0 {
            return Ok(());
        }
        if let Some(Err(e)) = outbox
            .apply_batch(&self.since_checkpoint)
            .into_iter()
            .find(Result::is_err)
        {
            return Err(e);
        }
        truncate(&self.file, &self.path)?;
        self.bytes = 0;
        self.since_checkpoint.clear();
        Ok(())
    }
}

fn truncate(file: &File, path: &Path) -> Result<(), OutboxError> {
    file.set_len(0)
        .and_then(|()| file.sync_all())
        .map_err(io("truncate", path))
}

/// Applies what a previous run left in the log of `outbox` (durably), then empties it. Returns
/// the number of changes replayed. Run before the outbox's files are read.
pub fn recover(outbox: &Outbox) -> Result<usize, OutboxError> {
    let path = outbox.dir().join(LOG_NAME);
    let file = match File::options().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("open", &path)(e)),
    };
    let ops = read_ops(&file);
    if !ops.is_empty()
        && let Some(Err(e)) = outbox.apply_batch(&ops).into_iter().find(Result::is_err)
    {
        return Err(e);
    }
    truncate(&file, &path)?;
    drop(file);
    // An empty log is as good as none; keep the directory tidy for people reading it.
    let _ = fs::remove_file(&path);
    Ok(ops.len())
}

/// The log's changes in order, up to the first line that does not parse (a torn append) or is
/// longer than any change can be.
fn read_ops(file: &File) -> Vec<Op> {
    let mut reader = BufReader::new(file);
    let mut ops = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE_BYTES as u64);
        match limited.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<Op>(&line) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::outbox::tests::entry;

    #[test]
    fn logged_changes_survive_without_their_files_and_are_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let mut log = BatchLog::open(&ob).unwrap();
        log.append(&[Op::Write(entry("h-1")), Op::Write(entry("h-2"))])
            .unwrap();
        log.append(&[Op::Remove("h-1".into()), Op::Fail(entry("h-3"))])
            .unwrap();
        // A crash before the files were written: nothing but the log.
        drop(log);
        assert!(!ob.pending_path("h-2").exists());
        // A torn last append is ignored.
        let mut f = File::options()
            .append(true)
            .open(dir.path().join(LOG_NAME))
            .unwrap();
        f.write_all(br#"{"op":"remove","arg":"h-"#).unwrap();
        drop(f);
        assert_eq!(recover(&ob).unwrap(), 4);
        assert!(!ob.pending_path("h-1").exists());
        assert!(ob.pending_path("h-2").exists());
        assert!(ob.failed_path("h-3").exists());
        assert!(!dir.path().join(LOG_NAME).exists());
        let loaded = ob.load_pending().unwrap();
        assert_eq!(loaded.entries, vec![entry("h-2")]);
        // Nothing left to replay.
        assert_eq!(recover(&ob).unwrap(), 0);
    }

    #[test]
    fn a_checkpoint_makes_the_files_durable_and_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let mut log = BatchLog::open(&ob).unwrap();
        let ops = [Op::Write(entry("h-1")), Op::Write(entry("h-2"))];
        log.append(&ops).unwrap();
        assert!(!log.checkpoint_due());
        log.checkpoint(&ob).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(LOG_NAME)).unwrap().len(),
            0
        );
        assert!(ob.pending_path("h-1").exists() && ob.pending_path("h-2").exists());
        let removals: Vec<Op> = (0..CHECKPOINT_OPS)
            .map(|i| Op::Remove(format!("x-{i}")))
            .collect();
        log.append(&removals).unwrap();
        assert!(log.checkpoint_due());
    }
}
