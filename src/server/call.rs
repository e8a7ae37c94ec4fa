//! One media stream's task: reads the socket, drives the shared [`Call`] pipeline, applies
//! posted transcript lines (bounded), enforces timeouts (an absolute start deadline, an idle
//! deadline that only media resets), paces a stream whose media runs ahead of wall-clock time,
//! hands handoffs to the bridge without blocking, and always ends with `call_ended` and a close
//! frame that says why.
//!
//! Steps: [`CallTask::admit`], [`CallTask::read_loop`] (with [`CallTask::on_message`] and
//! [`CallTask::feed_transcript`]), [`CallTask::teardown`].

use super::{AppState, CallView, metrics};
use crate::bridge::HandoffRequest;
use crate::detect::TranscriptLine;
use crate::event::{Event, EventKind, Track};
use crate::pipeline::{Call, CallError, TranscriptLimits};
use crate::protocol::Provider;
use crate::protocol::session::Step;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use prometheus_client::metrics::counter::Counter;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Turns of the read loop between looks at the transcript queue when the socket never runs dry.
const FAIR_EVERY: u32 = 8;

/// How long one reply to the provider may take to write.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

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
                format!("no media for {} ms", cfg.idle_timeout_ms),
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

/// The stream's deadlines. The first-message deadline is absolute from the upgrade; the idle
/// deadline counts provider media only: pongs to our pings, marks and other non-media messages
/// must not keep a stalled sender's slot (or a socket that never starts) alive.
#[derive(Debug)]
struct Deadlines {
    upgraded: Instant,
    first_message: Duration,
    idle: Duration,
    /// When media last arrived (or the stream started); `None` before the start.
    last_media: Option<Instant>,
}

impl Deadlines {
    /// When the stream times out, reading paused until `paused_until` not counting as idle.
    fn due(&self, paused_until: Option<Instant>) -> Instant {
        match self.last_media {
            None => self.upgraded + self.first_message,
            Some(t) => t.max(paused_until.unwrap_or(t)) + self.idle,
        }
    }
}

/// Holds a live stream's media at most `max_lead` ahead of wall-clock time since its start:
/// beyond that the socket is not read until the wall clock catches up, so a fast sender is
/// slowed by TCP backpressure instead of costing a core (replay is where fast belongs).
#[derive(Debug)]
struct Pace {
    /// `None`: off.
    max_lead: Option<Duration>,
    started: Option<Instant>,
}

impl Pace {
    fn new(max_lead_s: f64) -> Self {
        Self {
            max_lead: Duration::try_from_secs_f64(max_lead_s)
                .ok()
                .filter(|d| !d.is_zero()),
            started: None,
        }
    }

    /// When reading may resume, if media that reached `media` (call media time) by `now` runs
    /// too far ahead.
    fn resume_at(&self, media: Duration, now: Instant) -> Option<Instant> {
        let (lead, started) = (self.max_lead?, self.started?);
        let due = started + media.checked_sub(lead)?;
        (due > now).then_some(due)
    }
}

/// Why one turn of the read loop woke.
enum Wake {
    End(End),
    Message(Option<Result<Message, axum::Error>>),
    Transcript(TranscriptLine),
    Resumed,
    Continue,
}

/// One stream's state across its steps.
struct CallTask {
    st: AppState,
    cfg: crate::config::ServerConfig,
    provider: Provider,
    counters: TrackCounters,
    call: Call,
    transcript_tx: Option<mpsc::Sender<TranscriptLine>>,
    transcript_rx: mpsc::Receiver<TranscriptLine>,
    call_id: Option<String>,
    out: Vec<Event>,
    pending_handoff: Option<Box<HandoffRequest>>,
    handoff_seen: bool,
    last_frames: [u64; 2],
    clock: MediaClock,
    deadlines: Deadlines,
    pace: Pace,
    /// Reading is paused until then (media ran ahead of wall-clock time).
    paused_until: Option<Instant>,
}

/// Runs one stream to its end: admission, the read loop (media and transcript feed), teardown.
pub(super) async fn run(
    mut ws: WebSocket,
    st: AppState,
    provider: Provider,
    _permit: OwnedSemaphorePermit,
) {
    let mut task = CallTask::admit(st, provider);
    let end = task.read_loop(&mut ws).await;
    task.teardown(ws, end).await;
}

