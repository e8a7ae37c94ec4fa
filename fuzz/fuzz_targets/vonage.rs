//! The Vonage adapter and a session behind it: no panic, and the samples-per-byte bound.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warmline_fuzz::provider_stream(warmline::protocol::Provider::Vonage, data);
});
