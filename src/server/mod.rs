//! The gateway shell (being filled in).

pub mod auth;
