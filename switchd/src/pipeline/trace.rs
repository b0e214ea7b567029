//! Packet traces: what the pipeline did with one packet, as OVS
//! `ofproto/trace` shows it, produced by the real pipeline code.
//!
//! [`Pipeline::process`](super::Pipeline::process) reports every step to a
//! [`TraceSink`]. [`NoTrace`] is zero-sized and every method is an empty
//! `#[inline(always)]` default, so the data path pays nothing. [`TreeTrace`]
//! records a tree (table -> rule -> action -> nested resubmit/goto tables
//! -> outputs) and renders it as indented text or JSON. Records are small
//! (references are formatted when recorded, since a trace is a tool path,
//! not the data path).
//!
//! # JSON
//!
//! [`TreeTrace::to_json`]:
//!
//! ```text
//! {
//!   "flow": "tcp,in_port=1,...",          // the key after extraction
//!   "dropped": false,                     // no output and no packet-in
//!   "drop_reason": null | "table_miss" | "no_output" | "malformed" | ...,
//!   "outputs": [{"port": 2, "hex": "0200..."}, {"port": "LOCAL", ...}],
//!   "packet_ins": [{"reason": "action", "table": 0, "cookie": "0x5",
//!                   "hex": "..."}],
//!   "walk": [ {"table": 0, "rule": {...} | null, "miss": null | "drop" |
//!             "controller" | "continue", "steps": [...]} ]
//! }
//! ```
//!
//! * `outputs` are in the order the packet would leave; `hex` is the exact
//!   frame sent. Ordinary ports are numbers; reserved ports (only `LOCAL`
//!   appears here, since `IN_PORT`, `FLOOD`, `ALL` and `NORMAL` resolve to
//!   real ports) are their names as strings.
//! * `controller` actions, `output:CONTROLLER`, table-miss `controller` and
//!   `dec_ttl` expiry appear in `packet_ins` (reason `action`, `no_match`,
//!   `invalid_ttl`), never in `outputs`. The packet-in cookie is the rule's,
//!   or `0xffffffffffffffff` for a table miss (OpenFlow).
//! * A walk step is `{"action": "output:2", "changes": [{"field":
//!   "nw_dst", "old": "10.0.0.1", "new": "10.0.0.9"}], "nested": [tables]}`,
//!   `{"note": "..."}`, `{"output": port}`, `{"packet_in": reason}`,
//!   `{"drop": reason}` or `{"action_set": [steps]}`.

use core::fmt::Write as _;
use core::net::{Ipv4Addr, Ipv6Addr};

use protocol::flow::{
    Action, ControllerReason, Cookie, ExtractError, Field, FieldFormat, FlowKey, PortNo, TableId,
};
use protocol::wire::EthernetAddress;
use serde::Serialize;
use serde_json::{Value, json};

use super::config::MissBehavior;
use super::table::Rule;
use super::{DropReason, Verdict};
use crate::tunnel::{IcmpError, TunnelDrop, TunnelKind};

