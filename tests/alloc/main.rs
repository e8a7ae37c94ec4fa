//! Allocation count of the media hot path: a Twilio media message through
//! [`Call::on_text`] (JSON envelope, base64, mu-law, session, DSP, detector, policy) must not
//! touch the heap once the call is warm. Frames that emit an event (prosody reports, signal
//! crossings, the handoff: a few per second of speech) build that event and are counted apart.
//!
//! Its own test binary: the counting allocator is global, and it counts only on the thread
//! that enables it, so the test harness and other threads do not disturb the figures.

// A global allocator is `unsafe impl`; it only counts and forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use warmline::codec::Codec;
use warmline::pipeline::{Call, PipelineSettings};
use warmline::protocol::{Provider, RenderSpec, WireMessage};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call forwards unchanged to `System`; counting touches only const thread-locals.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's pointer and layouts.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(Cell::get)
}

#[test]
fn a_warm_call_allocates_nothing_per_media_frame() {
    const WARM_UP_FRAMES: usize = 700;
    const MEASURED_FRAMES: usize = 1_000;
    // The bundled example call: calm speech, then escalation (and its handoff) past 24 s.
    let pcm = warmline::synth::example_escalating_call();
    let spec = RenderSpec::new("CAalloc", Codec::Mulaw, 8000);
    let msgs = Provider::Twilio.render(&spec, &pcm, None);
    let text: Vec<&str> = msgs
        .iter()
        .filter_map(|m| match m {
            WireMessage::Text(t) => Some(t.as_str()),
            WireMessage::Binary(_) => None,
        })
        .collect();
    // connected, start, then media.
    let media = &text[2..];
    assert!(
        media.len() > WARM_UP_FRAMES + MEASURED_FRAMES,
        "input too short"
    );
    let mut call = Call::new(
        Provider::Twilio,
        Arc::new(PipelineSettings::default()),
        "c1",
    );
    let mut out = Vec::with_capacity(64);
    for t in &text[..2] {
        call.on_text(t, &mut out).expect("hello and start");
    }
    for t in &media[..WARM_UP_FRAMES] {
        call.on_text(t, &mut out).expect("media");
        out.clear();
    }
    let (mut quiet_frames, mut quiet_allocs, mut event_frames, mut event_allocs) = (0, 0, 0, 0);
    for t in &media[WARM_UP_FRAMES..WARM_UP_FRAMES + MEASURED_FRAMES] {
        let n = allocations_during(|| {
            call.on_text(t, &mut out).expect("media");
        });
        if out.is_empty() {
            quiet_frames += 1;
            quiet_allocs += n;
        } else {
            event_frames += 1;
            event_allocs += n;
        }
        out.clear();
    }
    println!(
        "{quiet_frames} frames without an event: {quiet_allocs} allocations; \
         {event_frames} frames with events: {event_allocs} allocations"
    );
    assert!(quiet_frames > MEASURED_FRAMES / 2, "{quiet_frames}");
    assert_eq!(
        quiet_allocs, 0,
        "{quiet_allocs} allocations across {quiet_frames} media frames that emitted nothing"
    );
}
