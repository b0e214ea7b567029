//! Action execution for one packet: the translation loop (OVS
//! `do_xlate_actions` and `xlate_table_action`), executed directly on the
//! packet instead of being compiled to datapath actions.
//!
//! Semantics (OVS `ofproto-dpif-xlate.c`, `ovs-actions(7)`):
//!
//! * Actions run in order; header writes change the key and the packet
//!   bytes at once ([`super::rewrite`]), so each output sends the packet as
//!   it is at that point.
//! * `output:N` to the packet's current `in_port` is skipped (`in_port`
//!   sends there); `FLOOD` skips the input port and `no-flood` ports, `ALL`
//!   the input port; `no-forward` ports receive nothing.
//! * `resubmit(port,table)`: looks `table` (default: the current one) up
//!   with `in_port` replaced *for the lookup only*, then runs the rule's
//!   actions and continues after the resubmit. A miss in a resubmit does
//!   nothing (no table-miss behaviour, no packet-in), as OVS. Nesting is
//!   limited to [`MAX_DEPTH`] and the total per packet to
//!   [`MAX_RESUBMITS`]; hitting either stops the whole translation with
//!   [`DropReason::ResubmitLimit`] (outputs already sent stay sent, the
//!   action set is not executed). OVS counts depth only for resubmits to
//!   the same or an earlier table; we count every nested resubmit (goto is
//!   a loop, not a nesting).
//! * `goto_table`: the last instruction; continues in the later table with
//!   its table-miss behaviour.
//! * Table miss: the table's [`MissBehavior`]. A miss ends the current
//!   chain only: a resubmit that led to it returns and the caller goes on.
//! * `dec_ttl` on TTL <= 1: packet-in `invalid_ttl` and the rest of the
//!   current rule's actions are skipped (OVS "stop processing for current
//!   table"); on non-IP packets it does nothing.
//! * Field writes whose prerequisites the packet does not meet are skipped
//!   (OVS "unmet prerequisites"); for `move`, both fields are checked.
//! * `write_actions` adds to the action set; it runs after the pipeline in
//!   OpenFlow order (pop VLAN, push VLAN, dec_ttl, sets/moves in the order
//!   written, then the last output, or the last resubmit if there is no
//!   output), and only if it has an output or resubmit (OVS
//!   `ofpacts_execute_action_set`). At most [`SET_MAX`] sets/moves are
//!   kept.
//! * At most two VLAN tags are tracked, and a `push_vlan` onto two tracked
//!   tags first removes the inner one from the packet: after three pushes
//!   the packet carries the last two. This is what OVS does for flows
//!   added with `ovs-ofctl`'s default protocol settings. Evidence from the
//!   OVS source: `ovs-ofctl` allows every OpenFlow version by default
//!   (`OFPUTIL_DEFAULT_VERSIONS` = all supported, `ofp-protocol.h`), and
//!   parsing `push_vlan` limits the usable protocols to OpenFlow 1.1+
//!   (`parse_PUSH_VLAN`: `OFPUTIL_P_OF11_UP`), so the flow is sent as a
//!   real `OFPAT11_PUSH_VLAN` (`open_vconn_for_flow_mod`; under OpenFlow
//!   1.0 only, `ovs-ofctl` refuses the flow, there is no 1.0 form). The
//!   translation (`do_xlate_actions`, `OFPACT_PUSH_VLAN`) calls
//!   `flow_push_vlan_uninit`, which shifts `vlans[0]` into `vlans[1]` of a
//!   two-slot array (`FLOW_MAX_VLAN_HEADERS`), forgetting the old
//!   `vlans[1]`; `commit_vlan_action` then pops the packet's differing
//!   tags and pushes the flow's, so the forgotten tag leaves the wire.
//!   Tags beyond `vlan-limit` were never tracked and stay (payload), in
//!   both. The differential test (`tools/tests/ovs_diff.rs`,
//!   `vlan_stack_cases`) checks this against a real OVS. Unlike OVS, a
//!   flow whose own actions push a third tag is not refused at compile
//!   time (`OFPBAC_BAD_TAG`); it gets the same runtime behaviour.

use protocol::flow::key::{VLAN_CFI, VLAN_PCP_MASK, VLAN_PCP_SHIFT, VLAN_VID_MASK};
use protocol::flow::{
    Action, ControllerReason, Cookie, Field, FlowKey, Layers, PortNo, Prereq, SubField, TableId,
};

use super::config::MissBehavior;
use super::emc::{FlatOp, PathRec, Step};
use super::normal::MacTable;
use super::normal::{self, Learned};
use super::rewrite;
use super::table::Op;
use super::table::Rule;
use super::trace::{TraceNote, TraceSink};
use super::{DropReason, OutputSink, Pipeline, TableCounter};
use crate::buf::PacketBuf;
use crate::tunnel::{EncapError, IcmpError, TunnelEvent, TunnelPort, TunnelWorker, too_big_reply};

