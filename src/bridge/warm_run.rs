//! The warm-transfer task: owns every in-flight [`WarmTransfer`], feeds it the bridge's
//! delivery results, the providers' callbacks and the clock, carries out its actions over HTTP
//! and publishes its events. Transfers are persisted one JSON file each under
//! `{outbox_dir}/warm/` after every step, so a restart keeps them visible and their ringing
//! deadlines still fire (a deadline passed while down fires at start).
//!
//! Never blocks a call or an HTTP handler: both hand messages over with `try_send`; provider
//! requests run in their own tasks (at most `bridge.max_concurrent_requests` at once, so a burst
//! of handoffs cannot open sockets without bound) and report back through the same queue.
//!
//! Latency: the first agent leg is requested as soon as the task sees the handoff, concurrently
//! with the bridge putting the caller on hold (see [`WarmTransfer::start`]); waiting for the hold
//! first put the bridge's fsynced outbox, its call update and its retry bookkeeping in front of
//! every agent leg.

use super::config::{BridgeConfig, PlivoConfig, TelnyxConfig, TwilioConfig, VonageConfig};
use super::warm::{Action, Input, Outcome, WarmTransfer, whisper_text};
use super::{BridgeError, HandoffRequest, warm_plivo, warm_telnyx, warm_twilio, warm_vonage};
use crate::event::{Event, EventKind};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};
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
    /// What one of the task's own requests gave back, for the transfer `id` of `provider`.
    Result {
        id: String,
        provider: String,
        input: Input,
    },
    /// A report keyed by the caller's call id (a provider that cannot carry the handoff id on
    /// the caller's own webhooks).
    CallInput(String, Input),
    /// A Telnyx step after the agent answered (the transfer itself is already connected).
    Telnyx(warm_telnyx::Step),
}

/// What one executed action gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// Nothing to report.
    Done,
    /// The agent leg was placed; the provider's id of it.
    LegCreated(String),
    /// The agent leg could not be placed.
    LegRefused(String),
    /// A request failed (logged; cancel and route failures leave the caller where they are).
    Failed(String),
}

/// The provider side of a warm transfer: carries out [`Action`]s as that provider's requests.
/// How each provider's callbacks become [`Input`]s lives with its routes
/// (`server::providers_http`), which use the readers of the same `warm_*` modules.
#[derive(Debug, Clone)]
pub enum Executor {
    /// Conference, TwiML whisper, status callbacks.
    Twilio(TwilioConfig),
    /// Call Control: hold playback, `POST /v2/calls`, speak, bridge.
    Telnyx(TelnyxConfig),
    /// Conference XML served by warmline, `POST Call/`, answer and hang-up URLs.
    Plivo(PlivoConfig),
    /// NCCO `conversation`, `POST /v1/calls` with a whisper, signed event webhooks.
    Vonage(VonageConfig),
}

impl Executor {
    /// Sends the requests of one action on the caller's call `call_id` of `handoff_id`.
    pub async fn execute(
        &self,
        client: &reqwest::Client,
        t: &WarmTransfer,
        action: &Action,
    ) -> Executed {
        match self {
            Executor::Twilio(c) => {
                warm_twilio::execute(client, c, &t.call_id, &t.handoff_id, action).await
            }
            Executor::Telnyx(c) => warm_telnyx::execute(client, c, t, action).await,
            Executor::Plivo(c) => warm_plivo::execute(client, c, t, action).await,
            Executor::Vonage(c) => warm_vonage::execute(client, c, t, action).await,
        }
    }

    /// The executors of every provider section in warm mode, by provider name.
    fn all(cfg: &BridgeConfig) -> HashMap<&'static str, Arc<Executor>> {
        let mut m = HashMap::new();
        if let Some(t) = cfg.twilio.clone().filter(TwilioConfig::is_warm) {
            m.insert("twilio", Arc::new(Executor::Twilio(t)));
        }
        if let Some(t) = cfg.telnyx.clone().filter(TelnyxConfig::is_warm) {
            m.insert("telnyx", Arc::new(Executor::Telnyx(t)));
        }
        if let Some(t) = cfg.plivo.clone().filter(PlivoConfig::is_warm) {
            m.insert("plivo", Arc::new(Executor::Plivo(t)));
        }
        if let Some(t) = cfg.vonage.clone().filter(VonageConfig::is_warm) {
            m.insert("vonage", Arc::new(Executor::Vonage(t)));
        }
        m
    }
}

