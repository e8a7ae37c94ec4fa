//! `warmline export-labels`: turns the feedback humans gave on handoffs and the labels
//! reviewers put on ended calls into one JSON line per call, so a team's own calls can
//! recalibrate thresholds (`needed` against the call's `peak_score` and `reason`), plus a
//! per-reason precision table on stderr.

use crate::store::Db;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `warmline export-labels`.
#[derive(Debug, Args)]
pub struct ExportLabelsArgs {
    /// The store file (`[store] path`).
    #[arg(long)]
    pub db: PathBuf,
    /// Write the labels here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `export-labels`.
pub fn run(a: &ExportLabelsArgs) -> anyhow::Result<ExitCode> {
    if !a.db.exists() {
        anyhow::bail!("no store at {}", a.db.display());
    }
    // Retention is not applied here: exporting must not delete anything.
    let db = Db::open(&a.db, u32::MAX / 2, u64::MAX / 2)?;
    let labels = db.labels()?;
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    for l in &labels {
        writeln!(out, "{}", serde_json::to_string(l)?)?;
    }
    out.flush()?;
    let mut err = std::io::stderr().lock();
    writeln!(err, "{} labels", labels.len())?;
    for t in db.precision()? {
        writeln!(
            err,
            "{:<16} needed {:>4} of {:>4} handoffs with feedback (precision {:.2})",
            t.reason,
            t.needed,
            t.total,
            t.needed as f64 / t.total.max(1) as f64
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
