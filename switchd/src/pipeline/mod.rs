//! The packet pipeline: an immutable snapshot of flow tables and switch
//! settings ([`Pipeline`]) and the per-packet path through it
//! ([`Pipeline::process`]), sans-IO: bytes in, calls to an [`OutputSink`]
//! out, so the worker loop, `weftctl trace`, tests, benches and fuzzers all
//! drive the same code.
//!
//! # Stages of [`Pipeline::process`] (OVS `dp_netdev_input__` +
//! `xlate_actions`)
//!
//! 0. Tunnels ([`crate::tunnel`], only if the snapshot has tunnel
//!    configuration): a frame on the underlay port that is tunnel traffic
//!    for us is decapsulated and continues with `in_port` = the tunnel port
//!    and the `tun_*` fields set; other underlay traffic is bridged to and
//!    from the host port untouched without a lookup. Output to a tunnel
//!    port encapsulates (in [`exec`]).
//! 1. `extract` the key once (then [`exec`] keeps it in sync with every
//!    header rewrite); `in_port` set. Malformed packets (extraction failed
//!    at L2, VLAN or L3) are dropped ([`DropReason::Malformed`]); an L4
//!    error keeps the packet with zero L4 fields, as OVS.
//! 2. Input port `no-receive`: drop.
//! 3. Fragments: `frag_mode` ([`FragMode`]).
//! 4. Table 0 lookup, actions, resubmits, gotos, table misses ([`exec`]).
//! 5. The action set, if it holds an output.
//! 6. The [`Verdict`], counted in the [`WorkerState`].
//!
//! # Batches and the exact-match cache ([`Pipeline::process_batch`])
//!
//! The worker hands over a whole rx batch (up to 32 packets from one port)
//! with one snapshot and one clock reading. Two passes, as OVS's
//! `emc_processing` before execution: pass 1 runs stages 1 to 3 and hashes
//! every packet of the batch (each into its own key of the worker's
//! [`BatchScratch`]), then probes the worker's exact-match cache ([`emc`])
//! for all of them back to back (independent loads the CPU overlaps);
//! pass 2 executes in arrival order (after the batch's first cache
//! insertion, later packets probe again, so each sees the cache exactly as
//! a packet-at-a-time loop would; with an underlay configured, where stage
//! 1 may already send bridged frames, the batch is one pass to keep
//! per-port output order). A hit runs the entry's flat action list (outputs and header writes with
//! every decision taken, when the translation had nothing else) or replays
//! the cached rule path (stage 4 without classifier lookups), a miss runs
//! stage 4 in full, recording the path and the flat list. Hits sharing an entry
//! form a group whose rule counters are credited once. Results are exactly
//! those of [`Pipeline::process`] per packet (a property test,
//! `tests/emc_equivalence.rs`). [`Pipeline::process`] itself (and so every
//! trace) never uses the cache.
//!
//! # Table statistics
//!
//! Every lookup, cached or not, counts in the worker's own
//! [`WorkerCounters::tables`] (lookups, matched, as OVS `dump-tables`);
//! the control thread sums the workers' published copies on request.
//!
//! The per-packet path does not allocate (tested under a counting
//! allocator in `tests/pipeline_alloc.rs`, with cache hits, misses,
//! evictions and invalidations), takes no lock, does not log and does not
//! read the clock (`now_ms` is passed in). Rule counters are relaxed
//! atomics shared with the control thread.
//!
//! # Publication
//!
//! The control thread builds a new snapshot with [`compile`] (which
//! validates every flow first, so a bundle applies atomically or not at
//! all) and publishes it through a [`SharedPipeline`] (`ArcSwap`); workers
//! load it once per batch. MAC tables and counters are per worker
//! ([`WorkerState`]), never shared.

pub mod classifier;
pub mod config;
pub mod emc;
pub mod exec;
pub mod normal;
pub mod packet;
pub mod rewrite;
pub mod table;
pub mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::flow::{
    ControllerReason, Cookie, ExtractConfig, FlowKey, FlowSpec, Layer, Layers, PortNo, TableId,
    extract, extract_shaped, key::NW_FRAG_ANY,
};

use crate::buf::{BATCH_MAX, PacketBuf};
use crate::offload::Offload;
use crate::tunnel::{Decap, TunnelDrop, TunnelEvent, TunnelWorker, Tunnels};
use emc::{Credits, Emc, PathRec, Step, cacheable, emc_key, key_hash};
use exec::PathMode;

pub use config::{FragMode, MissBehavior, PortConfig, SwitchConfig};
pub use emc::{EMC_ENTRIES, MAX_PATH};
pub use exec::{MAX_DEPTH, MAX_RESUBMITS, SET_MAX};
pub use normal::MacTable;
pub use table::{CompileError, Rule, RuleStats, Table};
pub use trace::{NoTrace, TraceNote, TraceSink, TreeTrace};

/// Where a processed packet goes: implemented by the worker (per-port tx
/// batches, the packet-in channel), by tests and by `weftctl trace`.
pub trait OutputSink {
    /// The packet leaves on `port` (an ordinary port or `LOCAL`) with
    /// exactly `bytes`. Called once per copy, in order.
    fn output(&mut self, port: PortNo, bytes: &[u8]);
    /// Like [`OutputSink::output`], for a packet with offload metadata
    /// (a partial checksum, a GSO super-frame; see [`crate::offload`]). The
    /// worker passes it on to ports with offloads and segments for the
    /// others; the default (tests, trace) ignores the metadata.
    #[inline]
    fn output_offload(&mut self, port: PortNo, bytes: &[u8], off: &Offload) {
        let _ = off;
        self.output(port, bytes);
    }
    /// A packet-in for the controller: why, from which table, the cookie of
    /// the rule (all ones for a table miss) and the (possibly cut) bytes.
    fn packet_in(&mut self, reason: ControllerReason, table: TableId, cookie: Cookie, bytes: &[u8]);
    /// Something the daemon should act on (a missing tunnel next hop).
    /// Default: ignored.
    #[inline(always)]
    fn tunnel_event(&mut self, _event: TunnelEvent) {}
}

/// An [`OutputSink`] that keeps copies of everything (tests, tools; it
/// allocates).
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    /// (port, bytes) in order.
    pub outputs: Vec<(PortNo, Vec<u8>)>,
    /// (reason, table, cookie, bytes) in order.
    pub packet_ins: Vec<(ControllerReason, TableId, Cookie, Vec<u8>)>,
    /// Tunnel events in order.
    pub events: Vec<TunnelEvent>,
}