/// Most nested resubmits (OVS `MAX_DEPTH`).
pub const MAX_DEPTH: u32 = 64;
/// Most resubmits per packet (OVS `MAX_RESUBMITS`).
pub const MAX_RESUBMITS: u32 = 64 * 64;
/// Most set/move actions kept in the action set.
pub const SET_MAX: usize = 32;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

type Entry<'p> = (&'p Op, &'p Action);

/// The OpenFlow action set, without allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActionSet<'p> {
    pop: Option<Entry<'p>>,
    push: Option<Entry<'p>>,
    dec_ttl: Option<Entry<'p>>,
    sets: [Option<Entry<'p>>; SET_MAX],
    n_sets: usize,
    /// Final action and its class (1 resubmit, 2 output).
    fin: Option<(Entry<'p>, u8)>,
}

impl<'p> ActionSet<'p> {
    pub(crate) const EMPTY: ActionSet<'p> = ActionSet {
        pop: None,
        push: None,
        dec_ttl: None,
        sets: [None; SET_MAX],
        n_sets: 0,
        fin: None,
    };

    /// Empties the set. Entries of `sets` past `n_sets` are never read,
    /// so only the scalars are reset (the set is reused across packets of
    /// a batch; rewriting its 32 slots per packet was a measurable share of
    /// a cache hit).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.pop = None;
        self.push = None;
        self.dec_ttl = None;
        self.n_sets = 0;
        self.fin = None;
    }

    /// Adds `write_actions` contents; `false` if some set did not fit.
    fn write(&mut self, ops: &'p [Op], acts: &'p [Action]) -> bool {
        let mut ok = true;
        for e in ops.iter().zip(acts) {
            match e.0 {
                Op::PopVlan => self.pop = Some(e),
                Op::PushVlan(_) => self.push = Some(e),
                Op::DecTtl => self.dec_ttl = Some(e),
                Op::Output(_) | Op::Resubmit { .. } => {
                    let class = if matches!(e.0, Op::Output(_)) { 2 } else { 1 };
                    if self.fin.is_none_or(|(_, c)| class >= c) {
                        self.fin = Some((e, class));
                    }
                }
                Op::SetField { .. } | Op::Move { .. } | Op::SetVlanVid(_) | Op::SetVlanPcp(_) => {
                    match self.sets.get_mut(self.n_sets) {
                        Some(slot) => {
                            *slot = Some(e);
                            self.n_sets += 1;
                        }
                        None => ok = false,
                    }
                }
                _ => {}
            }
        }
        ok
    }
}

/// What the caller of an action list does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Go on.
    Continue,
    /// Skip the rest of this rule's actions (`dec_ttl` expiry).
    StopList,
    /// Continue in this table (`goto_table`).
    Goto(TableId),
    /// Stop everything (resubmit limit).
    Abort,
}

/// One packet's translation state.
pub(crate) struct Ctx<'p, 'b, 'e, O, T> {
    pub(crate) pl: &'p Pipeline,
    pub(crate) pkt: &'b mut PacketBuf,
    /// The packet's key, owned by the caller (not moved per packet).
    pub(crate) key: &'b mut FlowKey,
    pub(crate) layers: Layers,
    pub(crate) now_ms: u64,
    /// The worker's `NORMAL` MAC table.
    pub(crate) mac: &'b mut MacTable,
    /// Tunnel scratch buffer and counters.
    pub(crate) tunnel: &'b mut TunnelWorker,
    /// The worker's per-table lookup counters.
    pub(crate) tables: &'b mut [TableCounter],
    /// Where lookups come from (see [`super::emc`]).
    pub(crate) path: PathMode<'e>,
    pub(crate) out: &'b mut O,
    pub(crate) trace: &'b mut T,
    /// The action set; the caller's, empty on entry (reused per batch).
    pub(crate) set: &'b mut ActionSet<'p>,
    pub(crate) depth: u32,
    pub(crate) resubmits: u32,
    pub(crate) outputs: u32,
    pub(crate) packet_ins: u32,
    pub(crate) missed: bool,
    pub(crate) error: Option<DropReason>,
    /// The first tunnel output failure (counted, does not stop the
    /// translation).
    pub(crate) tunnel_drop: Option<DropReason>,
    /// Table of the rule running now.
    pub(crate) table: TableId,
    /// Cookie of the rule running now.
    pub(crate) cookie: Cookie,
    /// Zero L4 ports during lookups (fragment under `frag_mode normal`).
    pub(crate) zero_ports_in_lookup: bool,
    /// Packet length when the translation started (recorded path deltas).
    pub(crate) base_len: usize,
}