/// A fact worth showing in a trace that is not an action or a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceNote {
    /// The packet failed extraction.
    Malformed(ExtractError),
    /// Received on a `no-receive` port.
    NoReceive,
    /// A fragment dropped by `frag_mode drop`.
    FragmentDropped,
    /// L4 ports of a fragment read as 0 (`frag_mode normal`).
    FragmentPortsZeroed,
    /// Output to the input port skipped (use `in_port` to send there).
    SkipInPort(PortNo),
    /// Output to a `no-forward` port skipped.
    NoForward(PortNo),
    /// A field write skipped: the packet does not have the field (OVS
    /// "unmet prerequisites").
    PrereqUnmet(Field),
    /// `dec_ttl` on a non-IP packet: nothing done.
    NotIp,
    /// `dec_ttl` found TTL/hop limit <= 1: packet-in, stop this table.
    TtlExpired,
    /// A VLAN tag was pushed (TPID, TCI).
    VlanPushed(u16, u16),
    /// A push found two tracked tags: the inner one (its TCI) was removed
    /// first, as OVS does (its flow holds at most two tags).
    VlanInnerDropped(u16),
    /// The outer VLAN tag was popped.
    VlanPopped,
    /// A VLAN edit was skipped (no tag to pop, or no headroom).
    VlanUnchanged,
    /// `NORMAL`: destination is 802.1D reserved; dropped.
    NormalReserved,
    /// `NORMAL`: learned source on VLAN and port.
    NormalLearned(EthernetAddress, u16, PortNo),
    /// `NORMAL`: destination known on port.
    NormalForward(PortNo),
    /// `NORMAL`: destination known on the input port; dropped.
    NormalInputPort(PortNo),
    /// `NORMAL`: multicast, broadcast or unknown destination; flooding.
    NormalFlood,
    /// The resubmit depth or count limit was hit; translation stops.
    ResubmitLimit,
    /// A table-miss packet-in suppressed by the port's `no-packet-in`.
    PacketInSuppressed,
    /// The action set is full; an action was not added.
    ActionSetFull,
    /// The action set was cleared.
    ActionSetCleared,
    /// `continue` on a miss in the last table: nothing follows.
    NoNextTable,
    /// Decapsulated a frame received on the underlay port `from`: it
    /// continues on tunnel port `port` (the `Flow:` line shows the `tun_*`
    /// fields).
    TunnelDecap {
        /// The underlay port.
        from: PortNo,
        /// The tunnel port.
        port: PortNo,
        /// Geneve or VXLAN.
        kind: TunnelKind,
        /// Outer bytes removed.
        outer_len: u16,
        /// An inner IP packet got a dummy Ethernet header.
        dummy_eth: bool,
    },
    /// Non-tunnel underlay/host traffic bridged to this port untouched.
    TunnelHostBridge(PortNo),
    /// A tunnel packet dropped (decap or encap).
    TunnelDrop(TunnelDrop),
    /// Encapsulated for tunnel `port`, `header_len` outer bytes, sent out
    /// of `underlay`.
    TunnelEncap {
        /// The tunnel port.
        port: PortNo,
        /// Geneve or VXLAN.
        kind: TunnelKind,
        /// The underlay port.
        underlay: PortNo,
        /// Outer header bytes.
        header_len: u16,
    },
    /// Too big for the tunnel: ICMP error with this next-hop MTU sent back.
    TunnelIcmpTooBig(u32),
    /// Too big for the tunnel (inner MTU), no ICMP error sent, and why.
    TunnelNoIcmp(u32, IcmpError),
}

/// Receives the steps of one packet's trip through the pipeline. Every
/// method has an empty default, so a sink implements what it records.
pub trait TraceSink {
    /// After extraction: the input port and the packet's key.
    #[inline(always)]
    fn begin(&mut self, _in_port: PortNo, _key: &FlowKey) {}
    /// A lookup in `table` found `rule` (`None`: a miss; `conj_id` if found
    /// through a conjunction). Opens the table; closed by `end_table`.
    #[inline(always)]
    fn table(&mut self, _table: TableId, _rule: Option<&Rule>, _conj_id: Option<u32>) {}
    /// The miss behaviour applied after a miss.
    #[inline(always)]
    fn miss(&mut self, _table: TableId, _behavior: MissBehavior) {}
    /// Closes the table opened by `table`.
    #[inline(always)]
    fn end_table(&mut self) {}
    /// An action about to run.
    #[inline(always)]
    fn action(&mut self, _action: &Action) {}
    /// The last action changed `field` from `old` to `new`.
    #[inline(always)]
    fn field(&mut self, _field: Field, _old: u128, _new: u128) {}
    /// A note.
    #[inline(always)]
    fn note(&mut self, _note: TraceNote) {}
    /// What follows (tables of a resubmit or goto) nests under the last
    /// action, until `unnest`.
    #[inline(always)]
    fn nest(&mut self) {}
    /// Ends a `nest`.
    #[inline(always)]
    fn unnest(&mut self) {}
    /// The action set starts executing (closed by `unnest`).
    #[inline(always)]
    fn action_set(&mut self) {}
    /// The packet leaves on `port` with exactly these bytes.
    #[inline(always)]
    fn output(&mut self, _port: PortNo, _bytes: &[u8]) {}
    /// A packet-in.
    #[inline(always)]
    fn packet_in(
        &mut self,
        _reason: ControllerReason,
        _table: TableId,
        _cookie: Cookie,
        _bytes: &[u8],
    ) {
    }
    /// The pipeline recorded a drop reason.
    #[inline(always)]
    fn drop_reason(&mut self, _reason: DropReason) {}
}

/// The no-op sink: zero-sized, compiles away.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrace;

impl TraceSink for NoTrace {}

/// A field change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Field name.
    pub field: &'static str,
    /// Old value, in the field's text format.
    pub old: String,
    /// New value.
    pub new: String,
}