impl CallTask {
    /// Admission: the call's state, counted as active from the upgrade.
    fn admit(st: AppState, provider: Provider) -> Self {
        let cfg = st.config().server.clone();
        let metrics = st.metrics();
        metrics.active_calls.inc();
        let counters = TrackCounters::new(metrics);
        let connection_id = st.next_connection_id();
        let mut call = Call::new(provider, st.inner.settings.clone(), &connection_id);
        call.set_transcript_limits(TranscriptLimits {
            max_lines: cfg.max_pending_transcript_lines,
            max_bytes: cfg.max_pending_transcript_bytes,
        });
        let (transcript_tx, transcript_rx) = mpsc::channel(cfg.transcript_queue);
        let deadlines = Deadlines {
            upgraded: Instant::now(),
            first_message: Duration::from_millis(cfg.first_message_timeout_ms),
            idle: Duration::from_millis(cfg.idle_timeout_ms),
            last_media: None,
        };
        let pace = Pace::new(cfg.max_media_lead_s);
        Self {
            st,
            cfg,
            provider,
            counters,
            call,
            transcript_tx: Some(transcript_tx),
            transcript_rx,
            call_id: None,
            out: Vec::with_capacity(16),
            pending_handoff: None,
            handoff_seen: false,
            last_frames: [0; 2],
            clock: MediaClock::default(),
            deadlines,
            pace,
            paused_until: None,
        }
    }

    /// The read loop: socket messages, posted transcript lines, pings, deadlines and pacing,
    /// until the stream ends.
    async fn read_loop(&mut self, ws: &mut WebSocket) -> End {
        let token = self.st.shutdown_token();
        // One cancellation future for the whole call: a fresh one per loop turn registers and
        // drops a waiter on every message.
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        // Re-arming the timer on every message costs a timer-wheel update per message; instead
        // the timer fires at the old deadline and re-arms itself from the last media's arrival.
        let deadline = tokio::time::sleep_until(self.deadlines.due(None).into());
        tokio::pin!(deadline);
        let resume = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(resume);
        let mut ping = tokio::time::interval(Duration::from_millis(self.cfg.ping_interval_ms));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        let mut turn: u32 = 0;
        loop {
            let paused = self.paused_until.is_some();
            turn = turn.wrapping_add(1);
            // The socket goes first: at real-time pace nearly every wake-up is one media
            // message, and a ready socket then polls nothing else (no timer, no shutdown waiter,
            // no queue, no random branch order). The others are polled whenever the socket has
            // nothing to give, which is every wake-up but a flood's; for a peer that never lets
            // the socket run dry, `fair_turn` checks them without a poll every few messages.
            let wake = match self.fair_turn(turn, &token, deadline.as_mut()) {
                Some(w) => w,
                None => tokio::select! {
                    biased;
                    msg = ws.recv(), if !paused => Wake::Message(msg),
                    () = &mut cancelled => Wake::End(End::Shutdown),
                    () = &mut deadline => self.on_deadline(deadline.as_mut()),
                    _ = ping.tick() => match ws.send(Message::Ping(Default::default())).await {
                        Ok(()) => Wake::Continue,
                        Err(_) => Wake::End(End::PeerClosed),
                    },
                    Some(line) = self.transcript_rx.recv() => Wake::Transcript(line),
                    () = &mut resume, if paused => Wake::Resumed,
                },
            };
            match wake {
                Wake::End(end) => return end,
                Wake::Continue => {}
                Wake::Transcript(line) => self.feed_transcript(line),
                Wake::Resumed => {
                    // Time spent paused by us is not the peer's silence.
                    if let Some(t) = self.paused_until.take() {
                        self.deadlines.last_media = self.deadlines.last_media.map(|m| m.max(t));
                    }
                }
                Wake::Message(msg) => {
                    let was_started = self.call_id.is_some();
                    if let Some(end) = self.on_message(msg) {
                        return end;
                    }
                    if !was_started && let Some(end) = self.claim_in_fleet().await {
                        return end;
                    }
                    // The start switches to the (possibly shorter) idle deadline.
                    let due = self.deadlines.due(self.paused_until).into();
                    if due < deadline.deadline() {
                        deadline.as_mut().reset(due);
                    }
                    if let Some(at) = self.paced() {
                        self.paused_until = Some(at);
                        resume.as_mut().reset(at.into());
                    }
                }
            }
            self.after_step().await;
            // Replies the provider waits for (AudioHook's `opened`, `pong`, `closed`, and the
            // `disconnect` of a handoff, sent only once the handoff is durable). A peer that
            // does not read its socket does not hold the call task for long.
            while let Some(reply) = self.call.take_reply() {
                let send = ws.send(Message::Text(reply.into()));
                if !matches!(tokio::time::timeout(REPLY_TIMEOUT, send).await, Ok(Ok(()))) {
                    return End::PeerClosed;
                }
            }
            if self.call.is_stopped() {
                return End::Stop;
            }
        }
    }

