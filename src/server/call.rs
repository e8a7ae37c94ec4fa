//! One media stream's task: reads the socket, drives the shared [`Call`] pipeline, applies
//! posted transcript lines, enforces timeouts, hands handoffs to the bridge without blocking,
//! and always ends with `call_ended` and a close frame that says why.

use super::{AppState, CallView, metrics};
use crate::bridge::HandoffRequest;
use crate::event::{Event, EventKind, Track};
use crate::pipeline::{Call, CallError};
use crate::protocol::Provider;
use crate::protocol::session::Step;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use prometheus_client::metrics::counter::Counter;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Close code for a stream that sent nothing (or no start) in time.
pub const CLOSE_TIMEOUT: u16 = 4408;
/// Close code for a call id that is already streaming on another connection.
pub const CLOSE_DUPLICATE_CALL: u16 = 4409;

/// How long a call waits for the peer's close reply after sending its close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);

/// Initial read buffer of a media WebSocket. tungstenite's default is 128 KiB, and it zero-fills
/// the buffer's spare capacity before every socket read and reallocates it while a received
/// message still borrows it: at a few hundred bytes per media message that was most of a
/// call's memory and a steady stream of fresh pages to fault in. Larger messages still fit:
/// the buffer grows to the frame's announced length.
pub(super) const READ_BUFFER_BYTES: usize = 4096;

/// Why the loop ended.
enum End {
    Stop,
    PeerClosed,
    Shutdown,
    FirstMessageTimeout,
    IdleTimeout,
    TooBig(String),
    /// The peer broke RFC 6455: close code and detail.
    Protocol(u16, String),
    /// The `start` failed `[auth.twilio]`'s checks (close 1008).
    Forbidden(&'static str),
    Transport(String),
    Refused(CallError),
    DuplicateCall(String),
}

impl End {
    fn reason(&self) -> &'static str {
        match self {
            End::Stop => "stop",
            End::PeerClosed => "closed",
            End::Shutdown => "shutdown",
            End::FirstMessageTimeout => "first_message_timeout",
            End::IdleTimeout => "idle_timeout",
            End::TooBig(_) => "message_too_big",
            End::Transport(_) => "transport_error",
            End::Protocol(..) => "protocol_error",
            End::Forbidden(_) => "unauthorized",
            End::Refused(_) => "protocol_error",
            End::DuplicateCall(_) => "duplicate_call",
        }
    }

