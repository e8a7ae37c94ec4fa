//! The AudioSocket decoder in arbitrary TCP pieces and a session behind it: no panic, the
//! samples-per-byte bound, one capped frame held at most.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warmline_fuzz::audiosocket_stream(data);
});