/// How a translation does its lookups.
pub(crate) enum PathMode<'e> {
    /// Classifier lookups, rules credited per packet.
    Live,
    /// Classifier lookups, credited per packet, each recorded.
    Record(&'e mut PathRec),
    /// Lookups answered from a cached path; rules are credited by the
    /// caller per group ([`super::emc`]).
    Replay {
        steps: &'e [u64],
        pos: usize,
        base_len: usize,
    },
    /// A replay whose walk left the recorded path (see [`super::emc`]):
    /// everything so far was credited, the rest is live.
    Diverged,
}

/// Credits `rule` of `pl` for the packets of a replayed path step.
#[inline]
pub(crate) fn credit_step(pl: &Pipeline, s: Step, packets: u64, bytes: u64, now_ms: u64) {
    if let Some(rule) = s.rule().and_then(|r| pl.table(TableId(s.table()))?.rule(r)) {
        rule.stats.credit_n(packets, bytes, now_ms);
    }
}

#[inline]
fn ones(bits: u8) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// True if the packet has what `p` requires (OVS `mf_are_prereqs_ok`).
#[inline]
pub(crate) fn prereq_ok(p: Prereq, k: &FlowKey) -> bool {
    let dl = k.dl_type();
    let v4 = dl == 0x0800;
    let v6 = dl == 0x86dd;
    let proto = k.nw_proto();
    let icmp6 = v6 && proto == IPPROTO_ICMPV6;
    match p {
        Prereq::None => true,
        Prereq::Ipv4 => v4,
        Prereq::Ipv6 => v6,
        Prereq::IpAny => v4 || v6,
        Prereq::Arp => matches!(dl, 0x0806 | 0x8035),
        Prereq::L4 => (v4 || v6) && matches!(proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP),
        Prereq::Tcp => (v4 || v6) && proto == IPPROTO_TCP,
        Prereq::Icmp => (v4 && proto == IPPROTO_ICMP) || icmp6,
        Prereq::Nd => icmp6 && matches!(k.tp_src(), 135 | 136) && k.tp_dst() == 0,
        Prereq::NdSolicit => icmp6 && k.tp_src() == 135 && k.tp_dst() == 0,
        Prereq::NdAdvert => icmp6 && k.tp_src() == 136 && k.tp_dst() == 0,
        Prereq::Vlan => k.has_vlan(),
    }
}

/// True if `f` is held in the packet words of the key (what
/// [`rewrite::commit_field`] writes and reads), not port, metadata,
/// registers or tunnel fields, which only steer lookups and outputs that a
/// flat action list has already resolved.
#[inline]
fn is_header_field(f: Field) -> bool {
    !matches!(
        f,
        Field::InPort
            | Field::ConjId
            | Field::Metadata
            | Field::Reg(_)
            | Field::TunId
            | Field::TunSrc
            | Field::TunDst
            | Field::TunIpv6Src
            | Field::TunIpv6Dst
            | Field::TunFlags
            | Field::TunMetadata(_)
    )
}

/// Replays a flat action list (see [`super::emc`]) on a packet whose key
/// and layers were just extracted: the header writes and outputs the
/// recorded translation made, in order. Returns the copies sent.
#[inline(always)]
pub(crate) fn run_flat(
    ops: &[FlatOp],
    pkt: &mut PacketBuf,
    key: &mut FlowKey,
    layers: &Layers,
    out: &mut impl OutputSink,
) -> u32 {
    let mut outputs = 0;
    for op in ops {
        match *op {
            FlatOp::Emit(p) => {
                out.output_offload(p, pkt.data(), pkt.offload());
                outputs += 1;
            }
            FlatOp::Set(f, v) => {
                f.set(key, v);
                rewrite::commit_field(f, pkt.data_mut(), key, layers);
            }
        }
    }
    outputs
}

fn is_vlan_field(f: Field) -> bool {
    matches!(
        f,
        Field::VlanTci | Field::DlVlan | Field::VlanVid | Field::VlanPcp
    )
}

impl<'p, O: OutputSink, T: TraceSink> Ctx<'p, '_, '_, O, T> {
    /// Runs the tables from `table` (honouring table-miss behaviour) and
    /// then the action set.
    pub(crate) fn run(&mut self, table: TableId) {
        let mut table = table;
        self.run_tables_from(None, &mut table, true);
        if self.error.is_none() && self.set.fin.is_some() {
            let set = *self.set;
            self.set.clear();
            self.trace.action_set();
            self.run_action_set(&set);
            self.trace.unnest();
        }
    }

