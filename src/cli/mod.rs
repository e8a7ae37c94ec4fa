//! The `warmline` subcommands (being filled in).