/// How a request's answer is read: a plain request is done on 2xx; an agent leg's also names the
/// new leg, picked out of its JSON answer.
pub(super) type LegIdOf = Option<fn(&serde_json::Value) -> Option<&str>>;

/// Sends one provider request and reads its answer (see [`LegIdOf`]).
pub(super) async fn send(req: reqwest::RequestBuilder, leg_id: LegIdOf) -> Executed {
    let fail = |error: String| match leg_id {
        Some(_) => Executed::LegRefused(error),
        None => Executed::Failed(error),
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let status = resp.status();
    if !status.is_success() {
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return fail(format!("HTTP {}: {}", status.as_u16(), text.trim()));
    }
    let Some(leg_id) = leg_id else {
        return Executed::Done;
    };
    match resp.json::<serde_json::Value>().await {
        Ok(v) => match leg_id(&v) {
            Some(id) if !id.is_empty() => Executed::LegCreated(id.to_owned()),
            _ => Executed::LegRefused("agent leg answer without its id".into()),
        },
        Err(e) => Executed::LegRefused(format!("agent leg answer is not JSON: {e}")),
    }
}

/// The failure of `action`: a refused leg when it placed one, else a logged failure.
pub(super) fn refused(action: &Action, error: String) -> Executed {
    if matches!(action, Action::DialAgent { .. }) {
        Executed::LegRefused(error)
    } else {
        Executed::Failed(error)
    }
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
    /// Providers whose handoffs go through the warm flow.
    warm: Vec<&'static str>,
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
    /// Starts the task when any provider section is in warm mode (else a disabled handle),
    /// loading the transfers a previous run left in flight.
    pub async fn start(
        cfg: &BridgeConfig,
        client: reqwest::Client,
        events: mpsc::Sender<Event>,
    ) -> Result<(Self, Option<WarmTask>), BridgeError> {
        let executors = Executor::all(cfg);
        if executors.is_empty() {
            return Ok((Self::default(), None));
        }
        let mut warm: Vec<&'static str> = executors.keys().copied().collect();
        warm.sort_unstable();
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
            executors,
            client,
            dir,
            events,
            transfers,
            outcomes: Arc::clone(&outcomes),
            tx: tx.clone(),
            permits: Arc::new(Semaphore::new(cfg.max_concurrent_requests.max(1))),
        };
        let join = tokio::spawn(run.run(rx, stop.clone()));
        Ok((
            Self {
                tx: Some(tx),
                warm,
                outcomes,
            },
            Some(WarmTask { stop, join }),
        ))
    }

    /// Whether Twilio handoffs go through the warm flow.
    pub fn twilio_enabled(&self) -> bool {
        self.enabled_for("twilio")
    }

    /// Whether handoffs of `provider` (its name) go through the warm flow.
    pub fn enabled_for(&self, provider: &str) -> bool {
        self.warm.contains(&provider)
    }

    /// Starts tracking a handoff submitted to the bridge (a no-op for providers in blind mode
    /// and a handoff already tracked).
    pub fn register(&self, req: &HandoffRequest, cfg: &BridgeConfig) {
        let (Some(tx), EventKind::Handoff(h)) = (&self.tx, &req.event.kind) else {
            return;
        };
        let provider = req.provider.name();
        if !self.enabled_for(provider) {
            return;
        }
        let Some((agent, fallback, answer_timeout_s)) = warm_route(cfg, provider) else {
            return;
        };
        let targets = warm_targets(agent, fallback, h.route.as_ref());
        let t = WarmTransfer::new(
            &h.handoff_id,
            &req.event.call_id,
            provider,
            req.event.t_ms,
            targets,
            &whisper_text(&h.summary),
            now_ms(),
            answer_timeout_s.saturating_mul(1000),
        );
        if let Ok(mut o) = self.outcomes.lock() {
            o.set(&h.handoff_id, Outcome::Pending);
        }
        if tx.try_send(Msg::Register(Box::new(t))).is_err() {
            tracing::error!(handoff_id = %h.handoff_id, "warm transfer queue full; transfer not tracked");
        }
    }

    /// Feeds the bridge's delivery results: a warm provider's delivery is the caller going on
    /// hold.
    pub fn on_event(&self, e: &Event) {
        let input = match &e.kind {
            EventKind::HandoffDelivered(d) if self.enabled_for(&d.target) => {
                (d.handoff_id.clone(), Input::CallerMoved)
            }
            EventKind::HandoffFailed(d) if self.enabled_for(&d.target) => (
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

    /// Queues a provider report about the transfer whose caller's call is `call_id` (ignored
    /// when none is in flight).
    pub fn report_call(&self, call_id: &str, input: Input) -> Result<(), ReportError> {
        let tx = self.tx.as_ref().ok_or(ReportError::Disabled)?;
        tx.try_send(Msg::CallInput(call_id.to_owned(), input))
            .map_err(|_| ReportError::Full)
    }

    /// Queues a Telnyx step that follows an answered agent leg.
    pub fn telnyx_step(&self, step: warm_telnyx::Step) -> Result<(), ReportError> {
        let tx = self.tx.as_ref().ok_or(ReportError::Disabled)?;
        tx.try_send(Msg::Telnyx(step))
            .map_err(|_| ReportError::Full)
    }

    /// The transfer outcome of `handoff_id`, if this gateway tracks or recently tracked it.
    pub fn outcome(&self, handoff_id: &str) -> Option<Outcome> {
        self.outcomes.lock().ok()?.by_id.get(handoff_id).copied()
    }
}

/// The targets a warm transfer tries in order. A `[[routing]]` rule that chose this handoff's
/// human replaces the section's agent, and its own `fallback` (when it has one) replaces the
/// section's chain, as the contract says: "tried in order when the target does not answer".
fn warm_targets(
    agent: String,
    fallback: Vec<String>,
    route: Option<&crate::event::Route>,
) -> Vec<String> {
    let (agent, fallback) = match route {
        Some(r) if r.fallback.is_empty() => (r.target.clone(), fallback),
        Some(r) => (r.target.clone(), r.fallback.clone()),
        None => (agent, fallback),
    };
    let mut targets = vec![agent];
    targets.extend(fallback);
    targets
}

/// The agent, fallbacks and ring timeout of `provider`'s section.
fn warm_route(cfg: &BridgeConfig, provider: &str) -> Option<(String, Vec<String>, u64)> {
    match provider {
        "twilio" => cfg
            .twilio
            .as_ref()
            .map(|c| (c.agent.clone(), c.fallback.clone(), c.answer_timeout_s)),
        "telnyx" => cfg
            .telnyx
            .as_ref()
            .map(|c| (c.to.clone(), c.fallback.clone(), c.answer_timeout_s)),
        "vonage" => cfg
            .vonage
            .as_ref()
            .map(|c| (c.agent.clone(), c.fallback.clone(), c.answer_timeout_s)),
        "plivo" => cfg.plivo.as_ref().map(|c| {
            let agent = c.agent.clone().unwrap_or_default();
            (agent, c.fallback.clone(), c.answer_timeout_s)
        }),
        _ => None,
    }
}

struct Run {
    /// Warm providers by name.
    executors: HashMap<&'static str, Arc<Executor>>,
    client: reqwest::Client,
    dir: PathBuf,
    events: mpsc::Sender<Event>,
    transfers: HashMap<String, WarmTransfer>,
    outcomes: Arc<StdMutex<Outcomes>>,
    tx: mpsc::Sender<Msg>,
    /// Provider requests in flight.
    permits: Arc<Semaphore>,
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
                    Some(Msg::Input(id, input)) => self.apply(&id, input, None).await,
                    Some(Msg::Result { id, provider, input }) => {
                        self.apply(&id, input, Some(&provider)).await
                    }
                    Some(Msg::CallInput(call, input)) => {
                        let id = self
                            .transfers
                            .values()
                            .find(|t| t.call_id == call)
                            .map(|t| t.handoff_id.clone());
                        if let Some(id) = id {
                            self.apply(&id, input, None).await;
                        }
                    }
                    Some(Msg::Telnyx(step)) => self.telnyx_step(step),
                    None => break,
                },
                () = wait => self.tick().await,
            }
        }
    }

    async fn register(&mut self, mut t: WarmTransfer) {
        if self.transfers.contains_key(&t.handoff_id) {
            return;
        }
        let actions = t.start(now_ms());
        // Persisted before the leg is requested: a crash in between leaves a ringing transfer
        // whose deadline still fires, never a leg nobody tracks.
        self.persist(&t).await;
        for a in actions {
            self.act(&t, a).await;
        }
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
            self.apply(&id, Input::Tick, None).await;
        }
    }

    /// Steps the transfer `id`; `provider` names who answered when the input is the result of
    /// the task's own request.
    async fn apply(&mut self, id: &str, input: Input, provider: Option<&str>) {
        let Some(t) = self.transfers.get_mut(id) else {
            self.orphan(id, input, provider);
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

    /// A report about a transfer that already ended. A leg whose creation comes back only now
    /// rings an agent for nobody, unless the transfer connected (then it may be the answered
    /// leg itself, reported late).
    fn orphan(&self, id: &str, input: Input, provider: Option<&str>) {
        let connected = self
            .outcomes
            .lock()
            .is_ok_and(|o| o.by_id.get(id) == Some(&Outcome::Connected));
        let exec = provider.and_then(|p| self.executors.get(p)).cloned();
        match (input, exec) {
            (Input::LegCreated { leg_id, .. }, Some(exec)) if !connected => {
                let (client, permits) = (self.client.clone(), Arc::clone(&self.permits));
                let stray = WarmTransfer::new(id, "", "", 0, Vec::new(), "", 0, 0);
                let cancel = Action::CancelLeg { leg_id };
                tokio::spawn(async move {
                    let _permit = permits.acquire().await;
                    if let Executed::Failed(error) = exec.execute(&client, &stray, &cancel).await {
                        tracing::warn!(handoff_id = %stray.handoff_id, %error, "cannot cancel a stray agent leg");
                    }
                });
            }
            (input, _) => {
                tracing::debug!(handoff_id = %id, ?input, "report for an unknown warm transfer")
            }
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
        let Some(exec) = self.executors.get(t.provider.as_str()).cloned() else {
            tracing::warn!(handoff_id = %t.handoff_id, provider = %t.provider, "warm transfer of a provider no longer in warm mode");
            return;
        };
        let (client, tx, t) = (self.client.clone(), self.tx.clone(), t.clone());
        let id = t.handoff_id.clone();
        let permits = Arc::clone(&self.permits);
        tokio::spawn(async move {
            let _permit = permits.acquire().await;
            let attempt = match &action {
                Action::DialAgent { attempt, .. } => *attempt,
                _ => 0,
            };
            let input = match exec.execute(&client, &t, &action).await {
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
            let provider = t.provider;
            let _ = tx
                .send(Msg::Result {
                    id,
                    provider,
                    input,
                })
                .await;
        });
    }

    /// Carries out a Telnyx step after the answer (bridging the briefed agent).
    fn telnyx_step(&self, step: warm_telnyx::Step) {
        let Some(Executor::Telnyx(cfg)) = self.executors.get("telnyx").map(|e| e.as_ref()) else {
            return;
        };
        let (client, cfg) = (self.client.clone(), cfg.clone());
        let permits = Arc::clone(&self.permits);
        tokio::spawn(async move {
            let _permit = permits.acquire().await;
            warm_telnyx::run_step(&client, &cfg, &step).await;
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