    fn run_action_set(&mut self, set: &ActionSet<'p>) {
        for (op, a) in [set.pop, set.push, set.dec_ttl].into_iter().flatten() {
            if self.exec(op, a) != Next::Continue {
                return;
            }
        }
        for (op, a) in set.sets.iter().take(set.n_sets).flatten() {
            if self.exec(op, a) != Next::Continue {
                return;
            }
        }
        if let Some(((op, a), _)) = set.fin {
            self.exec(op, a);
        }
    }

    /// Looks `table` up; `in_port` replaces the key's input port for the
    /// lookup only. Counts the lookup in the table counters and credits the
    /// rule (except on a replay, see [`PathMode`]).
    #[inline]
    fn lookup(
        &mut self,
        table: TableId,
        in_port: Option<PortNo>,
    ) -> Option<(&'p Rule, Option<u32>)> {
        let hit = if let PathMode::Replay {
            steps,
            pos,
            base_len,
        } = &mut self.path
        {
            match steps.get(*pos).map(|s| Step(*s)) {
                Some(s) if s.table() == table.0 => {
                    *pos += 1;
                    s.rule()
                        .and_then(|r| self.pl.table(table)?.rule(r))
                        .map(|r| (r, None))
                }
                _ => {
                    // Left the recorded path: credit what was replayed and
                    // go on live.
                    let (done, base) = (steps.get(..*pos).unwrap_or_default(), *base_len);
                    for s in done.iter().map(|s| Step(*s)) {
                        let len = (base as i64 + i64::from(s.delta())).max(0) as u64;
                        credit_step(self.pl, s, 1, len, self.now_ms);
                    }
                    self.path = PathMode::Diverged;
                    self.live_lookup(table, in_port)
                }
            }
        } else {
            self.live_lookup(table, in_port)
        };
        if let Some(c) = self.tables.get_mut(usize::from(table.0)) {
            c.lookups += 1;
            c.matched += u64::from(hit.is_some());
        }
        hit
    }

    /// A classifier lookup (see [`lookup`](Self::lookup)), credited and
    /// recorded.
    #[inline]
    fn live_lookup(
        &mut self,
        table: TableId,
        in_port: Option<PortNo>,
    ) -> Option<(&'p Rule, Option<u32>)> {
        let hit = self.classify(table, in_port);
        if let Some((rule, _, _)) = hit {
            rule.stats.credit(self.pkt.len(), self.now_ms);
        }
        if let PathMode::Record(rec) = &mut self.path {
            let delta = self.pkt.len() as i64 - self.base_len as i64;
            match i16::try_from(delta) {
                Ok(d) => rec.push(Step::new(table.0, hit.map(|h| h.2), d)),
                Err(_) => rec.uncacheable = true,
            }
        }
        hit.map(|(r, c, _)| (r, c))
    }

    #[inline]
    fn classify(
        &mut self,
        table: TableId,
        in_port: Option<PortNo>,
    ) -> Option<(&'p Rule, Option<u32>, u32)> {
        let t = self.pl.table(table)?;
        let saved = (self.key.in_port(), self.key.tp_src(), self.key.tp_dst());
        if let Some(p) = in_port {
            self.key.set_in_port(p.0);
        }
        if self.zero_ports_in_lookup {
            self.key.set_tp_src(0);
            self.key.set_tp_dst(0);
        }
        let hit = t.cls.lookup(self.key);
        self.key.set_in_port(saved.0);
        self.key.set_tp_src(saved.1);
        self.key.set_tp_dst(saved.2);
        let h = hit?;
        t.rule(*h.value).map(|r| (r, h.conj_id, *h.value))
    }

    /// Records `op` in the flat action list of a recorded path.
    #[inline(always)]
    fn flat(&mut self, op: FlatOp) {
        if let PathMode::Record(rec) = &mut self.path {
            rec.push_flat(op);
        }
    }

    /// The recorded path can only be replayed through the executor, not as
    /// a flat action list (see [`super::emc`]).
    #[inline(always)]
    fn no_flat(&mut self) {
        if let PathMode::Record(rec) = &mut self.path {
            rec.flat_ok = false;
        }
    }

    /// A rewrite failed on the packet bytes: noted, and the translation is
    /// not cached (see [`super::emc`]).
    fn vlan_unchanged(&mut self) {
        self.trace.note(TraceNote::VlanUnchanged);
        if let PathMode::Record(rec) = &mut self.path {
            rec.uncacheable = true;
        }
    }

