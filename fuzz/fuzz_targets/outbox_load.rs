//! Loading an outbox whose pending file holds arbitrary bytes: an error or an entry, no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warmline_fuzz::outbox_load(data);
});
