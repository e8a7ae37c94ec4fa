//! Integration tests: the real gateway on a loopback port, real WebSocket and HTTP clients,
//! fixtures generated in-process (nothing outside the repo is read).

mod ari;
mod audiosocket;
mod bridge;
mod cluster_startup;
mod common;
mod deploy;
mod fixtures;
mod gateway;
mod hardening_edge;
mod limits;
mod metrics;
mod one_path;
mod outbox;
mod playbook;
mod providers;
mod replay;
mod simulate;
mod tune;
mod warm;
mod warm_providers;
mod ws_ping;
