//! Checks over the shared data set (`$WARMLINE_DATA`, default `../shared/data`). Without the data
//! every test fails with a message saying where it looked.

mod calls;
mod common;
mod detect;
mod dsp;
mod e2e;
mod ingest;
mod line;
mod tone;
