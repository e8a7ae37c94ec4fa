//! The `warmline` subcommands (being filled in).

pub mod tune;