    /// The table chain: lookup, actions, goto or miss-continue.
    fn run_tables_from(&mut self, in_port: Option<PortNo>, table: &mut TableId, honor_miss: bool) {
        let saved = (self.table, self.cookie);
        let mut honor = honor_miss;
        let mut lookup_port = in_port;
        let mut nests = 0u32;
        loop {
            self.table = *table;
            match self.lookup(*table, lookup_port) {
                Some((rule, conj_id)) => {
                    self.trace.table(*table, Some(rule), conj_id);
                    self.cookie = rule.spec.cookie;
                    match self.run_list(&rule.ops, &rule.spec.actions) {
                        Next::Goto(t) => {
                            self.trace.nest();
                            nests += 1;
                            *table = t;
                            honor = true;
                            lookup_port = None;
                            continue;
                        }
                        _ => {
                            self.trace.end_table();
                            break;
                        }
                    }
                }
                None => {
                    self.trace.table(*table, None, None);
                    if !honor {
                        self.trace.end_table();
                        break;
                    }
                    let behavior = self.pl.miss_of(*table);
                    self.trace.miss(*table, behavior);
                    match behavior {
                        MissBehavior::Drop => {
                            self.missed = true;
                            self.trace.end_table();
                            break;
                        }
                        MissBehavior::Controller => {
                            let in_port = PortNo(self.key.in_port());
                            if self.pl.port_config(in_port).is_some_and(|c| c.no_packet_in) {
                                self.trace.note(TraceNote::PacketInSuppressed);
                                self.missed = true;
                            } else {
                                self.cookie = Cookie(u64::MAX);
                                self.packet_in(ControllerReason::NoMatch, u16::MAX);
                            }
                            self.trace.end_table();
                            break;
                        }
                        MissBehavior::Continue => {
                            self.trace.end_table();
                            if *table >= TableId::MAX {
                                self.trace.note(TraceNote::NoNextTable);
                                self.missed = true;
                                break;
                            }
                            *table = TableId(table.0 + 1);
                            lookup_port = None;
                        }
                    }
                }
            }
        }
        for _ in 0..nests {
            self.trace.unnest();
            self.trace.end_table();
        }
        (self.table, self.cookie) = saved;
    }

    fn run_list(&mut self, ops: &'p [Op], acts: &'p [Action]) -> Next {
        for (op, a) in ops.iter().zip(acts) {
            match self.exec(op, a) {
                Next::Continue => {}
                n => return n,
            }
        }
        Next::Continue
    }

    /// Executes one action.
    fn exec(&mut self, op: &'p Op, a: &'p Action) -> Next {
        if self.error.is_some() {
            return Next::Abort;
        }
        self.trace.action(a);
        match op {
            Op::Output(p) => self.output(*p),
            Op::Controller { max_len, reason } => self.packet_in(*reason, *max_len),
            Op::Resubmit { port, table } => {
                self.resubmit(*port, *table);
                if self.error.is_some() {
                    return Next::Abort;
                }
            }
            Op::Goto(t) => return Next::Goto(*t),
            Op::WriteMetadata { value, mask } => {
                let old = self.key.metadata();
                let new = (old & !mask) | (value & mask);
                self.key.set_metadata(new);
                self.trace
                    .field(Field::Metadata, u128::from(old), u128::from(new));
            }
            Op::SetField { field, value, mask } => {
                if prereq_ok(field.info().prereq, self.key) {
                    self.write_field(*field, *value, *mask);
                } else {
                    self.trace.note(TraceNote::PrereqUnmet(*field));
                }
            }
            Op::Move { src, dst } => self.move_bits(src, dst),
            Op::DecTtl => {
                if self.dec_ttl() {
                    return Next::StopList;
                }
            }
            Op::PushVlan(tpid) => self.push_vlan(*tpid),
            Op::PopVlan => self.pop_vlan(),
            Op::SetVlanVid(v) => self.mod_vlan(VLAN_VID_MASK, *v & VLAN_VID_MASK),
            Op::SetVlanPcp(p) => self.mod_vlan(
                VLAN_PCP_MASK,
                (u16::from(*p) << VLAN_PCP_SHIFT) & VLAN_PCP_MASK,
            ),
            Op::ClearActions => {
                self.set.clear();
                self.trace.note(TraceNote::ActionSetCleared);
            }
            Op::WriteActions(inner) => {
                if let Action::WriteActions(src) = a
                    && !self.set.write(inner, src)
                {
                    self.trace.note(TraceNote::ActionSetFull);
                }
            }
        }
        Next::Continue
    }

