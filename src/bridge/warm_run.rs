//! The warm-transfer task: owns every in-flight [`WarmTransfer`], feeds it the bridge's
//! delivery results, the providers' callbacks and the clock, carries out its actions over HTTP
//! and publishes its events. Transfers are persisted one JSON file each under
//! `{outbox_dir}/warm/` after every step, so a restart keeps them visible and their ringing
//! deadlines still fire (a deadline passed while down fires at start).
//!
//! Never blocks a call or an HTTP handler: both hand messages over with `try_send`; provider
//! requests run in their own tasks and report back through the same queue.

use super::config::{BridgeConfig, TwilioConfig};
use super::warm::{Action, Input, Outcome, WarmTransfer, whisper_text};
use super::warm_twilio::{self, Executed};
use super::{BridgeError, HandoffRequest};
use crate::event::{Event, EventKind};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Messages queued for the task before senders are refused.
const QUEUE_CAPACITY: usize = 4096;
/// Finished transfers whose outcome `outcome()` still answers.
const OUTCOMES_KEPT: usize = 10_000;
/// How long an event send may wait for a slow consumer.
const EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Wall milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug)]
enum Msg {
    Register(Box<WarmTransfer>),
    Input(String, Input),
}

#[derive(Debug, Default)]
struct Outcomes {
    by_id: HashMap<String, Outcome>,
    order: VecDeque<String>,
}

impl Outcomes {
    fn set(&mut self, id: &str, o: Outcome) {
        if self.by_id.insert(id.to_owned(), o).is_none() {
            self.order.push_back(id.to_owned());
            while self.order.len() > OUTCOMES_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.by_id.remove(&old);
                }
            }
        }
    }
}

/// Handle to the warm-transfer task; cheap to clone. A disabled handle ignores everything.
#[derive(Debug, Clone, Default)]
pub struct WarmTransfers {
    tx: Option<mpsc::Sender<Msg>>,
    twilio_warm: bool,
    outcomes: Arc<StdMutex<Outcomes>>,
}

/// The running task; [`WarmTask::shutdown`] stops it (state stays on disk).
#[derive(Debug)]
pub struct WarmTask {
    stop: CancellationToken,
    join: JoinHandle<()>,
}

impl WarmTask {
    /// Stops the task; in-flight transfers stay persisted for the next start.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.join.await;
    }
}

/// A warm message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No warm transfer is running for this provider.
    #[error("warm transfer is not enabled")]
    Disabled,
    /// The task is behind; the provider retries the callback.
    #[error("warm transfer queue full")]
    Full,
}

impl WarmTransfers {
    /// Starts the task when `[bridge.twilio]` is in warm mode (else a disabled handle), loading
    /// the transfers a previous run left in flight.
    pub async fn start(
        cfg: &BridgeConfig,
        client: reqwest::Client,
        events: mpsc::Sender<Event>,
    ) -> Result<(Self, Option<WarmTask>), BridgeError> {
        let Some(twilio) = cfg.twilio.clone().filter(TwilioConfig::is_warm) else {
            return Ok((Self::default(), None));
        };
        let dir = cfg.outbox_dir.join("warm");
        let d = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&d))
            .await?
            .map_err(|e| {
                BridgeError::Outbox(super::outbox::OutboxError::Io {
                    op: "open",
                    path: dir.clone(),
                    source: e,
                })
            })?;
        if !loaded.is_empty() {
            tracing::info!(count = loaded.len(), "resuming in-flight warm transfers");
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let outcomes = Arc::new(StdMutex::new(Outcomes::default()));
        let mut transfers = HashMap::new();
        for t in loaded {
            if let Ok(mut o) = outcomes.lock() {
                o.set(&t.handoff_id, t.outcome());
            }
            transfers.insert(t.handoff_id.clone(), t);
        }
        let stop = CancellationToken::new();
        let run = Run {
            twilio,
            client,
            dir,
            events,
            transfers,
            outcomes: Arc::clone(&outcomes),
            tx: tx.clone(),
        };
        let join = tokio::spawn(run.run(rx, stop.clone()));
        Ok((
            Self {
                tx: Some(tx),
                twilio_warm: true,
                outcomes,
            },
            Some(WarmTask { stop, join }),
        ))
    }

    /// Whether Twilio handoffs go through the warm flow.
    pub fn twilio_enabled(&self) -> bool {
        self.twilio_warm
    }

    /// Starts tracking a handoff submitted to the bridge (a no-op for other providers, blind
    /// mode, and a handoff already tracked).
    pub fn register(&self, req: &HandoffRequest, cfg: &BridgeConfig) {
        let (Some(tx), EventKind::Handoff(h)) = (&self.tx, &req.event.kind) else {
            return;
        };
        let Some(tw) = cfg
            .twilio
            .as_ref()
            .filter(|_| req.provider == crate::protocol::Provider::Twilio)
        else {
            return;
        };
        let mut targets = vec![tw.agent.clone()];
        targets.extend(tw.fallback.iter().cloned());
        let t = WarmTransfer::new(
            &h.handoff_id,
            &req.event.call_id,
            req.provider.name(),
            req.event.t_ms,
            targets,
            &whisper_text(&h.summary),
            now_ms(),
            tw.answer_timeout_s.saturating_mul(1000),
        );
        if let Ok(mut o) = self.outcomes.lock() {
            o.set(&h.handoff_id, Outcome::Pending);
        }
        if tx.try_send(Msg::Register(Box::new(t))).is_err() {
            tracing::error!(handoff_id = %h.handoff_id, "warm transfer queue full; transfer not tracked");
        }
    }

    /// Feeds the bridge's delivery results: the Twilio call update is the caller going on hold.
    pub fn on_event(&self, e: &Event) {
        let input = match &e.kind {
            EventKind::HandoffDelivered(d) if d.target == "twilio" => {
                (d.handoff_id.clone(), Input::CallerMoved)
            }
            EventKind::HandoffFailed(d) if d.target == "twilio" => (
                d.handoff_id.clone(),
                Input::CallerMoveFailed(d.error.clone().unwrap_or_default()),
            ),
            _ => return,
        };
        if let Err(err) = self.report(&input.0, input.1) {
            tracing::debug!(handoff_id = %input.0, %err, "delivery result not passed to warm transfer");
        }
    }

    /// Queues a provider report about `handoff_id`.
    pub fn report(&self, handoff_id: &str, input: Input) -> Result<(), ReportError> {
        let tx = self.tx.as_ref().ok_or(ReportError::Disabled)?;
        tx.try_send(Msg::Input(handoff_id.to_owned(), input))
            .map_err(|_| ReportError::Full)
    }

    /// The transfer outcome of `handoff_id`, if this gateway tracks or recently tracked it.
    pub fn outcome(&self, handoff_id: &str) -> Option<Outcome> {
        self.outcomes.lock().ok()?.by_id.get(handoff_id).copied()
    }
}

