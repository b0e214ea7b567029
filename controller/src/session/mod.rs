//! Sessions: the controller keeps one `protocol::ctl` session with every
//! node's `weft-switchd` and brings the node to the state the controller
//! wants, whatever restarts on either side.
//!
//! # What a session does
//!
//! A [`NodeSession`] is one tokio task per node (control plane only). The
//! controller hands it [`DesiredState`]s: a generation number (increasing),
//! the node's complete flow table, and its cookie table. The session:
//!
//! 1. connects to the node's switchd Unix socket and says Hello;
//! 2. **full sync** on every (re)connect: one `ReplaceFlows` with the whole
//!    table. switchd computes the difference itself and publishes it in
//!    one pipeline generation, so a switchd that already holds the table
//!    (it persists its flows, or the controller is the one that restarted)
//!    sees *no change*: counters kept, no packet treated differently
//!    (OVN's ofctrl does the same after reconnecting: it re-reads the
//!    switch and sends only differences). Then `SetCookieInfo` with
//!    `replace`;
//! 3. **diffs** afterwards: each new desired state is compared with the one
//!    the node acknowledged ([`diff`]), and the changes are sent as one
//!    bundle (open, add, commit: validated together, published once);
//! 4. records the acknowledged generation in [`NodeStatus`].
//!
//! A dropped connection (switchd killed or restarted) is noticed while idle
//! (the read side sees EOF) or by a failing request; the session then
//! reconnects with exponential backoff (`backoff_initial` doubling up to
//! `backoff_max`, reset after a successful Hello) and does a full sync
//! again. Meanwhile switchd forwards with its last tables: nothing on the
//! switchd side depends on the controller being connected.
//!
//! # Coalescing
//!
//! Desired states go through a `tokio::sync::watch` channel: a queue of
//! capacity one where a newer state replaces an older one not yet taken.
//! A burst of states therefore costs at most one sync in flight plus one
//! sync to the newest; intermediate generations are skipped (and never
//! acknowledged; [`NodeStatus::acked_generation`] jumps, and waiting for
//! "at least G" is what [`SessionManager::wait_all_acked`] does).
//!
//! # A rejected state
//!
//! If switchd refuses a state (a flow it cannot compile), the change was
//! atomic, so the node keeps the previous table. The session records a
//! [`SyncError`] naming the node, the generation and the offending flow,
//! and does **not** retry that generation: it waits for a newer one. After
//! a reconnect it full-syncs the last state the node accepted instead, so
//! a restarted switchd does not lose its table to a bad update.
//!
//! # Choices where the issue is silent
//!
//! * No protocol change: a full `ReplaceFlows` on reconnect costs one
//!   compile on the switchd side and changes nothing when the tables agree,
//!   so a "which generation do you hold" exchange is not needed to keep
//!   traffic undisturbed. (It would save that compile for very large
//!   tables; see the report.)
//! * The session owns the flow table: flows added by hand with `weftctl`
//!   are removed at the next full sync (as OVN does with `ovs-ofctl`
//!   changes). Ports are not touched (the CNI plugin adds them).
//! * The cookie table is sent after the flows, as its own request: the
//!   flows are atomic, the cookie table (used only by `--explain` and
//!   `trace`) follows a moment later.
//! * A full table must fit in one frame (16 MiB, about 500 000 typical
//!   flows); larger tables are not split yet.

mod conn;
mod diff;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protocol::ctl::{Body, BundleId, ChangeCounts, CookieInfo, CtlError, FlowChange};
use protocol::flow::FlowSpec;
use protocol::text::format_flow;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use conn::{ConnError, Connection};
pub use diff::diff;

/// What the controller wants a node to hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredState {
    /// Increases with every change the controller computes (cluster-wide
    /// or per node; only the order matters).
    pub generation: u64,
    /// The node's complete flow table.
    pub flows: Vec<FlowSpec>,
    /// The node's complete cookie table (what produced each cookie).
    pub cookies: Vec<CookieInfo>,
}

/// Session tuning.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Name sent in Hello (switchd logs it).
    pub client_name: String,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Longest a connect or one sync may take before the connection is
    /// dropped and retried.
    pub request_timeout: Duration,
    /// Changes per `BundleAdd` frame.
    pub bundle_chunk: usize,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            client_name: concat!("weft-controller ", env!("CARGO_PKG_VERSION")).into(),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            bundle_chunk: 4096,
        }
    }
}