    /// The close frame to send, if the socket can still take one.
    fn close_frame(&self, cfg: &crate::config::ServerConfig) -> Option<(u16, String)> {
        match self {
            End::Stop => Some((1000, "stop received".into())),
            End::PeerClosed | End::Transport(_) => None,
            End::Shutdown => Some((1001, "gateway shutting down".into())),
            End::FirstMessageTimeout => Some((
                CLOSE_TIMEOUT,
                format!(
                    "no start message within {} ms",
                    cfg.first_message_timeout_ms
                ),
            )),
            End::IdleTimeout => Some((
                CLOSE_TIMEOUT,
                format!("no message for {} ms", cfg.idle_timeout_ms),
            )),
            End::TooBig(_) => Some((
                1009,
                format!("message larger than {} bytes", cfg.max_message_bytes),
            )),
            End::Refused(e) => Some((e.close_code(), e.to_string())),
            End::Protocol(code, detail) => Some((*code, detail.clone())),
            End::Forbidden(why) => Some((1008, (*why).to_owned())),
            End::DuplicateCall(id) => Some((
                CLOSE_DUPLICATE_CALL,
                format!("call {id} is already streaming"),
            )),
        }
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455.
fn truncate_reason(mut s: String) -> String {
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

struct TrackCounters {
    frames: [Counter; 2],
    late: [Counter; 2],
}

impl TrackCounters {
    fn new(m: &metrics::Metrics) -> Self {
        let f = |t: Track| {
            m.frames
                .get_or_create(&metrics::TrackLabel {
                    track: t.name().to_owned(),
                })
                .clone()
        };
        let l = |t: Track| {
            m.frames_late
                .get_or_create(&metrics::TrackLabel {
                    track: t.name().to_owned(),
                })
                .clone()
        };
        Self {
            frames: [f(Track::Caller), f(Track::Agent)],
            late: [l(Track::Caller), l(Track::Agent)],
        }
    }
}

/// Where the call's media clock sits in wall time. Processing time alone cannot show a gateway
/// falling behind: a message that waited in the socket or for the scheduler is timed from when
/// the task read it. Anchoring media time 0 at the earliest `arrival - media time` seen makes
/// such waiting show up as lag.
#[derive(Debug, Default)]
struct MediaClock {
    origin: Option<Instant>,
}

impl MediaClock {
    /// Lag of audio ending at `media` (call media time) whose message arrived at `arrived` and
    /// whose features and decision were ready at `ready`.
    fn lag(&mut self, arrived: Instant, ready: Instant, media: Duration) -> Duration {
        if let Some(origin) = arrived.checked_sub(media) {
            self.origin = Some(self.origin.map_or(origin, |o| o.min(origin)));
        }
        match self.origin {
            Some(o) => ready.saturating_duration_since(o + media),
            None => ready.saturating_duration_since(arrived),
        }
    }
}

/// Runs one stream to its end.
pub(super) async fn run(
    mut ws: WebSocket,
    st: AppState,
    provider: Provider,
    _permit: OwnedSemaphorePermit,
) {
    let cfg = st.config().server.clone();
    let metrics = st.metrics();
    metrics.active_calls.inc();
    let counters = TrackCounters::new(metrics);
    let connection_id = st.next_connection_id();
    let mut call = Call::new(provider, st.inner.settings.clone(), &connection_id);
    let (transcript_tx, mut transcript_rx) = mpsc::channel(cfg.transcript_queue);
    let mut transcript_tx = Some(transcript_tx);
    let mut call_id: Option<String> = None;
    let mut out: Vec<Event> = Vec::with_capacity(16);
    let mut pending_handoff: Option<Box<HandoffRequest>> = None;
    let mut handoff_seen = false;
    let mut last_frames = [0u64; 2];
    let mut clock = MediaClock::default();
    let token = st.shutdown_token();
    // One cancellation future for the whole call: a fresh one per loop turn registers and
    // drops a waiter on every message.
    let cancelled = token.cancelled();
    tokio::pin!(cancelled);
    let first_timeout = Duration::from_millis(cfg.first_message_timeout_ms);
    let idle_timeout = Duration::from_millis(cfg.idle_timeout_ms);
    let deadline = tokio::time::sleep(first_timeout);
    tokio::pin!(deadline);
    // Re-arming the timer on every message costs a timer-wheel update per message; instead the
    // timer fires at the old deadline and re-arms itself from the last message's arrival.
    let mut last_heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval(Duration::from_millis(cfg.ping_interval_ms));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();

    let end = loop {
        let started = call.start().is_some();
        tokio::select! {
            () = &mut cancelled => break End::Shutdown,
            () = &mut deadline => {
                let due = last_heard + if started { idle_timeout } else { first_timeout };
                if due > tokio::time::Instant::now() {
                    deadline.as_mut().reset(due);
                    continue;
                }
                break if started { End::IdleTimeout } else { End::FirstMessageTimeout };
            }
            _ = ping.tick() => {
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break End::PeerClosed;
                }
            }
            Some(line) = transcript_rx.recv() => call.push_transcript(line, &mut out),
            msg = ws.recv() => {
                last_heard = tokio::time::Instant::now();
                let arrived = last_heard.into_std();
                let res = match msg {
                    None => break End::PeerClosed,
                    Some(Err(e)) => break match super::ws_fault::classify(e) {
                        super::ws_fault::WsFault::Protocol { code: 1009, detail } => End::TooBig(detail),
                        super::ws_fault::WsFault::Protocol { code, detail } => End::Protocol(code, detail),
                        super::ws_fault::WsFault::Transport(detail) => End::Transport(detail),
                    },
                    Some(Ok(Message::Text(t))) => call.on_text(t.as_str(), &mut out),
                    Some(Ok(Message::Binary(b))) => call.on_binary(&b, &mut out),
                    Some(Ok(Message::Close(_))) => break End::PeerClosed,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(Step::Nothing),
                };
                match res {
                    Ok(Step::Audio) => {
                        let ready = Instant::now();
                        let elapsed = ready.saturating_duration_since(arrived);
                        metrics.frame_latency.observe(elapsed.as_secs_f64());
                        let media = Duration::from_millis(call.pipeline().map_or(0, |p| p.now_ms()));
                        metrics.frame_lag.observe(clock.lag(arrived, ready, media).as_secs_f64());
                        for t in Track::ALL {
                            let n = call.stats_track_chunks(t);
                            let new = n - last_frames[t.index()];
                            if new > 0 {
                                counters.frames[t.index()].inc_by(new);
                                if elapsed > Duration::from_millis(20) {
                                    counters.late[t.index()].inc();
                                }
                                last_frames[t.index()] = n;
                            }
                        }
                    }
                    Ok(Step::Started) => {
                        let Some(start) = call.start() else { continue };
                        if let Err(why) = st.check_start(provider, start) {
                            break End::Forbidden(why);
                        }
                        let id = start.call_id.clone();
                        let view = CallView {
                            provider: provider.name().to_owned(),
                            started_at: SystemTime::now(),
                            scores: Default::default(),
                            handoff: None,
                            t_ms: 0,
                        };
                        let Some(tx) = transcript_tx.take() else { continue };
                        if !st.register(&id, view, tx) {
                            break End::DuplicateCall(id);
                        }
                        metrics.calls_started.get_or_create(&metrics::ProviderLabel { provider: provider.name().to_owned() }).inc();
                        tracing::info!(call_id = ?id, %provider, "call started");
                        call_id = Some(id);
                        deadline.as_mut().reset(last_heard + idle_timeout);
                    }
                    Ok(Step::Stopped) => {}
                    Ok(Step::Nothing | Step::Dtmf(_)) => {}
                    Err(e) if e.is_recoverable() => {
                        metrics.stream_errors.get_or_create(&metrics::KindLabel { kind: e.kind().to_owned() }).inc();
                        tracing::warn!(call_id = call_id.as_deref().unwrap_or("-"), %provider, kind = e.kind(), "skipped message: {e}");
                    }
                    Err(e) => break End::Refused(e),
                }
            }
        }
        after_step(
            &st,
            &call,
            call_id.as_deref(),
            &mut out,
            &mut pending_handoff,
            &mut handoff_seen,
        );
        if call.is_stopped() {
            break End::Stop;
        }
    };

    // Bookkeeping, whatever the end.
    let reason = end.reason();
    call.finish(reason, &mut out);
    after_step(
        &st,
        &call,
        call_id.as_deref(),
        &mut out,
        &mut pending_handoff,
        &mut handoff_seen,
    );
    if let Some(req) = pending_handoff.take() {
        // The call is over: waiting for room in the bridge queue no longer delays audio.
        let wait =
            tokio::time::timeout(Duration::from_secs(10), st.inner.bridge.submit(*req)).await;
        if !matches!(wait, Ok(Ok(()))) {
            tracing::error!(
                call_id = call_id.as_deref().unwrap_or("-"),
                "could not queue the handoff for delivery; it is in the event log"
            );
        }
    }
    match &end {
        End::Refused(e) => {
            metrics
                .stream_errors
                .get_or_create(&metrics::KindLabel {
                    kind: e.kind().to_owned(),
                })
                .inc();
            tracing::warn!(call_id = call_id.as_deref().unwrap_or("-"), %provider, kind = e.kind(), close_code = e.close_code(), "closing stream: {e}");
        }
        End::TooBig(d) | End::Transport(d) | End::Protocol(_, d) => {
            metrics
                .stream_errors
                .get_or_create(&metrics::KindLabel {
                    kind: reason.to_owned(),
                })
                .inc();
            tracing::warn!(call_id = call_id.as_deref().unwrap_or("-"), %provider, "closing stream: {reason}: {d:?}");
        }
        End::FirstMessageTimeout | End::IdleTimeout | End::DuplicateCall(_) | End::Forbidden(_) => {
            metrics
                .stream_errors
                .get_or_create(&metrics::KindLabel {
                    kind: reason.to_owned(),
                })
                .inc();
            tracing::warn!(call_id = call_id.as_deref().unwrap_or("-"), %provider, "closing stream: {reason}");
        }
        End::Stop | End::PeerClosed | End::Shutdown => {}
    }
    let mut close_sent = false;
    if let Some((code, text)) = end.close_frame(&cfg) {
        let frame = CloseFrame {
            code,
            reason: truncate_reason(text).into(),
        };
        close_sent = matches!(
            tokio::time::timeout(Duration::from_secs(2), ws.send(Message::Close(Some(frame))))
                .await,
            Ok(Ok(()))
        );
    }
    let stats = call.stats();
    for t in Track::ALL {
        let s = call.track_stats(t);
        for (kind, n) in [("missing", s.missing_chunks), ("late", s.late_chunks)] {
            if n > 0 {
                metrics
                    .frames_dropped
                    .get_or_create(&metrics::TrackKindLabels {
                        track: t.name().to_owned(),
                        kind: kind.to_owned(),
                    })
                    .inc_by(n);
            }
        }
    }
    if let Some(id) = &call_id {
        metrics
            .calls_ended
            .get_or_create(&metrics::EndedLabels {
                provider: provider.name().to_owned(),
                reason: reason.to_owned(),
                handoff: handoff_seen.to_string(),
            })
            .inc();
        tracing::info!(call_id = ?id, %provider, reason, frames = stats.frames, dropped = stats.dropped_frames, "call ended");
        st.unregister(id);
    }
    metrics.active_calls.dec();
    if close_sent {
        // Finish the closing handshake before dropping the socket: closing it with unread data
        // (the peer's close reply, a late pong) makes the kernel reset the connection, and the
        // peer can lose our close frame and its code. Seen as ~1 % of load-test calls ending
        // without their 1000.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            while let Some(Ok(m)) = ws.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Publishes new events, mirrors them into the registry, and hands a new handoff to the bridge.
fn after_step(
    st: &AppState,
    call: &Call,
    call_id: Option<&str>,
    out: &mut Vec<Event>,
    pending: &mut Option<Box<HandoffRequest>>,
    handoff_seen: &mut bool,
) {
    if let Some(req) = pending.take()
        && let Err(req) = st.submit_handoff(*req)
    {
        *pending = Some(req);
    }
    if out.is_empty() {
        return;
    }
    if let Some(id) = call_id {
        let scores = call.pipeline().map(|p| p.detector().scores().clone());
        let t_ms = call.pipeline().map_or(0, |p| p.now_ms());
        let handoff = out
            .iter()
            .find(|e| matches!(e.kind, EventKind::Handoff(_)))
            .cloned();
        st.update(id, |v| {
            if let Some(s) = scores {
                v.scores = s;
            }
            v.t_ms = t_ms;
            if handoff.is_some() {
                v.handoff = handoff.clone();
            }
        });
    }
    for e in out.iter() {
        if matches!(e.kind, EventKind::Handoff(_)) && !*handoff_seen {
            *handoff_seen = true;
            let req = HandoffRequest {
                event: e.clone(),
                provider: call.provider().name().to_owned(),
            };
            if let Err(req) = st.submit_handoff(req) {
                *pending = Some(req);
            }
        }
    }
    st.publish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_shows_queueing_that_processing_time_hides() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut clock = MediaClock::default();
        // Read as its 20 ms of audio ends, ready 1 ms later.
        assert_eq!(clock.lag(t0 + ms(20), t0 + ms(21), ms(20)), ms(1));
        // The next chunk sat 30 ms in the socket: processing took 1 ms, the lag is 31 ms.
        assert_eq!(clock.lag(t0 + ms(70), t0 + ms(71), ms(40)), ms(31));
        // An arrival earlier than the clock predicts moves the origin back.
        assert_eq!(clock.lag(t0 + ms(50), t0 + ms(50), ms(60)), Duration::ZERO);
        assert_eq!(clock.lag(t0 + ms(80), t0 + ms(81), ms(80)), ms(11));
    }
}