struct Run {
    twilio: TwilioConfig,
    client: reqwest::Client,
    dir: PathBuf,
    events: mpsc::Sender<Event>,
    transfers: HashMap<String, WarmTransfer>,
    outcomes: Arc<StdMutex<Outcomes>>,
    tx: mpsc::Sender<Msg>,
}

impl Run {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, stop: CancellationToken) {
        // Deadlines that passed while the gateway was down fire now.
        self.tick().await;
        loop {
            let next = self
                .transfers
                .values()
                .filter_map(WarmTransfer::deadline_ms)
                .min();
            let wait = async {
                match next {
                    Some(d) => {
                        tokio::time::sleep(Duration::from_millis(d.saturating_sub(now_ms()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                msg = rx.recv() => match msg {
                    Some(Msg::Register(t)) => self.register(*t).await,
                    Some(Msg::Input(id, input)) => self.apply(&id, input).await,
                    None => break,
                },
                () = wait => self.tick().await,
            }
        }
    }

    async fn register(&mut self, t: WarmTransfer) {
        if self.transfers.contains_key(&t.handoff_id) {
            return;
        }
        self.persist(&t).await;
        self.transfers.insert(t.handoff_id.clone(), t);
    }

    async fn tick(&mut self) {
        let now = now_ms();
        let due: Vec<String> = self
            .transfers
            .values()
            .filter(|t| t.deadline_ms().is_some_and(|d| d <= now))
            .map(|t| t.handoff_id.clone())
            .collect();
        for id in due {
            self.apply(&id, Input::Tick).await;
        }
    }

    async fn apply(&mut self, id: &str, input: Input) {
        let Some(t) = self.transfers.get_mut(id) else {
            tracing::debug!(handoff_id = %id, ?input, "report for an unknown warm transfer");
            return;
        };
        let actions = t.step(input, now_ms());
        let t = t.clone();
        if let Ok(mut o) = self.outcomes.lock() {
            o.set(id, t.outcome());
        }
        if t.is_done() {
            self.transfers.remove(id);
            let path = file_for(&self.dir, id);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        } else if !actions.is_empty() {
            self.persist(&t).await;
        }
        for a in actions {
            self.act(&t, a).await;
        }
    }

    async fn act(&self, t: &WarmTransfer, action: Action) {
        if let Action::Emit(kind) = action {
            let e = Event {
                call_id: t.call_id.clone(),
                t_ms: t.t_ms,
                kind,
            };
            match tokio::time::timeout(EVENT_SEND_TIMEOUT, self.events.send(e)).await {
                Ok(Ok(())) => {}
                _ => tracing::warn!(handoff_id = %t.handoff_id, "warm transfer event dropped"),
            }
            return;
        }
        let (client, cfg, tx) = (self.client.clone(), self.twilio.clone(), self.tx.clone());
        let (call_id, id) = (t.call_id.clone(), t.handoff_id.clone());
        tokio::spawn(async move {
            let attempt = match &action {
                Action::DialAgent { attempt, .. } => *attempt,
                _ => 0,
            };
            let input = match warm_twilio::execute(&client, &cfg, &call_id, &id, &action).await {
                Executed::Done => return,
                Executed::LegCreated(leg_id) => Input::LegCreated { attempt, leg_id },
                Executed::LegRefused(error) => {
                    tracing::warn!(handoff_id = %id, attempt, %error, "agent leg refused");
                    Input::LegRefused { attempt }
                }
                Executed::Failed(error) => {
                    tracing::warn!(handoff_id = %id, ?action, %error, "warm transfer request failed");
                    return;
                }
            };
            let _ = tx.send(Msg::Input(id, input)).await;
        });
    }

    async fn persist(&self, t: &WarmTransfer) {
        let path = file_for(&self.dir, &t.handoff_id);
        let Ok(bytes) = serde_json::to_vec(t) else {
            return;
        };
        let res = tokio::task::spawn_blocking(move || write_atomic(&path, &bytes)).await;
        if !matches!(res, Ok(Ok(()))) {
            tracing::warn!(handoff_id = %t.handoff_id, "cannot persist warm transfer state");
        }
    }
}

fn file_for(dir: &Path, handoff_id: &str) -> PathBuf {
    dir.join(format!("{}.json", super::transfer::pct(handoff_id)))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Reads every persisted transfer; unreadable files are logged and left for a human.
fn load(dir: &Path) -> std::io::Result<Vec<WarmTransfer>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<WarmTransfer>(&b).map_err(|e| e.to_string()))
        {
            Ok(t) if !t.is_done() => out.push(t),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable warm transfer state")
            }
        }
    }
    Ok(out)
}
