//! A datapath worker thread: owns its ports, polls them, runs each received
//! batch through the published [`Pipeline`](crate::pipeline::Pipeline) and
//! transmits the results.
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
//!    run the batch through
//!    [`process_batch`](crate::pipeline::Pipeline::process_batch) (the
//!    exact-match cache lives in the worker's `WorkerState`) with a sink
//!    that queues outputs on the owning port (port number → index map;
//!    unknown ports are counted in [`WorkerShared::unknown_port_drops`]).
//! 4. Flush every port with queued frames, once per round.
//! 5. Every [`STATS_INTERVAL_MS`], copy port and worker counters to
//!    [`WorkerShared`] (one short mutex hold, never per packet).
//!
//! No allocation, lock or log per packet, except packet-ins (the slow path:
//! one `Vec` per packet-in, sent on a bounded channel; dropped and counted
//! in [`WorkerShared::packet_in_drops`] when full).
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
use protocol::ctl::{PortKind, PortStats};
use protocol::flow::{ControllerReason, Cookie, PortNo, TableId};

use crate::buf::{BATCH_MAX, BufPool, PacketBuf};
use crate::control::Datapath;
use crate::pipeline::{OutputSink, SharedPipeline, WorkerCounters, WorkerState};
use crate::port::{AfPacketPort, Port, TapPort};
use crate::state::unix_ms;

/// Poll timeout: the longest a command or stop request waits when idle.
pub const POLL_TIMEOUT_MS: u16 = 50;
/// How often counters are published to [`WorkerShared`].
pub const STATS_INTERVAL_MS: u64 = 100;
/// Capacity of the command channel.
pub const CMD_QUEUE: usize = 64;
/// Capacity of the packet-in channel.
pub const PACKET_IN_QUEUE: usize = 1024;

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
    /// Generation of the snapshot used by the last batch.
    pub generation: AtomicU64,
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
}

impl OutputSink for Sink<'_> {
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
}

/// The worker's loop; returns when `shared.stop` is set or the command
/// channel is closed.
pub fn run(
    pipeline: Arc<SharedPipeline>,
    cmds: Receiver<WorkerCmd>,
    shared: Arc<WorkerShared>,
    packet_in: SyncSender<PacketInEvent>,
) {
    let mut ws = WorkerState::new(pipeline.load().config());
    let mut ports = Ports::default();
    let mut pool = BufPool::with_capacity(BATCH_MAX);
    let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| pool.get()).collect();
    let mut ready: Vec<bool> = Vec::new();
    let mut last_stats = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        loop {
            match cmds.try_recv() {
                Ok(WorkerCmd::AddPort { ofport, port }) => {
                    tracing::info!(ofport = ofport.0, name = port.name(), "worker: port added");
                    ports.add(ofport, port);
                }
                Ok(WorkerCmd::DelPort { ofport }) => {
                    tracing::info!(ofport = ofport.0, "worker: port removed");
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
            let mut sink = Sink {
                in_port,
                ports: &mut ports,
                shared: &shared,
                packet_in: &packet_in,
            };
            if let Some(batch) = bufs.get_mut(..n) {
                pl.process_batch(batch, in_port, now, &mut ws, &mut sink);
            }
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
        }
    }
}

/// The control thread's handle on one worker: opens ports and hands them
/// over; a [`Datapath`].
#[derive(Debug)]
pub struct WorkerHandle {
    tx: SyncSender<WorkerCmd>,
    shared: Arc<WorkerShared>,
    thread: Option<JoinHandle<()>>,
    packet_in: Option<Receiver<PacketInEvent>>,
}

impl WorkerHandle {
    /// Starts a worker thread on `pipeline`.
    ///
    /// # Errors
    /// If the thread cannot be spawned.
    pub fn spawn(pipeline: Arc<SharedPipeline>) -> std::io::Result<WorkerHandle> {
        let (tx, rx) = sync_channel(CMD_QUEUE);
        let (pi_tx, pi_rx) = sync_channel(PACKET_IN_QUEUE);
        let shared = Arc::new(WorkerShared::default());
        let s2 = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("weft-worker-0".into())
            .spawn(move || run(pipeline, rx, s2, pi_tx))?;
        Ok(WorkerHandle {
            tx,
            shared,
            thread: Some(thread),
            packet_in: Some(pi_rx),
        })
    }