    fn resubmit(&mut self, port: Option<PortNo>, table: Option<TableId>) {
        if self.depth >= MAX_DEPTH || self.resubmits >= MAX_RESUBMITS {
            self.error = Some(DropReason::ResubmitLimit);
            self.trace.note(TraceNote::ResubmitLimit);
            if let PathMode::Record(rec) = &mut self.path {
                rec.uncacheable = true;
            }
            return;
        }
        self.resubmits += 1;
        self.depth += 1;
        let cur = PortNo(self.key.in_port());
        let port = port.map(|p| if p == PortNo::IN_PORT { cur } else { p });
        let mut t = table.unwrap_or(self.table);
        self.trace.nest();
        self.run_tables_from(port, &mut t, false);
        self.trace.unnest();
        self.depth -= 1;
    }

    /// Writes `value` under `mask` into `field` (prerequisites checked by
    /// the caller) and commits it to the packet.
    fn write_field(&mut self, field: Field, value: u128, mask: u128) {
        let old = field.get(self.key);
        let new = (old & !mask) | (value & mask);
        if is_vlan_field(field) {
            self.no_flat();
            let old_tci = self.key.vlan0_tci();
            field.set(self.key, new);
            if field == Field::DlVlan {
                // OVS `flow_set_dl_vlan`: setting a VID means "tagged".
                self.key.set_vlan0_tci(self.key.vlan0_tci() | VLAN_CFI);
            }
            self.trace.field(
                Field::VlanTci,
                u128::from(old_tci),
                u128::from(self.key.vlan0_tci()),
            );
            if !rewrite::commit_vlan(old_tci, self.pkt, self.key, &mut self.layers) {
                self.vlan_unchanged();
            }
            return;
        }
        field.set(self.key, new);
        if let Field::TunMetadata(i) = field {
            // Writing an option slot makes the option present (OVS), so
            // a tunnel output sends it.
            let p = self.key.tun_metadata_present() | (1u8 << (i & 7));
            self.key.set_tun_metadata_present(p);
        }
        self.trace.field(field, old, new);
        if is_header_field(field) {
            self.flat(FlatOp::Set(field, new));
        }
        rewrite::commit_field(field, self.pkt.data_mut(), self.key, &self.layers);
    }

    fn move_bits(&mut self, src: &SubField, dst: &SubField) {
        for f in [src.field, dst.field] {
            if !prereq_ok(f.info().prereq, self.key) {
                self.trace.note(TraceNote::PrereqUnmet(f));
                return;
            }
        }
        let v = (src.field.get(self.key) >> src.ofs) & ones(src.n_bits);
        self.write_field(dst.field, v << dst.ofs, ones(dst.n_bits) << dst.ofs);
    }

    /// `true` if the rest of the list must be skipped.
    fn dec_ttl(&mut self) -> bool {
        if !self.key.is_ip() {
            self.trace.note(TraceNote::NotIp);
            return false;
        }
        let ttl = self.key.nw_ttl();
        if ttl > 1 {
            self.key.set_nw_ttl(ttl - 1);
            self.trace
                .field(Field::NwTtl, u128::from(ttl), u128::from(ttl - 1));
            self.flat(FlatOp::Set(Field::NwTtl, u128::from(ttl - 1)));
            rewrite::commit_field(Field::NwTtl, self.pkt.data_mut(), self.key, &self.layers);
            false
        } else {
            self.trace.note(TraceNote::TtlExpired);
            self.packet_in(ControllerReason::InvalidTtl, u16::MAX);
            true
        }
    }

    /// `push_vlan`. The key tracks at most two tags, as OVS's flow
    /// (`FLOW_MAX_VLAN_HEADERS`); when both are in use, OVS's translation
    /// (`flow_push_vlan_uninit`) forgets the inner one and its datapath
    /// commit (`commit_vlan_action`) rewrites the packet to carry exactly
    /// the two tags of the flow: the inner tracked tag leaves the wire. So
    /// does Weft's: a third push removes the tag at the inner position
    /// first. Tags never parsed into the key (beyond `vlan-limit`) are
    /// payload and stay, as in OVS.
    fn push_vlan(&mut self, tpid: u16) {
        self.no_flat();
        if self.key.vlan1_tci() & VLAN_CFI != 0 {
            let inner = self.key.vlan1_tci() & !VLAN_CFI;
            if !rewrite::remove_inner_tag(self.pkt, &mut self.layers) {
                self.vlan_unchanged();
                return;
            }
            self.key.set_vlan1_tci(0);
            self.key.set_vlan1_tpid(0);
            self.trace.note(TraceNote::VlanInnerDropped(inner));
        }
        if !rewrite::insert_tag(self.pkt, tpid, 0, &mut self.layers) {
            self.vlan_unchanged();
            return;
        }
        // OVS `flow_push_vlan_uninit`: the outer tag moves in.
        self.key.set_vlan1_tci(self.key.vlan0_tci());
        self.key.set_vlan1_tpid(self.key.vlan0_tpid());
        self.key.set_vlan0_tci(VLAN_CFI);
        self.key.set_vlan0_tpid(tpid);
        self.trace.note(TraceNote::VlanPushed(tpid, 0));
    }

