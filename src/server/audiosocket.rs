//! The Asterisk AudioSocket listener (`[server] audiosocket_listen`): Asterisk dials out over
//! plain TCP, one connection per call. Each connection is admitted under the same
//! `[server] max_calls` as a WebSocket call and runs the same call task (first-message and
//! idle deadlines, media lead, transcript feed, handoff, `call_ended`, graceful shutdown); only
//! reading and closing differ ([`TcpMedia`]). Each connection also holds one of the
//! `[server] max_connections` places the HTTP listener takes from, so the descriptor budget
//! counts both listeners. Reads are one fixed buffer at a time and a frame
//! is capped from its header, so a peer cannot make a connection hold more than one frame.
//!
//! AudioSocket has no authentication and no control channel back: the listener belongs on a
//! private address (config validation refuses anything but loopback unless
//! `[auth] allow_unauthenticated_audiosocket = true`), and a handoff reaches Asterisk through
//! the webhook. Closing the connection ends the dialplan app cleanly (Asterisk reads it as a
//! hangup of the socket, not of the call), so warmline never sends a hangup frame: the
//! dialplan goes on to its next priority.

use super::AppState;
use super::call::{self, CallTask, End, MediaSocket};
use super::conn;
use crate::config::ServerConfig;
use crate::pipeline::CallError;
use crate::protocol::Provider;
use crate::protocol::audiosocket::{FrameError, FrameStream, MAX_PAYLOAD_BYTES};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Bytes read from the socket at once: a dozen 20 ms frames at 8 kHz. Bounds what one read
/// adds to the call's work and to the frame buffer.
const READ_BYTES: usize = 4096;

/// Accepts AudioSocket connections on `listener` until the gateway shuts down.
pub(super) async fn serve(listener: TcpListener, st: AppState) {
    let token = st.shutdown_token();
    let max_payload_bytes = st.config().server.max_message_bytes.min(MAX_PAYLOAD_BYTES);
    let slots = st.connection_slots();
    loop {
        let (stream, peer) = tokio::select! {
            () = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, most likely: pause rather than spin.
                    tracing::warn!("AudioSocket accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if token.is_cancelled() {
            break;
        }
        // A connection place first, as the HTTP listener takes one: AudioSocket connections
        // count toward `max_connections` (the descriptor budget) like WebSocket ones.
        let Some(slot) = conn::take_slot(&slots, st.metrics()) else {
            tracing::warn!(%peer, "refused AudioSocket connection: max_connections reached");
            continue;
        };
        let Ok(permit) = st.inner.admission.clone().try_acquire_owned() else {
            st.metrics().admission_rejections.inc();
            tracing::warn!(%peer, max_calls = st.config().server.max_calls, "refused AudioSocket connection: at capacity");
            // Asterisk reads the close as the socket's hangup; its dialplan goes on.
            continue;
        };
        let _ = stream.set_nodelay(true);
        let media = TcpMedia {
            _slot: slot,
            stream,
            frames: FrameStream::new(max_payload_bytes),
            buf: vec![0; READ_BYTES].into_boxed_slice(),
        };
        st.inner
            .tracker
            .spawn(call::run(media, st.clone(), Provider::Asterisk, permit));
    }
}

/// One AudioSocket connection as the call task's socket.
struct TcpMedia {
    /// Its place under `max_connections`, freed when the connection is dropped.
    _slot: conn::ConnectionSlot,
    stream: TcpStream,
    frames: FrameStream,
    buf: Box<[u8]>,
}

impl MediaSocket for TcpMedia {
    type Read = std::io::Result<usize>;

    async fn recv(&mut self) -> Self::Read {
        // `read` is cancel-safe: nothing is lost when another branch of the loop wins.
        self.stream.read(&mut self.buf).await
    }

    fn deliver(&mut self, read: Self::Read, task: &mut CallTask) -> Option<End> {
        let n = match read {
            Ok(0) if self.frames.partial_bytes() > 0 => {
                return Some(End::Transport(format!(
                    "connection ended inside a frame ({} bytes of it)",
                    self.frames.partial_bytes()
                )));
            }
            Ok(0) => return Some(End::PeerClosed),
            Ok(n) => n,
            Err(e) => return Some(End::Transport(e.to_string())),
        };
        let arrived = Instant::now();
        self.frames.push(&self.buf[..n]);
        while let Some(ev) = self.frames.next_event() {
            let ev = match ev {
                Ok(ev) => Ok(ev),
                Err(e @ FrameError::TooLong { .. }) => return Some(End::TooBig(e.to_string())),
                Err(FrameError::Protocol(e)) => Err(CallError::Protocol(e)),
            };
            if let Some(end) = task.on_event(ev, arrived) {
                return Some(end);
            }
        }
        None
    }

    async fn ping(&mut self) -> bool {
        // TCP has no ping; the idle deadline finds a stalled peer.
        true
    }

    async fn reply(&mut self, _text: String) -> bool {
        // AudioSocket carries only audio back; no adapter here queues replies.
        true
    }

    async fn close(mut self, _end: &End, _cfg: &ServerConfig) {
        // No hangup frame: the dialplan continues after the app (see the module doc).
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}