/// Switchd refused a desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    /// The node.
    pub node: String,
    /// The refused generation.
    pub generation: u64,
    /// The offending flow in `ovs-ofctl` text, when known.
    pub flow: Option<String>,
    /// Switchd's error (boxed: it is large and rare).
    pub error: Box<CtlError>,
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}: generation {}", self.node, self.generation)?;
        if let Some(flow) = &self.flow {
            write!(f, ": flow {flow}")?;
        }
        write!(f, ": {}", self.error)
    }
}

impl std::error::Error for SyncError {}

/// What a session knows about its node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Connected and greeted.
    pub connected: bool,
    /// The newest generation the node acknowledged (it holds that table).
    pub acked_generation: Option<u64>,
    /// The last refused state.
    pub last_error: Option<SyncError>,
    /// The last connection failure (connect, transport, timeout).
    pub last_connect_error: Option<String>,
    /// Successful connections so far.
    pub connects: u64,
    /// Syncs the node accepted (full and diff).
    pub syncs: u64,
    /// Full syncs done (one per connection that had a state to send).
    pub full_syncs: u64,
    /// States the node refused.
    pub refusals: u64,
    /// What the last full sync changed on the node (all zero: the node
    /// already held the table).
    pub last_full_sync: Option<ChangeCounts>,
    /// What the last sync (full or diff) changed.
    pub last_change: Option<ChangeCounts>,
}

/// The session with one node's switchd. Dropping it stops the task (it
/// says Goodbye if connected); [`shutdown`](Self::shutdown) also waits
/// for it to end.
#[derive(Debug)]
pub struct NodeSession {
    name: String,
    desired: watch::Sender<Option<Arc<DesiredState>>>,
    status: watch::Receiver<NodeStatus>,
    /// Dropped or fired: the task says Goodbye and ends.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl NodeSession {
    /// Starts the session task (on the current tokio runtime) for node
    /// `name` whose switchd listens on `socket`. It connects at once and
    /// syncs as soon as a desired state is set.
    pub fn spawn(name: &str, socket: PathBuf, cfg: SessionConfig) -> NodeSession {
        let (desired, desired_rx) = watch::channel(None);
        let (status_tx, status) = watch::channel(NodeStatus::default());
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(
            Task {
                name: name.into(),
                socket,
                cfg,
                status: status_tx,
                last_good: None,
                rejected: None,
            },
            desired_rx,
            stop_rx,
        ));
        NodeSession {
            name: name.into(),
            desired,
            status,
            stop,
            task,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the state the node should reach; replaces any state not yet
    /// taken by the session (coalescing).
    pub fn set_desired(&self, state: Arc<DesiredState>) {
        self.desired.send_replace(Some(state));
    }

    /// A snapshot of the status.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }

    /// Waits until the node acknowledged `generation` or a newer one;
    /// fails if the node refused a generation at least as new (it will not
    /// reach `generation` without a newer state).
    ///
    /// # Errors
    /// The refusal.
    pub async fn wait_acked(&self, generation: u64) -> Result<(), SyncError> {
        wait_acked(self.status.clone(), generation).await
    }

    /// Says Goodbye (if connected) and stops the task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn wait_acked(mut rx: watch::Receiver<NodeStatus>, generation: u64) -> Result<(), SyncError> {
    let s = rx
        .wait_for(|s| {
            s.acked_generation.is_some_and(|g| g >= generation)
                || s.last_error
                    .as_ref()
                    .is_some_and(|e| e.generation >= generation)
        })
        .await
        .map(|s| s.clone());
    match s {
        Ok(s) if s.acked_generation.is_some_and(|g| g >= generation) => Ok(()),
        Ok(s) => Err(s
            .last_error
            .unwrap_or_else(|| unreachable_error(generation))),
        // The task ended (only on shutdown).
        Err(_) => Err(unreachable_error(generation)),
    }
}

fn unreachable_error(generation: u64) -> SyncError {
    SyncError {
        node: String::new(),
        generation,
        flow: None,
        error: Box::new(CtlError::Internal {
            detail: "session stopped".into(),
        }),
    }
}

/// Sessions with many nodes.
#[derive(Debug, Default)]
pub struct SessionManager {
    cfg: SessionConfig,
    nodes: BTreeMap<String, NodeSession>,
}

/// The node is not managed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no session for node {0:?}")]
pub struct UnknownNode(pub String);

impl SessionManager {
    /// No nodes yet.
    pub fn new(cfg: SessionConfig) -> SessionManager {
        SessionManager {
            cfg,
            nodes: BTreeMap::new(),
        }
    }

