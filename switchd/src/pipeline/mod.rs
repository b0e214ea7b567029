//! The packet pipeline: an immutable snapshot of flow tables and switch
//! settings ([`Pipeline`]) and the per-packet path through it
//! ([`Pipeline::process`]), sans-IO: bytes in, calls to an [`OutputSink`]
//! out, so the worker loop, `weftctl trace`, tests, benches and fuzzers all
//! drive the same code.
//!
//! # Stages of [`Pipeline::process`] (OVS `dp_netdev_input__` +
//! `xlate_actions`)
//!
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
//! The per-packet path does not allocate (tested under a counting
//! allocator in `tests/pipeline_alloc.rs`), takes no lock, does not log and
//! does not read the clock (`now_ms` is passed in). Rule counters are
//! relaxed atomics shared with the control thread.
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
pub mod exec;
pub mod normal;
pub mod packet;
pub mod rewrite;
pub mod table;
pub mod trace;

use std::sync::Arc;

use protocol::flow::{
    ControllerReason, Cookie, ExtractConfig, FlowKey, FlowSpec, Layer, PortNo, TableId, extract,
    key::NW_FRAG_ANY,
};

use crate::buf::PacketBuf;

pub use config::{FragMode, MissBehavior, PortConfig, SwitchConfig};
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
    /// A packet-in for the controller: why, from which table, the cookie of
    /// the rule (all ones for a table miss) and the (possibly cut) bytes.
    fn packet_in(&mut self, reason: ControllerReason, table: TableId, cookie: Cookie, bytes: &[u8]);
}

/// An [`OutputSink`] that keeps copies of everything (tests, tools; it
/// allocates).
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    /// (port, bytes) in order.
    pub outputs: Vec<(PortNo, Vec<u8>)>,
    /// (reason, table, cookie, bytes) in order.
    pub packet_ins: Vec<(ControllerReason, TableId, Cookie, Vec<u8>)>,
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
}

impl DropReason {
    /// Number of reasons (size of the counter array).
    pub const COUNT: usize = 6;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::NoReceive,
        DropReason::Fragment,
        DropReason::TableMiss,
        DropReason::ResubmitLimit,
        DropReason::NoOutput,
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
    /// (only [`DropReason::ResubmitLimit`] can come with outputs).
    pub reason: Option<DropReason>,
}

impl Verdict {
    /// True if the packet went nowhere: no output, no packet-in.
    #[inline]
    pub fn dropped(&self) -> bool {
        self.outputs == 0 && self.packet_ins == 0
    }
}

/// Per-worker counters, aggregated by the control thread on read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
}

impl WorkerCounters {
    /// The drop count for `reason`.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }
}

/// State owned by one worker thread: counters and the MAC-learning table.
/// Never shared; allocated once.
#[derive(Debug, Clone)]
pub struct WorkerState {
    /// Counters.
    pub counters: WorkerCounters,
    /// `NORMAL`'s MAC table.
    pub mac: MacTable,
}