impl OutputSink for CollectSink {
    fn output(&mut self, port: PortNo, bytes: &[u8]) {
        self.outputs.push((port, bytes.to_vec()));
    }
    fn packet_in(
        &mut self,
        reason: ControllerReason,
        table: TableId,
        cookie: Cookie,
        bytes: &[u8],
    ) {
        self.packet_ins
            .push((reason, table, cookie, bytes.to_vec()));
    }
    fn tunnel_event(&mut self, event: TunnelEvent) {
        self.events.push(event);
    }
}

/// Why a packet was dropped (or its translation cut short). Each is counted
/// per worker in [`WorkerCounters::drops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Extraction failed at L2, VLAN or L3.
    Malformed,
    /// Received on a `no-receive` port.
    NoReceive,
    /// An IP fragment under `frag_mode drop`.
    Fragment,
    /// A table miss with `drop` behaviour ended the pipeline and nothing was
    /// sent (also a suppressed `controller` miss).
    TableMiss,
    /// The resubmit depth (64) or count (4096) limit was hit. Outputs sent
    /// before stay sent.
    ResubmitLimit,
    /// The actions ran to the end without sending the packet anywhere
    /// (explicit `drop`, empty actions, only skipped outputs).
    NoOutput,
    // Tunnel reasons ([`TunnelDrop`]). On output (encap) they count a copy
    // that could not be sent; other copies may have gone out (the reason
    // is recorded once per packet).
    /// Output to a tunnel port with no underlay configured.
    TunnelNoUnderlay,
    /// Output to a flow-based tunnel port without `tun_dst`/`tun_ipv6_dst`.
    TunnelNoRemote,
    /// No local endpoint IP of the remote's family.
    TunnelNoLocalIp,
    /// No next-hop MAC for the remote (a `TunnelEvent` was reported).
    TunnelNoNextHop,
    /// Too big for the underlay MTU after encapsulation (an ICMP error
    /// may have been sent back).
    TunnelTooBig,
    /// No headroom for the outer headers.
    TunnelNoHeadroom,
    /// Malformed tunnel packet addressed to us.
    TunnelMalformed,
    /// Unknown critical Geneve option (RFC 8926).
    TunnelCriticalOption,
    /// No tunnel port matches the remote and VNI.
    TunnelNoPort,
    /// Geneve protocol type other than Ethernet, IPv4, IPv6.
    TunnelUnsupported,
}

impl From<TunnelDrop> for DropReason {
    fn from(d: TunnelDrop) -> DropReason {
        match d {
            TunnelDrop::NoUnderlay => DropReason::TunnelNoUnderlay,
            TunnelDrop::NoRemote => DropReason::TunnelNoRemote,
            TunnelDrop::NoLocalIp => DropReason::TunnelNoLocalIp,
            TunnelDrop::NoNextHop => DropReason::TunnelNoNextHop,
            TunnelDrop::TooBig => DropReason::TunnelTooBig,
            TunnelDrop::NoHeadroom => DropReason::TunnelNoHeadroom,
            TunnelDrop::Malformed => DropReason::TunnelMalformed,
            TunnelDrop::CriticalOption => DropReason::TunnelCriticalOption,
            TunnelDrop::NoPort => DropReason::TunnelNoPort,
            TunnelDrop::Unsupported => DropReason::TunnelUnsupported,
        }
    }
}

impl DropReason {
    /// Number of reasons (size of the counter array).
    pub const COUNT: usize = 16;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::NoReceive,
        DropReason::Fragment,
        DropReason::TableMiss,
        DropReason::ResubmitLimit,
        DropReason::NoOutput,
        DropReason::TunnelNoUnderlay,
        DropReason::TunnelNoRemote,
        DropReason::TunnelNoLocalIp,
        DropReason::TunnelNoNextHop,
        DropReason::TunnelTooBig,
        DropReason::TunnelNoHeadroom,
        DropReason::TunnelMalformed,
        DropReason::TunnelCriticalOption,
        DropReason::TunnelNoPort,
        DropReason::TunnelUnsupported,
    ];

    /// Stable snake_case name (counter label, JSON).
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoReceive => "no_receive",
            DropReason::Fragment => "fragment",
            DropReason::TableMiss => "table_miss",
            DropReason::ResubmitLimit => "resubmit_limit",
            DropReason::NoOutput => "no_output",
            DropReason::TunnelNoUnderlay => "tunnel_no_underlay",
            DropReason::TunnelNoRemote => "tunnel_no_remote",
            DropReason::TunnelNoLocalIp => "tunnel_no_local_ip",
            DropReason::TunnelNoNextHop => "tunnel_no_next_hop",
            DropReason::TunnelTooBig => "tunnel_too_big",
            DropReason::TunnelNoHeadroom => "tunnel_no_headroom",
            DropReason::TunnelMalformed => "tunnel_malformed",
            DropReason::TunnelCriticalOption => "tunnel_critical_option",
            DropReason::TunnelNoPort => "tunnel_no_port",
            DropReason::TunnelUnsupported => "tunnel_unsupported",
        }
    }

    /// Index into [`WorkerCounters::drops`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What happened to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Copies sent to ports.
    pub outputs: u32,
    /// Packet-ins sent.
    pub packet_ins: u32,
    /// Why the packet was dropped, or why its translation was cut short
    /// (only [`DropReason::ResubmitLimit`] and the tunnel reasons of an
    /// output, e.g. [`DropReason::TunnelTooBig`] with the ICMP error sent
    /// back, can come with outputs).
    pub reason: Option<DropReason>,
}

impl Verdict {
    /// True if the packet went nowhere: no output, no packet-in.
    #[inline]
    pub fn dropped(&self) -> bool {
        self.outputs == 0 && self.packet_ins == 0
    }
}

/// Lookups in one table by one worker (OVS `dump-tables` "lookup" and
/// "matched").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounter {
    /// Lookups in the table (table-0 entries, gotos, resubmits,
    /// miss-continues), cached or not.
    pub lookups: u64,
    /// Lookups that found a rule.
    pub matched: u64,
}

/// Number of tables.
pub const N_TABLES: usize = 255;

