//! The datapath worker threads: each owns one receive queue of every port,
//! polls them, runs each received batch through the published
//! [`Pipeline`](crate::pipeline::Pipeline) and transmits the results on its
//! own transmit queue of the output port.
//!
//! # Several workers ([`Workers`])
//!
//! `weft-switchd --workers N` starts N workers. Adding a port opens one
//! handle per worker ([`AfPacketPort::open_group`]: N sockets in a
//! `PACKET_FANOUT_HASH` group; [`TapPort::open_queues`]: N queues of a
//! multi-queue TAP) and hands handle *i* to worker *i*. The kernel spreads
//! received frames over the handles by flow hash, so a flow is handled by
//! one worker and keeps its order; every worker transmits on its own
//! handle of the output port, so nothing on the packet path is shared or
//! locked. Port add/del is a command to every worker (bounded channel,
//! drained between batches): other ports' traffic is not disturbed.
//!
//! `NORMAL`'s MAC tables are per worker and kept in sync by announcements
//! (see [`crate::pipeline::normal`]): each worker has a bounded inbox
//! (`std::sync::mpsc::sync_channel`, [`MAC_SYNC_QUEUE`]) that the other
//! workers `try_send` to after each batch and that it drains before each
//! batch; a full inbox drops and counts ([`WorkerShared::mac_sync_drops`]).
//!
//! Counters (pipeline counters, drops by reason, port counters) are per
//! worker, published to its [`WorkerShared`] every [`STATS_INTERVAL_MS`]
//! and summed by the control thread when read ([`Workers::counters`],
//! [`Datapath::port_stats`]).
//!
//! # The loop
//!
//! 1. Apply port add/delete commands from the control thread (bounded
//!    channel, drained without blocking).
//! 2. `poll` every port's descriptor with a timeout ([`POLL_TIMEOUT_MS`]), so
//!    commands and the stop flag are seen even when idle.
//! 3. For each readable port: `recv_batch` up to [`BATCH_MAX`] frames into
//!    buffers preallocated from a [`BufPool`] (reused for every batch);
//!    load the snapshot once (`arc_swap::Guard`) and read the clock once;
//!    apply the MAC announcements of the other workers; run the batch
//!    through [`process_batch`](crate::pipeline::Pipeline::process_batch)
//!    (the exact-match cache lives in the worker's `WorkerState`) with a
//!    sink that queues outputs on this worker's handle of the output port
//!    (port number → index map; unknown ports are counted in
//!    [`WorkerShared::unknown_port_drops`]); send this batch's MAC
//!    announcements to the other workers.
//! 4. Flush every port with queued frames, once per round.
//! 5. Every [`STATS_INTERVAL_MS`], copy port and worker counters to
//!    [`WorkerShared`] (one short mutex hold, never per packet).
//!
//! No allocation, lock or log per packet, except packet-ins (the slow path:
//! one `Vec` per packet-in, sent on a bounded channel shared by all
//! workers; dropped and counted in [`WorkerShared::packet_in_drops`] when
//! full, never blocking). Flow-removed events are produced by the control
//! thread (timeouts), not by workers.
//!
//! # Thread safety
//!
//! Ports are owned by the worker (moved in through the command channel).
//! [`WorkerShared`] holds atomics and two mutexes written by the worker at
//! most every [`STATS_INTERVAL_MS`] and read by the control thread; no lock
//! is held while another is taken.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hashbrown::HashMap;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use protocol::ctl::{PortKind, PortOptions, PortStats};
use protocol::flow::{ControllerReason, Cookie, PortNo, TableId};

use crate::buf::{BATCH_MAX, BufPool, MAX_PACKET, PacketBuf};
use crate::control::Datapath;
use crate::offload::{Gso, Offload};
use crate::pipeline::normal::MacEvent;
use crate::pipeline::{OutputSink, SharedPipeline, WorkerCounters, WorkerState};
use crate::port::{AfPacketPort, LinkInfo, Port, TapPort, TxOffload, XskPort, link_info, transmit};
use crate::state::unix_ms;
use crate::tunnel::TunnelEvent;

/// Poll timeout: the longest a command or stop request waits when idle.
pub const POLL_TIMEOUT_MS: u16 = 50;
/// How often counters are published to [`WorkerShared`].
pub const STATS_INTERVAL_MS: u64 = 100;
/// Capacity of the command channel.
pub const CMD_QUEUE: usize = 64;
/// Capacity of the packet-in channel (shared by all workers).
pub const PACKET_IN_QUEUE: usize = 1024;
/// Capacity of each worker's inbox of MAC announcements.
pub const MAC_SYNC_QUEUE: usize = 1024;
/// Most workers `--workers` accepts.
pub const MAX_WORKERS: usize = 64;

