//! One simulated provider stream: the per-connection task of `simulate`.

use super::*;

/// One simulated provider stream: connects, streams the shared render at the configured pace,
/// pings, posts the call's transcript lines and counts how it ended.
pub(super) struct Conn {
    pub(super) call_id: String,
    pub(super) rendered: Arc<Rendered>,
    pub(super) totals: Arc<Totals>,
    pub(super) ws_url: Arc<str>,
    pub(super) http_base: Arc<str>,
    pub(super) http: reqwest::Client,
    pub(super) auth: SimAuth,
    pub(super) api_token: Option<String>,
    pub(super) transcript: Arc<Vec<TranscriptLine>>,
    pub(super) rate: Rate,
    pub(super) jitter_ms: f64,
    pub(super) rng: Rng,
    /// Where to note when this call's media began (when handoffs are watched).
    pub(super) origins: Option<Arc<MediaOrigins>>,
    /// A ping after every this many media frames.
    pub(super) ping_every: Option<u64>,
    /// Spreads the connections' pings over the interval.
    pub(super) ping_phase: u64,
}

/// Read buffer of a simulated stream: the gateway sends it only pongs and a close frame.
const SIM_READ_BUFFER_BYTES: usize = 4096;

enum Outcome {
    Completed,
    Other,
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Conn {
    pub(super) async fn run(mut self) {
        let t = self.totals.clone();
        let Ok(mut req) = self.ws_url.as_ref().into_client_request() else {
            t.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let header = match &self.auth {
            SimAuth::None => None,
            SimAuth::Twilio(token) => Some((
                "x-twilio-signature",
                crate::server::auth::twilio_signature(token, &self.ws_url, &[]),
            )),
            SimAuth::Bearer(token) => Some(("authorization", format!("Bearer {token}"))),
        };
        if let Some((name, value)) = header
            && let Ok(v) = value.parse()
        {
            req.headers_mut().insert(name, v);
        }
        let connecting = Instant::now();
        // A provider streams small messages every 20 ms: with Nagle on, each waits for the ACK
        // of the previous one, which the gateway delays (it rarely writes), adding tens of ms.
        // tungstenite zero-fills its read buffer's spare capacity before every read: at its
        // 128 KiB default that memset was half of the generator's CPU once it read every
        // socket for pongs (the gateway's side was fixed the same way, `READ_BUFFER_BYTES`).
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(SIM_READ_BUFFER_BYTES);
        let ws = match tokio_tungstenite::connect_async_with_config(req, Some(config), true).await {
            Ok((ws, _)) => ws,
            Err(tungstenite::Error::Http(resp)) if resp.status().as_u16() == 503 => {
                t.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::debug!("connect failed: {e}");
                t.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        t.opened.fetch_add(1, Ordering::Relaxed);
        let now = t.active.fetch_add(1, Ordering::Relaxed) + 1;
        t.peak.fetch_max(now, Ordering::Relaxed);
        let outcome = self.stream(ws, connecting).await;
        t.active.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Outcome::Completed => t.completed.fetch_add(1, Ordering::Relaxed),
            Outcome::Other => t.ended_otherwise.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Sends the call while reading the gateway's replies (pongs, the close frame) on the same
    /// connection, then waits for the close.
    async fn stream(&mut self, ws: WsStream, connecting: Instant) -> Outcome {
        let (mut tx, mut rx) = ws.split();
        let totals = self.totals.clone();
        let reader = read_replies(&mut rx, &totals);
        tokio::pin!(reader);
        let sent_all = {
            let sender = self.send_all(&mut tx, connecting);
            tokio::pin!(sender);
            tokio::select! {
                ok = &mut sender => ok,
                // The gateway closed (or the socket broke) before the stop was out.
                _ = &mut reader => return Outcome::Other,
            }
        };
        if !sent_all {
            return Outcome::Other;
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), &mut reader).await;
        // Flushes tungstenite's reply to the gateway's close frame.
        let _ = tx.close().await;
        match closed {
            Ok(Some(1000)) => Outcome::Completed,
            _ => Outcome::Other,
        }
    }

    /// Every message of the call, paced; pings between media frames. False when a send failed.
    async fn send_all(
        &mut self,
        tx: &mut futures_util::stream::SplitSink<WsStream, Message>,
        connecting: Instant,
    ) -> bool {
        let rendered = self.rendered.clone();
        let chunk = rendered.chunk;
        let mut tick = tokio::time::interval(chunk);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0u64;
        let mut media_sent = 0u64;
        let mut lag = LocalHist::default();
        let mut poster = None;
        let mut ok = true;
        for part in &rendered.messages {
            let msg = match part {
                Part::PerCall(m) => {
                    let m = match m {
                        WireMessage::Text(s) => {
                            WireMessage::Text(s.replace(PLACEHOLDER_CALL_ID, &self.call_id))
                        }
                        WireMessage::Binary(b) => WireMessage::Binary(b.clone()),
                    };
                    to_message(m)
                }
                Part::Shared(m) => m.clone(),
                Part::Media(m) => {
                    let mut due = Instant::now();
                    if self.rate == Rate::Realtime {
                        let mut at = tick.tick().await;
                        if self.jitter_ms > 0.0 {
                            let j = f64::from(self.rng.next_f32()) * self.jitter_ms;
                            at += Duration::from_secs_f64(j / 1000.0);
                            tokio::time::sleep_until(at).await;
                        }
                        lag.record(at.elapsed());
                        due = at.into_std();
                    }
                    if media_sent == 0 {
                        self.totals.setup.record(connecting.elapsed());
                        if let Some(o) = &self.origins {
                            o.insert(&self.call_id, due);
                        }
                    }
                    m.clone()
                }
            };
            if tx.send(msg).await.is_err() {
                ok = false;
                break;
            }
            sent += 1;
            if let Part::Media(_) = part {
                media_sent += 1;
                if let Some(every) = self.ping_every
                    && (media_sent + self.ping_phase).is_multiple_of(every)
                {
                    let stamp = self.totals.epoch.elapsed().as_micros() as u64;
                    let ping = Message::Ping(Bytes::copy_from_slice(&stamp.to_be_bytes()));
                    if tx.send(ping).await.is_err() {
                        ok = false;
                        break;
                    }
                    self.totals.pings_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Transcript lines need the call registered: post them once the start is out.
            if poster.is_none() && matches!(part, Part::PerCall(_)) && !self.transcript.is_empty() {
                poster = Some(tokio::spawn(post_transcript(
                    self.http.clone(),
                    format!("{}/v1/calls/{}/transcript", self.http_base, self.call_id),
                    self.api_token.clone(),
                    self.transcript.clone(),
                    self.rate,
                    self.totals.clone(),
                )));
            }
        }
        let t = &self.totals;
        t.messages.fetch_add(sent, Ordering::Relaxed);
        t.send_lag.merge(&lag);
        if let Some(p) = poster {
            p.abort();
        }
        ok
    }
}

/// Reads what the gateway sends on a media stream until it closes: pongs are timed against
/// the stamp their ping carried. The close code, if a close frame came.
async fn read_replies(
    rx: &mut futures_util::stream::SplitStream<WsStream>,
    t: &Totals,
) -> Option<u16> {
    while let Some(m) = rx.next().await {
        match m {
            Ok(Message::Pong(p)) => {
                let now_us = t.epoch.elapsed().as_micros() as u64;
                if let Ok(stamp) = <[u8; 8]>::try_from(p.as_ref()) {
                    let rtt_us = now_us.saturating_sub(u64::from_be_bytes(stamp));
                    t.ping_rtt.record(Duration::from_micros(rtt_us));
                    t.pongs.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

async fn post_transcript(
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    lines: Arc<Vec<TranscriptLine>>,
    rate: Rate,
    totals: Arc<Totals>,
) {
    let start = tokio::time::Instant::now();
    for line in lines.iter() {
        if rate == Rate::Realtime {
            let at = Duration::from_millis(line.t_ms.unwrap_or(0));
            tokio::time::sleep_until(start + at).await;
        }
        let mut req = http.post(&url).json(line);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        if let Ok(r) = req.send().await
            && r.status().as_u16() == 202
        {
            totals.transcript_accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
}
