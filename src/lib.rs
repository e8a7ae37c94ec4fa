//! warmline: listen to live phone calls, hear frustration, warm-transfer the caller to a human.
//!
//! # Layout (see `docs/ARCHITECTURE.md`)
//! Front ends → drivers → engine → pure core; the bridge on the side.
//! - Pure core, synchronous and deterministic (media time from sample counts):
//!   - [`protocol`]: the provider registry ([`protocol::Provider`]; one file per provider with
//!     its parser, renderer, call-id rule, auth rule, transfer hook and detection rule), the
//!     validated [`protocol::CallId`], and [`protocol::session`], which turns provider events
//!     into per-track PCM with a media clock.
//!   - [`codec`]: G.711 mu-law/A-law and L16 decoding into caller-owned buffers.
//!   - [`dsp`]: per-track prosody (VAD, F0, energy, vocal effort, speaking rate, baseline).
//!   - [`detect`]: tone score, transcript signals, conversation dynamics, handoff policy and
//!     summary.
//! - Engine: [`pipeline`]: one call's provider messages or PCM and transcript in, contract
//!   [`event::Event`]s out.
//! - Drivers of the engine: the live call task in [`server`], [`replay`] (WAV, provider JSONL),
//!   [`tune`] (datasets) and [`sim`] (the load generator behind `warmline simulate`).
//! - Front ends: [`cli`] (the `warmline` subcommands) and [`server`] (axum/WebSocket: auth,
//!   admission, limits, HTTP API, shutdown).
//! - On the side: [`bridge`]: handoff delivery (signed webhook, provider transfer APIs) with a
//!   persisted outbox; [`cluster`]: a fleet of gateways on NATS JetStream (`[cluster]`; absent =
//!   one instance).
//! - [`store`]: features-only call records, handoffs and feedback (SQLite).
//! - Shared leaves: [`event`] (the contract's types), [`config`], [`synth`] (deterministic
//!   synthetic speech for fixtures, the demo and tests), [`plot`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bridge;
pub mod cli;
pub mod cluster;
#[deny(missing_docs)]
pub mod codec;
pub mod config;
#[deny(missing_docs)]
pub mod detect;
#[deny(missing_docs)]
pub mod dsp;
pub mod event;
pub mod pipeline;
pub mod plot;
#[deny(missing_docs)]
pub mod protocol;
pub mod replay;
pub mod server;
pub mod sim;
pub mod store;
pub mod synth;
pub mod tune;