/// The default worker count: the CPUs this process may run on, at most 4.
/// The cap keeps a default install from taking every core of a large node
/// (the kernel's veth/TAP softirq work and the pods need CPU too, and a
/// worker mostly sleeps in `poll` when idle); more is an operator's choice
/// with `--workers`.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 4)
}
/// Capacity of the tunnel event channel (missing next hops, learned MACs).
pub const TUNNEL_EVENT_QUEUE: usize = 256;

/// A command from the control thread.
#[derive(Debug)]
pub enum WorkerCmd {
    /// Start forwarding on `port` as `ofport`.
    AddPort {
        /// Its OpenFlow number.
        ofport: PortNo,
        /// The opened port.
        port: Box<dyn Port>,
    },
    /// Stop forwarding on `ofport` and close it.
    DelPort {
        /// Its OpenFlow number.
        ofport: PortNo,
    },
    /// Send `frame` on `ofport` (packet-out).
    Transmit {
        /// Its OpenFlow number.
        ofport: PortNo,
        /// The frame.
        frame: Vec<u8>,
    },
}

/// A packet-in event.
#[derive(Debug, Clone)]
pub struct PacketInEvent {
    /// The port the packet came in on.
    pub in_port: PortNo,
    /// Why.
    pub reason: ControllerReason,
    /// From which table.
    pub table: TableId,
    /// Cookie of the rule (all ones for a miss).
    pub cookie: Cookie,
    /// The (possibly cut) packet.
    pub bytes: Vec<u8>,
}

/// What the worker shares with the control thread.
#[derive(Debug, Default)]
pub struct WorkerShared {
    /// Set to stop the worker.
    pub stop: AtomicBool,
    /// Port counters, published every [`STATS_INTERVAL_MS`].
    pub port_stats: Mutex<BTreeMap<PortNo, PortStats>>,
    /// Pipeline counters, published every [`STATS_INTERVAL_MS`].
    pub counters: Mutex<WorkerCounters>,
    /// Outputs to a port this worker does not have.
    pub unknown_port_drops: AtomicU64,
    /// Packet-ins dropped because the channel was full.
    pub packet_in_drops: AtomicU64,
    /// Tunnel events dropped because the channel was full (the daemon
    /// also re-reads the kernel's tables periodically, so none is fatal).
    pub tunnel_event_drops: AtomicU64,
    /// Generation of the snapshot used by the last batch.
    pub generation: AtomicU64,
    /// MAC announcements this worker's table could not record (outbox
    /// full), published every [`STATS_INTERVAL_MS`].
    pub mac_outbox_overflow: AtomicU64,
    /// MAC announcements lost because a peer's inbox was full (the station
    /// is flooded on that peer until announced again).
    pub mac_sync_drops: AtomicU64,
    /// Frames with offload metadata that could not be segmented or have
    /// their checksum completed for a port without offloads (malformed
    /// headers, see [`crate::offload::OffloadError`]).
    pub offload_drops: AtomicU64,
    /// GSO super-frames segmented in software for a port without offloads.
    pub gso_software: AtomicU64,
    /// GSO super-frames passed on, metadata and all, to a port with
    /// offloads.
    pub gso_passed: AtomicU64,
}

fn to_ctl_stats(s: crate::port::PortStats) -> PortStats {
    PortStats {
        rx_packets: s.rx_packets,
        rx_bytes: s.rx_bytes,
        rx_dropped: s.rx_dropped,
        rx_errors: s.rx_errors,
        tx_packets: s.tx_packets,
        tx_bytes: s.tx_bytes,
        tx_dropped: s.tx_dropped,
        tx_errors: s.tx_errors,
    }
}

/// Ports owned by a worker, with a number → index map.
#[derive(Debug, Default)]
struct Ports {
    list: Vec<(PortNo, Box<dyn Port>)>,
    index: HashMap<PortNo, usize>,
}

impl Ports {
    fn reindex(&mut self) {
        self.index = self
            .list
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (*p, i))
            .collect();
    }
    fn add(&mut self, ofport: PortNo, port: Box<dyn Port>) {
        self.list.retain(|(p, _)| *p != ofport);
        self.list.push((ofport, port));
        self.reindex();
    }
    fn remove(&mut self, ofport: PortNo) {
        self.list.retain(|(p, _)| *p != ofport);
        self.reindex();
    }
}

struct Sink<'a> {
    in_port: PortNo,
    ports: &'a mut Ports,
    shared: &'a WorkerShared,
    packet_in: &'a SyncSender<PacketInEvent>,
    tunnel_events: &'a SyncSender<TunnelEvent>,
    /// Where software segmentation builds each segment.
    scratch: &'a mut [u8],
}