    /// Starts a session with node `name` at `socket` (replacing an existing
    /// session of that name, which is stopped).
    pub async fn add_node(&mut self, name: &str, socket: PathBuf) {
        let s = NodeSession::spawn(name, socket, self.cfg.clone());
        if let Some(old) = self.nodes.insert(name.into(), s) {
            old.shutdown().await;
        }
    }

    /// Stops the session with node `name` (its switchd keeps its tables).
    pub async fn remove_node(&mut self, name: &str) -> Result<(), UnknownNode> {
        let s = self
            .nodes
            .remove(name)
            .ok_or_else(|| UnknownNode(name.into()))?;
        s.shutdown().await;
        Ok(())
    }

    /// Sets node `name`'s desired state (coalescing, see the module docs).
    ///
    /// # Errors
    /// The node has no session.
    pub fn set_desired(&self, name: &str, state: Arc<DesiredState>) -> Result<(), UnknownNode> {
        self.nodes
            .get(name)
            .ok_or_else(|| UnknownNode(name.into()))?
            .set_desired(state);
        Ok(())
    }

    /// The session with node `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSession> {
        self.nodes.get(name)
    }

    /// Every node's status, by name.
    pub fn status(&self) -> BTreeMap<String, NodeStatus> {
        self.nodes
            .iter()
            .map(|(n, s)| (n.clone(), s.status()))
            .collect()
    }