    /// Takes the packet-in receiver (once; while nobody holds it the
    /// channel fills and further packet-ins are counted as dropped).
    pub fn take_packet_in(&mut self) -> Option<Receiver<PacketInEvent>> {
        self.packet_in.take()
    }

    /// The shared counters.
    pub fn shared(&self) -> &Arc<WorkerShared> {
        &self.shared
    }

    /// Hands an already opened port to the worker.
    ///
    /// # Errors
    /// If the worker has stopped.
    pub fn add_port(&self, ofport: PortNo, port: Box<dyn Port>) -> Result<(), String> {
        self.tx
            .send(WorkerCmd::AddPort { ofport, port })
            .map_err(|_| "worker stopped".to_owned())
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

impl Datapath for WorkerHandle {
    fn open_port(&mut self, name: &str, kind: &PortKind, ofport: PortNo) -> Result<(), String> {
        let port: Box<dyn Port> = match kind {
            PortKind::AfPacket => Box::new(AfPacketPort::open(name).map_err(|e| e.to_string())?),
            PortKind::Tap => Box::new(TapPort::open(name).map_err(|e| e.to_string())?),
            k => return Err(format!("port type {} is not supported", k.name())),
        };
        self.add_port(ofport, port)
    }

    fn close_port(&mut self, ofport: PortNo) {
        let _ = self.tx.send(WorkerCmd::DelPort { ofport });
    }

    fn transmit(&mut self, ofport: PortNo, frame: Vec<u8>) {
        // Never block the control thread: a full queue drops the frame.
        if self
            .tx
            .try_send(WorkerCmd::Transmit { ofport, frame })
            .is_err()
        {
            self.shared
                .unknown_port_drops
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn port_stats(&self) -> BTreeMap<PortNo, PortStats> {
        self.shared
            .port_stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn worker_counters(&self) -> Vec<WorkerCounters> {
        self.shared
            .counters
            .lock()
            .map(|c| vec![c.clone()])
            .unwrap_or_default()
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

    #[test]
    fn forwards_between_memory_ports_and_counts() {
        let flows = vec![
            parse_flow("in_port=1,actions=output:2").unwrap(),
            parse_flow("in_port=2,actions=output:9").unwrap(),
        ];
        let pl = Pipeline::compile(&flows, SwitchConfig::default(), 1).unwrap();
        let shared_pl = Arc::new(SharedPipeline::from_pointee(pl));
        let mut h = WorkerHandle::spawn(Arc::clone(&shared_pl)).unwrap();
        let (p1, h1) = MemoryPort::new("m1").unwrap();
        let (p2, h2) = MemoryPort::new("m2").unwrap();
        h.add_port(PortNo(1), Box::new(p1)).unwrap();
        h.add_port(PortNo(2), Box::new(p2)).unwrap();
        for _ in 0..5 {
            h1.inject(&arp());
        }
        h2.inject(&arp());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < 5 && std::time::Instant::now() < deadline {
            got.extend(h2.take_sent());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], arp());
        std::thread::sleep(std::time::Duration::from_millis(3 * STATS_INTERVAL_MS));
        assert_eq!(h.shared().unknown_port_drops.load(Ordering::Relaxed), 1);
        let rules: Vec<_> = shared_pl.load().rules().map(|r| r.stats.get().0).collect();
        assert_eq!(rules.iter().sum::<u64>(), 6);
        let st = h.port_stats();
        assert_eq!(st[&PortNo(1)].rx_packets, 5);
        assert_eq!(st[&PortNo(2)].tx_packets, 5);
        h.transmit(PortNo(2), arp());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut out = Vec::new();
        while out.is_empty() && std::time::Instant::now() < deadline {
            out.extend(h2.take_sent());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(out, [arp()]);
        h.close_port(PortNo(2));
        std::thread::sleep(std::time::Duration::from_millis(3 * STATS_INTERVAL_MS));
        assert!(!h.port_stats().contains_key(&PortNo(2)));
        h.stop();
    }
}