/// The rule a lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    /// Priority.
    pub priority: u16,
    /// Cookie (hex).
    pub cookie: String,
    /// Cookie (the value; not in the JSON, which has the hex).
    #[serde(skip)]
    pub cookie_value: Cookie,
    /// Match in `ovs-ofctl` text.
    pub r#match: String,
    /// Actions in `ovs-ofctl` text.
    pub actions: String,
}

/// One node of a recorded trace: what it is and what nests under it
/// (a table's actions; the tables a resubmit or goto led to; the action
/// set's actions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What the node records.
    pub kind: NodeKind,
    /// Nested nodes.
    pub children: Vec<Node>,
}

/// What a [`Node`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A table lookup.
    Table {
        /// Table.
        table: u8,
        /// The rule found, or `None` on a miss.
        rule: Option<RuleInfo>,
        /// Conjunction id through which the rule was found.
        conj_id: Option<u32>,
        /// The miss behaviour applied, on a miss.
        miss: Option<&'static str>,
    },
    /// An action and the changes it made.
    Action {
        /// Action text.
        action: String,
        /// Fields changed.
        changes: Vec<Change>,
    },
    /// The action set executing.
    ActionSet,
    /// A note.
    Note(String),
    /// An output (port, length).
    Output(PortNo, usize),
    /// A packet-in.
    PacketIn(ControllerReason),
    /// A drop reason.
    Drop(DropReason),
}

impl Node {
    fn leaf(kind: NodeKind) -> Node {
        Node {
            kind,
            children: Vec::new(),
        }
    }
}

/// An output recorded by [`TreeTrace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedOutput {
    /// Port.
    pub port: PortNo,
    /// Exact bytes.
    pub bytes: Vec<u8>,
}

/// A packet-in recorded by [`TreeTrace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedPacketIn {
    /// Reason.
    pub reason: ControllerReason,
    /// Table it came from.
    pub table: TableId,
    /// Cookie.
    pub cookie: Cookie,
    /// Bytes (cut to the action's `max_len`).
    pub bytes: Vec<u8>,
}

/// A recording sink: builds the tree, the outputs and packet-ins.
#[derive(Debug, Clone, Default)]
pub struct TreeTrace {
    /// The `Flow:` line.
    pub flow: String,
    /// Top-level nodes.
    pub walk: Vec<Node>,
    /// Outputs, in order.
    pub outputs: Vec<TracedOutput>,
    /// Packet-ins, in order.
    pub packet_ins: Vec<TracedPacketIn>,
    /// Drop reasons recorded, in order.
    pub drops: Vec<DropReason>,
    /// Open containers: (path of indices into the tree).
    stack: Vec<usize>,
}

/// Formats a field value as flow text does.
pub fn format_value(field: Field, v: u128) -> String {
    match field.info().format {
        FieldFormat::Ethernet => EthernetAddress::from_u64(v as u64).to_string(),
        FieldFormat::Ipv4 => Ipv4Addr::from(v as u32).to_string(),
        FieldFormat::Ipv6 => Ipv6Addr::from(v).to_string(),
        FieldFormat::Hex | FieldFormat::TcpFlags | FieldFormat::TunFlags => format!("{v:#x}"),
        FieldFormat::Port => PortNo(v as u32).to_string(),
        _ => v.to_string(),
    }
}