/// Per-worker counters, aggregated by the control thread on read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Packets processed.
    pub packets: u64,
    /// Bytes processed (as received).
    pub bytes: u64,
    /// Copies sent to ports.
    pub outputs: u64,
    /// Packet-ins sent.
    pub packet_ins: u64,
    /// Drops by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// Packets whose translation was replayed from the exact-match cache.
    pub emc_hits: u64,
    /// Packets looked up in the exact-match cache and not found (the
    /// full translation ran; inserted if cacheable).
    pub emc_misses: u64,
    /// Lookups by table id.
    pub tables: Box<[TableCounter; N_TABLES]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            packets: 0,
            bytes: 0,
            outputs: 0,
            packet_ins: 0,
            drops: [0; DropReason::COUNT],
            emc_hits: 0,
            emc_misses: 0,
            tables: Box::new([TableCounter::default(); N_TABLES]),
        }
    }
}

impl WorkerCounters {
    /// The drop count for `reason`.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// The lookup counters of table `t`.
    pub fn table(&self, t: TableId) -> TableCounter {
        self.tables
            .get(usize::from(t.0))
            .copied()
            .unwrap_or_default()
    }
}

/// State owned by one worker thread: counters, the MAC-learning table and
/// the exact-match cache. Never shared; allocated once.
#[derive(Debug, Clone)]
pub struct WorkerState {
    /// Counters.
    pub counters: WorkerCounters,
    /// `NORMAL`'s MAC table.
    pub mac: MacTable,
    /// Tunnel scratch buffer and counters.
    pub tunnel: TunnelWorker,
    /// The exact-match cache used by [`Pipeline::process_batch`].
    pub emc: Emc,
    /// The per-packet keys of [`Pipeline::process_batch`].
    pub batch: BatchScratch,
}

impl WorkerState {
    /// A worker state sized by `config.mac_table_size`, with an
    /// [`EMC_ENTRIES`]-entry cache.
    pub fn new(config: &SwitchConfig) -> WorkerState {
        WorkerState::with_emc_entries(config, EMC_ENTRIES)
    }

    /// Like [`new`](Self::new) with an `entries`-entry cache (`0`: none;
    /// every packet takes the full translation).
    pub fn with_emc_entries(config: &SwitchConfig, entries: usize) -> WorkerState {
        WorkerState {
            counters: WorkerCounters::default(),
            mac: MacTable::new(config.mac_table_size),
            tunnel: TunnelWorker::default(),
            emc: Emc::new(entries),
            batch: BatchScratch::default(),
        }
    }
}

/// An immutable snapshot of the flow tables and switch settings.
#[derive(Debug)]
pub struct Pipeline {
    /// Tables by id; `None` (or past the end) is an empty table.
    tables: Box<[Option<Arc<Table>>]>,
    config: SwitchConfig,
    /// Existing ports and their configuration, ascending.
    flood_ports: Box<[(PortNo, PortConfig)]>,
    /// Miss behaviour by table.
    miss: Box<[MissBehavior; 255]>,
    extract: ExtractConfig,
    generation: u64,
    /// Tunnel ports, underlay, next hops, TLV map (empty: no hooks run).
    tunnels: Arc<Tunnels>,
    /// Unique per compiled snapshot (exact-match cache ownership).
    uid: u64,
}

/// Size of the batch's slot -> group hint table (a power of two, at least
/// [`BATCH_MAX`] so distinct slots rarely share a hint).
const GROUP_HINTS: usize = 64;

/// Source of [`Pipeline::uid`]s.
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// The shared, swappable current snapshot (control thread stores, workers
/// load once per batch).
pub type SharedPipeline = arc_swap::ArcSwap<Pipeline>;

/// Validates `flows` and builds a snapshot with generation 0 (see
/// [`Pipeline::compile`]).
///
/// # Errors
/// The first invalid flow, as a [`CompileError`].
pub fn compile(flows: &[FlowSpec], config: SwitchConfig) -> Result<Pipeline, CompileError> {
    Pipeline::compile(flows, config, 0)
}

