//! `weft-controller`: the controller in standalone mode.
//!
//! ```sh
//! weft-controller --manifests examples/manifests \
//!     --node node-a=/run/weft/node-a.sock --node node-b=/run/weft/node-b.sock \
//!     --pod-reports /var/lib/weft/pods --status /run/weft/controller.json
//! ```
//!
//! * `--manifests DIR|FILE`: the Kubernetes objects (as `kubectl apply -f`).
//! * `--node NAME=SOCKET` (repeatable): node `NAME` of the manifests is
//!   programmed through the `weft-switchd` control socket `SOCKET`. A node of
//!   the model without `--node` is not programmed (logged once per load);
//!   a `--node` the model does not know gets no flows.
//! * `--pod-reports DIR`: the directory the CNI plugin leaves its pod
//!   reports in (`podReportDir` of the conflist; [`protocol::pod_report`]).
//! * `--status FILE`: a JSON file rewritten (atomically) whenever something
//!   changes: the model's generation, its pods (address, node, ofport) and
//!   policies, each node's session state and acknowledged generation, the
//!   last load error, and each node's switchd socket. `weftctl demo` and
//!   `weftctl trace --cluster` read it: a pod's entry has its node, ofport,
//!   MAC, addresses, tenant, switch, subnet and gateway MAC, which is what
//!   a trace needs to build the packet the pod would send.
//! * `--poll-ms` (default 50): how often the manifests and reports are
//!   checked for changes (names, sizes and modification times of the
//!   files; no file is read unless one changed). SIGHUP forces a reload.
//!
//! # Change detection: inotify, with the poll as a fallback
//!
//! The inputs' directories (a file's parent directory) are watched with
//! inotify (`nix::sys::inotify`, already in the tree through rtnetlink and
//! tun-rs; its wrapper is safe, so no `unsafe` here and no new crate: the
//! `notify` crate would bring its own dependency tree for two directories
//! on Linux only). A thread `weft-inotify` blocks reading the instance
//! (tokio's `AsyncFd` constructors are `unsafe` or deprecated as of 1.54)
//! and wakes the main loop; an event (create, delete, modify,
//! close-after-write, rename in or out, attribute change) reloads at once,
//! whether or not the fingerprint changed (file
//! timestamps are coarse: two writes within a few milliseconds can keep
//! size and mtime). Without it, a change waited for the next poll: up to
//! 50 ms, the largest share of the policy-realization time measured by
//! `weftctl demo bench`. The poll stays, for file systems without inotify
//! (NFS, some FUSE), for a directory that appears after start (the pod
//! report directory is created by the first CNI ADD; its watch is added
//! when it exists) and for a queue overflow.
//!
//! # Behaviour
//!
//! On every change: load the manifests (every file is read, only those
//! whose bytes changed are parsed again: `source::ManifestCache`), merge the pod reports
//! (`weft_controller::binding`), translate, compile incrementally
//! (`Compiler::update`: only changed units), then hand every node its new
//! table with a new generation (`session::SessionManager`: full sync on
//! connect, one bundle per diff afterwards, reconnect with backoff). Input
//! that does not load or translate is logged with the object and field
//! and the previous model stays in force (its flows stay on the nodes);
//! the next valid change replaces it. SIGTERM/SIGINT: Goodbye to every
//! switchd and exit; the switches keep forwarding with their tables.
//!
//! # Where a change's time goes
//!
//! Each reload logs one `model compiled` line with its stages in
//! milliseconds (`read_ms` manifests, `reports_ms` pod reports,
//! `translate_ms`, `compile_ms`, `tables_ms` per-node tables), each
//! session a `synced` line per node with the round trip (`ms`: diff, one
//! pipelined bundle, switchd's commit), and switchd a `published` line
//! with `compile_us` (its pipeline) and `persist_us` (journal
//! `fdatasync`). After a reload the main task yields once so the sessions
//! send their bundles before the status file is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use weft_controller::binding::{self, Reported};
use weft_controller::check::gateway_mac;
use weft_controller::compile::{CompileConfig, Compiler};
use weft_controller::model::{LogicalModel, PortKind};
use weft_controller::session::{DesiredState, SessionConfig, SessionManager};
use weft_controller::source::{ManifestCache, load_path_cached};
use weft_controller::translate::incremental::{Edit, Translator};
use weft_controller::translate::policy::{Isolation, isolating_policies};

