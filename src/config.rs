//! Configuration (being filled in).