    fn pop_vlan(&mut self) {
        self.no_flat();
        if !self.key.has_vlan() || !rewrite::remove_tag(self.pkt, &mut self.layers) {
            self.vlan_unchanged();
            return;
        }
        self.key.set_vlan0_tci(self.key.vlan1_tci());
        self.key.set_vlan0_tpid(self.key.vlan1_tpid());
        self.key.set_vlan1_tci(0);
        self.key.set_vlan1_tpid(0);
        self.trace.note(TraceNote::VlanPopped);
    }

    /// `mod_vlan_vid` / `mod_vlan_pcp`: tags an untagged packet (802.1Q).
    fn mod_vlan(&mut self, mask: u16, bits: u16) {
        self.no_flat();
        let old = self.key.vlan0_tci();
        if old & VLAN_CFI == 0 && self.key.vlan0_tpid() == 0 {
            self.key.set_vlan0_tpid(0x8100);
        }
        let new = (old & !mask) | bits | VLAN_CFI;
        self.key.set_vlan0_tci(new);
        self.trace
            .field(Field::VlanTci, u128::from(old), u128::from(new));
        if !rewrite::commit_vlan(old, self.pkt, self.key, &mut self.layers) {
            self.vlan_unchanged();
        }
    }

    fn output(&mut self, port: PortNo) {
        let in_port = PortNo(self.key.in_port());
        match port {
            PortNo::IN_PORT => self.emit(in_port),
            PortNo::CONTROLLER => self.packet_in(ControllerReason::Action, u16::MAX),
            PortNo::NORMAL => self.normal(),
            PortNo::FLOOD | PortNo::ALL => {
                let pl = self.pl;
                for &(p, c) in pl.flood_ports.iter() {
                    if p == in_port || (port == PortNo::FLOOD && c.no_flood) {
                        continue;
                    }
                    self.emit(p);
                }
            }
            p if p == in_port => self.trace.note(TraceNote::SkipInPort(p)),
            p => self.emit(p),
        }
    }

    /// Sends the packet as it is now to `port`.
    fn emit(&mut self, port: PortNo) {
        if self.pl.port_config(port).is_some_and(|c| c.no_forward) {
            self.trace.note(TraceNote::NoForward(port));
            return;
        }
        let pl = self.pl;
        if let Some(tp) = pl.tunnels.port(port) {
            // By reference: encap recognises the snapshot's own port value
            // by address and takes its cached outer header template.
            self.emit_tunnel(tp);
            return;
        }
        self.flat(FlatOp::Emit(port));
        let bytes = self.pkt.data();
        self.out.output_offload(port, bytes, self.pkt.offload());
        self.trace.output(port, bytes);
        self.outputs += 1;
    }

    /// Output to a tunnel port: encapsulate in the headroom, send out of
    /// the underlay port, restore the inner frame (see [`crate::tunnel`]).
    fn emit_tunnel(&mut self, tp: &TunnelPort) {
        self.no_flat();
        if !self.pkt.offload().is_none() {
            self.emit_tunnel_segmented(tp);
            return;
        }
        let pl = self.pl;
        match pl.tunnels.encap(tp, self.key, &self.layers, self.pkt) {
            Ok(n) => {
                let underlay = pl.tunnels.underlay().map_or(PortNo::LOCAL, |u| u.port);
                self.trace.note(TraceNote::TunnelEncap {
                    port: tp.port,
                    kind: tp.kind,
                    underlay,
                    header_len: u16::try_from(n).unwrap_or(u16::MAX),
                });
                let bytes = self.pkt.data();
                self.out.output(underlay, bytes);
                self.trace.output(underlay, bytes);
                self.outputs += 1;
                self.tunnel.encapsulated += 1;
                self.pkt.pull_front(n);
            }
            Err(e) => self.encap_failed(e),
        }
    }

