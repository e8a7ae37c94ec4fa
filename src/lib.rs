//! warmline: listen to live phone calls, hear frustration, warm-transfer the caller to a human.
//!
//! # Layout
//! - [`protocol`]: one adapter per telephony provider, each mapping its wire messages onto
//!   [`protocol::ProviderEvent`]; [`protocol::session`] turns those into per-track PCM with a
//!   media clock. Pure.
//! - [`codec`]: G.711 mu-law/A-law and L16 decoding into caller-owned buffers. Pure.
//! - [`dsp`]: per-track prosody (VAD, F0, energy, vocal effort, speaking rate, baseline). Pure.
//! - [`detect`]: tone score, transcript signals, conversation dynamics, handoff policy and
//!   summary. Pure, media time only.
//! - [`pipeline`]: one call's audio and transcript in, contract [`event::Event`]s out. Live
//!   (`serve`) and offline (`replay`) both drive it.
//! - [`bridge`]: handoff delivery (signed webhook, provider transfer APIs) with a persisted outbox.
//! - [`cluster`]: a fleet of gateways on NATS JetStream (`[cluster]`; absent = one instance).
//! - [`server`]: the axum/WebSocket shell: auth, admission, limits, HTTP API, shutdown.
//! - [`replay`]: recorded calls (WAV, provider JSONL) through the same pipeline.
//! - [`tune`]: offline evaluation and calibration of the tone detector.
//! - [`sim`]: the load generator behind `warmline simulate`.
//! - [`synth`]: deterministic synthetic speech for fixtures, the demo and tests.
//! - [`cli`]: the `warmline` subcommands.

pub mod bridge;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod detect;
pub mod dsp;
pub mod event;
pub mod pipeline;
pub mod plot;
pub mod protocol;
pub mod replay;
pub mod server;
pub mod sim;
pub mod synth;
pub mod tune;