    /// What the socket-first `select!` of [`Self::read_loop`] would not see while the socket
    /// always has a message: shutdown and the deadline at every turn (an atomic load and a clock
    /// read), a queued transcript line every [`FAIR_EVERY`] turns.
    fn fair_turn(
        &mut self,
        turn: u32,
        token: &tokio_util::sync::CancellationToken,
        deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Option<Wake> {
        if token.is_cancelled() {
            return Some(Wake::End(End::Shutdown));
        }
        if deadline.deadline() <= tokio::time::Instant::now() {
            return Some(self.on_deadline(deadline));
        }
        if turn.is_multiple_of(FAIR_EVERY) {
            return self.transcript_rx.try_recv().ok().map(Wake::Transcript);
        }
        None
    }

    /// The deadline passed: re-armed from the last media (the timer is not reset per message),
    /// or the stream timed out.
    fn on_deadline(&self, deadline: std::pin::Pin<&mut tokio::time::Sleep>) -> Wake {
        let due = self.deadlines.due(self.paused_until);
        if due > Instant::now() {
            deadline.reset(due.into());
            Wake::Continue
        } else if self.deadlines.last_media.is_some() {
            Wake::End(End::IdleTimeout)
        } else {
            Wake::End(End::FirstMessageTimeout)
        }
    }

    /// [`after_step`]; without `[cluster]` a new handoff is made durable (group commit, a few
    /// ms) before [`announce`] shows it to anyone: event stream, metrics, `GET /v1/calls`.
    async fn after_step(&mut self) {
        let mut persist = None;
        after_step(
            &self.st,
            &self.call,
            &self.out,
            &mut self.pending_handoff,
            &mut self.handoff_seen,
            &mut persist,
        );
        if let Some(req) = persist {
            self.st.persist_handoff(req).await;
        }
        if !self.out.is_empty() {
            announce(&self.st, &self.call, self.call_id.as_deref(), &mut self.out);
        }
    }

    /// One socket message through the call; `Some` when it ends the stream.
    fn on_message(&mut self, msg: Option<Result<Message, axum::Error>>) -> Option<End> {
        let arrived = Instant::now();
        let media_before = self.call.stats().frames;
        let res = match msg {
            None => return Some(End::PeerClosed),
            Some(Err(e)) => {
                use super::ws_fault::WsFault;
                return Some(match super::ws_fault::classify(e) {
                    WsFault::Protocol { code: 1009, detail } => End::TooBig(detail),
                    WsFault::Protocol { code, detail } => End::Protocol(code, detail),
                    WsFault::Transport(detail) => End::Transport(detail),
                });
            }
            Some(Ok(Message::Text(t))) => self.call.on_text(t.as_str(), &mut self.out),
            Some(Ok(Message::Binary(b))) => self.call.on_binary(&b, &mut self.out),
            Some(Ok(Message::Close(_))) => return Some(End::PeerClosed),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(Step::Nothing),
        };
        if self.call.stats().frames > media_before {
            self.deadlines.last_media = Some(arrived);
        }
        match res {
            Ok(Step::Audio) => self.observe_audio(arrived),
            Ok(Step::Started) => return self.on_started(arrived),
            Ok(Step::Stopped | Step::Nothing | Step::Dtmf(_)) => {}
            Err(e) if e.is_recoverable() => {
                self.st
                    .metrics()
                    .stream_errors
                    .get_or_create(&metrics::KindLabel {
                        kind: e.kind().to_owned(),
                    })
                    .inc();
                tracing::warn!(call_id = self.call_id.as_deref().unwrap_or("-"), provider = %self.provider, kind = e.kind(), "skipped message: {e}");
            }
            Err(e) => return Some(End::Refused(e)),
        }
        None
    }

    /// Latency, lag and frame counters for audio that arrived at `arrived`.
    fn observe_audio(&mut self, arrived: Instant) {
        let metrics = self.st.metrics();
        let ready = Instant::now();
        let elapsed = ready.saturating_duration_since(arrived);
        metrics.frame_latency.observe(elapsed.as_secs_f64());
        let media = self.media_time();
        metrics
            .frame_lag
            .observe(self.clock.lag(arrived, ready, media).as_secs_f64());
        for t in Track::ALL {
            let n = self.call.stats_track_chunks(t);
            let new = n - self.last_frames[t.index()];
            if new > 0 {
                self.counters.frames[t.index()].inc_by(new);
                if elapsed > Duration::from_millis(20) {
                    self.counters.late[t.index()].inc();
                }
                self.last_frames[t.index()] = n;
            }
        }
    }

    /// The start message: registers the call (its transcript route opens) and starts its clocks.
    fn on_started(&mut self, at: Instant) -> Option<End> {
        let start = self.call.start()?;
        if let Err(why) = self.st.check_start(self.provider, start) {
            return Some(End::Forbidden(why));
        }
        let id = start.call_id.to_string();
        let view = CallView {
            provider: self.provider,
            started_at: SystemTime::now(),
            scores: Default::default(),
            handoff: None,
            t_ms: 0,
        };
        let tx = self.transcript_tx.take()?;
        if !self.st.register(&id, view, tx) {
            return Some(End::DuplicateCall(id));
        }
        self.st
            .metrics()
            .calls_started
            .get_or_create(&metrics::ProviderLabel {
                provider: self.provider,
            })
            .inc();
        tracing::info!(call_id = ?id, provider = %self.provider, "call started");
        self.call_id = Some(id);
        self.deadlines.last_media = Some(at);
        self.pace.started = Some(at);
        None
    }

    /// In a fleet, a call that just started here must not be held by another instance.
    async fn claim_in_fleet(&mut self) -> Option<End> {
        let (c, id) = (self.st.cluster()?, self.call_id.clone()?);
        let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let owner = c.claim(&id, self.provider.name(), &at).await.err()?;
        tracing::warn!(call_id = %id, %owner, "call is held by another instance");
        self.st.unregister(&id);
        self.call_id = None;
        Some(End::DuplicateCall(id))
    }

    /// The call's media time (the furthest track).
    fn media_time(&self) -> Duration {
        Duration::from_millis(self.call.pipeline().map_or(0, |p| p.now_ms()))
    }

    /// When reading may resume, if the stream's media now runs too far ahead of wall time.
    fn paced(&self) -> Option<Instant> {
        let at = self.pace.resume_at(self.media_time(), Instant::now())?;
        self.st.metrics().media_lead_pauses.inc();
        Some(at)
    }

    /// A posted transcript line into the call, within its limits.
    fn feed_transcript(&mut self, line: TranscriptLine) {
        if let Err(e) = self.call.try_push_transcript(line, &mut self.out) {
            self.st.metrics().transcript_lines_dropped.inc();
            tracing::warn!(call_id = self.call_id.as_deref().unwrap_or("-"), provider = %self.provider, "{e}");
        }
    }

    /// Teardown, whatever the end: `call_ended`, the handoff to the bridge, metrics, the close
    /// frame and its handshake, the registry.
    async fn teardown(mut self, mut ws: WebSocket, end: End) {
        let (st, call_id, provider) = (self.st.clone(), self.call_id.clone(), self.provider);
        let metrics = st.metrics();
        let reason = end.reason();
        // Lines accepted (202) before the stream ended still count: the socket-first loop can
        // meet the stop before a line that was already queued.
        while let Ok(line) = self.transcript_rx.try_recv() {
            self.feed_transcript(line);
        }
        self.call.finish(reason, &mut self.out);
        self.after_step().await;
        if let Some(req) = self.pending_handoff.take() {
            // The call is over: waiting for room in the bridge queue no longer delays audio.
            let wait =
                tokio::time::timeout(Duration::from_secs(10), st.submit_handoff_waiting(*req))
                    .await;
            if !matches!(wait, Ok(Ok(()))) {
                tracing::error!(
                    call_id = call_id.as_deref().unwrap_or("-"),
                    "could not queue the handoff for delivery; it is in the event log"
                );
            }
        }
        log_end(&st, &end, call_id.as_deref(), provider);
        let mut close_sent = false;
        if let Some((code, text)) = end.close_frame(&self.cfg) {
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
        let stats = self.call.stats();
        for t in Track::ALL {
            let s = self.call.track_stats(t);
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
                    provider,
                    reason: reason.to_owned(),
                    handoff: self.handoff_seen.to_string(),
                })
                .inc();
            tracing::info!(call_id = ?id, %provider, reason, frames = stats.frames, dropped = stats.dropped_frames, "call ended");
            st.unregister(id);
            if let Some(c) = st.cluster() {
                c.release(id);
            }
        }
        metrics.active_calls.dec();
        if close_sent {
            // Finish the closing handshake before dropping the socket: closing it with unread
            // data (the peer's close reply, a late pong) makes the kernel reset the connection,
            // and the peer can lose our close frame and its code. Seen as ~1 % of load-test
            // calls ending without their 1000.
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
}

/// Counts and logs why a stream ended abnormally.
fn log_end(st: &AppState, end: &End, call_id: Option<&str>, provider: Provider) {
    let metrics = st.metrics();
    let reason = end.reason();
    let call_id = call_id.unwrap_or("-");
    let kind = match end {
        End::Refused(e) => {
            tracing::warn!(call_id, %provider, kind = e.kind(), close_code = e.close_code(), "closing stream: {e}");
            e.kind()
        }
        End::TooBig(d) | End::Transport(d) | End::Protocol(_, d) => {
            tracing::warn!(call_id, %provider, "closing stream: {reason}: {d:?}");
            reason
        }
        End::FirstMessageTimeout | End::IdleTimeout | End::DuplicateCall(_) | End::Forbidden(_) => {
            tracing::warn!(call_id, %provider, "closing stream: {reason}");
            reason
        }
        End::Stop | End::PeerClosed | End::Shutdown => return,
    };
    metrics
        .stream_errors
        .get_or_create(&metrics::KindLabel {
            kind: kind.to_owned(),
        })
        .inc();
}

/// Hands a new handoff on: to the fleet's publisher with `[cluster]` (which announces it once
/// JetStream holds it), else into `persist`, for the call to make durable before [`announce`].
fn after_step(
    st: &AppState,
    call: &Call,
    out: &[Event],
    pending: &mut Option<Box<HandoffRequest>>,
    handoff_seen: &mut bool,
    persist: &mut Option<HandoffRequest>,
) {
    if let Some(req) = pending.take()
        && let Err(req) = st.submit_handoff(*req)
    {
        *pending = Some(req);
    }
    if out.is_empty() {
        return;
    }
    for e in out.iter() {
        if matches!(e.kind, EventKind::Handoff(_)) && !*handoff_seen {
            *handoff_seen = true;
            let req = HandoffRequest {
                event: e.clone(),
                provider: call.provider(),
            };
            if st.cluster().is_none() {
                *persist = Some(req);
            } else if let Err(req) = st.submit_handoff(req) {
                *pending = Some(req);
            }
        }
    }
}

/// Mirrors the new events into the registry (`GET /v1/calls`) and publishes them.
fn announce(st: &AppState, call: &Call, call_id: Option<&str>, out: &mut Vec<Event>) {
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
    if st.cluster().is_some() {
        // Announced by the cluster once JetStream holds it (publish before announce).
        out.retain(|e| !matches!(e.kind, EventKind::Handoff(_)));
    }
    st.publish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_message_deadline_is_absolute_and_idle_counts_media_only() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Deadlines {
            upgraded: t0,
            first_message: ms(300),
            idle: ms(1000),
            last_media: None,
        };
        // Nothing but the start (or media after it) moves the deadline.
        assert_eq!(d.due(None), t0 + ms(300));
        d.last_media = Some(t0 + ms(100));
        assert_eq!(d.due(None), t0 + ms(1100));
        // Time we spent not reading is not the peer's silence.
        assert_eq!(d.due(Some(t0 + ms(500))), t0 + ms(1500));
    }

    #[test]
    fn pace_pauses_only_beyond_the_lead() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Pace::new(2.0);
        assert_eq!(p.resume_at(s(60), t0), None, "not started");
        p.started = Some(t0);
        assert_eq!(p.resume_at(s(2), t0), None);
        assert_eq!(p.resume_at(s(60), t0), Some(t0 + s(58)));
        assert_eq!(p.resume_at(s(60), t0 + s(58)), None);
        let off = Pace {
            max_lead: Pace::new(0.0).max_lead,
            started: Some(t0),
        };
        assert_eq!(off.resume_at(s(3600), t0), None);
    }

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
