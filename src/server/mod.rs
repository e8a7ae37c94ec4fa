//! The gateway shell (being filled in).