    /// Waits until every node acknowledged `generation` or newer. Fails
    /// with every node's refusal if some node refused a generation at
    /// least as new. Bound it with `tokio::time::timeout`.
    ///
    /// # Errors
    /// The refusals.
    pub async fn wait_all_acked(&self, generation: u64) -> Result<(), Vec<SyncError>> {
        let mut errors = Vec::new();
        for s in self.nodes.values() {
            if let Err(e) = s.wait_acked(generation).await {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Stops every session (Goodbye to each switchd).
    pub async fn shutdown(self) {
        for (_, s) in self.nodes {
            s.shutdown().await;
        }
    }
}

/// The session task's state that outlives connections.
struct Task {
    name: String,
    socket: PathBuf,
    cfg: SessionConfig,
    status: watch::Sender<NodeStatus>,
    /// The last state the node accepted.
    last_good: Option<Arc<DesiredState>>,
    /// The last generation the node refused (never retried).
    rejected: Option<u64>,
}

/// How a connection ended.
enum End {
    /// The session was stopped.
    Shutdown,
    /// The connection failed.
    Lost(ConnError),
}

async fn run(
    mut t: Task,
    mut desired: watch::Receiver<Option<Arc<DesiredState>>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = t.cfg.backoff_initial;
    loop {
        let connect = tokio::time::timeout(
            t.cfg.request_timeout,
            Connection::connect(&t.socket, &t.cfg.client_name),
        );
        let conn = tokio::select! {
            r = connect => r,
            _ = &mut stop => return,
        };
        let err = match conn {
            Ok(Ok(conn)) => {
                backoff = t.cfg.backoff_initial;
                tracing::info!(node = %t.name, server = %conn.server, "connected");
                t.status.send_modify(|s| {
                    s.connected = true;
                    s.connects += 1;
                    s.last_connect_error = None;
                });
                let end = serve(&mut t, conn, &mut desired, &mut stop).await;
                t.status.send_modify(|s| s.connected = false);
                match end {
                    End::Shutdown => return,
                    End::Lost(e) => e.to_string(),
                }
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_string(),
        };
        tracing::warn!(node = %t.name, socket = %t.socket.display(), error = %err,
            retry_ms = backoff.as_millis() as u64, "switchd connection lost");
        t.status
            .send_modify(|s| s.last_connect_error = Some(err.clone()));
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = &mut stop => return,
        }
        backoff = (backoff * 2).min(t.cfg.backoff_max);
    }
}

/// One connection: full sync, then diffs, until the connection fails or
/// the session stops.
async fn serve(
    t: &mut Task,
    mut conn: Connection,
    desired: &mut watch::Receiver<Option<Arc<DesiredState>>>,
    stop: &mut oneshot::Receiver<()>,
) -> End {
    // What the node holds, as far as this connection knows (None: unknown,
    // the next sync is a full one).
    let mut on_node: Option<Arc<DesiredState>> = None;
    loop {
        // Checked here too, so a stream of new states cannot delay a stop.
        if !matches!(stop.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
            conn.goodbye().await;
            return End::Shutdown;
        }
        let want = desired.borrow_and_update().clone();
        let target = match want {
            Some(d) if t.rejected == Some(d.generation) => t.last_good.clone(),
            other => other,
        };
        if let Some(target) = target
            && on_node.as_ref().map(|o| o.generation) != Some(target.generation)
        {
            let full = on_node.is_none();
            let t0 = std::time::Instant::now();
            let r = tokio::time::timeout(
                t.cfg.request_timeout,
                sync(&mut conn, on_node.as_deref(), &target, t.cfg.bundle_chunk),
            )
            .await;
            match r {
                Err(_) => {
                    return End::Lost(ConnError::Protocol(format!(
                        "sync of generation {} timed out",
                        target.generation
                    )));
                }
                Ok(Err(SyncFail::Conn(e))) => return End::Lost(e),
                Ok(Err(SyncFail::Refused { flow, error })) => {
                    let e = SyncError {
                        node: t.name.clone(),
                        generation: target.generation,
                        flow,
                        error: Box::new(error),
                    };
                    tracing::error!(node = %t.name, error = %e, "switchd refused the desired state");
                    t.rejected = Some(target.generation);
                    t.status.send_modify(|s| {
                        s.refusals += 1;
                        s.last_error = Some(e);
                    });
                }
                Ok(Ok(counts)) => {
                    tracing::info!(node = %t.name, generation = target.generation, full,
                        added = counts.added, modified = counts.modified,
                        removed = counts.removed,
                        ms = t0.elapsed().as_secs_f64() * 1e3, "synced");
                    t.status.send_modify(|s| {
                        s.acked_generation = Some(target.generation);
                        s.syncs += 1;
                        s.last_change = Some(counts);
                        if full {
                            s.full_syncs += 1;
                            s.last_full_sync = Some(counts);
                        }
                    });
                    t.last_good = Some(target.clone());
                    on_node = Some(target);
                }
            }
            continue;
        }
        tokio::select! {
            _ = &mut *stop => {
                conn.goodbye().await;
                return End::Shutdown;
            }
            r = desired.changed() => {
                if r.is_err() {
                    conn.goodbye().await;
                    return End::Shutdown;
                }
            }
            e = conn.closed() => return End::Lost(e),
        }
    }
}

enum SyncFail {
    Conn(ConnError),
    Refused {
        flow: Option<String>,
        error: CtlError,
    },
}

impl From<ConnError> for SyncFail {
    fn from(e: ConnError) -> SyncFail {
        SyncFail::Conn(e)
    }
}

/// Brings the node from `from` (None: unknown, full sync) to `to`.
async fn sync(
    conn: &mut Connection,
    from: Option<&DesiredState>,
    to: &DesiredState,
    chunk: usize,
) -> Result<ChangeCounts, SyncFail> {
    let counts = match from {
        None => {
            let r = conn
                .request(Body::ReplaceFlows {
                    flows: to.flows.clone(),
                })
                .await?;
            match r {
                Body::FlowsChanged(c) => c,
                Body::Error(error) => {
                    let flow = bad_flow(&error, |i| to.flows.get(i).map(format_flow));
                    return Err(SyncFail::Refused { flow, error });
                }
                b => return Err(unexpected("ReplaceFlows", &b)),
            }
        }
        Some(from) => {
            let changes = diff(&from.flows, &to.flows);
            if changes.is_empty() {
                ChangeCounts::default()
            } else {
                bundle(conn, &changes, to.generation, chunk).await?
            }
        }
    };
    if from.is_none_or(|f| f.cookies != to.cookies) {
        match conn
            .request(Body::SetCookieInfo {
                entries: to.cookies.clone(),
                replace: true,
            })
            .await?
        {
            Body::Ok => {}
            Body::Error(error) => return Err(SyncFail::Refused { flow: None, error }),
            b => return Err(unexpected("SetCookieInfo", &b)),
        }
    }
    Ok(counts)
}

/// Sends `changes` as one bundle.
async fn bundle(
    conn: &mut Connection,
    changes: &[FlowChange],
    generation: u64,
    chunk: usize,
) -> Result<ChangeCounts, SyncFail> {
    // One bundle at a time per connection: the id only has to be unique
    // among open ones; the generation's low bits make logs readable.
    let bundle_id = BundleId(generation as u32);
    let refused = |error: CtlError| {
        let flow = bad_flow(&error, |i| changes.get(i).map(format_change));
        SyncFail::Refused { flow, error }
    };
    if changes.len() <= chunk.max(1) {
        // The usual diff: open, add and commit in one round trip (the
        // server handles them in order). If the open fails the add and
        // commit fail with "no such bundle"; if only the add fails, the
        // bundle committed after it is empty (changes nothing), and the
        // add's refusal is what is reported.
        let r = conn
            .pipeline(vec![
                Body::BundleOpen { bundle_id },
                Body::BundleAdd {
                    bundle_id,
                    changes: changes.to_vec(),
                },
                Body::BundleCommit { bundle_id },
            ])
            .await?;
        let mut r = r.into_iter();
        let (open, add, commit) = (r.next(), r.next(), r.next());
        return match (open, add, commit) {
            (Some(Body::Error(e)), _, _) | (_, Some(Body::Error(e)), _) => Err(refused(e)),
            (Some(Body::Ok), Some(Body::Ok), Some(Body::FlowsChanged(c))) => Ok(c),
            (_, _, Some(Body::Error(e))) => Err(refused(e)),
            (o, a, c) => {
                let name = |b: &Option<Body>| b.as_ref().map_or("nothing", Body::name);
                Err(SyncFail::Conn(ConnError::Protocol(format!(
                    "bundle answered by {}, {}, {}",
                    name(&o),
                    name(&a),
                    name(&c)
                ))))
            }
        };
    }
    match conn.request(Body::BundleOpen { bundle_id }).await? {
        Body::Ok => {}
        Body::Error(e) => return Err(refused(e)),
        b => return Err(unexpected("BundleOpen", &b)),
    }
    for part in changes.chunks(chunk.max(1)) {
        match conn
            .request(Body::BundleAdd {
                bundle_id,
                changes: part.to_vec(),
            })
            .await?
        {
            Body::Ok => {}
            Body::Error(e) => {
                let _ = conn.request(Body::BundleDiscard { bundle_id }).await?;
                return Err(refused(e));
            }
            b => return Err(unexpected("BundleAdd", &b)),
        }
    }
    match conn.request(Body::BundleCommit { bundle_id }).await? {
        Body::FlowsChanged(c) => Ok(c),
        Body::Error(e) => Err(refused(e)),
        b => Err(unexpected("BundleCommit", &b)),
    }
}

fn unexpected(request: &str, b: &Body) -> SyncFail {
    SyncFail::Conn(ConnError::Protocol(format!(
        "{request} answered by {}",
        b.name()
    )))
}

fn format_change(c: &FlowChange) -> String {
    match c {
        FlowChange::Add(f) => format!("add {}", format_flow(f)),
        FlowChange::Modify(m) => format!("modify {}", format_flow(&m.spec)),
        FlowChange::Delete(f) => format!("delete {f:?}"),
    }
}

/// The flow an error names: the server's text, else the request's item
/// at the error's index.
fn bad_flow(e: &CtlError, item: impl Fn(usize) -> Option<String>) -> Option<String> {
    match e {
        CtlError::BadFlow { flow, index, .. } => {
            if flow.is_empty() {
                item(*index)
            } else {
                Some(flow.clone())
            }
        }
        CtlError::BundleFailed { index, error, .. } => match error.as_ref() {
            CtlError::BadFlow { flow, .. } if !flow.is_empty() => Some(flow.clone()),
            _ => item(*index),
        },
        _ => None,
    }
}
