//! Loading an outbox whose pending file and batch log hold arbitrary bytes: an error, an entry
//! or a replayed change, no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warmline_fuzz::outbox_load(data);
});
