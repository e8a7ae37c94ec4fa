//! Transcript line parsing (the HTTP body) and `push_transcript` into a live call: no panic,
//! and the lines and bytes a call holds stay within its limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warmline_fuzz::transcript_lines(data);
});