/// Weft's controller, standalone mode (manifests directory).
#[derive(Debug, Parser)]
#[command(name = "weft-controller", version)]
struct Args {
    /// A YAML file or a directory of `*.yaml`/`*.yml`.
    #[arg(long)]
    manifests: PathBuf,
    /// `NAME=SOCKET`: program node NAME through this switchd socket.
    #[arg(long = "node", value_name = "NAME=SOCKET", required = true)]
    nodes: Vec<String>,
    /// Directory of the CNI plugin's pod reports.
    #[arg(long)]
    pod_reports: Option<PathBuf>,
    /// JSON status file, rewritten on every change.
    #[arg(long)]
    status: Option<PathBuf>,
    /// Change detection interval in milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
}

fn parse_node(s: &str) -> Result<(String, PathBuf)> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_owned(), PathBuf::from(p))),
        _ => bail!("--node {s:?}: expected NAME=SOCKET"),
    }
}

/// Names, sizes and modification times of the inputs: a change of any
/// means "reload".
fn fingerprint(paths: &[&Path]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for p in paths {
        let Ok(meta) = std::fs::metadata(p) else {
            out.push((p.to_path_buf(), u64::MAX, None));
            continue;
        };
        if !meta.is_dir() {
            out.push((p.to_path_buf(), meta.len(), meta.modified().ok()));
            continue;
        }
        let Ok(rd) = std::fs::read_dir(p) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                out.push((e.path(), m.len(), m.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

/// inotify watches on the inputs' directories; see the module doc. A
/// thread (`weft-inotify`) blocks in `read` on the instance and wakes the
/// main loop through `changed` (a `Notify`: a burst of events is one
/// wake-up).
struct Watcher {
    ino: Arc<Inotify>,
    changed: Arc<Notify>,
    /// Directories to watch, and whether the watch is in place.
    dirs: Vec<(PathBuf, bool)>,
}

impl Watcher {
    fn new(inputs: &[&Path]) -> Option<Watcher> {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC)
            .map_err(|e| tracing::warn!(error = %e, "inotify unavailable; polling only"))
            .ok()?;
        let ino = Arc::new(ino);
        let changed = Arc::new(Notify::new());
        let (i, c) = (Arc::clone(&ino), Arc::clone(&changed));
        std::thread::Builder::new()
            .name("weft-inotify".into())
            .spawn(move || {
                loop {
                    match i.read_events() {
                        Ok(_) => c.notify_one(),
                        Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "reading inotify events; polling only");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| tracing::warn!(error = %e, "inotify thread; polling only"))
            .ok()?;
        let dirs = inputs
            .iter()
            .map(|p| {
                let d = if p.is_file() {
                    p.parent().unwrap_or(Path::new(".")).to_path_buf()
                } else {
                    p.to_path_buf()
                };
                (d, false)
            })
            .collect();
        let mut w = Watcher { ino, changed, dirs };
        w.add_missing();
        Some(w)
    }

    /// Adds the watches not yet in place (a directory created after start,
    /// or deleted and created again: `add_watch` on a watched directory
    /// only updates its mask).
    fn add_missing(&mut self) {
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        for (d, ok) in &mut self.dirs {
            if d.is_dir() {
                if !*ok {
                    match self.ino.add_watch(d.as_path(), mask) {
                        Ok(_) => *ok = true,
                        Err(e) => tracing::warn!(dir = %d.display(), error = %e,
                            "inotify watch failed; polling this directory"),
                    }
                }
            } else {
                *ok = false;
            }
        }
    }
}

/// One successful load.
struct Loaded {
    model: LogicalModel,
    reports: Vec<Reported>,
    notes: Vec<String>,
    /// `namespace/name` of every NetworkPolicy loaded.
    policies: Vec<String>,
    /// The policies that isolate each pod.
    isolation: BTreeMap<String, Isolation>,
    /// Milliseconds spent reading and parsing the manifests, reading the
    /// pod reports, and translating (logged per reload).
    read_ms: f64,
    reports_ms: f64,
    translate_ms: f64,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn load(
    args: &Args,
    translator: &mut Option<Translator>,
    cache: &mut ManifestCache,
) -> Result<Loaded, String> {
    let t = Instant::now();
    let mut m = load_path_cached(&args.manifests, cache).map_err(|e| e.to_string())?;
    let read_ms = ms_since(t);
    let t = Instant::now();
    let (reports, mut notes) = match &args.pod_reports {
        Some(d) => binding::read_reports(d),
        None => (Vec::new(), Vec::new()),
    };
    notes.extend(binding::apply_to_manifests(&mut m, &reports));
    let reports_ms = ms_since(t);
    let mut policies: Vec<String> = m
        .network_policies
        .iter()
        .map(|p| {
            let md = &p.object.metadata;
            format!(
                "{}/{}",
                md.namespace.as_deref().unwrap_or("default"),
                md.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    policies.sort();
    let isolation = isolating_policies(&m);
    // Incremental: policies whose object and affected pods did not change
    // since the last load keep their logical objects; on an error the
    // translator keeps the previous objects and model.
    let t_translate = Instant::now();
    let mut t = match translator {
        Some(tr) => tr
            .apply(Edit::Replace(m))
            .map_err(|e| e.to_string())?
            .clone(),
        None => {
            let tr = Translator::new(m).map_err(|e| e.to_string())?;
            let t = tr.translation().clone();
            *translator = Some(tr);
            t
        }
    };
    notes.extend(binding::bind_ports(&mut t.model, &reports));
    notes.extend(t.assumptions);
    Ok(Loaded {
        model: t.model,
        reports,
        notes,
        policies,
        isolation,
        read_ms,
        reports_ms,
        translate_ms: ms_since(t_translate),
    })
}

#[derive(Default)]
struct State {
    generation: u64,
    compiler: Option<Compiler>,
    translator: Option<Translator>,
    /// Parsed manifests by file: a reload parses only changed files.
    cache: ManifestCache,
    reports: usize,
    policies: Vec<String>,
    isolation: BTreeMap<String, Isolation>,
    last_error: Option<String>,
    loads: u64,
    load_ms: f64,
}

fn status_json(
    st: &State,
    sessions: &SessionManager,
    sockets: &BTreeMap<String, PathBuf>,
) -> serde_json::Value {
    let mut pods = serde_json::Map::new();
    let mut policies = Vec::new();
    if let Some(c) = &st.compiler {
        let m = c.model();
        for p in m.pod_ports() {
            if let PortKind::Pod { namespace, pod } = &p.kind {
                pods.insert(
                    format!("{namespace}/{pod}"),
                    json!({
                        "node": p.node,
                        "ips": p.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "mac": p.mac.to_string(),
                        "ofport": p.ofport,
                        "tenant": p.tenant,
                        "switch": m.switches.get(&p.switch).map(|s| s.name.clone()),
                        "subnet": m.switches.get(&p.switch).map(|s| s.subnet.to_string()),
                        "gateway_mac": gateway_mac(m, p).map(|g| g.to_string()),
                        "datapath": p.switch.0,
                        "isolated_by": st
                            .isolation
                            .get(&format!("{namespace}/{pod}"))
                            .cloned()
                            .unwrap_or_default(),
                    }),
                );
            }
        }
        policies.clone_from(&st.policies);
    }
    let nodes: BTreeMap<String, serde_json::Value> = sessions
        .status()
        .into_iter()
        .map(|(n, s)| {
            let socket = sockets.get(&n).map(|p| p.display().to_string());
            (
                n,
                json!({
                    "socket": socket,
                    "connected": s.connected,
                    "acked_generation": s.acked_generation,
                    "syncs": s.syncs,
                    "full_syncs": s.full_syncs,
                    "connects": s.connects,
                    "last_full_sync": s.last_full_sync.map(|c| json!({
                        "added": c.added, "modified": c.modified, "removed": c.removed})),
                    "last_error": s.last_error.map(|e| e.to_string()),
                    "last_connect_error": s.last_connect_error,
                }),
            )
        })
        .collect();
    json!({
        "generation": st.generation,
        "loads": st.loads,
        "last_load_ms": st.load_ms,
        "last_error": st.last_error,
        "pod_reports": st.reports,
        "pods": pods,
        "policies": policies,
        "nodes": nodes,
    })
}

fn write_status(path: &Path, v: &serde_json::Value) {
    let tmp = path.with_extension("tmp");
    let r = std::fs::write(&tmp, v.to_string()).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        tracing::warn!(file = %path.display(), error = %e, "writing the status file");
    }
}

/// Loads, compiles and hands every node its table; on bad input keeps the
/// previous model.
fn reload(args: &Args, st: &mut State, sessions: &SessionManager, known: &[String]) {
    let t0 = Instant::now();
    st.loads += 1;
    let l = match load(args, &mut st.translator, &mut st.cache) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, generation = st.generation,
                "invalid input; the previous model stays in force");
            st.last_error = Some(e);
            return;
        }
    };
    st.last_error = None;
    for n in &l.notes {
        tracing::info!("{n}");
    }
    for n in l.model.nodes.keys() {
        if !known.contains(n) {
            tracing::warn!(node = %n, "node in the model has no --node socket; not programmed");
        }
    }
    st.reports = l.reports.len();
    st.policies = l.policies;
    st.isolation = l.isolation;
    let t_compile = Instant::now();
    let (compiler, unchanged) = match st.compiler.take() {
        Some(mut c) => {
            let d = c.update(l.model);
            (c, d.values().all(|n| n.is_empty()))
        }
        None => (Compiler::new(l.model, CompileConfig::default()), false),
    };
    let compile_ms = ms_since(t_compile);
    if unchanged {
        // Same flows on every node (an editor's temporary file, a file
        // seen half-written and then whole, a comment edit): no new
        // generation, nothing to push. Without this, inotify's event for
        // a file's creation, before its bytes are written, cost every
        // node a full resync of identical tables.
        st.compiler = Some(compiler);
        st.load_ms = ms_since(t0);
        tracing::debug!(
            generation = st.generation,
            ms = st.load_ms,
            "reloaded; no flow changed"
        );
        return;
    }
    let t_tables = Instant::now();
    st.generation += 1;
    for node in known {
        let state = DesiredState {
            generation: st.generation,
            flows: compiler.flows(node),
            cookies: compiler.cookie_infos(node),
        };
        let n = state.flows.len();
        if sessions.set_desired(node, Arc::new(state)).is_ok() {
            tracing::info!(node = %node, generation = st.generation, flows = n, "desired state");
        }
    }
    st.compiler = Some(compiler);
    st.load_ms = ms_since(t0);
    // One line per reload with the stages' times (the sessions log each
    // node's sync time as "synced", switchd its commit as "published").
    tracing::info!(
        generation = st.generation,
        reports = st.reports,
        ms = st.load_ms,
        read_ms = l.read_ms,
        reports_ms = l.reports_ms,
        translate_ms = l.translate_ms,
        compile_ms,
        tables_ms = ms_since(t_tables),
        "model compiled"
    );
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let nodes = args
        .nodes
        .iter()
        .map(|s| parse_node(s))
        .collect::<Result<Vec<_>>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run(args, nodes))
}

async fn run(args: Args, nodes: Vec<(String, PathBuf)>) -> Result<()> {
    let mut sessions = SessionManager::new(SessionConfig::default());
    let known: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let sockets: BTreeMap<String, PathBuf> = nodes.iter().cloned().collect();
    for (n, sock) in nodes {
        sessions.add_node(&n, sock).await;
    }
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut inputs: Vec<&Path> = vec![&args.manifests];
    if let Some(d) = &args.pod_reports {
        inputs.push(d);
    }
    let mut st = State::default();
    let mut seen = None;
    let mut last_status = None;
    let mut tick = tokio::time::interval(Duration::from_millis(args.poll_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watcher = Watcher::new(&inputs);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => {
                if let Some(w) = &mut watcher {
                    w.add_missing();
                }
                false
            }
            () = async {
                match &watcher {
                    Some(w) => w.changed.notified().await,
                    None => std::future::pending().await,
                }
            } => true,
            _ = hup.recv() => { tracing::info!("SIGHUP: reloading"); true }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let fp = fingerprint(&inputs);
        if forced || seen.as_ref() != Some(&fp) {
            seen = Some(fp);
            reload(&args, &mut st, &sessions, &known);
            // Let the session tasks (same thread) send the new state to
            // their nodes before the status file is built and written.
            tokio::task::yield_now().await;
        }
        if let Some(path) = &args.status {
            let v = status_json(&st, &sessions, &sockets);
            if last_status.as_ref() != Some(&v) {
                write_status(path, &v);
                last_status = Some(v);
            }
        }
    }
    tracing::info!("stopping: Goodbye to every switchd (they keep their tables)");
    sessions.shutdown().await;
    Ok(())
}