impl WorkerState {
    /// A worker state sized by `config.mac_table_size`.
    pub fn new(config: &SwitchConfig) -> WorkerState {
        WorkerState {
            counters: WorkerCounters::default(),
            mac: MacTable::new(config.mac_table_size),
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
}

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
        })
    }

    /// This snapshot's generation.
    pub fn generation(&self) -> u64 {
        self.generation
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
    pub fn process(
        &self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        now_ms: u64,
        ws: &mut WorkerState,
        out: &mut impl OutputSink,
        trace: &mut impl TraceSink,
    ) -> Verdict {
        self.process_inner(pkt, in_port, None, now_ms, ws, out, trace)
    }

    /// [`process`](Self::process) for a packet that arrived through a
    /// tunnel and was already decapsulated: `pkt` is the inner frame and
    /// the key's tunnel metadata (`tun_id`, `tun_src`, `tun_dst`,
    /// `tun_flags`, `tun_metadata0..7` and their present bits) is taken
    /// from `tunnel` before table 0, exactly as a decapsulating port would
    /// fill it in. Used by the controller's offline policy check to carry
    /// the tunnel hop between two nodes' pipelines until tunnel ports do
    /// this themselves.
    #[allow(clippy::too_many_arguments)]
    pub fn process_with_tunnel(
        &self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        tunnel: &TunnelMetadata,
        now_ms: u64,
        ws: &mut WorkerState,
        out: &mut impl OutputSink,
        trace: &mut impl TraceSink,
    ) -> Verdict {
        self.process_inner(pkt, in_port, Some(tunnel), now_ms, ws, out, trace)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn process_inner(
        &self,
        pkt: &mut PacketBuf,
        in_port: PortNo,
        tunnel: Option<&TunnelMetadata>,
        now_ms: u64,
        ws: &mut WorkerState,
        out: &mut impl OutputSink,
        trace: &mut impl TraceSink,
    ) -> Verdict {
        ws.counters.packets += 1;
        ws.counters.bytes += pkt.len() as u64;
        let mut key = FlowKey::default();
        key.set_in_port(in_port.0);
        let ex = extract(pkt.data(), &self.extract, &mut key);
        if let Some(t) = tunnel {
            t.apply(&mut key);
        }
        trace.begin(in_port, &key);
        let early = if let Some(e) = ex.error
            && e.layer != Layer::L4
        {
            trace.note(TraceNote::Malformed(e));
            Some(DropReason::Malformed)
        } else if self.port_config(in_port).is_some_and(|c| c.no_receive) {
            trace.note(TraceNote::NoReceive);
            Some(DropReason::NoReceive)
        } else if key.nw_frag() & NW_FRAG_ANY != 0 && self.config.frag_mode == FragMode::Drop {
            trace.note(TraceNote::FragmentDropped);
            Some(DropReason::Fragment)
        } else {
            None
        };
        if let Some(r) = early {
            return finish(
                ws,
                trace,
                Verdict {
                    outputs: 0,
                    packet_ins: 0,
                    reason: Some(r),
                },
            );
        }
        let zero_ports =
            key.nw_frag() & NW_FRAG_ANY != 0 && self.config.frag_mode == FragMode::Normal;
        if zero_ports {
            trace.note(TraceNote::FragmentPortsZeroed);
        }
        let mut ctx = exec::Ctx {
            pl: self,
            pkt,
            key,
            layers: ex.layers,
            now_ms,
            ws,
            out,
            trace,
            set: exec::ActionSet::EMPTY,
            depth: 0,
            resubmits: 0,
            outputs: 0,
            packet_ins: 0,
            missed: false,
            error: None,
            table: TableId(0),
            cookie: Cookie(0),
            zero_ports_in_lookup: zero_ports,
        };
        ctx.run(TableId(0));
        let mut v = Verdict {
            outputs: ctx.outputs,
            packet_ins: ctx.packet_ins,
            reason: ctx.error,
        };
        if v.reason.is_none() && v.dropped() {
            v.reason = Some(if ctx.missed {
                DropReason::TableMiss
            } else {
                DropReason::NoOutput
            });
        }
        finish(ctx.ws, ctx.trace, v)
    }
}

/// The tunnel metadata of a decapsulated packet (see
/// [`Pipeline::process_with_tunnel`]): the outer header's VNI and
/// endpoints, tunnel flags and the Geneve option slots already mapped to
/// `tun_metadata0..7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelMetadata {
    /// `tun_id` (the VNI).
    pub tun_id: u64,
    /// `tun_src` (the remote endpoint).
    pub tun_src: core::net::Ipv4Addr,
    /// `tun_dst` (the local endpoint).
    pub tun_dst: core::net::Ipv4Addr,
    /// `tun_flags`.
    pub tun_flags: u16,
    /// `tun_metadata0..7`; `None` = option absent.
    pub metadata: [Option<u64>; protocol::flow::TUN_METADATA_SLOTS],
}

impl Default for TunnelMetadata {
    fn default() -> Self {
        TunnelMetadata {
            tun_id: 0,
            tun_src: core::net::Ipv4Addr::UNSPECIFIED,
            tun_dst: core::net::Ipv4Addr::UNSPECIFIED,
            tun_flags: 0,
            metadata: [None; protocol::flow::TUN_METADATA_SLOTS],
        }
    }
}

impl TunnelMetadata {
    /// Reads the tunnel fields of `key` (e.g. as set by the sending node's
    /// flows before `output` to a tunnel port).
    pub fn from_key(key: &FlowKey) -> TunnelMetadata {
        let mut metadata = [None; protocol::flow::TUN_METADATA_SLOTS];
        for (i, m) in metadata.iter_mut().enumerate() {
            if key.tun_metadata_present() & (1 << i) != 0 {
                *m = Some(key.tun_metadata(i));
            }
        }
        TunnelMetadata {
            tun_id: key.tun_id(),
            tun_src: key.tun_src(),
            tun_dst: key.tun_dst(),
            tun_flags: key.tun_flags(),
            metadata,
        }
    }

    /// Writes these fields into `key`.
    pub fn apply(&self, key: &mut FlowKey) {
        key.set_tun_id(self.tun_id);
        key.set_tun_src(self.tun_src);
        key.set_tun_dst(self.tun_dst);
        key.set_tun_flags(self.tun_flags);
        for (i, m) in self.metadata.iter().enumerate() {
            if let Some(v) = m {
                key.set_tun_metadata(i, *v);
            }
        }
    }
}

#[inline]
fn finish(ws: &mut WorkerState, trace: &mut impl TraceSink, v: Verdict) -> Verdict {
    ws.counters.outputs += u64::from(v.outputs);
    ws.counters.packet_ins += u64::from(v.packet_ins);
    if let Some(r) = v.reason {
        if let Some(c) = ws.counters.drops.get_mut(r.index()) {
            *c += 1;
        }
        trace.drop_reason(r);
    }
    v
}