impl Pipeline {
    /// Validates every flow (see [`table`] for the rules) and builds the
    /// snapshot. Nothing is built if any flow is invalid.
    ///
    /// # Errors
    /// The first invalid flow, as a [`CompileError`] naming its index, text
    /// and the field at fault.
    pub fn compile(
        flows: &[FlowSpec],
        config: SwitchConfig,
        generation: u64,
    ) -> Result<Pipeline, CompileError> {
        let tables = table::build_tables(flows, &config)?;
        let mut miss = Box::new([MissBehavior::Drop; 255]);
        for (t, m) in &config.table_miss {
            if let Some(slot) = miss.get_mut(usize::from(t.0)) {
                *slot = *m;
            }
        }
        Ok(Pipeline {
            tables: tables.into_boxed_slice(),
            flood_ports: config.ports.iter().map(|(p, c)| (*p, *c)).collect(),
            miss,
            extract: ExtractConfig {
                vlan_limit: config.vlan_limit,
            },
            config,
            generation,
            tunnels: Arc::new(Tunnels::default()),
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// This snapshot with the tunnel configuration `tunnels` (builder, at
    /// publication time).
    pub fn with_tunnels(mut self, tunnels: Arc<Tunnels>) -> Pipeline {
        self.tunnels = tunnels;
        self
    }

    /// A new snapshot sharing this one's tables (and rule counters) with
    /// other tunnel configuration and generation `generation`: for
    /// next-hop and underlay changes, without recompiling flows.
    pub fn with_new_tunnels(&self, tunnels: Arc<Tunnels>, generation: u64) -> Pipeline {
        Pipeline {
            tables: self.tables.clone(),
            config: self.config.clone(),
            flood_ports: self.flood_ports.clone(),
            miss: self.miss.clone(),
            extract: self.extract,
            generation,
            tunnels,
            // A new snapshot: the workers' caches start over with it.
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The tunnel configuration.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// This snapshot's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A number unique to this compiled snapshot in the process (two
    /// snapshots with the same generation still differ).
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// The settings it was compiled with.
    pub fn config(&self) -> &SwitchConfig {
        &self.config
    }

    /// Table `t`, if it has rules.
    #[inline]
    pub fn table(&self, t: TableId) -> Option<&Table> {
        self.tables.get(usize::from(t.0))?.as_deref()
    }

    /// Every rule of every table.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> + '_ {
        self.tables.iter().flatten().flat_map(|t| t.rules())
    }

    #[inline]
    fn miss_of(&self, t: TableId) -> MissBehavior {
        self.miss.get(usize::from(t.0)).copied().unwrap_or_default()
    }

    #[inline]
    fn port_config(&self, p: PortNo) -> Option<&PortConfig> {
        self.flood_ports
            .binary_search_by_key(&p, |e| e.0)
            .ok()
            .and_then(|i| self.flood_ports.get(i))
            .map(|e| &e.1)
    }

    /// Runs one packet received on `in_port` through the pipeline: outputs
    /// and packet-ins go to `out`, every step to `trace`, counters to `ws`.
    /// `pkt` is edited in place (it holds the last version of the packet
    /// afterwards). See the [module documentation](self) for the stages.
    /// Never uses the exact-match cache (traces always take this path); it
    /// is the per-packet body of [`process_batch`](Self::process_batch)
    /// with the cache off.
    pub fn process(
        &self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        now_ms: u64,
        ws: &mut WorkerState,
        out: &mut impl OutputSink,
        trace: &mut impl TraceSink,
    ) -> Verdict {
        let (mut w, _, _) = Io::split(ws, now_ms, out, trace);
        let rx_no_receive = self.port_config(in_port).is_some_and(|c| c.no_receive);
        let mut key = FlowKey::default();
        let mut set = exec::ActionSet::EMPTY;
        self.run_live(pkt, in_port, rx_no_receive, &mut key, &mut set, &mut w)
    }

    /// One packet without the cache: stages 1 to 6. `key` and `set` are
    /// the caller's scratch (reused across a batch; only the key's
    /// metadata words are cleared here, `extract` clears the rest).
    #[inline]
    fn run_live<'p, O: OutputSink, T: TraceSink>(
        &'p self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        rx_no_receive: bool,
        key: &mut FlowKey,
        set: &mut exec::ActionSet<'p>,
        w: &mut Io<'_, O, T>,
    ) -> Verdict {
        clear_metadata(key);
        let underlay = self.tunnels.underlay().is_some();
        match self.ingress(pkt, in_port, rx_no_receive, underlay, key, w) {
            Ok((layers, _, _)) => self.translate(pkt, key, set, layers, w, PathMode::Live).0,
            Err(v) => finish(w.counters, w.trace, v),
        }
    }

    /// Runs a batch of packets received on `in_port` (the worker's unit:
    /// one snapshot, one clock reading) with the exact-match cache of `ws`
    /// (see [`emc`]): each packet is extracted and looked up in the cache;
    /// a hit runs the entry's flat action list or replays its rule path
    /// (no classifier lookups), a miss runs the full translation and
    /// caches it. Packets are executed in arrival order; rule counters of
    /// hits are credited once per group of packets sharing a cache entry.
    /// Results (outputs, packet-ins, counters, MAC learning) are those of
    /// [`process`](Self::process) on each packet in turn. Each buffer holds
    /// its last version afterwards.
    ///
    /// Two passes per [`BATCH_MAX`] packets (OVS `emc_processing`, then
    /// execution): pass 1 extracts and hashes every packet into its own
    /// key of the worker's [`BatchScratch`] and then probes the cache for
    /// all of them in one tight loop, whose iterations are independent, so
    /// the CPU overlaps the entries' memory loads (std's prefetch
    /// intrinsic is `unsafe`; this needs none); pass 2 executes in arrival
    /// order. A miss inserted in pass 2 can replace an entry a later packet
    /// of the batch found, or create the one it did not find: after the
    /// first insertion of a batch, later packets probe again, so every
    /// packet sees exactly the cache a one-packet-at-a-time loop would.
    /// With an underlay configured, stage 1 can already send a packet
    /// (bridged host/underlay traffic): then the batch is one pass, so
    /// per-port output order stays the arrival order.
    pub fn process_batch(
        &self,
        pkts: &mut [PacketBuf],
        in_port: PortNo,
        now_ms: u64,
        ws: &mut WorkerState,
        out: &mut impl OutputSink,
    ) {
        let mut no_trace = NoTrace;
        let (mut w, emc, scratch) = Io::split(ws, now_ms, out, &mut no_trace);
        // One action set for the whole batch: hundreds of bytes, rebuilt
        // in place rather than moved.
        let mut set = exec::ActionSet::EMPTY;
        // The receive port's `no-receive`, once per batch (a packet
        // decapsulated to a tunnel port looks its port up itself).
        let rx_no_receive = self.port_config(in_port).is_some_and(|c| c.no_receive);
        let BatchScratch {
            keys,
            clean,
            groups,
        } = scratch;
        let keys = &mut keys[..];
        if !emc.enabled() || self.tunnels.underlay().is_some() {
            // The one-pass loops below use (and dirty) key 0.
            clean[0] = false;
        }
        if !emc.enabled() {
            if let Some(key) = keys.first_mut() {
                for pkt in pkts.iter_mut() {
                    self.run_live(pkt, in_port, rx_no_receive, key, &mut set, &mut w);
                }
            }
            return;
        }
        emc.sync(self.uid);
        groups.reset();
        if self.tunnels.underlay().is_some() {
            if let Some(key) = keys.first_mut() {
                for pkt in pkts.iter_mut() {
                    match self.prepare(pkt, in_port, rx_no_receive, true, false, key, &mut w) {
                        Prep::Done => {}
                        Prep::Live(layers) => {
                            self.translate(pkt, key, &mut set, layers, &mut w, PathMode::Live);
                        }
                        Prep::Cached(layers, h) => {
                            let found = emc.find(h, key);
                            let c = Cached { layers, h, found };
                            let _ = self.run_cached(pkt, key, &mut set, c, emc, groups, &mut w);
                        }
                    }
                }
            }
        } else {
            for chunk in pkts.chunks_mut(BATCH_MAX) {
                // Pass 1: stages 1 to 3 and the hash of every packet...
                let mut prep = [Prep::Done; BATCH_MAX];
                for (((pkt, key), p), &c) in chunk
                    .iter_mut()
                    .zip(keys.iter_mut())
                    .zip(&mut prep)
                    .zip(clean.iter())
                {
                    *p = self.prepare(pkt, in_port, rx_no_receive, false, c, key, &mut w);
                }
                // ...then every cache probe, back to back.
                let mut found = [None; BATCH_MAX];
                for ((p, key), f) in prep.iter().zip(keys.iter()).zip(&mut found) {
                    if let Prep::Cached(_, h) = *p {
                        *f = emc.find(h, key);
                    }
                }
                // Pass 2: execution in arrival order (the arrays by
                // reference: moving them in cost two 512-byte copies).
                let mut inserted = false;
                for ((((pkt, key), &p), &f), c) in chunk
                    .iter_mut()
                    .zip(keys.iter_mut())
                    .zip(&prep)
                    .zip(&found)
                    .zip(clean.iter_mut())
                {
                    // Whether the key's metadata words stay zero: an early
                    // drop and a flat hit write none (pass 1 then skips
                    // clearing them next time); a translation may.
                    *c = match p {
                        Prep::Done => true,
                        Prep::Live(layers) => {
                            self.translate(pkt, key, &mut set, layers, &mut w, PathMode::Live);
                            false
                        }
                        Prep::Cached(layers, h) => {
                            let found = if inserted { emc.find(h, key) } else { f };
                            let c = Cached { layers, h, found };
                            let (ins, flat) =
                                self.run_cached(pkt, key, &mut set, c, emc, groups, &mut w);
                            inserted |= ins;
                            flat
                        }
                    };
                }
            }
        }
        groups.finish(self, emc, w.counters, now_ms);
    }

    /// Stages 1 to 3 of a batch packet into `key`: a dropped packet is
    /// counted here ([`Prep::Done`]); a decapsulated one (tunnel fields in
    /// its key, see [`emc::cacheable`]) takes the full translation; any
    /// other gets its cache hash. `clean`: the key's metadata words are
    /// already zero (see [`BatchScratch`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn prepare<O: OutputSink, T: TraceSink>(
        &self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        rx_no_receive: bool,
        underlay: bool,
        clean: bool,
        key: &mut FlowKey,
        w: &mut Io<'_, O, T>,
    ) -> Prep {
        if !clean {
            clear_metadata(key);
        }
        debug_assert!(
            key.0
                .get(1..protocol::flow::key::FIRST_PACKET_WORD)
                .is_some_and(|m| m.iter().all(|w| *w == 0))
                && key.0[0] >> 32 == 0
        );
        match self.ingress(pkt, in_port, rx_no_receive, underlay, key, w) {
            Err(v) => {
                finish(w.counters, w.trace, v);
                Prep::Done
            }
            Ok((layers, true, _)) => Prep::Live(layers),
            Ok((layers, false, compact)) => {
                // Words 1..=24 were zeroed above and only decapsulation
                // sets any (tunnel fields), so "not decapsulated" implies
                // `cacheable` without reading 24 words per packet.
                debug_assert!(cacheable(key));
                Prep::Cached(layers, key_hash(key, compact))
            }
        }
    }

    /// Stage 4 onwards of a cacheable packet whose cache probe gave
    /// `c.found`: a hit runs the flat list or replays the path and joins
    /// its slot's group; a miss translates, records and inserts. Returns
    /// whether it inserted (which may replace an entry) and whether it
    /// was a flat hit (which writes header words of the key only).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run_cached<'p, O: OutputSink, T: TraceSink>(
        &'p self,
        pkt: &mut PacketBuf,
        key: &mut FlowKey,
        set: &mut exec::ActionSet<'p>,
        c: Cached,
        emc: &mut Emc,
        groups: &mut Groups,
        w: &mut Io<'_, O, T>,
    ) -> (bool, bool) {
        let Cached { layers, h, found } = c;
        let now_ms = w.now_ms;
        let base_len = pkt.len();
        let Some(slot) = found else {
            w.counters.emc_misses += 1;
            // The entry words as extracted (the actions may rewrite the
            // key in place).
            let ek = emc_key(key);
            let mut rec = PathRec::new();
            let (v, _) = self.translate(pkt, key, set, layers, w, PathMode::Record(&mut rec));
            if rec.uncacheable {
                return (false, false);
            }
            let slot = emc.victim(h);
            // Hits so far on the slot being replaced are credited before
            // its path goes.
            groups.flush_slot(self, emc, w.counters, slot, now_ms);
            let missed = v.reason == Some(DropReason::TableMiss);
            emc.insert_at(slot, h, &ek, &rec, missed);
            return (true, false);
        };
        w.counters.emc_hits += 1;
        let flat = emc.flat(slot);
        let is_flat = flat.is_some();
        let complete = if let Some((ops, missed)) = flat {
            // The translation's header writes and outputs, every decision
            // on the key already taken; its table lookups are counted per
            // group (`Groups::flush`).
            let outputs = exec::run_flat(ops, pkt, key, &layers, w.out);
            let reason = (outputs == 0).then_some(if missed {
                DropReason::TableMiss
            } else {
                DropReason::NoOutput
            });
            let v = Verdict {
                outputs,
                packet_ins: 0,
                reason,
            };
            finish(w.counters, w.trace, v);
            true
        } else {
            let replay = PathMode::Replay {
                steps: emc.path(slot),
                pos: 0,
                base_len,
            };
            let (_, path) = self.translate(pkt, key, set, layers, w, replay);
            match path {
                PathMode::Replay { steps, pos, .. } if pos == steps.len() => true,
                PathMode::Replay { steps, pos, .. } => {
                    // Fewer lookups than recorded: credit this packet
                    // alone (see `emc`).
                    for s in steps.get(..pos).unwrap_or_default() {
                        let s = Step(*s);
                        let len = (base_len as i64 + i64::from(s.delta())).max(0) as u64;
                        exec::credit_step(self, s, 1, len, now_ms);
                    }
                    false
                }
                _ => false,
            }
        };
        if complete {
            groups.add(
                self,
                emc,
                w.counters,
                slot,
                is_flat,
                base_len as u64,
                now_ms,
            );
        }
        (false, is_flat)
    }

    /// Stages 1 to 3: counts the packet, extracts its key, applies the
    /// early drops. `rx_no_receive` is `in_port`'s `no-receive` setting,
    /// `underlay` whether an underlay is configured (known per batch).
    /// `Ok` holds the layers, whether the packet was decapsulated (its
    /// key has tunnel fields) and whether extraction took the fast path
    /// (the key is compact, see [`emc::key_hash`]); `Err` the verdict of a
    /// dropped packet.
    /// Inlined into the batch loops (the per-packet call and its register
    /// saves were a tenth of a cache hit); the underlay part is a call of
    /// its own, made only with an underlay configured.
    #[inline(always)]
    fn ingress<O: OutputSink, T: TraceSink>(
        &self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        rx_no_receive: bool,
        underlay: bool,
        key: &mut FlowKey,
        w: &mut Io<'_, O, T>,
    ) -> Result<(Layers, bool, bool), Verdict> {
        w.counters.packets += 1;
        w.counters.bytes += pkt.len() as u64;
        debug_assert_eq!(underlay, self.tunnels.underlay().is_some());
        let (in_port, decap_note) = if underlay {
            self.ingress_underlay(pkt, in_port, key, w)?
        } else {
            (in_port, None)
        };
        let trace = &mut *w.trace;
        key.set_in_port(in_port.0);
        let (ex, compact) = extract_shaped(pkt.data(), &self.extract, key);
        trace.begin(in_port, key);
        let decapsulated = decap_note.is_some();
        if let Some(n) = decap_note {
            trace.note(n);
        }
        // A compact key (extraction fast path) has no error and no
        // fragment bits: two tests fewer on the common path.
        let early = if !compact
            && let Some(e) = ex.error
            && e.layer != Layer::L4
        {
            trace.note(TraceNote::Malformed(e));
            Some(DropReason::Malformed)
        } else if if decapsulated {
            self.port_config(in_port).is_some_and(|c| c.no_receive)
        } else {
            rx_no_receive
        } {
            trace.note(TraceNote::NoReceive);
            Some(DropReason::NoReceive)
        } else if !compact
            && key.nw_frag() & NW_FRAG_ANY != 0
            && self.config.frag_mode == FragMode::Drop
        {
            trace.note(TraceNote::FragmentDropped);
            Some(DropReason::Fragment)
        } else {
            None
        };
        match early {
            Some(r) => Err(Verdict {
                outputs: 0,
                packet_ins: 0,
                reason: Some(r),
            }),
            None => Ok((ex.layers, decapsulated, compact && !decapsulated)),
        }
    }

    /// The underlay part of [`ingress`](Self::ingress): decapsulates a
    /// packet from the underlay port (the inner port and the trace note),
    /// bridges host/underlay traffic that is not a tunnel (`Err`), drops a
    /// bad tunnel packet (`Err`).
    #[inline(never)]
    fn ingress_underlay<O: OutputSink, T: TraceSink>(
        &self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        key: &mut FlowKey,
        w: &mut Io<'_, O, T>,
    ) -> Result<(PortNo, Option<TraceNote>), Verdict> {
        let tunnel = &mut *w.tunnel;
        let out = &mut *w.out;
        let trace = &mut *w.trace;
        let mut in_port = in_port;
        let mut decap_note = None;
        if let Some(u) = self.tunnels.underlay() {
            if in_port == u.port {
                // The outer source MAC, for next-hop learning below.
                let mut outer_src = [0u8; 6];
                if let Some(m) = pkt.data().get(6..12) {
                    outer_src.copy_from_slice(m);
                }
                match self.tunnels.decap(pkt, key) {
                    Decap::Inner {
                        port,
                        kind,
                        outer_len,
                        dummy_eth,
                    } => {
                        tunnel.decapsulated += 1;
                        // Learning (as the kernel VXLAN device and OVS's
                        // neighbour snooping): tell the daemon when the
                        // sender's MAC is not our next hop for it. One
                        // binary search; an event only on a difference.
                        let remote = if key.tun_ipv6_src().is_unspecified() {
                            core::net::IpAddr::V4(key.tun_src())
                        } else {
                            core::net::IpAddr::V6(key.tun_ipv6_src())
                        };
                        let mac = protocol::wire::EthernetAddress(outer_src);
                        if self.tunnels.next_hops().get(remote) != Some(mac) {
                            out.tunnel_event(TunnelEvent::Learned { remote, mac });
                        }
                        decap_note = Some(TraceNote::TunnelDecap {
                            from: in_port,
                            port,
                            kind,
                            outer_len: u16::try_from(outer_len).unwrap_or(u16::MAX),
                            dummy_eth,
                        });
                        in_port = port;
                    }
                    Decap::NotTunnel => {
                        if let Some(h) = u.host_port {
                            return Err(self.bridge(pkt, in_port, h, tunnel, out, trace));
                        }
                    }
                    Decap::Drop(d) => {
                        key.set_in_port(in_port.0);
                        extract(pkt.data(), &self.extract, key);
                        trace.begin(in_port, key);
                        trace.note(TraceNote::TunnelDrop(d));
                        let v = Verdict {
                            outputs: 0,
                            packet_ins: 0,
                            reason: Some(d.into()),
                        };
                        return Err(v);
                    }
                }
            } else if Some(in_port) == u.host_port {
                return Err(self.bridge(pkt, in_port, u.port, tunnel, out, trace));
            }
        }
        Ok((in_port, decap_note))
    }

    /// Stages 4 to 6 for an extracted packet; returns the verdict and the
    /// path mode as the translation left it.
    #[inline]
    fn translate<'p, 'b, 'e, O: OutputSink, T: TraceSink>(
        &'p self,
        pkt: &'b mut PacketBuf,
        key: &'b mut FlowKey,
        set: &'b mut exec::ActionSet<'p>,
        layers: Layers,
        w: &'b mut Io<'_, O, T>,
        path: PathMode<'e>,
    ) -> (Verdict, PathMode<'e>) {
        let Io {
            now_ms,
            counters,
            mac,
            tunnel,
            out,
            trace,
        } = w;
        let now_ms = *now_ms;
        let zero_ports =
            key.nw_frag() & NW_FRAG_ANY != 0 && self.config.frag_mode == FragMode::Normal;
        if zero_ports {
            trace.note(TraceNote::FragmentPortsZeroed);
        }
        let base_len = pkt.len();
        set.clear();
        let mut ctx = exec::Ctx {
            pl: self,
            pkt,
            key,
            layers,
            now_ms,
            mac,
            tunnel,
            tables: &mut counters.tables[..],
            path,
            out: &mut **out,
            trace: &mut **trace,
            set,
            depth: 0,
            resubmits: 0,
            outputs: 0,
            packet_ins: 0,
            missed: false,
            error: None,
            table: TableId(0),
            cookie: Cookie(0),
            zero_ports_in_lookup: zero_ports,
            tunnel_drop: None,
            base_len,
        };
        ctx.run(TableId(0));
        let mut v = Verdict {
            outputs: ctx.outputs,
            packet_ins: ctx.packet_ins,
            reason: ctx.error.or(ctx.tunnel_drop),
        };
        if v.reason.is_none() && v.dropped() {
            v.reason = Some(if ctx.missed {
                DropReason::TableMiss
            } else {
                DropReason::NoOutput
            });
        }
        let path = std::mem::replace(&mut ctx.path, PathMode::Live);
        (finish(counters, &mut **trace, v), path)
    }
}

