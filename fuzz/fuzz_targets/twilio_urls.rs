//! Twilio signature URL candidates from arbitrary `public_url`, `Forwarded`, `X-Forwarded-*`,
//! `Host` and path: no panic, a bounded number of well-formed candidates.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warmline_fuzz::twilio_urls(data);
});
