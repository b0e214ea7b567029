//! The control thread: the `protocol::ctl` Unix-socket server and the
//! request logic behind it ([`Controller`]).
//!
//! # Every change, one way
//!
//! 1. Apply the request to a *copy* of the [`SwitchState`].
//! 2. Compile the request's flows alone (so a [`CompileError`]'s index is
//!    the request's own index), then a new [`Pipeline`] from the copy.
//! 3. Persist the copy (atomic rename).
//! 4. Publish the pipeline (`ArcSwap::store`) and make the copy the state;
//!    open or close ports.
//!
//! Any failure before step 4 leaves the state, the file and the datapath
//! untouched and answers a typed [`CtlError`].
//!
//! # Counters across recompilation
//!
//! Each compile creates fresh rule counters. On publish, the counters of
//! the previous snapshot's rules are added to a per-flow carry (by flow
//! serial, see [`crate::state`]) for flows that survive unchanged or
//! modified, so `dump-flows` shows totals. Packets a worker processes with
//! the old snapshot after the swap (at most the batch in flight) are not
//! counted.
//!
//! # Events and timeouts
//!
//! Connections that `Subscribe` get `PacketIn` and/or `FlowRemoved` events
//! (message id 0) from one broadcast channel, sent while the connection
//! waits for its next request. [`expiry_loop`] removes flows whose
//! `hard_timeout` or `idle_timeout` passed, once a second, through the
//! same validate-persist-publish path.
//!
//! # Tunnels and the underlay
//!
//! Every snapshot carries a [`Tunnels`] built from the persisted state
//! (tunnel ports, the underlay choice, the TLV map) and the runtime facts
//! [`underlay_loop`] reads from the kernel (local endpoint, MAC, MTU, next
//! hops; see [`crate::underlay`]). When only those facts change, the
//! snapshot is republished with the same tables
//! ([`Pipeline::with_new_tunnels`]), so rule counters continue. A worker
//! that drops a packet for lack of a next hop reports the remote
//! ([`TunnelEvent::MissingNextHop`], bounded channel, [`spawn_tunnel_event_bridge`]);
//! the loop then resolves it at once.
//!
//! If the tunnel configuration cannot be used yet (no address on the host
//! port, say), the snapshot keeps the underlay bridging (so ARP and the
//! host's traffic work) without tunnel ports; output to them is then
//! counted as an output to an unknown port, and `weftctl dump-tunnels`
//! names the problem.
//!
//! # Thread safety
//!
//! [`Controller`] sits behind one `std::sync::Mutex`, locked per request
//! and never held across an `.await` (the underlay loop copies what it
//! needs, queries netlink unlocked, then locks to publish). Bundles belong
//! to their connection.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protocol::ctl::{
    Body, BundleId, ChangeCounts, CookieInfo, CtlError, DatapathStats, DropCount, FlowChange,
    FlowEntryStats, FlowFilter, FlowRemoved, FrameDecoder, FrameError, MAX_BACKEND_LEN, Message,
    NodeEntry, PacketIn, PortBackendInfo, PortInfo, PortKind, PortOffloadInfo, PortOptions,
    PortRef, PortStats, RemovedReason, TableStat, TraceInput, UnderlayConfig, decode_message,
    encode_frame, negotiate,
};
use protocol::flow::{FlowSpec, PortNo, TableId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use crate::pipeline::{CompileError, Pipeline, SharedPipeline, WorkerCounters};
use crate::state::{FlowId, Journal, JournalOp, PortEntry, SwitchState, unix_ms};
use crate::tunnel::{
    NextHops, TlvMap, TunnelEvent, TunnelKind, TunnelPort, Tunnels, Underlay, overhead, pod_mtu,
};
use crate::underlay::{Netlink, UnderlayFacts};

/// Server name sent in `HelloReply`.
pub const SERVER_NAME: &str = concat!("weft-switchd ", env!("CARGO_PKG_VERSION"));

/// Flow entries per `Flows` reply frame (`more` is set on all but the last).
pub const DUMP_CHUNK: usize = 1024;

/// The datapath as the controller sees it: opens and closes ports (handing
/// them to workers) and reports their counters.
pub trait Datapath: Send {
    /// Opens port `name` of `kind` with `options` and starts forwarding
    /// on it as `ofport`.
    ///
    /// # Errors
    /// Why it could not be opened.
    fn open_port(
        &mut self,
        name: &str,
        kind: &PortKind,
        ofport: PortNo,
        options: &PortOptions,
    ) -> Result<(), String>;
    /// Whether the kernel accepted the vnet header (offloads) on an open
    /// port's device; `None` for a port without a device (tunnel) or not
    /// open.
    fn vnet_hdr(&self, _ofport: PortNo) -> Option<bool> {
        None
    }
    /// What serves an open port when it can differ from its kind: for an
    /// `afxdp` port, `afxdp (...)` or `afpacket (fallback: REASON)`;
    /// `None` otherwise.
    fn backend(&self, _ofport: PortNo) -> Option<String> {
        None
    }
    /// Stops forwarding on `ofport` and closes it.
    fn close_port(&mut self, ofport: PortNo);
    /// Latest counters of open ports.
    fn port_stats(&self) -> BTreeMap<PortNo, PortStats>;
    /// Transmits `frame` on `ofport` (packet-out); unknown ports are
    /// counted by the worker as drops.
    fn transmit(&mut self, ofport: PortNo, frame: Vec<u8>);
    /// MAC address, MTU and state of an open port's interface, as the
    /// kernel reports them (`None` if not known).
    fn link(&self, _ofport: PortNo) -> Option<crate::port::LinkInfo> {
        None
    }
    /// True if `ofport` was opened and not closed since.
    fn is_open(&self, ofport: PortNo) -> bool {
        self.port_stats().contains_key(&ofport)
    }
    /// Latest pipeline counters summed over workers.
    fn counters(&self) -> crate::pipeline::WorkerCounters {
        crate::pipeline::WorkerCounters::default()
    }
    /// Losses outside the pipeline's drop reasons: `(name, count)`.
    fn worker_drops(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// The latest pipeline counters of each worker (published by the
    /// workers every few milliseconds; the caller sums them). None by
    /// default.
    fn worker_counters(&self) -> Vec<WorkerCounters> {
        Vec::new()
    }
}

/// A [`Datapath`] that opens nothing (tests, offline use): every port
/// "opens" (except names starting with `fail`), has zero counters, and
/// transmitted frames are kept. Device ports "accept" the vnet header
/// exactly when their options ask for offloads.
#[derive(Debug, Default)]
pub struct NullDatapath {
    /// Ports currently open.
    pub open: BTreeMap<PortNo, String>,
    /// The vnet-header answer of each open device port.
    pub vnet: BTreeMap<PortNo, bool>,
    /// Frames transmitted, shared so a test can look at them.
    pub sent: SentFrames,
    /// Open `afxdp` ports ("served" by `afxdp (null datapath)`).
    pub afxdp: BTreeMap<PortNo, ()>,
}

/// Frames a [`NullDatapath`] was asked to transmit, in order.
pub type SentFrames = Arc<Mutex<Vec<(PortNo, Vec<u8>)>>>;

impl Datapath for NullDatapath {
    fn open_port(
        &mut self,
        name: &str,
        kind: &PortKind,
        ofport: PortNo,
        options: &PortOptions,
    ) -> Result<(), String> {
        if name.starts_with("fail") {
            return Err("refused by NullDatapath".into());
        }
        self.open.insert(ofport, name.to_owned());
        if !matches!(kind, PortKind::Geneve(_) | PortKind::Vxlan(_)) {
            self.vnet.insert(ofport, options.offloads);
        }
        if *kind == PortKind::AfXdp {
            self.afxdp.insert(ofport, ());
        }
        Ok(())
    }
    fn close_port(&mut self, ofport: PortNo) {
        self.open.remove(&ofport);
        self.vnet.remove(&ofport);
        self.afxdp.remove(&ofport);
    }
    fn backend(&self, ofport: PortNo) -> Option<String> {
        self.afxdp
            .contains_key(&ofport)
            .then(|| "afxdp (null datapath)".to_owned())
    }
    fn vnet_hdr(&self, ofport: PortNo) -> Option<bool> {
        self.vnet.get(&ofport).copied()
    }
    fn port_stats(&self) -> BTreeMap<PortNo, PortStats> {
        self.open
            .keys()
            .map(|p| (*p, PortStats::default()))
            .collect()
    }
    fn transmit(&mut self, ofport: PortNo, frame: Vec<u8>) {
        if let Ok(mut s) = self.sent.lock() {
            s.push((ofport, frame));
        }
    }
}

/// The request logic: state, published pipeline, persistence, datapath.
pub struct Controller {
    state: SwitchState,
    pipeline: Arc<SharedPipeline>,
    datapath: Box<dyn Datapath>,
    generation: u64,
    /// Counters of earlier snapshots, by flow serial: (packets, bytes,
    /// last used).
    carried: HashMap<u64, (u64, u64, u64)>,
    /// Serial of each flow in the published snapshot.
    published: HashMap<FlowId, u64>,
    /// What produced each cookie (`SetCookieInfo`), by cookie value. In
    /// memory only: the controller's session sends the whole table on
    /// every (re)connect, so it is the source of truth.
    cookies: BTreeMap<u64, CookieInfo>,
    /// What the kernel says about the underlay (not persisted).
    net: NetState,
    /// The flow-mod journal next to the snapshot.
    journal: Journal,
}

/// How a commit is persisted (see `crate::state`, "Flow-mod journal").
enum Persist {
    /// A full snapshot (port modifications, settings, ...; or journal
    /// compaction).
    Snapshot,
    /// A journal record: the flow or port changes at this time (Unix ms).
    Journal(u64, Vec<JournalOp>),
}

/// The runtime half of the tunnel configuration (see the module doc).
#[derive(Debug, Default)]
pub struct NetState {
    /// The last successful read of the kernel's view.
    pub facts: Option<UnderlayFacts>,
    /// The next-hop table built from it.
    pub hops: Vec<protocol::ctl::NextHopInfo>,
    /// MACs learned from received tunnel packets, by remote.
    pub learned: std::collections::BTreeMap<std::net::IpAddr, protocol::wire::EthernetAddress>,
    /// Remotes a worker reported without a next hop.
    pub reported: std::collections::BTreeSet<std::net::IpAddr>,
    /// Why the tunnels are not usable, if they are not.
    pub problem: Option<String>,
    /// Wakes [`underlay_loop`].
    pub notify: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("generation", &self.generation)
            .field("flows", &self.state.flows.len())
            .field("ports", &self.state.ports.len())
            .finish_non_exhaustive()
    }
}

fn bad_flow(e: CompileError) -> CtlError {
    CtlError::BadFlow {
        index: e.index,
        flow: e.text,
        field: e.field,
        reason: e.reason,
    }
}

fn internal(e: impl std::fmt::Display) -> CtlError {
    CtlError::Internal {
        detail: e.to_string(),
    }
}

impl Controller {
    /// Restores `state` (already loaded from `state_dir`): compiles it and
    /// publishes it into `pipeline`, then opens its ports (a port that
    /// fails to open is logged and stays configured). Start the workers on
    /// `pipeline` before calling this; they forward only once ports arrive.
    ///
    /// # Errors
    /// If the restored flows do not compile.
    pub fn start(
        state: SwitchState,
        state_dir: PathBuf,
        pipeline: Arc<SharedPipeline>,
        datapath: Box<dyn Datapath>,
    ) -> Result<Controller, CompileError> {
        let generation = pipeline.load().generation() + 1;
        let net = NetState::default();
        let (tunnels, _) = tunnels_or_bridge(&state, &net);
        let pl = compile_state(&state, &[], generation)?.with_tunnels(Arc::new(tunnels));
        pipeline.store(Arc::new(pl));
        let published = state.flows.iter().map(|(id, e)| (*id, e.serial)).collect();
        let mut c = Controller {
            state,
            pipeline,
            datapath,
            generation,
            carried: HashMap::new(),
            published,
            cookies: BTreeMap::new(),
            journal: Journal::open(&state_dir),
            net,
        };
        let ports: Vec<PortEntry> = c.state.ports.values().cloned().collect();
        for p in ports {
            if let Err(e) = c.datapath.open_port(&p.name, &p.kind, p.ofport, &p.options) {
                tracing::warn!(name = %p.name, ofport = p.ofport.0, error = %e, "restoring port failed");
            }
        }
        Ok(c)
    }

    /// An empty snapshot (generation 0) to start workers on before
    /// [`Controller::start`].
    ///
    /// # Errors
    /// None in practice (no flows to reject).
    pub fn empty_pipeline() -> Result<Arc<SharedPipeline>, CompileError> {
        let pl = Pipeline::compile(&[], crate::pipeline::SwitchConfig::default(), 0)?;
        Ok(Arc::new(SharedPipeline::from_pointee(pl)))
    }

    /// The current state.
    pub fn state(&self) -> &SwitchState {
        &self.state
    }

    /// Validates, persists and publishes `new` (see the module doc);
    /// `first` are the request's flows, compiled first so that errors
    /// carry their index.
    fn commit(
        &mut self,
        mut new: SwitchState,
        first: &[FlowSpec],
        persist: Persist,
    ) -> Result<u64, CtlError> {
        let generation = self.generation + 1;
        let t0 = std::time::Instant::now();
        let pl = compile_state(&new, first, generation).map_err(bad_flow)?;
        let compile_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        // An invalid tunnel configuration is refused; one that is only
        // waiting for kernel facts is published as bridging.
        check_tunnels(&new)?;
        let (tunnels, _) = tunnels_or_bridge(&new, &self.net);
        let pl = pl.with_tunnels(Arc::new(tunnels));
        match persist {
            Persist::Journal(now, ops) if !self.journal.wants_compaction() => {
                self.journal.append(&mut new, now, ops).map_err(internal)?
            }
            _ => self.journal.compact(&new).map_err(internal)?,
        }
        let persist_us = u64::try_from(t0.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .saturating_sub(compile_us);
        let old = self.pipeline.swap(Arc::new(pl));
        // Fold the old snapshot's counters into the carry.
        for r in old.rules() {
            let id = FlowId::of(&r.spec);
            let Some(serial) = self.published.get(&id) else {
                continue;
            };
            if new.flows.get(&id).is_some_and(|e| e.serial == *serial) {
                let (p, b, t) = r.stats.get();
                let c = self.carried.entry(*serial).or_default();
                c.0 += p;
                c.1 += b;
                c.2 = c.2.max(t);
            }
        }
        self.published = new.flows.iter().map(|(id, e)| (*id, e.serial)).collect();
        let live: std::collections::HashSet<u64> = self.published.values().copied().collect();
        self.carried.retain(|s, _| live.contains(s));
        self.state = new;
        self.generation = generation;
        // Per commit (control plane), with the stages' times: compiling
        // the whole pipeline, then the journal record or snapshot
        // (fdatasync) before the swap.
        tracing::info!(
            generation,
            flows = self.state.flows.len(),
            compile_us,
            persist_us,
            "published"
        );
        Ok(generation)
    }

    /// Applies one journalled change `op` (its own flows `first` are
    /// compiled first for error indices).
    fn flow_change(&mut self, op: JournalOp, first: &[FlowSpec]) -> Result<ChangeCounts, CtlError> {
        let now = unix_ms();
        let mut new = self.state.clone();
        let mut counts = new.apply_op(&op, now);
        counts.generation = self.commit(new, first, Persist::Journal(now, vec![op]))?;
        Ok(counts)
    }

    /// Writes the state as a snapshot and empties the journal (clean
    /// shutdown); a no-op if the journal is empty.
    ///
    /// # Errors
    /// I/O errors (the journal then still holds every change).
    pub fn compact(&mut self) -> Result<(), CtlError> {
        if self.journal.is_dirty() {
            self.journal.compact(&self.state).map_err(internal)?;
        }
        Ok(())
    }

    fn journal_op(ch: &FlowChange) -> JournalOp {
        match ch {
            FlowChange::Add(spec) => JournalOp::Add(vec![spec.clone()]),
            FlowChange::Modify(m) => JournalOp::Modify(m.clone()),
            FlowChange::Delete(f) => JournalOp::Delete(f.clone()),
        }
    }

    /// Applies a bundle all-or-nothing.
    ///
    /// # Errors
    /// `BundleFailed` naming the first change that is invalid.
    pub fn commit_bundle(
        &mut self,
        bundle_id: BundleId,
        changes: &[FlowChange],
    ) -> Result<ChangeCounts, CtlError> {
        let now = unix_ms();
        let cfg = self.state.switch_config();
        // Each added or modifying flow on its own first, for exact indices.
        for (index, ch) in changes.iter().enumerate() {
            let spec = match ch {
                FlowChange::Add(s) => s,
                FlowChange::Modify(m) => &m.spec,
                FlowChange::Delete(_) => continue,
            };
            if let Err(e) = crate::pipeline::compile(std::slice::from_ref(spec), cfg.clone()) {
                return Err(CtlError::BundleFailed {
                    bundle_id,
                    index,
                    error: Box::new(bad_flow(CompileError { index: 0, ..e })),
                });
            }
        }
        let mut new = self.state.clone();
        let mut total = ChangeCounts::default();
        let ops: Vec<JournalOp> = changes.iter().map(Self::journal_op).collect();
        for op in &ops {
            let c = new.apply_op(op, now);
            total.added += c.added;
            total.modified += c.modified;
            total.removed += c.removed;
        }
        total.generation = self
            .commit(new, &[], Persist::Journal(now, ops))
            .map_err(|e| CtlError::BundleFailed {
                bundle_id,
                index: changes.len().saturating_sub(1),
                error: Box::new(e),
            })?;
        Ok(total)
    }

    fn dump_flows(&self, filter: &FlowFilter, now: u64) -> Vec<FlowEntryStats> {
        let pl = self.pipeline.load();
        let live: HashMap<FlowId, (u64, u64, u64)> = pl
            .rules()
            .map(|r| (FlowId::of(&r.spec), r.stats.get()))
            .collect();
        let selected: std::collections::HashSet<FlowId> =
            self.state.select(filter, false).into_iter().collect();

        self.state
            .sorted_flows()
            .into_iter()
            .filter(|e| {
                let id = FlowId::of(&e.spec);
                selected.contains(&id) && filter.priority.is_none_or(|p| p == id.priority)
            })
            .map(|e| {
                let id = FlowId::of(&e.spec);
                let (lp, lb, lt) = live.get(&id).copied().unwrap_or_default();
                let (cp, cb, ct) = self.carried.get(&e.serial).copied().unwrap_or_default();
                let last = lt.max(ct);
                let duration_ms = now.saturating_sub(e.created_ms);
                FlowEntryStats {
                    spec: e.spec.clone(),
                    n_packets: lp + cp,
                    n_bytes: lb + cb,
                    duration_ms,
                    idle_age_ms: if last == 0 {
                        duration_ms
                    } else {
                        now.saturating_sub(last)
                    },
                }
            })
            .collect()
    }

    /// Runs one packet through a private copy of the current pipeline
    /// (fresh counters and MAC table, so a trace changes nothing) and
    /// renders the tree as `ovs-appctl ofproto/trace` text.
    fn trace(
        &self,
        in_port: PortNo,
        input: &TraceInput,
    ) -> Result<(crate::pipeline::TreeTrace, crate::pipeline::Verdict), CtlError> {
        let bytes = match input {
            TraceInput::Packet(b) => b.clone(),
            TraceInput::Key(k) => crate::pipeline::packet::packet_from_key(k),
        };
        if bytes.len() > crate::buf::MAX_PACKET {
            return Err(CtlError::BadRequest {
                field: "input".into(),
                reason: format!("packet of {} bytes is too long", bytes.len()),
            });
        }
        let pl = compile_state(&self.state, &[], self.generation)
            .map_err(bad_flow)?
            .with_tunnels(Arc::new(tunnels_or_bridge(&self.state, &self.net).0));
        let mut ws = crate::pipeline::WorkerState::new(pl.config());
        let mut pkt = crate::buf::PacketBuf::from_slice(&bytes);
        let mut sink = crate::pipeline::CollectSink::default();
        let mut tree = crate::pipeline::TreeTrace::new();
        let v = pl.process(&mut pkt, in_port, unix_ms(), &mut ws, &mut sink, &mut tree);
        Ok((tree, v))
    }

    /// Runs `actions` on `packet` as if received on `in_port` and
    /// transmits the results through the datapath. The actions run in a
    /// private pipeline holding only them (as one table-0 rule), so
    /// `resubmit`/`goto_table` find no other rules and `NORMAL` floods
    /// (its MAC table is empty); packet-ins they produce are discarded.
    fn packet_out(
        &mut self,
        in_port: PortNo,
        packet: &[u8],
        actions: &[protocol::flow::Action],
    ) -> Result<(), CtlError> {
        if packet.len() > crate::buf::MAX_PACKET {
            return Err(CtlError::BadRequest {
                field: "packet".into(),
                reason: format!("{} bytes is too long", packet.len()),
            });
        }
        let spec = FlowSpec {
            priority: protocol::flow::Priority(0),
            actions: actions.to_vec(),
            ..FlowSpec::default()
        };
        let pl = Pipeline::compile(std::slice::from_ref(&spec), self.state.switch_config(), 0)
            .map_err(|e| CtlError::BadRequest {
                field: format!("actions: {}", e.field),
                reason: e.reason,
            })?;
        let mut ws = crate::pipeline::WorkerState::new(pl.config());
        let mut pkt = crate::buf::PacketBuf::from_slice(packet);
        let mut sink = crate::pipeline::CollectSink::default();
        pl.process(
            &mut pkt,
            in_port,
            unix_ms(),
            &mut ws,
            &mut sink,
            &mut crate::pipeline::NoTrace,
        );
        for (port, bytes) in sink.outputs {
            self.datapath.transmit(port, bytes);
        }
        Ok(())
    }

    /// Removes flows whose hard timeout (since added) or idle timeout
    /// (since last matched, or added) has passed at `now` (Unix ms) and
    /// returns them as `FlowRemoved` events with their final counters.
    ///
    /// # Errors
    /// If the new state cannot be persisted or compiled (nothing removed).
    pub fn expire(&mut self, now: u64) -> Result<Vec<FlowRemoved>, CtlError> {
        if !self
            .state
            .flows
            .values()
            .any(|e| e.spec.idle_timeout != 0 || e.spec.hard_timeout != 0)
        {
            return Ok(Vec::new());
        }
        let mut removed = Vec::new();
        for e in self.dump_flows(&FlowFilter::default(), now) {
            let hard = u64::from(e.spec.hard_timeout) * 1000;
            let idle = u64::from(e.spec.idle_timeout) * 1000;
            let reason = if hard != 0 && e.duration_ms >= hard {
                RemovedReason::HardTimeout
            } else if idle != 0 && e.idle_age_ms >= idle {
                RemovedReason::IdleTimeout
            } else {
                continue;
            };
            removed.push(FlowRemoved {
                spec: e.spec,
                reason,
                duration_ms: e.duration_ms,
                n_packets: e.n_packets,
                n_bytes: e.n_bytes,
            });
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        let mut new = self.state.clone();
        let op = JournalOp::Remove(removed.iter().map(|r| r.spec.clone()).collect());
        new.apply_op(&op, now);
        self.commit(new, &[], Persist::Journal(now, vec![op]))?;
        Ok(removed)
    }

    fn dump_ports(&self) -> Vec<PortInfo> {
        let stats = self.datapath.port_stats();
        self.state
            .ports
            .values()
            .map(|p| {
                let link = self.datapath.link(p.ofport);
                let tunnel = matches!(p.kind, PortKind::Geneve(_) | PortKind::Vxlan(_));
                PortInfo {
                    port: p.ofport,
                    name: p.name.clone(),
                    kind: p.kind.clone(),
                    // Devices without a hardware address report zeros.
                    mac: link
                        .map(|l| protocol::wire::EthernetAddress(l.mac))
                        .filter(|m| m.0 != [0; 6]),
                    // 0 when the interface could not be read (and for a
                    // tunnel port, which has no device).
                    mtu: link.map_or(0, |l| l.mtu),
                    admin_up: !p.config.no_forward,
                    no_flood: p.config.no_flood,
                    // The kernel's view (up and running) for an open
                    // port; a port that failed to open is down; a tunnel
                    // port has no device: it is up when it exists.
                    link_up: tunnel
                        || (self.datapath.is_open(p.ofport) && link.is_some_and(|l| l.running)),
                    stats: stats.get(&p.ofport).copied().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// What each port asked for and what its device accepted.
    fn dump_port_offloads(&self) -> Vec<PortOffloadInfo> {
        let env_off = crate::offload::disabled_by_env();
        self.state
            .ports
            .values()
            .map(|p| PortOffloadInfo {
                port: p.ofport,
                name: p.name.clone(),
                requested: p.options.offloads && !env_off,
                vnet_hdr: self.datapath.vnet_hdr(p.ofport),
            })
            .collect()
    }

    /// `afxdp` ports and what serves them (AF_XDP or the AF_PACKET
    /// fallback, see `crate::worker`); `not open` for one whose device
    /// is not open.
    fn dump_port_backends(&self) -> Vec<PortBackendInfo> {
        self.state
            .ports
            .values()
            .filter(|p| p.kind == PortKind::AfXdp)
            .map(|p| {
                let mut backend = self
                    .datapath
                    .backend(p.ofport)
                    .unwrap_or_else(|| "not open".to_owned());
                if backend.len() > MAX_BACKEND_LEN {
                    let mut cut = MAX_BACKEND_LEN;
                    while !backend.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    backend.truncate(cut);
                }
                PortBackendInfo {
                    port: p.ofport,
                    name: p.name.clone(),
                    backend,
                }
            })
            .collect()
    }

    fn find_port(&self, r: &PortRef) -> Option<&PortEntry> {
        match r {
            PortRef::Name(n) => self.state.ports.get(n),
            PortRef::Number(p) => self.state.port_by_number(*p),
        }
    }

    fn port_add(
        &mut self,
        name: &str,
        kind: &PortKind,
        requested: Option<PortNo>,
        options: PortOptions,
    ) -> Result<PortNo, CtlError> {
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
            return Err(CtlError::BadRequest {
                field: "name".into(),
                reason: format!("{name:?} is not a valid interface name"),
            });
        }
        if let PortKind::Geneve(c) | PortKind::Vxlan(c) = kind {
            check_tunnel_config(kind, c)?;
        }
        if self.state.ports.contains_key(name) {
            return Err(CtlError::PortExists {
                port: PortRef::Name(name.into()),
            });
        }
        // The first internal port is the switch's LOCAL port (OVS).
        let requested = match (kind, requested) {
            (PortKind::Internal, None) if self.state.port_by_number(PortNo::LOCAL).is_none() => {
                Some(PortNo::LOCAL)
            }
            (_, r) => r,
        };
        if requested == Some(PortNo::LOCAL) && !matches!(kind, PortKind::Internal) {
            return Err(CtlError::BadRequest {
                field: "requested_ofport".into(),
                reason: "only an internal port can be LOCAL".into(),
            });
        }
        let ofport = self
            .state
            .allocate_ofport(name, requested)
            .map_err(|reason| CtlError::BadRequest {
                field: "requested_ofport".into(),
                reason,
            })?;
        let entry = PortEntry {
            name: name.into(),
            ofport,
            kind: kind.clone(),
            config: crate::pipeline::PortConfig::default(),
            options,
        };
        let mut new = self.state.clone();
        new.insert_port(entry.clone());
        // Validate before opening; open before publishing.
        compile_state(&new, &[], self.generation + 1).map_err(bad_flow)?;
        self.datapath
            .open_port(name, kind, ofport, &options)
            .map_err(|reason| CtlError::PortFailed {
                name: name.into(),
                reason,
            })?;
        let persist = Persist::Journal(unix_ms(), vec![JournalOp::PortAdd(entry)]);
        if let Err(e) = self.commit(new, &[], persist) {
            self.datapath.close_port(ofport);
            return Err(e);
        }
        tracing::info!(
            name,
            ofport = ofport.0,
            offloads = options.offloads,
            "port added"
        );
        Ok(ofport)
    }

    fn port_del(&mut self, r: &PortRef) -> Result<(), CtlError> {
        let Some(p) = self.find_port(r).cloned() else {
            return Err(CtlError::NoSuchPort { port: r.clone() });
        };
        if let Some(u) = &self.state.underlay
            && (u.port == p.name || u.host_port == p.name)
        {
            return Err(CtlError::BadRequest {
                field: "port".into(),
                reason: format!(
                    "{} is part of the underlay (clear it first: weftctl set-underlay --clear)",
                    p.name
                ),
            });
        }
        let mut new = self.state.clone();
        new.ports.remove(&p.name);
        let persist = Persist::Journal(unix_ms(), vec![JournalOp::PortDel(p.name.clone())]);
        self.commit(new, &[], persist)?;
        self.datapath.close_port(p.ofport);
        tracing::info!(name = %p.name, ofport = p.ofport.0, "port deleted");
        Ok(())
    }

    /// Adds or updates nodes (or, with `replace`, makes the table exactly
    /// `nodes`). Names must be unique and non-empty.
    fn set_nodes(&mut self, nodes: &[NodeEntry], replace: bool) -> Result<(), CtlError> {
        let mut seen = std::collections::BTreeSet::new();
        for n in nodes {
            if n.name.is_empty() {
                return Err(CtlError::BadRequest {
                    field: "nodes.name".into(),
                    reason: "a node name is empty".into(),
                });
            }
            if !seen.insert(n.name.as_str()) {
                return Err(CtlError::BadRequest {
                    field: "nodes.name".into(),
                    reason: format!("node {:?} is given twice", n.name),
                });
            }
            if n.ip.is_unspecified() || n.ip.is_multicast() {
                return Err(CtlError::BadRequest {
                    field: format!("node {} ip", n.name),
                    reason: format!("{} is not a unicast address", n.ip),
                });
            }
        }
        let mut new = self.state.clone();
        if replace {
            new.nodes.clear();
        }
        for n in nodes {
            new.nodes.insert(n.name.clone(), n.ip);
        }
        self.commit(new, &[], Persist::Snapshot)?;
        self.underlay_changed();
        Ok(())
    }

    fn del_nodes(&mut self, names: &[String]) -> Result<(), CtlError> {
        if let Some(n) = names.iter().find(|n| !self.state.nodes.contains_key(*n)) {
            return Err(CtlError::BadRequest {
                field: "names".into(),
                reason: format!("no node {n:?}"),
            });
        }
        let mut new = self.state.clone();
        for n in names {
            new.nodes.remove(n);
        }
        self.commit(new, &[], Persist::Snapshot)?;
        self.underlay_changed();
        Ok(())
    }

    /// Sets or clears the underlay: `port` must be an `afpacket` port and
    /// `host_port` an `internal` or `tap` port, both already added.
    fn set_underlay(&mut self, u: Option<&UnderlayConfig>) -> Result<(), CtlError> {
        if let Some(u) = u {
            let kind_of = |n: &str, field: &str| {
                self.state
                    .ports
                    .get(n)
                    .map(|p| p.kind.clone())
                    .ok_or_else(|| CtlError::BadRequest {
                        field: field.into(),
                        reason: format!("no port {n:?} (add it first)"),
                    })
            };
            if kind_of(&u.port, "underlay.port")? != PortKind::AfPacket {
                return Err(CtlError::BadRequest {
                    field: "underlay.port".into(),
                    reason: format!("{} is not an afpacket port", u.port),
                });
            }
            if !matches!(
                kind_of(&u.host_port, "underlay.host_port")?,
                PortKind::Internal | PortKind::Tap | PortKind::AfPacket
            ) {
                return Err(CtlError::BadRequest {
                    field: "underlay.host_port".into(),
                    reason: format!("{} is a tunnel port", u.host_port),
                });
            }
            if u.port == u.host_port {
                return Err(CtlError::BadRequest {
                    field: "underlay.host_port".into(),
                    reason: "the host port must differ from the underlay port".into(),
                });
            }
        }
        let mut new = self.state.clone();
        new.underlay = u.cloned();
        self.commit(new, &[], Persist::Snapshot)?;
        self.underlay_changed();
        Ok(())
    }

    /// Wakes the underlay loop (configuration changed).
    fn underlay_changed(&self) {
        self.net.notify.notify_one();
    }

    /// The handle that wakes [`underlay_loop`].
    pub fn underlay_notify(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.net.notify)
    }

    /// What [`underlay_loop`] must read: the underlay configuration and the
    /// remotes that need a next hop (node table, fixed `remote_ip`s,
    /// reported and learned remotes; never the local endpoint).
    pub fn underlay_query(
        &self,
    ) -> Option<(UnderlayConfig, std::collections::BTreeSet<std::net::IpAddr>)> {
        let u = self.state.underlay.clone()?;
        let mut remotes: std::collections::BTreeSet<std::net::IpAddr> =
            self.state.nodes.values().copied().collect();
        for p in self.state.ports.values() {
            if let PortKind::Geneve(c) | PortKind::Vxlan(c) = &p.kind
                && let Some(r) = c.remote_ip
            {
                remotes.insert(r);
            }
        }
        remotes.extend(self.net.reported.iter().copied());
        remotes.extend(self.net.learned.keys().copied());
        if let Some(f) = &self.net.facts {
            remotes.retain(|r| {
                Some(*r) != f.local_ipv4.map(std::net::IpAddr::V4)
                    && Some(*r) != f.local_ipv6.map(std::net::IpAddr::V6)
            });
        }
        if let Some(l) = u.local_ip {
            remotes.remove(&l);
        }
        Some((u, remotes))
    }

    /// Takes a refresh result from [`underlay_loop`]: recomputes the
    /// next-hop table and republishes the snapshot's tunnels (same tables)
    /// if anything changed. Returns the next hops to ask the kernel to
    /// resolve.
    pub fn set_underlay_facts(
        &mut self,
        facts: Option<Result<UnderlayFacts, String>>,
    ) -> Vec<(u32, std::net::IpAddr)> {
        let (facts, problem) = match facts {
            None => (None, None),
            Some(Ok(f)) => (Some(f), None),
            Some(Err(e)) => (None, Some(e)),
        };
        let (hops, solicit) = match &facts {
            Some(f) => {
                let h = crate::underlay::next_hops(f, &self.net.learned);
                let s = crate::underlay::to_solicit(f, &h);
                (h, s)
            }
            None => (Vec::new(), Vec::new()),
        };
        if facts == self.net.facts && hops == self.net.hops && problem == self.net.problem {
            return solicit;
        }
        if problem != self.net.problem
            && let Some(p) = &problem
        {
            tracing::warn!(problem = %p, "underlay");
        }
        self.net.facts = facts;
        self.net.hops = hops;
        self.net.problem = problem;
        self.republish_tunnels();
        solicit
    }

    /// A worker dropped a packet for `remote` without a next hop.
    pub fn report_missing(&mut self, remote: std::net::IpAddr) {
        if self.net.reported.insert(remote) {
            self.net.notify.notify_one();
        }
    }

    /// A tunnel packet from on-link `remote` came from `mac`.
    pub fn learn(&mut self, remote: std::net::IpAddr, mac: protocol::wire::EthernetAddress) {
        if self.net.learned.insert(remote, mac) != Some(mac) {
            self.net.notify.notify_one();
        }
    }

    fn republish_tunnels(&mut self) {
        let (t, problem) = tunnels_or_bridge(&self.state, &self.net);
        if problem.is_some() && self.net.problem.is_none() {
            self.net.problem = problem;
        }
        let old = self.pipeline.load();
        if *old.tunnels() == t {
            return;
        }
        self.generation += 1;
        self.pipeline
            .store(Arc::new(old.with_new_tunnels(Arc::new(t), self.generation)));
        tracing::info!(generation = self.generation, "tunnels republished");
    }

    /// The `Tunnels` reply.
    fn tunnel_status(&self) -> protocol::ctl::TunnelStatus {
        let f = self.net.facts.as_ref();
        let mtu = f.map_or(0, |f| f.underlay.mtu);
        let ipv6 = f.is_some_and(|f| f.local_ipv4.is_none() && f.local_ipv6.is_some());
        let opts = geneve_options_len(&self.state);
        let ports = self
            .state
            .ports
            .values()
            .filter_map(|p| {
                let kind = match p.kind {
                    PortKind::Geneve(_) => TunnelKind::Geneve,
                    PortKind::Vxlan(_) => TunnelKind::Vxlan,
                    _ => return None,
                };
                let o = if kind == TunnelKind::Geneve { opts } else { 0 };
                Some(protocol::ctl::TunnelPortInfo {
                    port: p.ofport,
                    name: p.name.clone(),
                    kind: p.kind.clone(),
                    overhead: overhead(kind, ipv6, o) as u32,
                    pod_mtu: pod_mtu(mtu, kind, ipv6, o),
                })
            })
            .collect();
        protocol::ctl::TunnelStatus {
            underlay: self.state.underlay.clone(),
            local_ip: f.and_then(|f| {
                f.local_ipv4
                    .map(std::net::IpAddr::V4)
                    .or(f.local_ipv6.map(std::net::IpAddr::V6))
            }),
            local_mac: f.and_then(|f| f.host.mac),
            underlay_mtu: mtu,
            ports,
            next_hops: self.net.hops.clone(),
        }
    }

    /// The pipeline counters as a `Stats` reply.
    fn stats(&self) -> DatapathStats {
        let c = self.datapath.counters();
        DatapathStats {
            packets: c.packets,
            outputs: c.outputs,
            packet_ins: c.packet_ins,
            drops: crate::pipeline::DropReason::ALL
                .iter()
                .map(|r| DropCount {
                    reason: r.as_str().into(),
                    count: c.drops_for(*r),
                })
                .chain(
                    self.datapath
                        .worker_drops()
                        .into_iter()
                        .map(|(reason, count)| DropCount {
                            reason: reason.into(),
                            count,
                        }),
                )
                .collect(),
        }
    }

    /// Table statistics (OVS `dump-tables`): flows per table from the
    /// configuration, lookups and matches summed over the workers' own
    /// counters (each worker counts in its private state; nothing shared is
    /// written per packet). Lists every table that has flows or was looked
    /// up.
    pub fn dump_tables(&self) -> Vec<TableStat> {
        let mut out: BTreeMap<TableId, TableStat> = BTreeMap::new();
        for id in self.state.flows.keys() {
            let e = out.entry(id.table).or_insert_with(|| TableStat {
                table: id.table,
                ..TableStat::default()
            });
            e.active += 1;
        }
        for w in self.datapath.worker_counters() {
            for (t, c) in w.tables.iter().enumerate() {
                if c.lookups == 0 {
                    continue;
                }
                let table = TableId(t as u8);
                let e = out.entry(table).or_insert_with(|| TableStat {
                    table,
                    ..TableStat::default()
                });
                e.lookups += c.lookups;
                e.matched += c.matched;
            }
        }
        out.into_values().collect()
    }

    /// Answers one request that does not need the connection's state.
    pub fn handle(&mut self, body: &Body) -> Body {
        match self.try_handle(body) {
            Ok(b) => b,
            Err(e) => Body::Error(e),
        }
    }

    fn try_handle(&mut self, body: &Body) -> Result<Body, CtlError> {
        let now = unix_ms();
        Ok(match body {
            Body::Ping => Body::Ok,
            Body::AddFlows { flows } => {
                Body::FlowsChanged(self.flow_change(JournalOp::Add(flows.clone()), flows)?)
            }
            Body::ReplaceFlows { flows } => {
                Body::FlowsChanged(self.flow_change(JournalOp::Replace(flows.clone()), flows)?)
            }
            Body::ModifyFlows(m) => Body::FlowsChanged(
                self.flow_change(JournalOp::Modify(m.clone()), std::slice::from_ref(&m.spec))?,
            ),
            Body::DeleteFlows(f) => {
                Body::FlowsChanged(self.flow_change(JournalOp::Delete(f.clone()), &[])?)
            }
            Body::DumpFlows { filter, .. } => Body::Flows {
                entries: self.dump_flows(filter, now),
                more: false,
            },
            Body::DumpPorts => Body::Ports(self.dump_ports()),
            Body::DumpPortBackends => Body::PortBackends(self.dump_port_backends()),
            Body::SetCookieInfo { entries, replace } => {
                if *replace {
                    self.cookies.clear();
                }
                for e in entries {
                    self.cookies.insert(e.cookie.0, e.clone());
                }
                Body::Ok
            }
            Body::DumpCookies => Body::Cookies(self.cookies.values().cloned().collect()),
            Body::DumpTables => Body::Tables(self.dump_tables()),
            Body::PortAdd {
                name,
                kind,
                requested_ofport,
            } => Body::PortAdded {
                port: self.port_add(name, kind, *requested_ofport, PortOptions::default())?,
            },
            Body::PortAddWith {
                name,
                kind,
                requested_ofport,
                options,
            } => Body::PortAdded {
                port: self.port_add(name, kind, *requested_ofport, *options)?,
            },
            Body::DumpPortOffloads => Body::PortOffloads(self.dump_port_offloads()),
            Body::PortDel { port } => {
                self.port_del(port)?;
                Body::Ok
            }
            Body::PortMod { port, config } => {
                let Some(p) = self.find_port(port).cloned() else {
                    return Err(CtlError::NoSuchPort { port: port.clone() });
                };
                let mut new = self.state.clone();
                if let Some(e) = new.ports.get_mut(&p.name) {
                    if let Some(nf) = config.no_flood {
                        e.config.no_flood = nf;
                    }
                    if let Some(up) = config.admin_up {
                        e.config.no_forward = !up;
                        e.config.no_receive = !up;
                    }
                }
                self.commit(new, &[], Persist::Snapshot)?;
                Body::Ok
            }
            Body::PacketOut {
                in_port,
                packet,
                actions,
            } => {
                self.packet_out(*in_port, packet, actions)?;
                Body::Ok
            }
            Body::Trace { in_port, input } => {
                let (tree, v) = self.trace(*in_port, input)?;
                Body::TraceResult {
                    text: tree.to_text(&v),
                }
            }
            Body::TraceDetailed { in_port, input } => {
                let (tree, v) = self.trace(*in_port, input)?;
                Body::TraceReport(tree.to_report(&v))
            }
            Body::SetTlvMap { mappings } => {
                TlvMap::new(mappings).map_err(|e| CtlError::BadRequest {
                    field: "SetTlvMap.mappings".into(),
                    reason: e.to_string(),
                })?;
                let mut new = self.state.clone();
                let mut sorted = mappings.clone();
                sorted.sort_by_key(|m| m.slot);
                new.settings.tlv_map = sorted;
                self.commit(new, &[], Persist::Snapshot)?;
                Body::Ok
            }
            Body::DumpTlvMap => Body::TlvMap(self.state.settings.tlv_map.clone()),
            Body::SetNodes { nodes, replace } => {
                self.set_nodes(nodes, *replace)?;
                Body::Ok
            }
            Body::DelNodes { names } => {
                self.del_nodes(names)?;
                Body::Ok
            }
            Body::DumpNodes => Body::Nodes(
                self.state
                    .nodes
                    .iter()
                    .map(|(name, ip)| NodeEntry {
                        name: name.clone(),
                        ip: *ip,
                    })
                    .collect(),
            ),
            Body::SetUnderlay(u) => {
                self.set_underlay(u.as_ref())?;
                Body::Ok
            }
            Body::DumpTunnels => Body::Tunnels(self.tunnel_status()),
            Body::DumpStats => Body::Stats(self.stats()),
            Body::Hello { .. } => {
                return Err(CtlError::UnexpectedMessage {
                    message: "Hello".into(),
                    reason: "the session is already open".into(),
                });
            }
            b if b.kind() != protocol::ctl::BodyKind::Request => {
                return Err(CtlError::UnexpectedMessage {
                    message: b.name().into(),
                    reason: "not a request".into(),
                });
            }
            b => {
                return Err(CtlError::Unsupported {
                    what: format!("request {}", b.name()),
                });
            }
        })
    }
}

/// Geneve option bytes the recommended pod MTU reserves: every mapped
/// option (4-byte header + data), and at least Weft's own 8-byte option
/// (DESIGN.md: ingress and egress port ids), so the recommendation does
/// not shrink when the controller starts sending it.
fn geneve_options_len(state: &SwitchState) -> usize {
    let mapped: usize = state
        .settings
        .tlv_map
        .iter()
        .map(|m| 4 + usize::from(m.len))
        .sum();
    mapped.max(8)
}

/// Checks what the request controls about tunnels, whatever the kernel
/// says: tunnel ports (numbers, one flow-based port per kind and UDP port,
/// keys) and the TLV map.
fn check_tunnels(state: &SwitchState) -> Result<(), CtlError> {
    let ports: Vec<TunnelPort> = state
        .ports
        .values()
        .filter_map(|p| TunnelPort::from_port_kind(p.ofport, &p.kind))
        .collect();
    let tlv = TlvMap::new(&state.settings.tlv_map).map_err(|e| CtlError::BadRequest {
        field: "tlv map".into(),
        reason: e.to_string(),
    })?;
    Tunnels::new(ports, None, NextHops::default(), tlv).map_err(|e| CtlError::BadRequest {
        field: "tunnel port".into(),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// The tunnel configuration of `state` with the runtime facts `net`.
///
/// # Errors
/// A configuration [`Tunnels::new`] refuses (two flow-based ports of a
/// kind, a bad TLV map, no local address), as `BadRequest`.
fn build_tunnels(state: &SwitchState, net: &NetState) -> Result<Tunnels, CtlError> {
    let bad = |field: &str, reason: String| CtlError::BadRequest {
        field: field.into(),
        reason,
    };
    let ports: Vec<TunnelPort> = state
        .ports
        .values()
        .filter_map(|p| TunnelPort::from_port_kind(p.ofport, &p.kind))
        .collect();
    let tlv = TlvMap::new(&state.settings.tlv_map).map_err(|e| bad("tlv map", e.to_string()))?;
    let underlay = underlay_of(state, net)?;
    if !ports.is_empty() && net.facts.is_none() && state.underlay.is_some() {
        return Err(bad(
            "underlay",
            net.problem
                .clone()
                .unwrap_or_else(|| "not read from the kernel yet".into()),
        ));
    }
    let hops = NextHops::from_entries(net.hops.iter().filter_map(|h| Some((h.remote, h.mac?))));
    Tunnels::new(ports, underlay, hops, tlv).map_err(|e| bad("tunnels", e.to_string()))
}

/// The [`Underlay`] of `state` with the facts of `net` (before the facts
/// are known: bridging only, no address).
fn underlay_of(state: &SwitchState, net: &NetState) -> Result<Option<Underlay>, CtlError> {
    let Some(u) = &state.underlay else {
        return Ok(None);
    };
    let number = |name: &str, field: &str| {
        state
            .ports
            .get(name)
            .map(|p| p.ofport)
            .ok_or_else(|| CtlError::BadRequest {
                field: field.into(),
                reason: format!("no port {name:?}"),
            })
    };
    let port = number(&u.port, "underlay.port")?;
    let host = number(&u.host_port, "underlay.host_port")?;
    let f = net.facts.as_ref();
    Ok(Some(Underlay {
        port,
        host_port: Some(host),
        local_ipv4: f.and_then(|f| f.local_ipv4),
        local_ipv6: f.and_then(|f| f.local_ipv6),
        local_mac: f
            .and_then(|f| f.host.mac)
            .unwrap_or(protocol::wire::EthernetAddress([0; 6])),
        mtu: f.map_or(1500, |f| f.underlay.mtu),
    }))
}

/// [`build_tunnels`], or, if that fails, the underlay bridging alone (no
/// tunnel ports) and the reason.
fn tunnels_or_bridge(state: &SwitchState, net: &NetState) -> (Tunnels, Option<String>) {
    match build_tunnels(state, net) {
        Ok(t) => (t, None),
        Err(e) => {
            let u = underlay_of(state, net).ok().flatten();
            let t = Tunnels::new(Vec::new(), u, NextHops::default(), TlvMap::default())
                .unwrap_or_default();
            (t, Some(e.to_string()))
        }
    }
}

/// Checks a tunnel port's options: a 24-bit key, a unicast remote, a
/// non-zero UDP port.
fn check_tunnel_config(kind: &PortKind, c: &protocol::ctl::TunnelConfig) -> Result<(), CtlError> {
    let bad = |field: &str, reason: String| CtlError::BadRequest {
        field: format!("{} {field}", kind.name()),
        reason,
    };
    if let Some(k) = c.key
        && k > 0xff_ffff
    {
        return Err(bad("key", format!("{k} does not fit in 24 bits")));
    }
    if let Some(ip) = c.remote_ip
        && (ip.is_unspecified() || ip.is_multicast())
    {
        return Err(bad("remote_ip", format!("{ip} is not a unicast address")));
    }
    if c.dst_port == Some(0) {
        return Err(bad("dst_port", "0 is not a UDP port".into()));
    }
    Ok(())
}

/// Validates the request's own flows `first` alone (so a
/// [`CompileError`]'s index is the request's index), then compiles every
/// flow of `state`.
fn compile_state(
    state: &SwitchState,
    first: &[FlowSpec],
    generation: u64,
) -> Result<Pipeline, CompileError> {
    let cfg = state.switch_config();
    if !first.is_empty() {
        Pipeline::compile(first, cfg.clone(), generation)?;
    }
    let all: Vec<FlowSpec> = state
        .sorted_flows()
        .into_iter()
        .map(|e| e.spec.clone())
        .collect();
    Pipeline::compile(&all, cfg, generation)
}

/// Binds the control socket at `path` with mode 0600, creating the parent
/// directory and removing a stale socket file.
///
/// The socket is bound inside a fresh private (0700) directory next to
/// `path`, set to 0600, then renamed into place, so it is never reachable
/// with the umask's permissions.
///
/// # Errors
/// I/O errors; a non-socket file at `path` is not removed.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let private = dir.join(format!(".weft-bind-{}-{seq}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let result = (|| {
        let tmp = private.join("s");
        let l = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Capacity of the packet-in broadcast to subscribers; a subscriber that
/// falls further behind loses the oldest events (logged).
pub const EVENT_QUEUE: usize = 1024;

/// Converts worker packet-ins to `PacketIn` events and broadcasts them to
/// subscribed connections, on a thread of its own (the worker's channel is
/// a blocking `std` one). Returns when the worker side closes.
/// `total_len` is the length of the bytes handed over: the pipeline's sink
/// receives the packet already cut to `max_len`, not its original length.
pub fn spawn_packet_in_bridge(
    rx: std::sync::mpsc::Receiver<crate::worker::PacketInEvent>,
    events: broadcast::Sender<Body>,
    vlan_limit: u8,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weft-packet-in".into())
        .spawn(move || {
            let cfg = protocol::flow::ExtractConfig { vlan_limit };
            for ev in rx {
                let mut key = protocol::flow::FlowKey::default();
                key.set_in_port(ev.in_port.0);
                protocol::flow::extract(&ev.bytes, &cfg, &mut key);
                // No subscriber is not an error.
                let _ = events.send(Body::PacketIn(PacketIn {
                    reason: ev.reason,
                    table: ev.table,
                    cookie: ev.cookie,
                    key,
                    total_len: ev.bytes.len() as u32,
                    packet: ev.bytes,
                }));
            }
        })
}

/// Capacity of the worker → control tunnel event channel.
pub const TUNNEL_EVENT_QUEUE: usize = 256;

/// Hands worker tunnel events to the controller, on a thread of its own
/// (the worker's channel is a blocking `std` one). Returns when the worker
/// side closes.
pub fn spawn_tunnel_event_bridge(
    rx: std::sync::mpsc::Receiver<TunnelEvent>,
    ctl: &Arc<Mutex<Controller>>,
) -> io::Result<std::thread::JoinHandle<()>> {
    // Weak: the workers hold the senders and the controller owns the
    // workers, so a strong reference here would keep both alive after
    // shutdown (no final counters, no worker join).
    let ctl = Arc::downgrade(ctl);
    std::thread::Builder::new()
        .name("weft-tunnel-events".into())
        .spawn(move || {
            // Learned MACs repeat on every packet until republished: only
            // a change reaches the controller (and its lock).
            let mut seen: HashMap<std::net::IpAddr, protocol::wire::EthernetAddress> =
                HashMap::new();
            for ev in rx {
                let Some(ctl) = ctl.upgrade() else { return };
                match ev {
                    TunnelEvent::MissingNextHop(remote) => lock(&ctl).report_missing(remote),
                    TunnelEvent::Learned { remote, mac } => {
                        if seen.insert(remote, mac) != Some(mac) {
                            lock(&ctl).learn(remote, mac);
                        }
                    }
                }
            }
        })
}

/// Keeps the underlay facts and next hops current (see
/// [`crate::underlay`]): reads them through rtnetlink every
/// [`REFRESH_MS`](crate::underlay::REFRESH_MS) (every
/// [`RETRY_MS`](crate::underlay::RETRY_MS) while a next hop is
/// unresolved) and whenever woken, publishes changes, and asks the kernel
/// to resolve missing neighbours. Runs forever; the netlink socket belongs
/// to the namespace of the calling thread.
pub async fn underlay_loop(ctl: Arc<Mutex<Controller>>) {
    let nl = match Netlink::connect() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "no netlink: tunnels cannot resolve next hops");
            lock(&ctl).set_underlay_facts(Some(Err(e.to_string())));
            return std::future::pending().await;
        }
    };
    let notify = lock(&ctl).underlay_notify();
    let mut wait = 0u64;
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            () = notify.notified() => {}
        }
        let query = lock(&ctl).underlay_query();
        let result = match &query {
            None => None,
            Some((u, remotes)) => Some(
                nl.gather(&u.port, &u.host_port, u.local_ip, remotes)
                    .await
                    .map_err(|e| e.to_string()),
            ),
        };
        let solicit = lock(&ctl).set_underlay_facts(result);
        for (index, ip) in &solicit {
            if let Err(e) = nl.solicit(*index, *ip).await {
                tracing::debug!(error = %e, "neighbour resolution request");
            }
        }
        wait = if solicit.is_empty() {
            crate::underlay::REFRESH_MS
        } else {
            crate::underlay::RETRY_MS
        };
    }
}

/// Expires timed-out flows every second and broadcasts `FlowRemoved`
/// events; runs forever.
pub async fn expiry_loop(ctl: Arc<Mutex<Controller>>, events: broadcast::Sender<Body>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let removed = lock(&ctl).expire(unix_ms());
        match removed {
            Ok(removed) => {
                for r in removed {
                    tracing::info!(flow = %protocol::text::format_flow(&r.spec), reason = ?r.reason, "flow expired");
                    let _ = events.send(Body::FlowRemoved(r));
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring flows failed"),
        }
    }
}

/// Accepts connections forever, one task each; `events` feeds
/// connections that `Subscribe` to packet-ins.
pub async fn serve(
    listener: UnixListener,
    ctl: Arc<Mutex<Controller>>,
    events: broadcast::Sender<Body>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let ctl = Arc::clone(&ctl);
                let events = events.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, ctl, events).await {
                        tracing::debug!(error = %e, "control connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn send(stream: &mut UnixStream, id: u64, body: Body) -> io::Result<()> {
    let msg = Message { id, body };
    let bytes = match encode_frame(&msg) {
        Ok(b) => b,
        Err(e) => encode_frame(&Message {
            id,
            body: Body::Error(internal(format!("reply not encodable: {e}"))),
        })
        .map_err(io::Error::other)?,
    };
    stream.write_all(&bytes).await
}

/// A connection's subscription to events.
#[derive(Debug)]
struct Subscription {
    rx: broadcast::Receiver<Body>,
    packet_in: bool,
    flow_removed: bool,
}

/// The next event for a subscribed connection (`None`: nothing to send
/// this time); never resolves when not subscribed.
async fn next_event(sub: &mut Option<Subscription>) -> Option<Body> {
    let Some(s) = sub else {
        return std::future::pending().await;
    };
    match s.rx.recv().await {
        Ok(ev @ Body::PacketIn(_)) if s.packet_in => Some(ev),
        Ok(ev @ Body::FlowRemoved(_)) if s.flow_removed => Some(ev),
        Ok(_) => None,
        Err(broadcast::error::RecvError::Lagged(n)) => {
            tracing::warn!(lost = n, "event subscriber fell behind");
            None
        }
        Err(broadcast::error::RecvError::Closed) => {
            *sub = None;
            None
        }
    }
}

/// Serves one connection: Hello first, then requests until Goodbye or EOF.
/// Events (`PacketIn`, id 0) are sent while waiting for input.
async fn connection(
    mut stream: UnixStream,
    ctl: Arc<Mutex<Controller>>,
    events: broadcast::Sender<Body>,
) -> io::Result<()> {
    let mut sub: Option<Subscription> = None;
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut version: Option<u16> = None;
    let mut bundles: HashMap<BundleId, Vec<FlowChange>> = HashMap::new();
    loop {
        let frame = match dec.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => {
                let n = tokio::select! {
                    r = stream.read(&mut buf) => r?,
                    ev = next_event(&mut sub) => {
                        if let Some(ev) = ev {
                            send(&mut stream, 0, ev).await?;
                        }
                        continue;
                    }
                };
                if n == 0 {
                    return Ok(());
                }
                dec.push(buf.get(..n).unwrap_or_default());
                continue;
            }
            Err(e @ FrameError::TooLarge { .. }) => {
                send(&mut stream, 0, Body::Error(e.into())).await?;
                return Ok(());
            }
            Err(e) => {
                send(&mut stream, 0, Body::Error(e.into())).await?;
                return Ok(());
            }
        };
        let msg = match decode_message(&frame) {
            Ok(m) => m,
            Err(e) => {
                send(
                    &mut stream,
                    e.request_id().unwrap_or(0),
                    Body::Error(e.to_ctl_error()),
                )
                .await?;
                continue;
            }
        };
        let id = msg.id;
        if let Err(e) = msg.body.check_limits() {
            send(&mut stream, id, Body::Error(e)).await?;
            continue;
        }
        if version.is_none() {
            match &msg.body {
                Body::Hello { versions, .. } => match negotiate(versions) {
                    Ok(v) => {
                        version = Some(v);
                        let body = Body::HelloReply {
                            version: v,
                            server: SERVER_NAME.into(),
                        };
                        send(&mut stream, id, body).await?;
                    }
                    Err(e) => {
                        send(&mut stream, id, Body::Error(e)).await?;
                        return Ok(());
                    }
                },
                b => {
                    let e = CtlError::UnexpectedMessage {
                        message: b.name().into(),
                        reason: "Hello must come first".into(),
                    };
                    send(&mut stream, id, Body::Error(e)).await?;
                }
            }
            continue;
        }
        let reply = match msg.body {
            Body::Goodbye => {
                send(&mut stream, id, Body::Ok).await?;
                return Ok(());
            }
            Body::Subscribe {
                packet_in,
                flow_removed,
            } => {
                sub = (packet_in || flow_removed).then(|| Subscription {
                    rx: events.subscribe(),
                    packet_in,
                    flow_removed,
                });
                Body::Ok
            }
            Body::BundleOpen { bundle_id } => match bundles.entry(bundle_id) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    Body::Error(CtlError::BundleExists { bundle_id })
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Vec::new());
                    Body::Ok
                }
            },
            Body::BundleAdd { bundle_id, changes } => match bundles.get_mut(&bundle_id) {
                Some(b) => {
                    b.extend(changes);
                    Body::Ok
                }
                None => Body::Error(CtlError::NoSuchBundle { bundle_id }),
            },
            Body::BundleDiscard { bundle_id } => match bundles.remove(&bundle_id) {
                Some(_) => Body::Ok,
                None => Body::Error(CtlError::NoSuchBundle { bundle_id }),
            },
            Body::BundleCommit { bundle_id } => match bundles.remove(&bundle_id) {
                Some(changes) => match lock(&ctl).commit_bundle(bundle_id, &changes) {
                    Ok(c) => Body::FlowsChanged(c),
                    Err(e) => Body::Error(e),
                },
                None => Body::Error(CtlError::NoSuchBundle { bundle_id }),
            },
            body => lock(&ctl).handle(&body),
        };
        let reply = if version.unwrap_or(0) < 4 {
            for_old_client(reply)
        } else {
            reply
        };
        if let Body::Flows { entries, .. } = reply {
            let n = entries.len();
            let mut chunks = entries.chunks(DUMP_CHUNK).peekable();
            if n == 0 {
                send(
                    &mut stream,
                    id,
                    Body::Flows {
                        entries: Vec::new(),
                        more: false,
                    },
                )
                .await?;
            }
            while let Some(c) = chunks.next() {
                let more = chunks.peek().is_some();
                send(
                    &mut stream,
                    id,
                    Body::Flows {
                        entries: c.to_vec(),
                        more,
                    },
                )
                .await?;
            }
        } else {
            send(&mut stream, id, reply).await?;
        }
    }
}

/// A reply as a client of protocol version 3 or lower can decode it:
/// `afxdp` ports (version 4) are listed as `afpacket`, the kind that
/// serves them as far as such a client can tell.
fn for_old_client(reply: Body) -> Body {
    match reply {
        Body::Ports(mut ps) => {
            for p in &mut ps {
                if p.kind == PortKind::AfXdp {
                    p.kind = PortKind::AfPacket;
                }
            }
            Body::Ports(ps)
        }
        b => b,
    }
}

/// Locks the controller, also if a holder panicked.
pub fn lock(ctl: &Mutex<Controller>) -> std::sync::MutexGuard<'_, Controller> {
    // A panic while holding the lock cannot leave the state half-changed
    // (changes are applied to a copy), so a poisoned lock is still usable.
    ctl.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;
    use protocol::ctl::{FlowModify, MAX_FRAME_LEN};
    use protocol::text::{parse_flow, parse_match};

    struct Client {
        s: UnixStream,
        dec: FrameDecoder,
        id: u64,
    }

    impl Client {
        async fn connect(path: &Path, hello: bool) -> Client {
            let s = UnixStream::connect(path).await.unwrap();
            let mut c = Client {
                s,
                dec: FrameDecoder::new(),
                id: 0,
            };
            if hello {
                let r = c
                    .req(Body::Hello {
                        versions: vec![1],
                        client: "test".into(),
                    })
                    .await;
                assert!(matches!(r, Body::HelloReply { version: 1, .. }), "{r:?}");
            }
            c
        }
        async fn read(&mut self) -> Option<Message> {
            let mut buf = [0u8; 65536];
            loop {
                if let Some(f) = self.dec.next_frame().unwrap() {
                    return Some(decode_message(&f).unwrap());
                }
                let n = self.s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return None;
                }
                self.dec.push(&buf[..n]);
            }
        }
        async fn req(&mut self, body: Body) -> Body {
            self.id += 1;
            let f = encode_frame(&Message { id: self.id, body }).unwrap();
            self.s.write_all(&f).await.unwrap();
            let m = self.read().await.unwrap();
            assert_eq!(m.id, self.id);
            m.body
        }
    }

    /// A controller over `dir` starting from `st`, with a [`NullDatapath`]
    /// (or the one given, to look at its `sent` frames), and its pipeline.
    fn null_controller(
        st: SwitchState,
        dir: &Path,
        dp: Option<NullDatapath>,
    ) -> (Controller, Arc<SharedPipeline>) {
        let pl = Controller::empty_pipeline().unwrap();
        let c = Controller::start(
            st,
            dir.to_path_buf(),
            Arc::clone(&pl),
            Box::new(dp.unwrap_or_default()),
        )
        .unwrap();
        (c, pl)
    }

    fn flows(lines: &[&str]) -> Vec<FlowSpec> {
        lines.iter().map(|l| parse_flow(l).unwrap()).collect()
    }

    async fn server(
        dir: &Path,
    ) -> (
        PathBuf,
        Arc<Mutex<Controller>>,
        Arc<SharedPipeline>,
        broadcast::Sender<Body>,
    ) {
        let st = SwitchState::load(dir).unwrap().unwrap_or_default();
        let (c, pl) = null_controller(st, dir, None);
        let ctl = Arc::new(Mutex::new(c));
        let sock = dir.join("s.sock");
        let l = bind(&sock).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        tokio::spawn(serve(l, Arc::clone(&ctl), events.clone()));
        (sock, ctl, pl, events)
    }

    /// An `afxdp` port (protocol version 4): `DumpPortBackends` says what
    /// serves it; a version-3 client sees it as `afpacket` in `Ports`, a
    /// version-4 client as `afxdp`; it cannot be the underlay.
    #[tokio::test]
    async fn afxdp_port_backend_and_old_clients() {
        let dir = tempfile::tempdir().unwrap();
        let (sock, _ctl, _pl, _events) = server(dir.path()).await;
        let mut c4 = Client::connect(&sock, false).await;
        let r = c4
            .req(Body::Hello {
                versions: vec![3, 4],
                client: "test".into(),
            })
            .await;
        assert!(matches!(r, Body::HelloReply { version: 4, .. }), "{r:?}");
        let r = c4
            .req(Body::PortAdd {
                name: "x1".into(),
                kind: PortKind::AfXdp,
                requested_ofport: None,
            })
            .await;
        assert_eq!(r, Body::PortAdded { port: PortNo(1) });
        c4.req(Body::PortAdd {
            name: "p2".into(),
            kind: PortKind::AfPacket,
            requested_ofport: None,
        })
        .await;
        assert_eq!(
            c4.req(Body::DumpPortBackends).await,
            Body::PortBackends(vec![PortBackendInfo {
                port: PortNo(1),
                name: "x1".into(),
                backend: "afxdp (null datapath)".into(),
            }])
        );
        let kinds = |b: Body| match b {
            Body::Ports(ps) => ps.into_iter().map(|p| p.kind).collect::<Vec<_>>(),
            b => panic!("{b:?}"),
        };
        assert_eq!(
            kinds(c4.req(Body::DumpPorts).await),
            // By name: p2, x1.
            vec![PortKind::AfPacket, PortKind::AfXdp]
        );
        let mut c3 = Client::connect(&sock, false).await;
        c3.req(Body::Hello {
            versions: vec![3],
            client: "old".into(),
        })
        .await;
        assert_eq!(
            kinds(c3.req(Body::DumpPorts).await),
            vec![PortKind::AfPacket, PortKind::AfPacket]
        );
        let r = c4
            .req(Body::SetUnderlay(Some(UnderlayConfig {
                port: "x1".into(),
                host_port: "p2".into(),
                local_ip: None,
            })))
            .await;
        assert!(
            matches!(&r, Body::Error(e) if e.to_string().contains("not an afpacket port")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn session_flows_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (sock, ctl, pl, _events) = server(dir.path()).await;
        // Hello first.
        let mut c = Client::connect(&sock, false).await;
        assert!(matches!(
            c.req(Body::Ping).await,
            Body::Error(CtlError::UnexpectedMessage { .. })
        ));
        let mut c = Client::connect(&sock, true).await;
        assert_eq!(c.req(Body::Ping).await, Body::Ok);
        let r = c
            .req(Body::PortAdd {
                name: "p1".into(),
                kind: PortKind::AfPacket,
                requested_ofport: None,
            })
            .await;
        assert_eq!(r, Body::PortAdded { port: PortNo(1) });
        let r = c
            .req(Body::PortAdd {
                name: "p2".into(),
                kind: PortKind::Tap,
                requested_ofport: Some(PortNo(5)),
            })
            .await;
        assert_eq!(r, Body::PortAdded { port: PortNo(5) });
        let r = c
            .req(Body::PortAdd {
                name: "fail0".into(),
                kind: PortKind::Tap,
                requested_ofport: None,
            })
            .await;
        assert!(
            matches!(r, Body::Error(CtlError::PortFailed { .. })),
            "{r:?}"
        );
        let r = c
            .req(Body::AddFlows {
                flows: flows(&["in_port=1,actions=output:5", "in_port=5,actions=output:1"]),
            })
            .await;
        let Body::FlowsChanged(counts) = r else {
            panic!("{r:?}")
        };
        assert_eq!(counts.added, 2);
        assert_eq!(pl.load().generation(), counts.generation);
        // A bad flow: named by index and field; nothing changes.
        let r = c
            .req(Body::AddFlows {
                flows: flows(&["priority=9,actions=drop", "in_port=1,actions=output:9"]),
            })
            .await;
        let Body::Error(CtlError::BadFlow { index, field, .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!((index, field.as_str()), (1, "output"));
        assert_eq!(ctl.lock().unwrap().state().flows.len(), 2);
        assert_eq!(pl.load().generation(), counts.generation);
        // Modify and dump.
        let r = c
            .req(Body::ModifyFlows(FlowModify {
                spec: parse_flow("in_port=1,actions=output:5,output:5").unwrap(),
                strict: true,
            }))
            .await;
        assert!(
            matches!(r, Body::FlowsChanged(ChangeCounts { modified: 1, .. })),
            "{r:?}"
        );
        let r = c
            .req(Body::DumpFlows {
                filter: FlowFilter {
                    r#match: parse_match("in_port=1").unwrap(),
                    ..FlowFilter::default()
                },
                with_stats: true,
            })
            .await;
        let Body::Flows {
            entries,
            more: false,
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].spec.actions.len(), 2);
        // Bundle: an invalid change aborts everything.
        assert_eq!(
            c.req(Body::BundleOpen {
                bundle_id: BundleId(1)
            })
            .await,
            Body::Ok
        );
        assert!(matches!(
            c.req(Body::BundleOpen {
                bundle_id: BundleId(1)
            })
            .await,
            Body::Error(CtlError::BundleExists { .. })
        ));
        let r = c
            .req(Body::BundleAdd {
                bundle_id: BundleId(1),
                changes: vec![
                    FlowChange::Delete(FlowFilter::default()),
                    FlowChange::Add(parse_flow("actions=output:77").unwrap()),
                ],
            })
            .await;
        assert_eq!(r, Body::Ok);
        let r = c
            .req(Body::BundleCommit {
                bundle_id: BundleId(1),
            })
            .await;
        let Body::Error(CtlError::BundleFailed { index: 1, .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(ctl.lock().unwrap().state().flows.len(), 2);
        assert!(matches!(
            c.req(Body::BundleCommit {
                bundle_id: BundleId(1)
            })
            .await,
            Body::Error(CtlError::NoSuchBundle { .. })
        ));
        c.req(Body::BundleOpen {
            bundle_id: BundleId(2),
        })
        .await;
        c.req(Body::BundleAdd {
            bundle_id: BundleId(2),
            changes: vec![
                FlowChange::Delete(FlowFilter::default()),
                FlowChange::Add(parse_flow("actions=NORMAL").unwrap()),
            ],
        })
        .await;
        let r = c
            .req(Body::BundleCommit {
                bundle_id: BundleId(2),
            })
            .await;
        assert!(
            matches!(
                r,
                Body::FlowsChanged(ChangeCounts {
                    added: 1,
                    removed: 2,
                    ..
                })
            ),
            "{r:?}"
        );
        c.req(Body::BundleOpen {
            bundle_id: BundleId(3),
        })
        .await;
        assert_eq!(
            c.req(Body::BundleDiscard {
                bundle_id: BundleId(3)
            })
            .await,
            Body::Ok
        );
        // Ports dump, delete.
        let Body::Ports(ports) = c.req(Body::DumpPorts).await else {
            panic!()
        };
        assert_eq!(
            ports.iter().map(|p| p.port).collect::<Vec<_>>(),
            [PortNo(1), PortNo(5)]
        );
        // A port that flows use can be deleted (here after the bundle
        // removed them anyway); flows naming it would stay valid.
        assert_eq!(
            c.req(Body::PortDel {
                port: PortRef::Number(PortNo(5))
            })
            .await,
            Body::Ok
        );
        assert!(matches!(
            c.req(Body::PortDel {
                port: PortRef::Number(PortNo(5))
            })
            .await,
            Body::Error(CtlError::NoSuchPort { .. })
        ));
        // The cookie table: replace, then merge (overwriting by cookie).
        let info = |cookie: u64, name: &str| CookieInfo {
            cookie: protocol::flow::Cookie(cookie),
            kind: "NetworkPolicy".into(),
            namespace: "ns".into(),
            name: name.into(),
            rule: 1,
        };
        let set = |entries, replace| Body::SetCookieInfo { entries, replace };
        assert_eq!(
            c.req(set(vec![info(2, "b"), info(1, "a")], true)).await,
            Body::Ok
        );
        assert_eq!(c.req(set(vec![info(2, "c")], false)).await, Body::Ok);
        assert_eq!(
            c.req(Body::DumpCookies).await,
            Body::Cookies(vec![info(1, "a"), info(2, "c")])
        );
        assert_eq!(c.req(set(vec![info(3, "d")], true)).await, Body::Ok);
        assert_eq!(
            c.req(Body::DumpCookies).await,
            Body::Cookies(vec![info(3, "d")])
        );
        // Replies are not requests: a typed error.
        assert!(matches!(
            c.req(Body::Ok).await,
            Body::Error(CtlError::UnexpectedMessage { .. })
        ));
        assert_eq!(c.req(Body::Goodbye).await, Body::Ok);
        assert!(c.read().await.is_none());
        // The state was persisted: a new controller sees it.
        let st = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(st.flows.len(), 1);
        assert_eq!(st.ports.keys().collect::<Vec<_>>(), ["p1"]);
        assert_eq!(st.ofports.get("p2"), Some(&PortNo(5)));
    }

    /// Tunnel ports, the internal port, the underlay, the node table and
    /// kernel facts, through `handle` with a `NullDatapath`: bad requests
    /// name the field and change nothing; facts republish the tunnels
    /// without recompiling; everything configured survives a restart.
    /// Port add and delete are journal records (one `fdatasync`), not
    /// snapshots, and a restart (load = snapshot + journal) gets them back
    /// with their numbers, a deleted port's number still reserved.
    #[test]
    fn port_add_and_del_are_journalled_and_survive_a_restart() {
        use crate::state::{JOURNAL_FILE, STATE_FILE};
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = null_controller(SwitchState::default(), dir.path(), None);
        let add = |c: &mut Controller, name: &str| {
            c.handle(&Body::PortAdd {
                name: name.into(),
                kind: PortKind::AfPacket,
                requested_ofport: None,
            })
        };
        assert_eq!(add(&mut c, "p1"), Body::PortAdded { port: PortNo(1) });
        assert_eq!(add(&mut c, "p2"), Body::PortAdded { port: PortNo(2) });
        let r = c.handle(&Body::PortDel {
            port: PortRef::Name("p1".into()),
        });
        assert_eq!(r, Body::Ok);
        assert!(!dir.path().join(STATE_FILE).exists(), "no snapshot written");
        let journal = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(journal.lines().count(), 3, "{journal}");
        let back = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.ports, c.state().ports);
        assert_eq!(back.ofports, c.state().ofports);
        assert_eq!(back.ports.keys().collect::<Vec<_>>(), ["p2"]);
        assert_eq!(back.ofports.get("p1"), Some(&PortNo(1)), "number reserved");
        // A restarted switch opens p2 again and gives p1 its number back.
        drop(c);
        let (mut c, _) = null_controller(back, dir.path(), None);
        assert_eq!(add(&mut c, "p3"), Body::PortAdded { port: PortNo(3) });
        assert_eq!(add(&mut c, "p1"), Body::PortAdded { port: PortNo(1) });
        // The replayed journal was compacted by the first change after the
        // restart; the state on disk is still the one in memory.
        let again = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(again.ports, c.state().ports);
    }

    #[test]
    fn tunnels_underlay_and_node_table() {
        use protocol::ctl::{NodeEntry, TunnelConfig, UnderlayConfig};
        let dir = tempfile::tempdir().unwrap();
        let (mut c, pl) = null_controller(SwitchState::default(), dir.path(), None);
        let add = |c: &mut Controller, name: &str, kind: PortKind, req: Option<u32>| {
            c.handle(&Body::PortAdd {
                name: name.into(),
                kind,
                requested_ofport: req.map(PortNo),
            })
        };
        assert_eq!(
            add(&mut c, "weft0", PortKind::Internal, None),
            Body::PortAdded {
                port: PortNo::LOCAL
            }
        );
        assert_eq!(
            add(&mut c, "eth0", PortKind::AfPacket, Some(1)),
            Body::PortAdded { port: PortNo(1) }
        );
        let g = PortKind::Geneve(TunnelConfig::default());
        assert_eq!(
            add(&mut c, "geneve0", g.clone(), Some(100)),
            Body::PortAdded { port: PortNo(100) }
        );
        // A second flow-based Geneve port on the same UDP port is refused.
        let r = add(&mut c, "geneve1", g, None);
        assert!(
            matches!(&r, Body::Error(CtlError::BadRequest { field, .. }) if field == "tunnel port"),
            "{r:?}"
        );
        assert!(!c.state().ports.contains_key("geneve1"));
        let r = add(
            &mut c,
            "vx",
            PortKind::Vxlan(TunnelConfig {
                key: Some(1 << 24),
                ..TunnelConfig::default()
            }),
            None,
        );
        assert!(
            matches!(r, Body::Error(CtlError::BadRequest { .. })),
            "{r:?}"
        );
        let r = add(&mut c, "eth1", PortKind::AfPacket, Some(PortNo::LOCAL.0));
        assert!(
            matches!(r, Body::Error(CtlError::BadRequest { .. })),
            "{r:?}"
        );
        assert_eq!(
            add(
                &mut c,
                "vxlan0",
                PortKind::Vxlan(TunnelConfig::default()),
                Some(101)
            ),
            Body::PortAdded { port: PortNo(101) }
        );

        // The underlay: ports must exist and be of the right kind.
        let u = |port: &str, host: &str| {
            Body::SetUnderlay(Some(UnderlayConfig {
                port: port.into(),
                host_port: host.into(),
                local_ip: None,
            }))
        };
        for (port, host) in [("nope", "weft0"), ("weft0", "eth0"), ("eth0", "geneve0")] {
            let r = c.handle(&u(port, host));
            assert!(
                matches!(r, Body::Error(CtlError::BadRequest { .. })),
                "{port} {host}: {r:?}"
            );
        }
        assert_eq!(c.handle(&u("eth0", "weft0")), Body::Ok);
        let r = c.handle(&Body::PortDel {
            port: PortRef::Name("eth0".into()),
        });
        assert!(
            matches!(r, Body::Error(CtlError::BadRequest { .. })),
            "{r:?}"
        );
        // Before the kernel facts: bridging only, no tunnel ports.
        let t = pl.load();
        assert_eq!(t.tunnels().underlay().map(|u| u.port), Some(PortNo(1)));
        assert_eq!(
            t.tunnels().underlay().and_then(|u| u.host_port),
            Some(PortNo::LOCAL)
        );
        assert!(t.tunnels().ports().is_empty());

        // The node table.
        let n = |name: &str, ip: &str| NodeEntry {
            name: name.into(),
            ip: ip.parse().unwrap(),
        };
        let r = c.handle(&Body::SetNodes {
            nodes: vec![n("a", "192.0.2.2"), n("a", "192.0.2.3")],
            replace: false,
        });
        assert!(
            matches!(r, Body::Error(CtlError::BadRequest { .. })),
            "{r:?}"
        );
        let r = c.handle(&Body::SetNodes {
            nodes: vec![n("b", "0.0.0.0")],
            replace: false,
        });
        assert!(
            matches!(r, Body::Error(CtlError::BadRequest { .. })),
            "{r:?}"
        );
        let ok = c.handle(&Body::SetNodes {
            nodes: vec![n("n2", "192.0.2.2"), n("n3", "192.0.2.3")],
            replace: false,
        });
        assert_eq!(ok, Body::Ok);
        let r = c.handle(&Body::DelNodes {
            names: vec!["n9".into()],
        });
        assert!(
            matches!(r, Body::Error(CtlError::BadRequest { .. })),
            "{r:?}"
        );
        assert_eq!(
            c.handle(&Body::DelNodes {
                names: vec!["n3".into()]
            }),
            Body::Ok
        );
        assert_eq!(
            c.handle(&Body::DumpNodes),
            Body::Nodes(vec![n("n2", "192.0.2.2")])
        );
        let (_, remotes) = c.underlay_query().unwrap();
        assert_eq!(
            remotes.into_iter().collect::<Vec<_>>(),
            vec!["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]
        );

        // Kernel facts arrive: tunnels are published with the same tables.
        let link = |index, mac: u8, mtu| crate::underlay::LinkFacts {
            index,
            mac: Some(protocol::wire::EthernetAddress([2, 0, 0, 0, 0, mac])),
            mtu,
        };
        let remote: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        let mut routes = std::collections::BTreeMap::new();
        routes.insert(
            remote,
            Some(crate::underlay::RouteFacts {
                oif: 7,
                gateway: None,
            }),
        );
        let facts = UnderlayFacts {
            host: link(7, 0xaa, 1500),
            underlay: link(3, 0xbb, 1500),
            local_ipv4: Some("192.0.2.1".parse().unwrap()),
            local_ipv6: None,
            routes,
            neighbours: vec![crate::underlay::NeighFacts {
                ifindex: 7,
                ip: remote,
                mac: Some(protocol::wire::EthernetAddress([0xcc; 6])),
                usable: true,
            }],
        };
        let before = pl.load().generation();
        let solicit = c.set_underlay_facts(Some(Ok(facts.clone())));
        assert!(solicit.is_empty());
        let t = pl.load();
        assert_eq!(t.generation(), before + 1);
        assert_eq!(t.tunnels().ports().len(), 2);
        let u = t.tunnels().underlay().unwrap();
        assert_eq!(
            u.local_mac,
            protocol::wire::EthernetAddress([2, 0, 0, 0, 0, 0xaa])
        );
        assert_eq!(
            t.tunnels().next_hops().get(remote),
            Some(protocol::wire::EthernetAddress([0xcc; 6]))
        );
        // The same facts again publish nothing.
        c.set_underlay_facts(Some(Ok(facts)));
        assert_eq!(pl.load().generation(), before + 1);
        let Body::Tunnels(st) = c.handle(&Body::DumpTunnels) else {
            panic!()
        };
        let mtus: Vec<(String, u32, u32)> = st
            .ports
            .iter()
            .map(|p| (p.name.clone(), p.overhead, p.pod_mtu))
            .collect();
        assert_eq!(
            mtus,
            vec![("geneve0".into(), 58, 1442), ("vxlan0".into(), 50, 1450)]
        );
        assert_eq!(st.local_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(st.underlay_mtu, 1500);
        let Body::Stats(stats) = c.handle(&Body::DumpStats) else {
            panic!()
        };
        assert!(stats.drops.iter().any(|d| d.reason == "tunnel_too_big"));

        // Everything configured comes back after a restart.
        drop(c);
        let st = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(st.nodes.len(), 1);
        assert_eq!(st.underlay.as_ref().map(|u| u.port.as_str()), Some("eth0"));
        assert_eq!(st.ports["weft0"].ofport, PortNo::LOCAL);
        assert_eq!(st.ports["geneve0"].ofport, PortNo(100));
    }

    /// Per-port offloads (`PortAddWith`, protocol version 3): the option
    /// reaches the datapath, `DumpPortOffloads` reports it with the
    /// device's answer, it is persisted and the port is reopened with it
    /// after a restart; `PortAdd` means offloads on, and a state written
    /// before the option existed reads as offloads on.
    #[test]
    fn per_port_offloads_option() {
        use protocol::ctl::{PortOffloadInfo, PortOptions, TunnelConfig};
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = null_controller(SwitchState::default(), dir.path(), None);
        let with = |name: &str, kind: PortKind, port: u32, offloads: bool| Body::PortAddWith {
            name: name.into(),
            kind,
            requested_ofport: Some(PortNo(port)),
            options: PortOptions { offloads },
        };
        assert_eq!(
            c.handle(&with("plain", PortKind::AfPacket, 1, false)),
            Body::PortAdded { port: PortNo(1) }
        );
        assert_eq!(
            c.handle(&Body::PortAdd {
                name: "fast".into(),
                kind: PortKind::Tap,
                requested_ofport: Some(PortNo(2)),
            }),
            Body::PortAdded { port: PortNo(2) }
        );
        let g = PortKind::Geneve(TunnelConfig::default());
        assert_eq!(
            c.handle(&with("geneve0", g, 100, true)),
            Body::PortAdded { port: PortNo(100) }
        );
        // A bad name is refused by name, with the option too.
        let r = c.handle(&with("bad/name", PortKind::AfPacket, 3, false));
        assert!(
            matches!(&r, Body::Error(CtlError::BadRequest { field, .. }) if field == "name"),
            "{r:?}"
        );
        let info =
            |port: u32, name: &str, requested: bool, vnet_hdr: Option<bool>| PortOffloadInfo {
                port: PortNo(port),
                name: name.into(),
                requested,
                vnet_hdr,
            };
        // The test process has no WEFT_OFFLOADS=off (CI does not set it).
        let expected = vec![
            info(2, "fast", true, Some(true)),
            info(100, "geneve0", true, None),
            info(1, "plain", false, Some(false)),
        ];
        let Body::PortOffloads(mut got) = c.handle(&Body::DumpPortOffloads) else {
            panic!()
        };
        got.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(got, expected);

        // Persisted, and reopened with the option after a restart.
        drop(c);
        let st = SwitchState::load(dir.path()).unwrap().unwrap();
        assert!(!st.ports["plain"].options.offloads);
        assert!(st.ports["fast"].options.offloads);
        let text = st.to_json().unwrap();
        let (c, _) = null_controller(st, dir.path(), None);
        let mut got = c.dump_port_offloads();
        got.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(got, expected);
        drop(c);

        // A snapshot from before the option: no `options` key -> on.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut stripped = 0;
        strip_key(&mut v, "options", &mut stripped);
        assert_eq!(stripped, 3, "{text}");
        let old = SwitchState::from_json(&v.to_string()).unwrap();
        assert!(old.ports.values().all(|p| p.options.offloads));
    }

    fn strip_key(v: &mut serde_json::Value, key: &str, n: &mut usize) {
        match v {
            serde_json::Value::Object(m) => {
                if m.remove(key).is_some() {
                    *n += 1;
                }
                m.values_mut().for_each(|x| strip_key(x, key, n));
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip_key(x, key, n)),
            _ => {}
        }
    }

    /// Counters survive recompilation (another flow added) for unchanged
    /// and modified flows, and reset when an add replaces the flow.
    #[test]
    fn counters_carry_across_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let dp = NullDatapath::default();
        let sent = Arc::clone(&dp.sent);
        let (mut c, pl) = null_controller(SwitchState::default(), dir.path(), Some(dp));
        let r = c.handle(&Body::AddFlows {
            flows: flows(&["in_port=1,actions=output:2", "in_port=2,actions=output:1"]),
        });
        assert!(matches!(r, Body::FlowsChanged(_)), "{r:?}");
        // An ARP request (who-has 10.0.0.2 tell 10.0.0.1), built by hand.
        let mut frame = vec![0xff; 6];
        frame.extend([
            2, 0, 0, 0, 0, 1, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1,
        ]);
        frame.extend([10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let send = |n: usize| {
            let p = pl.load();
            let mut ws = crate::pipeline::WorkerState::new(p.config());
            for _ in 0..n {
                let mut b = crate::buf::PacketBuf::from_slice(&frame);
                let mut sink = crate::pipeline::CollectSink::default();
                p.process(
                    &mut b,
                    PortNo(1),
                    unix_ms(),
                    &mut ws,
                    &mut sink,
                    &mut crate::pipeline::NoTrace,
                );
            }
        };
        let count = |c: &Controller| {
            c.dump_flows(
                &FlowFilter {
                    r#match: parse_match("in_port=1").unwrap(),
                    ..FlowFilter::default()
                },
                unix_ms(),
            )[0]
            .n_packets
        };
        send(3);
        assert_eq!(count(&c), 3);
        c.handle(&Body::AddFlows {
            flows: flows(&["priority=1,actions=drop"]),
        });
        send(2);
        assert_eq!(count(&c), 5, "carried over one publish");
        c.handle(&Body::ModifyFlows(FlowModify {
            spec: parse_flow("in_port=1,actions=output:2,output:2").unwrap(),
            strict: true,
        }));
        assert_eq!(count(&c), 5, "modify keeps counters");
        // Trace does not count.
        let r = c.handle(&Body::Trace {
            in_port: PortNo(1),
            input: TraceInput::Packet(frame.clone()),
        });
        let Body::TraceResult { text } = r else {
            panic!("{r:?}")
        };
        assert!(text.contains("output:2"), "{text}");
        assert_eq!(count(&c), 5);
        // The structured form: the same text, the exact output bytes and
        // the rule hit with its cookie; it does not count either.
        let r = c.handle(&Body::TraceDetailed {
            in_port: PortNo(1),
            input: TraceInput::Packet(frame.clone()),
        });
        let Body::TraceReport(rep) = r else {
            panic!("{r:?}")
        };
        assert_eq!(rep.text, text);
        assert!(!rep.dropped);
        assert_eq!(rep.outputs.len(), 2, "{rep:?}");
        assert!(
            rep.outputs
                .iter()
                .all(|o| o.port == PortNo(2) && o.packet == frame),
            "{rep:?}"
        );
        assert_eq!(rep.rules.len(), 1, "{rep:?}");
        assert_eq!(rep.rules[0].table, protocol::flow::TableId(0));
        assert_eq!(rep.rules[0].depth, 0);
        let hit = rep.rules[0].hit.as_ref().unwrap();
        assert_eq!(hit.actions, "output:2,output:2");
        assert_eq!(count(&c), 5);
        c.handle(&Body::AddFlows {
            flows: flows(&["in_port=1,actions=output:2"]),
        });
        assert_eq!(count(&c), 0, "replacing add resets");
        // Packet-out goes to the datapath, not through the flow tables.
        let r = c.handle(&Body::PacketOut {
            in_port: PortNo::CONTROLLER,
            packet: frame.clone(),
            actions: vec![protocol::flow::Action::Output(PortNo(7))],
        });
        assert_eq!(r, Body::Ok);
        assert_eq!(
            sent.lock().unwrap().as_slice(),
            [(PortNo(7), frame.clone())]
        );
        assert_eq!(count(&c), 0);
        // Timeouts: hard counts from the add, idle from the last match.
        c.handle(&Body::AddFlows {
            flows: flows(&[
                "priority=5,hard_timeout=2,actions=drop",
                "priority=6,idle_timeout=1,actions=drop",
            ]),
        });
        let t = unix_ms();
        assert!(c.expire(t).unwrap().is_empty());
        let gone = c.expire(t + 1500).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, RemovedReason::IdleTimeout);
        let gone = c.expire(t + 2500).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, RemovedReason::HardTimeout);
        assert_eq!(c.state().flows.len(), 3);
    }

    #[tokio::test]
    async fn malformed_and_oversize_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (sock, _ctl, _pl, events) = server(dir.path()).await;
        let mut c = Client::connect(&sock, true).await;
        // 1 MB of garbage in a valid frame: an error reply, session goes on.
        let mut f = (1_000_000u32).to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(0xffu8, 1_000_000));
        c.s.write_all(&f).await.unwrap();
        let m = c.read().await.unwrap();
        assert!(matches!(m.body, Body::Error(_)), "{m:?}");
        // A known id with an unknown body tag: error echoes the id.
        let mut f = Vec::new();
        let body = [0x2a, 0x7f]; // id 42 (varint), tag 127
        f.extend((body.len() as u32).to_be_bytes());
        f.extend(body);
        c.s.write_all(&f).await.unwrap();
        let m = c.read().await.unwrap();
        assert_eq!(m.id, 42);
        assert!(matches!(m.body, Body::Error(_)), "{m:?}");
        assert_eq!(c.req(Body::Ping).await, Body::Ok);
        // Packet-ins reach subscribers through the bridge, with their key.
        let mut sub = Client::connect(&sock, true).await;
        let r = sub
            .req(Body::Subscribe {
                packet_in: true,
                flow_removed: false,
            })
            .await;
        assert_eq!(r, Body::Ok);
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let bridge = spawn_packet_in_bridge(rx, events, 1).unwrap();
        let frame: Vec<u8> = [[0xff; 6].as_slice(), &[2, 0, 0, 0, 0, 1, 0x88, 0xb5, 1, 2]].concat();
        tx.send(crate::worker::PacketInEvent {
            in_port: PortNo(3),
            reason: protocol::flow::ControllerReason::Action,
            table: TableId(2),
            cookie: protocol::flow::Cookie(9),
            bytes: frame.clone(),
        })
        .unwrap();
        drop(tx);
        bridge.join().unwrap();
        let m = sub.read().await.unwrap();
        assert_eq!(m.id, 0);
        let Body::PacketIn(pi) = m.body else {
            panic!("{m:?}")
        };
        assert_eq!((pi.table, pi.cookie.0, pi.total_len), (TableId(2), 9, 16));
        assert_eq!(pi.packet, frame);
        assert_eq!(pi.key.in_port(), 3);
        assert_eq!(pi.key.dl_type(), 0x88b5);
        // Oversize declared length: error, then close.
        c.s.write_all(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes())
            .await
            .unwrap();
        let m = c.read().await.unwrap();
        assert!(
            matches!(m.body, Body::Error(CtlError::FrameTooLarge { .. })),
            "{m:?}"
        );
        assert!(c.read().await.is_none());
        // Bad versions close the session.
        let mut c = Client::connect(&sock, false).await;
        let r = c
            .req(Body::Hello {
                versions: vec![99],
                client: "x".into(),
            })
            .await;
        assert!(matches!(r, Body::Error(CtlError::VersionMismatch { .. })));
        assert!(c.read().await.is_none());
    }
}