fn note_text(n: &TraceNote) -> String {
    match n {
        TraceNote::Malformed(e) => format!("malformed packet ({e}): dropped"),
        TraceNote::NoReceive => "input port is no-receive: dropped".into(),
        TraceNote::FragmentDropped => "fragment dropped (frag_mode drop)".into(),
        TraceNote::FragmentPortsZeroed => "fragment: L4 ports read as 0 (frag_mode normal)".into(),
        TraceNote::SkipInPort(p) => format!("skipping output to input port {p}"),
        TraceNote::NoForward(p) => format!("port {p} is no-forward: skipping output"),
        TraceNote::PrereqUnmet(f) => format!("unmet prerequisites for {}, ignored", f.name()),
        TraceNote::NotIp => "not an IP packet: ignored".into(),
        TraceNote::TtlExpired => "TTL exception: packet-in (invalid_ttl), stop this table".into(),
        TraceNote::VlanPushed(tpid, tci) => {
            format!("pushed VLAN tag tpid={tpid:#06x} tci={tci:#06x}")
        }
        TraceNote::VlanInnerDropped(tci) => {
            format!("two VLAN tags already: inner tag tci={tci:#06x} removed (at most two, as OVS)")
        }
        TraceNote::VlanPopped => "popped outer VLAN tag".into(),
        TraceNote::VlanUnchanged => "no VLAN change (no tag, or no headroom)".into(),
        TraceNote::NormalReserved => "NORMAL: 802.1D reserved destination: dropped".into(),
        TraceNote::NormalLearned(m, v, p) => format!("NORMAL: learned {m} on VLAN {v} port {p}"),
        TraceNote::NormalForward(p) => format!("NORMAL: forwarding to learned port {p}"),
        TraceNote::NormalInputPort(p) => {
            format!("NORMAL: learned port {p} is the input port: dropped")
        }
        TraceNote::NormalFlood => "NORMAL: no learned port: flooding".into(),
        TraceNote::ResubmitLimit => "resubmit limit reached: translation stopped".into(),
        TraceNote::PacketInSuppressed => "input port is no-packet-in: no packet-in".into(),
        TraceNote::ActionSetFull => "action set full: action not added".into(),
        TraceNote::ActionSetCleared => "action set cleared".into(),
        TraceNote::NoNextTable => "no next table".into(),
        TraceNote::TunnelDecap {
            from,
            port,
            kind,
            outer_len,
            dummy_eth,
        } => format!(
            "{kind} packet on underlay port {from}: decapsulated ({outer_len} outer bytes{}), continuing on tunnel port {port}",
            if *dummy_eth {
                ", inner IP got a dummy Ethernet header"
            } else {
                ""
            }
        ),
        TraceNote::TunnelHostBridge(p) => {
            format!("not tunnel traffic for this node: bridged untouched to port {p}")
        }
        TraceNote::TunnelDrop(d) => format!("tunnel: dropped ({})", DropReason::from(*d).as_str()),
        TraceNote::TunnelEncap {
            port,
            kind,
            underlay,
            header_len,
        } => format!(
            "{kind} port {port}: encapsulated ({header_len} outer bytes), out of underlay port {underlay}"
        ),
        TraceNote::TunnelIcmpTooBig(mtu) => {
            format!("too big for the tunnel: ICMP error with MTU {mtu} sent back to the input port")
        }
        TraceNote::TunnelNoIcmp(mtu, e) => {
            format!("too big for the tunnel (inner MTU {mtu}): no ICMP error ({e:?})")
        }
    }
}

/// The JSON/text name of a packet-in reason.
pub fn reason_name(r: ControllerReason) -> &'static str {
    match r {
        ControllerReason::NoMatch => "no_match",
        ControllerReason::Action => "action",
        ControllerReason::InvalidTtl => "invalid_ttl",
    }
}

