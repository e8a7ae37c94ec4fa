//! Benchmark (to be filled).
fn main() {}