impl OutputSink for Sink<'_> {
    #[inline]
    fn output_offload(&mut self, port: PortNo, bytes: &[u8], off: &Offload) {
        let Some(&i) = self.ports.index.get(&port) else {
            self.shared
                .unknown_port_drops
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some((_, p)) = self.ports.list.get_mut(i) else {
            return;
        };
        let gso = off.gso != Gso::None;
        match transmit(p.as_mut(), bytes, off, self.scratch) {
            TxOffload::Plain => {}
            TxOffload::Passed if gso => {
                self.shared.gso_passed.fetch_add(1, Ordering::Relaxed);
            }
            TxOffload::Segmented(_) if gso => {
                self.shared.gso_software.fetch_add(1, Ordering::Relaxed);
            }
            TxOffload::Passed | TxOffload::Segmented(_) => {}
            TxOffload::Refused(_) => {
                self.shared.offload_drops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    fn output(&mut self, port: PortNo, bytes: &[u8]) {
        let Some(&i) = self.ports.index.get(&port) else {
            self.shared
                .unknown_port_drops
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some((_, p)) = self.ports.list.get_mut(i) {
            // Errors are counted by the port; a broken port is found and
            // removed on its next receive.
            let _ = p.send(bytes);
        }
    }

    fn packet_in(
        &mut self,
        reason: ControllerReason,
        table: TableId,
        cookie: Cookie,
        bytes: &[u8],
    ) {
        let ev = PacketInEvent {
            in_port: self.in_port,
            reason,
            table,
            cookie,
            bytes: bytes.to_vec(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.packet_in.try_send(ev)
        {
            self.shared.packet_in_drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline]
    fn tunnel_event(&mut self, event: TunnelEvent) {
        // A bounded channel of `Copy` values: no allocation, never blocks.
        if self.tunnel_events.try_send(event).is_err() {
            self.shared
                .tunnel_event_drops
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// This worker's end of the MAC-table synchronisation.
#[derive(Debug)]
pub struct MacSync {
    /// Announcements from the other workers.
    pub inbox: Receiver<MacEvent>,
    /// The other workers' inboxes.
    pub peers: Vec<SyncSender<MacEvent>>,
}

impl MacSync {
    /// Nothing to synchronise with (a single worker).
    pub fn none() -> MacSync {
        let (_, inbox) = sync_channel(1);
        MacSync {
            inbox,
            peers: Vec::new(),
        }
    }
}

/// The worker's loop; returns when `shared.stop` is set or the command
/// channel is closed.
pub fn run(
    pipeline: Arc<SharedPipeline>,
    cmds: Receiver<WorkerCmd>,
    shared: Arc<WorkerShared>,
    packet_in: SyncSender<PacketInEvent>,
    mac_sync: MacSync,
    tunnel_events: SyncSender<TunnelEvent>,
) {
    let mut ws = WorkerState::new(pipeline.load().config());
    if !mac_sync.peers.is_empty() {
        ws.mac.enable_sync();
    }
    let mut ports = Ports::default();
    let mut pool = BufPool::with_capacity(BATCH_MAX);
    let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| pool.get()).collect();
    let mut ready: Vec<bool> = Vec::new();
    let mut scratch = vec![0u8; MAX_PACKET].into_boxed_slice();
    let mut last_stats = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        loop {
            match cmds.try_recv() {
                Ok(WorkerCmd::AddPort { ofport, port }) => {
                    tracing::debug!(ofport = ofport.0, name = port.name(), "worker: port added");
                    ports.add(ofport, port);
                }
                Ok(WorkerCmd::DelPort { ofport }) => {
                    tracing::debug!(ofport = ofport.0, "worker: port removed");
                    ports.remove(ofport);
                    if let Ok(mut s) = shared.port_stats.lock() {
                        s.remove(&ofport);
                    }
                }
                Ok(WorkerCmd::Transmit { ofport, frame }) => match ports.index.get(&ofport) {
                    Some(&i) => {
                        if let Some((_, p)) = ports.list.get_mut(i) {
                            let _ = p.send(&frame);
                        }
                    }
                    None => {
                        shared.unknown_port_drops.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        ready.clear();
        {
            // On the stack for up to 64 ports: no allocation per poll round.
            let mut fds: smallvec::SmallVec<[PollFd<'_>; 64]> = ports
                .list
                .iter()
                .map(|(_, p)| PollFd::new(p.fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(POLL_TIMEOUT_MS)) {
                Ok(_) => ready.extend(fds.iter().map(|f| {
                    f.revents().is_some_and(|r| {
                        r.intersects(PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP)
                    })
                })),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "worker: poll failed");
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(
                        POLL_TIMEOUT_MS,
                    )));
                }
            }
        }
        let mut broken: Option<PortNo> = None;
        for (i, is_ready) in ready.iter().enumerate() {
            if !*is_ready {
                continue;
            }
            let Some((in_port, port)) = ports.list.get_mut(i) else {
                continue;
            };
            let in_port = *in_port;
            let n = match port.recv_batch(&mut bufs) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(ofport = in_port.0, error = %e, "worker: port failed, removing it");
                    broken = Some(in_port);
                    continue;
                }
            };
            if n == 0 {
                continue;
            }
            let pl = pipeline.load();
            let now = unix_ms();
            let aging = pl.config().mac_aging_ms;
            while let Ok(ev) = mac_sync.inbox.try_recv() {
                ws.mac.learn_remote(&ev, now, aging);
            }
            let mut sink = Sink {
                in_port,
                ports: &mut ports,
                shared: &shared,
                packet_in: &packet_in,
                tunnel_events: &tunnel_events,
                scratch: &mut scratch,
            };
            if let Some(batch) = bufs.get_mut(..n) {
                pl.process_batch(batch, in_port, now, &mut ws, &mut sink);
            }
            ws.mac.drain_announcements(|ev| {
                for peer in &mac_sync.peers {
                    if peer.try_send(ev).is_err() {
                        shared.mac_sync_drops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            shared.generation.store(pl.generation(), Ordering::Relaxed);
        }
        for (_, p) in &mut ports.list {
            if p.pending() > 0 {
                let _ = p.flush();
            }
        }
        if let Some(b) = broken {
            ports.remove(b);
        }
        let now = unix_ms();
        if now.saturating_sub(last_stats) >= STATS_INTERVAL_MS {
            last_stats = now;
            publish(&shared, &ports, &ws);
        }
    }
    publish(&shared, &ports, &ws);
}

/// Copies the worker's counters to `shared` (every [`STATS_INTERVAL_MS`]
/// and when it stops).
fn publish(shared: &WorkerShared, ports: &Ports, ws: &WorkerState) {
    if let Ok(mut s) = shared.port_stats.lock() {
        s.clear();
        s.extend(
            ports
                .list
                .iter()
                .map(|(n, p)| (*n, to_ctl_stats(p.stats()))),
        );
    }
    if let Ok(mut c) = shared.counters.lock() {
        c.clone_from(&ws.counters);
    }
    shared
        .mac_outbox_overflow
        .store(ws.mac.outbox_overflow(), Ordering::Relaxed);
}

/// The control thread's handle on one worker thread.
#[derive(Debug)]
pub struct WorkerHandle {
    tx: SyncSender<WorkerCmd>,
    shared: Arc<WorkerShared>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    fn spawn_one(
        id: usize,
        pipeline: Arc<SharedPipeline>,
        packet_in: SyncSender<PacketInEvent>,
        mac_sync: MacSync,
        tunnel_events: SyncSender<TunnelEvent>,
    ) -> std::io::Result<WorkerHandle> {
        let (tx, rx) = sync_channel(CMD_QUEUE);
        let shared = Arc::new(WorkerShared::default());
        let s2 = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("weft-worker-{id}"))
            .spawn(move || run(pipeline, rx, s2, packet_in, mac_sync, tunnel_events))?;
        Ok(WorkerHandle {
            tx,
            shared,
            thread: Some(thread),
        })
    }
    /// The shared counters.
    pub fn shared(&self) -> &Arc<WorkerShared> {
        &self.shared
    }

    fn send(&self, cmd: WorkerCmd) -> Result<(), String> {
        self.tx.send(cmd).map_err(|_| "worker stopped".to_owned())
    }

    /// Stops the worker and waits for it.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The datapath: N worker threads; a [`Datapath`].
#[derive(Debug)]
pub struct Workers {
    workers: Vec<WorkerHandle>,
    packet_in: Option<Receiver<PacketInEvent>>,
    tunnel_events: Option<Receiver<TunnelEvent>>,
    /// Name and link facts of each open port, read when it was opened (a
    /// TAP's netdev may later move to another namespace, where the switch
    /// cannot look it up by name).
    links: BTreeMap<PortNo, (String, Option<LinkInfo>)>,
    /// Whether the kernel accepted the vnet header on each open port with
    /// a device ([`Port::offloads`] of its first queue).
    vnet: BTreeMap<PortNo, bool>,
    /// What actually serves each open `afxdp` port (AF_XDP, or the
    /// AF_PACKET fallback and why).
    backend: BTreeMap<PortNo, String>,
}

/// Opens an `afxdp` port: an [`XskPort`] for the first worker (the
/// interface's receive queue 0) and, with more workers, AF_PACKET sockets
/// for the others (they transmit on them; they receive only frames the XDP
/// program passes, see `crate::port::XskPort`). If AF_XDP cannot be set
/// up, the whole port is AF_PACKET, with one warning naming the failed
/// step and errno. Returns the handles and what serves the port.
fn open_afxdp(name: &str, n: usize, offload: bool) -> Result<(Vec<Box<dyn Port>>, String), String> {
    let boxed = |v: Vec<AfPacketPort>| {
        v.into_iter()
            .map(|p| Box::new(p) as Box<dyn Port>)
            .collect::<Vec<_>>()
    };
    let forced = std::env::var("WEFT_AFXDP").is_ok_and(|v| v == "off");
    let xsk = if forced {
        Err("disabled by WEFT_AFXDP=off".to_owned())
    } else {
        XskPort::open(name)
    };
    match xsk {
        Ok(x) => {
            let backend = format!(
                "afxdp ({} mode, {} XDP)",
                if x.zerocopy() { "zero-copy" } else { "copy" },
                if x.native() { "native" } else { "generic" }
            );
            let mut handles: Vec<Box<dyn Port>> = vec![Box::new(x)];
            if n > 1 {
                let rest = AfPacketPort::open_group_with(name, n - 1, offload)
                    .map_err(|e| format!("{name}: AF_PACKET sockets for workers 2..{n}: {e}"))?;
                handles.extend(boxed(rest));
            }
            Ok((handles, backend))
        }
        Err(reason) => {
            tracing::warn!(port = name, %reason, "AF_XDP set-up failed; the port uses AF_PACKET");
            let ports =
                AfPacketPort::open_group_with(name, n, offload).map_err(|e| e.to_string())?;
            Ok((boxed(ports), format!("afpacket (fallback: {reason})")))
        }
    }
}

impl Workers {
    /// Starts `n` worker threads (1 to [`MAX_WORKERS`]) on `pipeline`.
    ///
    /// # Errors
    /// If `n` is out of range or a thread cannot be spawned.
    pub fn spawn(pipeline: &Arc<SharedPipeline>, n: usize) -> std::io::Result<Workers> {
        if !(1..=MAX_WORKERS).contains(&n) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("workers: {n} is not in 1..={MAX_WORKERS}"),
            ));
        }
        let (pi_tx, pi_rx) = sync_channel(PACKET_IN_QUEUE);
        let (te_tx, te_rx) = sync_channel(TUNNEL_EVENT_QUEUE);
        let (senders, inboxes): (Vec<_>, Vec<_>) =
            (0..n).map(|_| sync_channel(MAC_SYNC_QUEUE)).unzip();
        let mut workers = Vec::with_capacity(n);
        for (id, inbox) in inboxes.into_iter().enumerate() {
            let peers = senders
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != id)
                .map(|(_, s)| s.clone())
                .collect();
            workers.push(WorkerHandle::spawn_one(
                id,
                Arc::clone(pipeline),
                pi_tx.clone(),
                MacSync { inbox, peers },
                te_tx.clone(),
            )?);
        }
        Ok(Workers {
            workers,
            packet_in: Some(pi_rx),
            tunnel_events: Some(te_rx),
            links: BTreeMap::new(),
            vnet: BTreeMap::new(),
            backend: BTreeMap::new(),
        })
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false (at least one worker runs).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The workers.
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Takes the packet-in receiver (once; while nobody holds it the
    /// channel fills and further packet-ins are counted as dropped).
    pub fn take_packet_in(&mut self) -> Option<Receiver<PacketInEvent>> {
        self.packet_in.take()
    }

    /// Takes the tunnel event receiver (shared by all workers; once; see
    /// [`WorkerShared::tunnel_event_drops`]).
    pub fn take_tunnel_events(&mut self) -> Option<Receiver<TunnelEvent>> {
        self.tunnel_events.take()
    }

    /// Hands already opened handles of one port to the workers: handle *i*
    /// to worker *i*. With fewer handles than workers, the remaining
    /// workers do not have the port (they count outputs to it in
    /// [`WorkerShared::unknown_port_drops`]); that is for in-memory test
    /// ports only.
    ///
    /// # Errors
    /// If a worker has stopped, or there are more handles than workers.
    pub fn add_port(&self, ofport: PortNo, handles: Vec<Box<dyn Port>>) -> Result<(), String> {
        if handles.len() > self.workers.len() {
            return Err(format!(
                "{} handles for {} workers",
                handles.len(),
                self.workers.len()
            ));
        }
        for (w, port) in self.workers.iter().zip(handles) {
            w.send(WorkerCmd::AddPort { ofport, port })?;
        }
        Ok(())
    }

    /// Pipeline counters summed over the workers (as last published, at
    /// most [`STATS_INTERVAL_MS`] old).
    pub fn counters(&self) -> WorkerCounters {
        let mut sum = WorkerCounters::default();
        for w in &self.workers {
            if let Ok(c) = w.shared.counters.lock() {
                sum.packets += c.packets;
                sum.bytes += c.bytes;
                sum.outputs += c.outputs;
                sum.packet_ins += c.packet_ins;
                for (s, d) in sum.drops.iter_mut().zip(c.drops.iter()) {
                    *s += d;
                }
            }
        }
        sum
    }

    /// Per-worker pipeline counters (as last published).
    pub fn per_worker_counters(&self) -> Vec<WorkerCounters> {
        self.workers
            .iter()
            .map(|w| {
                w.shared
                    .counters
                    .lock()
                    .map(|c| c.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Stops every worker, waits for them and logs their final counters
    /// (one line per worker, then the sum).
    pub fn stop(&mut self) {
        let running = self.workers.iter().any(|w| w.thread.is_some());
        for w in &self.workers {
            w.shared.stop.store(true, Ordering::Relaxed);
        }
        for w in &mut self.workers {
            w.stop();
        }
        if !running {
            return;
        }
        for (i, c) in self.per_worker_counters().iter().enumerate() {
            let w = &self.workers[i].shared;
            tracing::info!(
                worker = i,
                packets = c.packets,
                outputs = c.outputs,
                packet_ins = c.packet_ins,
                drops = ?c.drops,
                unknown_port_drops = w.unknown_port_drops.load(Ordering::Relaxed),
                packet_in_drops = w.packet_in_drops.load(Ordering::Relaxed),
                mac_sync_drops = w.mac_sync_drops.load(Ordering::Relaxed)
                    + w.mac_outbox_overflow.load(Ordering::Relaxed),
                "worker stopped"
            );
        }
        let c = self.counters();
        tracing::info!(
            workers = self.workers.len(),
            packets = c.packets,
            outputs = c.outputs,
            drops = ?c.drops,
            "datapath stopped"
        );
    }
}

fn add_stats(sum: &mut PortStats, s: &PortStats) {
    sum.rx_packets += s.rx_packets;
    sum.rx_bytes += s.rx_bytes;
    sum.rx_dropped += s.rx_dropped;
    sum.rx_errors += s.rx_errors;
    sum.tx_packets += s.tx_packets;
    sum.tx_bytes += s.tx_bytes;
    sum.tx_dropped += s.tx_dropped;
    sum.tx_errors += s.tx_errors;
}

impl Datapath for Workers {
    fn open_port(
        &mut self,
        name: &str,
        kind: &PortKind,
        ofport: PortNo,
        options: &PortOptions,
    ) -> Result<(), String> {
        let n = self.workers.len();
        // Offloads (vnet headers) as the port's option says, unless the
        // daemon runs with WEFT_OFFLOADS=off (see crate::offload). The
        // kernel may still refuse them: `vnet` records what it accepted.
        let offload = options.offloads && !crate::offload::disabled_by_env();
        let handles: Vec<Box<dyn Port>> = match kind {
            PortKind::AfPacket => AfPacketPort::open_group_with(name, n, offload)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|p| Box::new(p) as Box<dyn Port>)
                .collect(),
            PortKind::AfXdp => {
                let (handles, backend) = open_afxdp(name, n, offload)?;
                self.backend.insert(ofport, backend);
                handles
            }
            // An internal port is a TAP the host stack uses (OVS `internal`);
            // it survives a crash of the switch with the host's addresses
            // (persistent while the port exists; `port::tap` module doc).
            PortKind::Tap | PortKind::Internal => {
                // A switch killed a moment ago may still hold the device
                // (its last threads exit after the leader): TUNSETIFF says
                // EBUSY until they are gone. Seen on restarts under load.
                let t0 = std::time::Instant::now();
                let mut qs = loop {
                    match TapPort::open_queues_with(name, n, offload) {
                        Err(e)
                            if e.raw_os_error() == Some(libc::EBUSY)
                                && t0.elapsed() < std::time::Duration::from_secs(3) =>
                        {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        r => break r.map_err(|e| e.to_string())?,
                    }
                };
                if matches!(kind, PortKind::Internal)
                    && let Some(q) = qs.first_mut()
                {
                    q.set_persistent()
                        .map_err(|e| format!("{name}: TUNSETPERSIST: {e}"))?;
                }
                qs.into_iter()
                    .map(|p| Box::new(p) as Box<dyn Port>)
                    .collect()
            }
            // Tunnel ports have no device: the pipeline encapsulates what
            // is output to them and sends it out of the underlay port.
            PortKind::Geneve(_) | PortKind::Vxlan(_) => return Ok(()),
        };
        self.links
            .insert(ofport, (name.to_owned(), link_info(name).ok()));
        if let Some(h) = handles.first() {
            self.vnet.insert(ofport, h.offloads());
        }
        self.add_port(ofport, handles)
    }

    fn close_port(&mut self, ofport: PortNo) {
        self.links.remove(&ofport);
        self.vnet.remove(&ofport);
        self.backend.remove(&ofport);
        for w in &self.workers {
            let _ = w.send(WorkerCmd::DelPort { ofport });
        }
    }

    fn transmit(&mut self, ofport: PortNo, frame: Vec<u8>) {
        // Any worker can send on any port; the first one does.
        // Never block the control thread: a full queue drops the frame.
        let Some(w) = self.workers.first() else {
            return;
        };
        if w.tx
            .try_send(WorkerCmd::Transmit { ofport, frame })
            .is_err()
        {
            w.shared.unknown_port_drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn port_stats(&self) -> BTreeMap<PortNo, PortStats> {
        let mut sum: BTreeMap<PortNo, PortStats> = BTreeMap::new();
        for w in &self.workers {
            if let Ok(s) = w.shared.port_stats.lock() {
                for (p, st) in s.iter() {
                    add_stats(sum.entry(*p).or_default(), st);
                }
            }
        }
        sum
    }

    fn is_open(&self, ofport: PortNo) -> bool {
        self.links.contains_key(&ofport)
    }

    fn vnet_hdr(&self, ofport: PortNo) -> Option<bool> {
        self.vnet.get(&ofport).copied()
    }

    fn backend(&self, ofport: PortNo) -> Option<String> {
        self.backend.get(&ofport).cloned()
    }

    fn link(&self, ofport: PortNo) -> Option<LinkInfo> {
        let (name, cached) = self.links.get(&ofport)?;
        // Fresh when the interface is in our namespace, else as opened.
        link_info(name).ok().or(*cached)
    }

    fn worker_drops(&self) -> Vec<(&'static str, u64)> {
        let sum = |f: fn(&WorkerShared) -> &AtomicU64| -> u64 {
            self.workers
                .iter()
                .map(|w| f(&w.shared).load(Ordering::Relaxed))
                .sum()
        };
        vec![
            // Output to a port this worker does not have (e.g. a tunnel
            // port while the underlay is not usable yet), packet-out queue
            // full.
            ("unknown_port", sum(|s| &s.unknown_port_drops)),
            ("packet_in_queue_full", sum(|s| &s.packet_in_drops)),
            ("tunnel_event_queue_full", sum(|s| &s.tunnel_event_drops)),
            ("mac_sync_queue_full", sum(|s| &s.mac_sync_drops)),
            ("mac_outbox_overflow", sum(|s| &s.mac_outbox_overflow)),
            // Offload metadata that could not be honoured for a port
            // without offloads (malformed headers); and, not drops, the
            // GSO super-frames segmented here vs passed on.
            ("offload_malformed", sum(|s| &s.offload_drops)),
            ("gso_segmented_in_software", sum(|s| &s.gso_software)),
            ("gso_passed_to_port", sum(|s| &s.gso_passed)),
        ]
    }

    fn counters(&self) -> WorkerCounters {
        Workers::counters(self)
    }

    fn worker_counters(&self) -> Vec<WorkerCounters> {
        self.per_worker_counters()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;
    use crate::pipeline::{Pipeline, SwitchConfig};
    use crate::port::MemoryPort;
    use protocol::text::parse_flow;

    /// An ARP request (broadcast, who-has 10.0.0.2 tell 10.0.0.1), built
    /// field by field; the test only needs a well-formed frame.
    fn arp() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        f.extend([0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        f
    }

    fn wait_sent(h: &crate::port::MemoryPortHandle, n: usize) -> Vec<Vec<u8>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && std::time::Instant::now() < deadline {
            got.extend(h.take_sent());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn forwards_between_memory_ports_and_counts() {
        let flows = vec![
            parse_flow("in_port=1,actions=output:2").unwrap(),
            parse_flow("in_port=2,actions=output:9").unwrap(),
        ];
        let pl = Pipeline::compile(&flows, SwitchConfig::default(), 1).unwrap();
        let shared_pl = Arc::new(SharedPipeline::from_pointee(pl));
        let mut h = Workers::spawn(&shared_pl, 1).unwrap();
        let (p1, h1) = MemoryPort::new("m1").unwrap();
        let (p2, h2) = MemoryPort::new("m2").unwrap();
        h.add_port(PortNo(1), vec![Box::new(p1)]).unwrap();
        h.add_port(PortNo(2), vec![Box::new(p2)]).unwrap();
        for _ in 0..5 {
            h1.inject(&arp());
        }
        h2.inject(&arp());
        let got = wait_sent(&h2, 5);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], arp());
        std::thread::sleep(std::time::Duration::from_millis(3 * STATS_INTERVAL_MS));
        let w0 = h.workers()[0].shared();
        assert_eq!(w0.unknown_port_drops.load(Ordering::Relaxed), 1);
        let rules: Vec<_> = shared_pl.load().rules().map(|r| r.stats.get().0).collect();
        assert_eq!(rules.iter().sum::<u64>(), 6);
        assert_eq!(h.counters().packets, 6);
        assert_eq!(h.counters().outputs, 6);
        let st = h.port_stats();
        assert_eq!(st[&PortNo(1)].rx_packets, 5);
        assert_eq!(st[&PortNo(2)].tx_packets, 5);
        h.transmit(PortNo(2), arp());
        assert_eq!(wait_sent(&h2, 1), [arp()]);
        h.close_port(PortNo(2));
        std::thread::sleep(std::time::Duration::from_millis(3 * STATS_INTERVAL_MS));
        assert!(!h.port_stats().contains_key(&PortNo(2)));
        assert!(Workers::spawn(&shared_pl, 0).is_err());
        h.stop();
    }

    /// A unicast frame `src` -> `dst` (IPv4 header only; NORMAL needs L2).
    fn unicast(dst: u8, src: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x08, 0x00];
        f.extend([0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend([10, 0, 0, src, 10, 0, 0, dst]);
        f
    }

    /// Two workers, each with its own handle on ports 1 and 2 (as with
    /// fanout), port 3 only on worker 0. Station A is learned by worker 0
    /// from a frame on port 1; a frame for A that worker 1 receives on
    /// port 2 must go to port 1 only (not flooded), because worker 0
    /// announced A.
    #[test]
    fn normal_learning_is_shared_between_workers() {
        let flows = vec![parse_flow("actions=NORMAL").unwrap()];
        let cfg = SwitchConfig::with_ports([PortNo(1), PortNo(2), PortNo(3)]);
        let pl = Pipeline::compile(&flows, cfg, 1).unwrap();
        let shared_pl = Arc::new(SharedPipeline::from_pointee(pl));
        let mut w = Workers::spawn(&shared_pl, 2).unwrap();
        let (p1a, h1a) = MemoryPort::new("p1-w0").unwrap();
        let (p1b, h1b) = MemoryPort::new("p1-w1").unwrap();
        let (p2a, h2a) = MemoryPort::new("p2-w0").unwrap();
        let (p2b, h2b) = MemoryPort::new("p2-w1").unwrap();
        let (p3, h3) = MemoryPort::new("p3-w0").unwrap();
        w.add_port(PortNo(1), vec![Box::new(p1a), Box::new(p1b)])
            .unwrap();
        w.add_port(PortNo(2), vec![Box::new(p2a), Box::new(p2b)])
            .unwrap();
        w.add_port(PortNo(3), vec![Box::new(p3)]).unwrap();
        // A (…:0a) on port 1, worker 0, to unknown B: flooded to 2 and 3
        // by worker 0.
        h1a.inject(&unicast(0xb, 0xa));
        assert_eq!(wait_sent(&h2a, 1), [unicast(0xb, 0xa)]);
        assert_eq!(wait_sent(&h3, 1), [unicast(0xb, 0xa)]);
        // B on port 2, received by worker 1, to A: forwarded to port 1 on
        // worker 1's own handle, not flooded to 3.
        h2b.inject(&unicast(0xa, 0xb));
        assert_eq!(wait_sent(&h1b, 1), [unicast(0xa, 0xb)]);
        // And now worker 0 knows B (announced by worker 1).
        h1a.inject(&unicast(0xb, 0xa));
        assert_eq!(wait_sent(&h2a, 1), [unicast(0xb, 0xa)]);
        std::thread::sleep(std::time::Duration::from_millis(3 * STATS_INTERVAL_MS));
        assert!(h3.take_sent().is_empty(), "nothing flooded after learning");
        assert!(h1a.take_sent().is_empty() && h2b.take_sent().is_empty());
        let per = w.per_worker_counters();
        assert_eq!(per[0].packets, 2);
        assert_eq!(per[1].packets, 1);
        assert_eq!(w.counters().packets, 3);
        assert_eq!(w.counters().outputs, 4);
        for h in w.workers() {
            assert_eq!(h.shared().mac_sync_drops.load(Ordering::Relaxed), 0);
        }
        w.stop();
    }
}
