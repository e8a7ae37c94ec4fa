//! `warmline outbox list|retry`: what an operator needs to see and redo in an outbox directory
//! without reading JSON files by hand.

use crate::bridge::outbox::{Outbox, OutboxEntry};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    command: OutboxCommand,
    /// Outbox directory (default: `[bridge] outbox_dir` of --config, else ./warmline-outbox).
    #[arg(long, value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    /// TOML configuration file whose `[bridge] outbox_dir` to use.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// List pending and failed handoffs: id, call, targets with attempts and last error.
    List,
    /// Move failed handoffs back to pending, with a fresh attempt budget for their failed
    /// targets (targets already delivered are never called again). Nothing is sent now: the
    /// next `warmline serve` on this directory delivers them, and a running gateway does not
    /// see them until it restarts. Safe while a gateway runs: it never touches `failed/`.
    Retry {
        /// Handoff id to retry.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Retry every failed handoff.
        #[arg(long)]
        all: bool,
    },
}

pub(crate) fn run(args: OutboxArgs) -> anyhow::Result<ExitCode> {
    let dir = match (args.dir, args.config) {
        (Some(d), _) => d,
        (None, cfg) => super::load_config(cfg.as_deref())?.bridge.outbox_dir,
    };
    anyhow::ensure!(
        dir.is_dir(),
        "outbox directory {} does not exist",
        dir.display()
    );
    let outbox = Outbox::inspect(&dir);
    match args.command {
        OutboxCommand::List => {
            let listing = outbox
                .list()
                .with_context(|| format!("reading {}", dir.display()))?;
            println!("handoff_id\tstate\tcall_id\ttarget\tattempts\tlast_error");
            for (state, entries) in [("pending", &listing.pending), ("failed", &listing.failed)] {
                for e in entries {
                    print_entry(state, e);
                }
            }
            for e in &listing.unreadable {
                eprintln!("unreadable: {e}");
            }
            eprintln!(
                "{} pending, {} failed, {} unreadable in {}",
                listing.pending.len(),
                listing.failed.len(),
                listing.unreadable.len(),
                dir.display()
            );
        }
        OutboxCommand::Retry { id, all } => {
            let ids: Vec<String> = if all {
                outbox
                    .list()?
                    .failed
                    .into_iter()
                    .map(|e| e.handoff_id)
                    .collect()
            } else {
                id.into_iter().collect()
            };
            let mut missing = 0;
            for id in &ids {
                if outbox.retry_failed(id)? {
                    println!("{id}\tpending again");
                } else {
                    eprintln!("{id}: no such failed handoff in {}", dir.display());
                    missing += 1;
                }
            }
            if missing > 0 {
                return Ok(ExitCode::FAILURE);
            }
            eprintln!(
                "{} handoff(s) pending; the next `warmline serve` delivers them",
                ids.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per target; tabs and newlines in stored text would break the columns.
fn print_entry(state: &str, e: &OutboxEntry) {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    for (name, t) in &e.targets {
        let target_state = if t.delivered {
            "delivered"
        } else if t.failed {
            "failed"
        } else {
            "pending"
        };
        println!(
            "{}\t{state}\t{}\t{name}:{target_state}\t{}\t{}",
            clean(&e.handoff_id),
            clean(&e.request.event.call_id),
            t.attempts,
            clean(t.last_error.as_deref().unwrap_or("-")),
        );
    }
}