impl Pipeline {
    /// Sends a non-tunnel frame between the underlay and host ports
    /// untouched, without a table lookup (see [`crate::tunnel`]).
    #[inline]
    fn bridge(
        &self,
        pkt: &PacketBuf,
        in_port: PortNo,
        to: PortNo,
        tunnel: &mut TunnelWorker,
        out: &mut impl OutputSink,
        trace: &mut impl TraceSink,
    ) -> Verdict {
        let mut key = FlowKey::default();
        key.set_in_port(in_port.0);
        extract(pkt.data(), &self.extract, &mut key);
        trace.begin(in_port, &key);
        trace.note(TraceNote::TunnelHostBridge(to));
        out.output_offload(to, pkt.data(), pkt.offload());
        trace.output(to, pkt.data());
        tunnel.host_bridged += 1;
        // The caller counts it (`finish`).
        Verdict {
            outputs: 1,
            packet_ins: 0,
            reason: None,
        }
    }
}

/// The worker's side of one translation: the clock reading and
/// everything besides the packet that stages 1 to 6 write (one value
/// instead of the same six arguments at every call).
struct Io<'w, O, T> {
    now_ms: u64,
    counters: &'w mut WorkerCounters,
    mac: &'w mut MacTable,
    tunnel: &'w mut TunnelWorker,
    out: &'w mut O,
    trace: &'w mut T,
}