/// A port as JSON: a number, or the reserved name.
pub fn port_json(p: PortNo) -> Value {
    match p.reserved_name() {
        Some(n) => Value::String(n.to_owned()),
        None => Value::from(p.0),
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

impl TreeTrace {
    /// An empty recorder.
    pub fn new() -> TreeTrace {
        TreeTrace::default()
    }

    /// The list new nodes go to.
    fn current(&mut self) -> &mut Vec<Node> {
        let mut list = &mut self.walk;
        for &i in &self.stack {
            if i >= list.len() {
                break;
            }
            list = &mut list[i].children;
        }
        list
    }

    fn open(&mut self, node: Node) {
        let list = self.current();
        list.push(node);
        let i = list.len() - 1;
        self.stack.push(i);
    }

    fn push(&mut self, node: Node) {
        self.current().push(node);
    }

    fn close(&mut self) {
        self.stack.pop();
    }

    /// Renders the trace as indented text, like `ovs-appctl ofproto/trace`.
    pub fn to_text(&self, verdict: &Verdict) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Flow: {}", self.flow);
        s.push('\n');
        for n in &self.walk {
            render(&mut s, n, 0);
        }
        s.push('\n');
        let _ = write!(s, "Final: ");
        if verdict.dropped() {
            s.push_str("dropped");
        } else {
            let _ = write!(
                s,
                "{} output(s), {} packet-in(s)",
                verdict.outputs, verdict.packet_ins
            );
        }
        if let Some(r) = verdict.reason {
            let _ = write!(s, " (reason: {})", r.as_str());
        }
        s.push('\n');
        for o in &self.outputs {
            let _ = writeln!(s, "  output {}: {}", o.port, hex(&o.bytes));
        }
        for p in &self.packet_ins {
            let _ = writeln!(
                s,
                "  packet-in reason={} table={} cookie={:#x}: {}",
                reason_name(p.reason),
                p.table,
                p.cookie.0,
                hex(&p.bytes)
            );
        }
        s
    }

    /// Renders the trace as JSON (see the module doc for the shape).
    pub fn to_json(&self, verdict: &Verdict) -> Value {
        json!({
            "flow": self.flow,
            "dropped": verdict.dropped(),
            "drop_reason": verdict.reason.map(DropReason::as_str),
            "outputs": self.outputs.iter().map(|o| json!({
                "port": port_json(o.port),
                "hex": hex(&o.bytes),
            })).collect::<Vec<_>>(),
            "packet_ins": self.packet_ins.iter().map(|p| json!({
                "reason": reason_name(p.reason),
                "table": p.table.0,
                "cookie": format!("{:#x}", p.cookie.0),
                "hex": hex(&p.bytes),
            })).collect::<Vec<_>>(),
            "walk": self.walk.iter().map(node_json).collect::<Vec<_>>(),
        })
    }
}

impl TreeTrace {
    /// The trace as the ctl `TraceReport` (`TraceDetailed`'s reply): the
    /// text, the outputs with their bytes and every table lookup with its
    /// rule's cookie, depth-first.
    pub fn to_report(&self, verdict: &Verdict) -> protocol::ctl::TraceReport {
        fn walk(nodes: &[Node], depth: u16, out: &mut Vec<protocol::ctl::TraceRule>) {
            for n in nodes {
                let mut d = depth;
                if let NodeKind::Table { table, rule, .. } = &n.kind {
                    out.push(protocol::ctl::TraceRule {
                        table: TableId(*table),
                        depth,
                        hit: rule.as_ref().map(|r| protocol::ctl::TraceRuleHit {
                            priority: protocol::flow::Priority(r.priority),
                            cookie: r.cookie_value,
                            r#match: r.r#match.clone(),
                            actions: r.actions.clone(),
                        }),
                    });
                    d = depth.saturating_add(1);
                }
                walk(&n.children, d, out);
            }
        }
        let mut rules = Vec::new();
        walk(&self.walk, 0, &mut rules);
        protocol::ctl::TraceReport {
            text: self.to_text(verdict),
            flow: self.flow.clone(),
            dropped: verdict.dropped(),
            drop_reason: verdict.reason.map(|r| r.as_str().to_owned()),
            outputs: self
                .outputs
                .iter()
                .map(|o| protocol::ctl::TraceOutput {
                    port: o.port,
                    packet: o.bytes.clone(),
                })
                .collect(),
            packet_ins: u32::try_from(self.packet_ins.len()).unwrap_or(u32::MAX),
            rules,
        }
    }
}

fn node_json(n: &Node) -> Value {
    let kids = || Value::Array(n.children.iter().map(node_json).collect());
    match &n.kind {
        NodeKind::Table {
            table,
            rule,
            conj_id,
            miss,
        } => json!({
            "table": table,
            "rule": rule,
            "conj_id": conj_id,
            "miss": miss,
            "steps": kids(),
        }),
        NodeKind::Action { action, changes } => {
            let mut v = json!({ "action": action });
            if !changes.is_empty() {
                v["changes"] = json!(changes);
            }
            if !n.children.is_empty() {
                v["nested"] = kids();
            }
            v
        }
        NodeKind::ActionSet => json!({ "action_set": kids() }),
        NodeKind::Note(t) => json!({ "note": t }),
        NodeKind::Output(p, _) => json!({ "output": port_json(*p) }),
        NodeKind::PacketIn(r) => json!({ "packet_in": reason_name(*r) }),
        NodeKind::Drop(r) => json!({ "drop": r.as_str() }),
    }
}

fn indent(s: &mut String, n: usize) {
    for _ in 0..n {
        s.push_str("    ");
    }
}

fn render(s: &mut String, n: &Node, depth: usize) {
    let mut child_depth = depth + 1;
    match &n.kind {
        NodeKind::Table {
            table,
            rule,
            conj_id,
            miss,
        } => {
            indent(s, depth);
            match rule {
                Some(r) => {
                    let _ = write!(s, "{table:>2}. ");
                    if !r.r#match.is_empty() {
                        let _ = write!(s, "{}, ", r.r#match);
                    }
                    let _ = write!(s, "priority {}", r.priority);
                    if r.cookie != "0x0" {
                        let _ = write!(s, ", cookie {}", r.cookie);
                    }
                    if let Some(c) = conj_id {
                        let _ = write!(s, ", conj_id {c}");
                    }
                    s.push('\n');
                    if n.children.is_empty() && r.actions == "drop" {
                        indent(s, depth + 1);
                        s.push_str("drop\n");
                    }
                }
                None => {
                    let _ = write!(s, "{table:>2}. No match.");
                    if let Some(m) = miss {
                        let _ = write!(s, " (table miss: {m})");
                    }
                    s.push('\n');
                }
            }
        }
        NodeKind::Action { action, changes } => {
            indent(s, depth);
            s.push_str(action);
            s.push('\n');
            for c in changes {
                indent(s, depth);
                let _ = writeln!(s, " -> {}: {} -> {}", c.field, c.old, c.new);
            }
        }
        NodeKind::ActionSet => {
            indent(s, depth);
            s.push_str("Executing action set:\n");
        }
        NodeKind::Note(text) => {
            indent(s, depth);
            let _ = writeln!(s, " -> {text}");
            child_depth = depth;
        }
        NodeKind::Output(p, len) => {
            indent(s, depth);
            let _ = writeln!(s, " -> output to {p} ({len} bytes)");
        }
        NodeKind::PacketIn(r) => {
            indent(s, depth);
            let _ = writeln!(s, " -> packet-in (reason {})", reason_name(*r));
        }
        NodeKind::Drop(r) => {
            indent(s, depth);
            let _ = writeln!(s, " -> drop ({})", r.as_str());
        }
    }
    for c in &n.children {
        render(s, c, child_depth);
    }
}

impl TraceSink for TreeTrace {
    fn begin(&mut self, _in_port: PortNo, key: &FlowKey) {
        self.flow = protocol::text::format_flow_key(key);
    }

    fn table(&mut self, table: TableId, rule: Option<&Rule>, conj_id: Option<u32>) {
        let rule = rule.map(|r| RuleInfo {
            priority: r.spec.priority.0,
            cookie: format!("{:#x}", r.spec.cookie.0),
            cookie_value: r.spec.cookie,
            r#match: protocol::text::format_match(&r.spec.r#match),
            actions: protocol::text::format_actions(&r.spec.actions),
        });
        self.open(Node::leaf(NodeKind::Table {
            table: table.0,
            rule,
            conj_id,
            miss: None,
        }));
    }

    fn miss(&mut self, _table: TableId, behavior: MissBehavior) {
        // The open table is the last container on the stack.
        let Some(last) = self.stack.pop() else {
            return;
        };
        if let Some(Node {
            kind: NodeKind::Table { miss, .. },
            ..
        }) = self.current().get_mut(last)
        {
            *miss = Some(behavior.as_str());
        }
        self.stack.push(last);
    }

    fn end_table(&mut self) {
        self.close();
    }

    fn action(&mut self, action: &Action) {
        self.push(Node::leaf(NodeKind::Action {
            action: protocol::text::format_actions(std::slice::from_ref(action)),
            changes: Vec::new(),
        }));
    }

    fn field(&mut self, field: Field, old: u128, new: u128) {
        if let Some(Node {
            kind: NodeKind::Action { changes, .. },
            ..
        }) = self.current().last_mut()
        {
            changes.push(Change {
                field: field.name(),
                old: format_value(field, old),
                new: format_value(field, new),
            });
        }
    }

    fn note(&mut self, note: TraceNote) {
        self.push(Node::leaf(NodeKind::Note(note_text(&note))));
    }

    fn nest(&mut self) {
        let list = self.current();
        if list.is_empty() {
            list.push(Node::leaf(NodeKind::Note(String::new())));
        }
        let i = list.len() - 1;
        self.stack.push(i);
    }

    fn unnest(&mut self) {
        self.close();
    }

    fn action_set(&mut self) {
        self.open(Node::leaf(NodeKind::ActionSet));
    }

    fn output(&mut self, port: PortNo, bytes: &[u8]) {
        self.push(Node::leaf(NodeKind::Output(port, bytes.len())));
        self.outputs.push(TracedOutput {
            port,
            bytes: bytes.to_vec(),
        });
    }

    fn packet_in(
        &mut self,
        reason: ControllerReason,
        table: TableId,
        cookie: Cookie,
        bytes: &[u8],
    ) {
        self.push(Node::leaf(NodeKind::PacketIn(reason)));
        self.packet_ins.push(TracedPacketIn {
            reason,
            table,
            cookie,
            bytes: bytes.to_vec(),
        });
    }

    fn drop_reason(&mut self, reason: DropReason) {
        self.push(Node::leaf(NodeKind::Drop(reason)));
        self.drops.push(reason);
    }
}