    /// Output to a tunnel port of a packet with offload metadata: segments
    /// (or completes the checksum) first, then encapsulates and sends each
    /// plain frame (no UDP-tunnel GSO yet; see [`crate::offload`]). The
    /// first failure is handled as for an ordinary frame (a segment too big
    /// for the tunnel gets the ICMP error, as a frame of that size would).
    fn emit_tunnel_segmented(&mut self, tp: &TunnelPort) {
        let pl = self.pl;
        let underlay = pl.tunnels.underlay().map_or(PortNo::LOCAL, |u| u.port);
        let TunnelWorker {
            seg,
            seg_scratch,
            encapsulated,
            offload_drops,
            ..
        } = &mut *self.tunnel;
        let (key, layers, out, trace) =
            (&*self.key, &self.layers, &mut *self.out, &mut *self.trace);
        let mut failed: Option<EncapError> = None;
        let mut sent = 0u32;
        let res =
            crate::offload::segment(self.pkt.data(), self.pkt.offload(), seg_scratch, |frame| {
                if failed.is_some() {
                    return;
                }
                seg.set_from_slice(frame);
                match pl.tunnels.encap(tp, key, layers, seg) {
                    Ok(_) => {
                        out.output(underlay, seg.data());
                        trace.output(underlay, seg.data());
                        sent += 1;
                        *encapsulated += 1;
                    }
                    Err(e) => failed = Some(e),
                }
            });
        self.outputs += sent;
        if res.is_err() {
            // Headers that do not match the metadata: a malformed packet.
            *offload_drops += 1;
            if self.tunnel_drop.is_none() {
                self.tunnel_drop = Some(DropReason::Malformed);
            }
            return;
        }
        if let Some(e) = failed {
            self.encap_failed(e);
        }
    }

    /// Sends the ICMP/ICMPv6 "too big" error back out of the input port.
    /// An encapsulation that failed: the drop reason (first one wins), a
    /// missing next hop reported for resolution, ICMP back for a packet too
    /// big for the tunnel.
    fn encap_failed(&mut self, e: EncapError) {
        let d = e.drop_reason();
        self.trace.note(TraceNote::TunnelDrop(d));
        if self.tunnel_drop.is_none() {
            self.tunnel_drop = Some(d.into());
        }
        match e {
            EncapError::NoNextHop(ip) => {
                self.out.tunnel_event(TunnelEvent::MissingNextHop(ip));
            }
            EncapError::TooBig { inner_mtu } => self.too_big(inner_mtu),
            EncapError::Drop(_) => {}
        }
    }

    fn too_big(&mut self, inner_mtu: u32) {
        let in_port = PortNo(self.key.in_port());
        if self.pl.tunnels.port(in_port).is_some() || in_port.reserved_name().is_some() {
            self.trace
                .note(TraceNote::TunnelNoIcmp(inner_mtu, IcmpError::NoReturnPort));
            return;
        }
        let scratch = &mut self.tunnel.scratch[..];
        match too_big_reply(self.pkt.data(), &self.layers, inner_mtu, scratch) {
            Ok(len) => {
                let bytes = scratch.get(..len).unwrap_or_default();
                self.trace.note(TraceNote::TunnelIcmpTooBig(inner_mtu));
                self.out.output(in_port, bytes);
                self.trace.output(in_port, bytes);
                self.outputs += 1;
                self.tunnel.icmp_too_big += 1;
            }
            Err(e) => self.trace.note(TraceNote::TunnelNoIcmp(inner_mtu, e)),
        }
    }

    fn packet_in(&mut self, reason: ControllerReason, max_len: u16) {
        self.no_flat();
        let bytes = self.pkt.data();
        let n = if max_len == u16::MAX {
            bytes.len()
        } else {
            bytes.len().min(usize::from(max_len))
        };
        let bytes = bytes.get(..n).unwrap_or(bytes);
        self.out.packet_in(reason, self.table, self.cookie, bytes);
        self.trace.packet_in(reason, self.table, self.cookie, bytes);
        self.packet_ins += 1;
    }

    /// The `NORMAL` action (see [`super::normal`]).
    fn normal(&mut self) {
        self.no_flat();
        let dst = self.key.dl_dst();
        let src = self.key.dl_src();
        let vlan = if self.key.has_vlan() {
            self.key.vlan0_tci() & VLAN_VID_MASK
        } else {
            0
        };
        let in_port = PortNo(self.key.in_port());
        if normal::is_reserved_multicast(dst) {
            self.trace.note(TraceNote::NormalReserved);
            return;
        }
        let aging = self.pl.config.mac_aging_ms;
        if !src.is_multicast()
            && self.mac.learn(src, vlan, in_port, self.now_ms, aging) != Learned::Refreshed
        {
            self.trace
                .note(TraceNote::NormalLearned(src, vlan, in_port));
        }
        let known = if dst.is_multicast() {
            None
        } else {
            self.mac.lookup(dst, vlan, self.now_ms, aging)
        };
        match known {
            Some(p) if p == in_port => self.trace.note(TraceNote::NormalInputPort(p)),
            Some(p) => {
                self.trace.note(TraceNote::NormalForward(p));
                self.emit(p);
            }
            None => {
                self.trace.note(TraceNote::NormalFlood);
                let pl = self.pl;
                for &(p, c) in pl.flood_ports.iter() {
                    if p != in_port && !c.no_flood {
                        self.emit(p);
                    }
                }
            }
        }
    }
}