impl<'w, O: OutputSink, T: TraceSink> Io<'w, O, T> {
    /// The one constructor: `ws` split into the translation's side and the
    /// batch's own (the cache and the per-packet keys).
    #[inline]
    fn split(
        ws: &'w mut WorkerState,
        now_ms: u64,
        out: &'w mut O,
        trace: &'w mut T,
    ) -> (Io<'w, O, T>, &'w mut Emc, &'w mut BatchScratch) {
        let WorkerState {
            counters,
            mac,
            tunnel,
            emc,
            batch,
        } = ws;
        let io = Io {
            now_ms,
            counters,
            mac,
            tunnel,
            out,
            trace,
        };
        (io, emc, batch)
    }
}

/// What pass 1 of [`Pipeline::process_batch`] left for a packet.
#[derive(Debug, Clone, Copy)]
enum Prep {
    /// Dropped in stages 1 to 3 (already counted).
    Done,
    /// Decapsulated: the full translation, no cache.
    Live(Layers),
    /// Cacheable, with its cache hash.
    Cached(Layers, u32),
}

/// A cacheable packet's layers, hash and probe result.
#[derive(Debug, Clone, Copy)]
struct Cached {
    layers: Layers,
    h: u32,
    found: Option<usize>,
}

/// Per-worker scratch of [`Pipeline::process_batch`]: one key per packet
/// of a batch (pass 1 extracts all of them before pass 2 executes any),
/// and the batch's hit groups (reset, not rebuilt, per batch: building
/// and moving the 3.5 KB value cost some 25 instructions per packet).
/// Allocated once; 32 x 312 bytes and the groups.
#[derive(Debug, Clone)]
pub struct BatchScratch {
    keys: Box<[FlowKey]>,
    /// Per key: its words 0..=24 are zero but for `in_port` (its last
    /// packet was an early drop or a flat hit, which write no metadata,
    /// register or tunnel word), so pass 1 need not clear them again.
    clean: [bool; BATCH_MAX],
    groups: Box<Groups>,
}

impl Default for BatchScratch {
    fn default() -> Self {
        BatchScratch {
            keys: vec![FlowKey::default(); BATCH_MAX].into_boxed_slice(),
            clean: [false; BATCH_MAX],
            groups: Box::new(Groups::new()),
        }
    }
}

/// The hit groups of a batch (see [`emc`], "Groups"): pending credits,
/// a direct-mapped path -> group hint instead of a scan (a stale or
/// colliding hint opens a second group for the path, credited the same
/// way), and the per-rule accumulator. A group gathers the hits of every
/// entry with the same short path (at most [`emc::HEAD`] steps, length
/// deltas included, compared as the zero-padded head the flat line
/// holds, and the same flat-ness), not only of one entry: 32 distinct
/// flows through one rule are one group, so the crediting walk is paid
/// once per batch, not once per packet. A longer path groups by slot.
#[derive(Debug, Clone)]
struct Groups {
    g: [Group; BATCH_MAX],
    n: usize,
    /// Group index by a hash of the path key (may be stale: checked).
    hint: [u8; GROUP_HINTS],
    /// The group the last hit joined (may be stale: checked).
    last: usize,
    /// The current run: hits since the last one that went to
    /// [`add_hinted`](Self::add_hinted), all on group `last`, whose
    /// representative slot and path id are kept here (`usize::MAX` and 0
    /// when there is no run), so a hit like the previous one costs two
    /// compares and two adds; settled into the group before anything
    /// else reads or moves groups.
    run_slot: usize,
    run_id: u64,
    run_packets: u64,
    run_bytes: u64,
    credits: Credits,
}

/// Pending credits of one group.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// The representative slot (its path is credited).
    slot: usize,
    /// Its path key ([`Emc::path_key`]).
    len: u8,
    head: [u64; emc::HEAD],
    flat: bool,
    /// Its path id ([`Emc::path_id`]; 0: compare the path key).
    id: u64,
    packets: u64,
    /// Bytes at entry.
    bytes: u64,
}

impl Group {
    const EMPTY: Group = Group {
        slot: usize::MAX,
        len: 0,
        head: [0; emc::HEAD],
        flat: false,
        id: 0,
        packets: 0,
        bytes: 0,
    };
}

impl Groups {
    #[inline]
    fn new() -> Groups {
        Groups {
            g: [Group::EMPTY; BATCH_MAX],
            n: 0,
            hint: [u8::MAX; GROUP_HINTS],
            last: usize::MAX,
            run_slot: usize::MAX,
            run_id: 0,
            run_packets: 0,
            run_bytes: 0,
            credits: Credits::new(),
        }
    }

    /// Empty for a new batch (the group array's stale entries past `n`
    /// are never read; hints are checked against `n`).
    #[inline]
    fn reset(&mut self) {
        self.n = 0;
        self.hint = [u8::MAX; GROUP_HINTS];
        self.last = usize::MAX;
        self.end_run();
        debug_assert!(self.credits.is_empty());
    }

    /// Adds the current run's hits to its group.
    #[inline]
    fn settle(&mut self) {
        if self.run_packets != 0 {
            if let Some(e) = self.g.get_mut(..self.n).and_then(|l| l.get_mut(self.last)) {
                e.packets += self.run_packets;
                e.bytes += self.run_bytes;
            }
            self.run_packets = 0;
            self.run_bytes = 0;
        }
    }

    /// Settles and ends the current run (before groups move).
    #[inline]
    fn end_run(&mut self) {
        self.settle();
        self.run_slot = usize::MAX;
        self.run_id = 0;
    }

    /// A finished group: its path's rules are credited, and for a flat
    /// entry, which skipped the executor, its table lookups are counted
    /// here, once per group (a replay counted them per packet), so a flat
    /// hit never reads its path.
    #[inline]
    fn flush(
        pl: &Pipeline,
        emc: &Emc,
        credits: &mut Credits,
        counters: &mut WorkerCounters,
        g: &Group,
        now_ms: u64,
    ) {
        let (p, path) = (g.packets, emc.path(g.slot));
        if g.flat {
            for st in path.iter().map(|st| Step(*st)) {
                if let Some(c) = counters.tables.get_mut(usize::from(st.table())) {
                    c.lookups += p;
                    c.matched += if st.rule().is_some() { p } else { 0 };
                }
            }
        }
        credits.add_path(pl, path, p, g.bytes, now_ms);
    }

    /// One more hit of `len` bytes on `slot` (`flat`: a flat hit, whose
    /// table lookups the group counts). First the group the previous hit
    /// joined, by slot or one-word path id (many flows through the same
    /// rule: the common case), then the hinted group by path key.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        pl: &Pipeline,
        emc: &Emc,
        counters: &mut WorkerCounters,
        slot: usize,
        flat: bool,
        len: u64,
        now_ms: u64,
    ) {
        let id = emc.path_id(slot);
        if slot == self.run_slot || (id != 0 && id == self.run_id) {
            self.run_packets += 1;
            self.run_bytes += len;
            return;
        }
        self.settle();
        self.add_hinted(pl, emc, counters, slot, flat, id, len, now_ms);
        // A new run on the group just joined or opened.
        if let Some(e) = self.g.get(..self.n).and_then(|l| l.get(self.last)) {
            self.run_slot = e.slot;
            self.run_id = e.id;
        }
    }

    /// [`add`](Self::add) past the last group.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn add_hinted(
        &mut self,
        pl: &Pipeline,
        emc: &Emc,
        counters: &mut WorkerCounters,
        slot: usize,
        flat: bool,
        id: u64,
        len: u64,
        now_ms: u64,
    ) {
        let (n, head) = emc.path_key(slot);
        let mix = (head[0] ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let hint = self.hint.get_mut((mix >> 58) as usize % GROUP_HINTS);
        let g = hint.as_deref().map_or(usize::MAX, |g| usize::from(*g));
        match self.g.get_mut(..self.n).and_then(|l| l.get_mut(g)) {
            Some(e)
                if e.slot == slot
                    || (usize::from(n) <= emc::HEAD
                        && e.len == n
                        && e.head == head
                        && e.flat == flat) =>
            {
                e.packets += 1;
                e.bytes += len;
                self.last = g;
            }
            _ => {
                if self.n == BATCH_MAX {
                    for e in &self.g {
                        Self::flush(pl, emc, &mut self.credits, counters, e, now_ms);
                    }
                    self.n = 0;
                }
                if let (Some(e), Some(h)) = (self.g.get_mut(self.n), hint) {
                    *e = Group {
                        slot,
                        len: n,
                        head,
                        flat,
                        id,
                        packets: 1,
                        bytes: len,
                    };
                    *h = self.n as u8;
                    self.last = self.n;
                    self.n += 1;
                }
            }
        }
    }

    /// Credits (and forgets) every group represented by `slot`, before
    /// its entry (and so the group's path) is replaced. Groups that `slot`
    /// only joined keep their representative's equal path.
    #[inline]
    fn flush_slot(
        &mut self,
        pl: &Pipeline,
        emc: &Emc,
        counters: &mut WorkerCounters,
        slot: usize,
        now_ms: u64,
    ) {
        self.end_run();
        let mut g = 0;
        while g < self.n {
            match self.g.get(g) {
                Some(e) if e.slot == slot => {
                    Self::flush(pl, emc, &mut self.credits, counters, e, now_ms);
                    self.g.copy_within(g + 1..self.n, g);
                    self.n -= 1;
                    // Hints past `g` now point one too far: they fail the
                    // path check and open a new group, or land on another
                    // group of the same path; both stay correct.
                }
                _ => g += 1,
            }
        }
    }

    /// End of the batch: every group credited, every rule counter updated.
    #[inline]
    fn finish(&mut self, pl: &Pipeline, emc: &Emc, counters: &mut WorkerCounters, now_ms: u64) {
        self.end_run();
        for e in self.g.get(..self.n).unwrap_or_default() {
            Self::flush(pl, emc, &mut self.credits, counters, e, now_ms);
        }
        self.n = 0;
        self.credits.apply(pl, now_ms);
    }
}

/// Zeroes the key's port, metadata, register and tunnel words (`extract`
/// clears the packet words itself), so one key serves a whole batch.
#[inline]
fn clear_metadata(key: &mut FlowKey) {
    if let Some(meta) = key.0.get_mut(..protocol::flow::key::FIRST_PACKET_WORD) {
        meta.fill(0);
    }
}

#[inline]
fn finish(counters: &mut WorkerCounters, trace: &mut impl TraceSink, v: Verdict) -> Verdict {
    counters.outputs += u64::from(v.outputs);
    counters.packet_ins += u64::from(v.packet_ins);
    if let Some(r) = v.reason {
        if let Some(c) = counters.drops.get_mut(r.index()) {
            *c += 1;
        }
        trace.drop_reason(r);
    }
    v
}
