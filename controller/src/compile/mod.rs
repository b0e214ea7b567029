//! The compiler: logical model -> one OpenFlow table per node, as typed
//! [`FlowSpec`]s (printable with `protocol::text`, accepted by
//! `switchd::pipeline::compile`). Pure: no I/O, no clock.
//!
//! # Stages (OVN's logical pipeline, `ovn-northd(8)`, in DESIGN.md's bands)
//!
//! | table | stage | OVN name | what |
//! |---|---|---|---|
//! | 0 | physical-in | table 0 | pod ofport -> `metadata`=switch, `reg14`=port; tunnel + VNI -> `metadata`=VNI, `reg14`/`reg15` from the Geneve option, then egress ACL (switch VNI) or ARP resolve (router VNI) |
//! | 10 | ingress port security L2 | `ls_in_port_sec_l2` | `reg14`=P and `dl_src`=P's MAC, else drop |
//! | 11 | ingress port security IP | `ls_in_port_sec_ip`/`_nd` | `nw_src`/`ipv6_src` one of P's addresses; ARP only with P's `arp_spa` and `arp_sha`; else drop (so MAC, IP, ARP and ND spoofing are all dropped; ND from link-local addresses too) |
//! | 20 | ingress ACL | `ls_in_acl` | from-lport ACLs (Kubernetes **egress** policy) |
//! | 24 | ARP responder | `ls_in_arp_rsp` | ARP requests for the gateway and for every port's IPv4 address answered in place (`output:IN_PORT`); there is no broadcast domain |
//! | 25 | L2 lookup | `ls_in_l2_lkup` | `dl_dst` -> `reg15`; the gateway MAC enters the router (`metadata`=router, `reg14`=router port); unknown unicast and broadcast dropped |
//! | 30 | IP routing | `lr_in_ip_routing` | longest prefix: `dec_ttl`, `reg15`=out port, `dl_src`=its MAC |
//! | 32 | ARP resolve | `lr_in_arp_resolve` | `nw_dst` -> `dl_dst` (static bindings from the model; no ARP from the router); for a switch owned by another node, skipped (the owner resolves) |
//! | 33 | delivery | `lr_out_delivery` + patch port | into the destination switch (`metadata`, `reg14`=switch-side router port, `resubmit` to 25), or, for another node's switch, into the tunnel with the router's VNI |
//! | 40 | remote output | OVN physical table 37 | `reg15` on another node: tunnel (VNI = switch, option = `reg14`,`reg15`); else continue |
//! | 45 | egress ACL | `ls_out_acl` | to-lport ACLs (Kubernetes **ingress** policy) |
//! | 50 | egress port security L2 | `ls_out_port_sec_l2` | `dl_dst` = P's MAC |
//! | 51 | egress port security IP | `ls_out_port_sec_ip` | `nw_dst` one of P's addresses (ARP: `arp_tpa`) |
//! | 60 | physical-out | table 65 | `reg15`=P -> `output:` P's ofport |
//!
//! Every stage ends in an explicit priority-0 flow (drop, or `goto` the next
//! stage for the ACL and responder stages), so a table miss never decides.
//!
//! **Deviation from DESIGN.md**: the tunnel output sits at table 40 (start
//! of the egress band), not at 60, so that the egress stages (to-lport ACL,
//! egress port security) run on the *destination* node, as in OVN (remote
//! output, table 37, comes before the egress pipeline). A node therefore
//! needs the to-lport ACLs of its own pods only.
//!
//! # Registers
//!
//! | register | meaning | set in | read in |
//! |---|---|---|---|
//! | `metadata` | logical datapath (switch or router id, 24 bits) | 0, 25 (into router), 33 (into switch) | every stage |
//! | `reg14` | logical ingress port (16 bits) | 0, 25, 33 | 10, 11, 20, tunnel option |
//! | `reg15` | logical egress port (16 bits) | 0 (tunnel), 25, 30 | 32, 33, 40, 45, 50, 51, 60, tunnel option |
//! | `reg0..reg13` | unused | | |
//! | `conj_id` | ACL id of a completed conjunctive match | classifier | 20, 45 |
//! | `tun_id` | VNI = datapath id | 33, 40 | 0 |
//! | `tun_metadata0` | Geneve option class 0xff57, type 0x80, 4 bytes: `reg14` in bits 16..31, `reg15` in bits 0..15 | 33, 40 | 0 |
//!
//! The switch must map that option to `tun_metadata0` (OVS:
//! `add-tlv-map {class=0xff57,type=0x80,len=4}->tun_metadata0`).
//!
//! # Tunnels
//!
//! Geneve: VNI = logical datapath, one 4-byte option carrying the logical
//! ingress and egress ports. A packet for a pod on another node leaves in
//! one of two ways: (a) switch spanning nodes: the L2 lookup found the pod,
//! remote output (40) sends it with the *switch's* VNI and the receiver
//! enters at the egress ACL; (b) a node's own podCIDR switch (the usual
//! Kubernetes case): the sender only routes (30), and delivery (33) sends it
//! with the *router's* VNI; the owner node enters at ARP resolve (32), then
//! delivery into its switch, L2 lookup, egress ACL, output. Case (b) keeps
//! the per-node flow count independent of the number of pods elsewhere.
//! **VXLAN fallback** (not emitted): VXLAN carries the VNI only, so the
//! receiver would set `metadata` from the VNI, leave `reg14` unknown (0:
//! to-lport ACLs cannot match the sending port, which they do not use
//! anyway since peers are matched by address) and re-resolve `reg15` by an
//! L2 lookup on the inner `dl_dst` (case a) or by ARP resolve on `nw_dst`
//! (case b, already the case). Packets from the tunnel must then never be
//! sent back into it (a loop guard bit in a register).
//!
//! # Ports
//!
//! A pod's port is attached to switchd with ofport = its logical port id
//! ([`units::ofport`]); the tunnel port is [`CompileConfig::tunnel_port`].
//!
//! # ACLs and NetworkPolicy
//!
//! See [`acl`]: conjunctive matches, tiers as priority bands
//! ([`units::acl_priority`]). The Kubernetes semantics (isolation, union,
//! return traffic) are decided by the translation into ACLs; the compiler
//! only implements "tier, then highest priority, no match = allow".
//!
//! # Cookies
//!
//! Every flow carries the cookie of its source object and rule
//! ([`cookie`]); [`Compiler::cookie_infos`] is the table a node gets via
//! `SetCookieInfo`. The stage defaults carry `Infrastructure/pipeline`.
//!
//! # Incremental compilation
//!
//! The flows are produced by *units* ([`units::UnitKey`]: a node's
//! defaults, a switch, a router, a pod port, an ACL, and the ACL's set
//! members: one unit per peer address and per member port), each a pure
//! function of its input. [`Compiler::update_with`] takes the new model
//! and a [`ModelDelta`] (the keys of the objects that changed;
//! [`Compiler::update`] computes it by comparing the two models), finds
//! the units whose input may have changed (every node, switch and router
//! unit, the changed ports, the ACLs reading a changed set or group through
//! an index), keeps those whose input really differs (compared against one
//! [`units::Changes`] of the two models, which also names the address sets
//! and port groups whose members changed; no flow is built for unchanged
//! units; the derived facts are patched from pod counts), recompiles only
//! those, re-merges
//! the flow slots they touched ([`assemble`]) and returns a per-node diff
//! ([`NodeDiff`]: adds, deletes, modifies). For an ACL whose context (the
//! ACL, its nodes, address families) is unchanged only the members that
//! joined or left are recompiled, as OVN's address-set incremental
//! processing does: a pod joining k sets costs k clause flows per node of
//! those ACLs; the set's members that left and joined come from the delta
//! when it has them ([`ModelDelta::set_members`]), and the ACL's nodes
//! from a per-port-group cache, so such an ACL costs O(members changed).
//! The clause flows of the nodes an ACL gains (a pod on a node new to its
//! policies) are grouped by slot across the update's ACLs and added once
//! per slot. A proptest checks that the result always equals a full
//! compile.
//!
//! Memory: each node table interns its slots ([`SlotId`], 4 bytes); the
//! per-unit record of contributions is a list of (node index, slot id), and
//! a slot keeps one assembled flow plus each unit's cookie and actions (a
//! single `conjunction` action inline). A clause flow shared by k ACLs is
//! one flow with k parts.

pub mod acl;
pub mod assemble;
pub mod cookie;
pub mod fixture;
pub(crate) mod flow;
pub mod units;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use protocol::ctl::CookieInfo;
use protocol::flow::{Cookie, FlowSpec, PortNo};

use acl::{AclCtx, PeerClass};
use assemble::Part;
pub use assemble::{NodeDiff, NodeTable, Slot, SlotId};
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use ipnet::IpNet;
use units::{Derived, UnitKey};

use crate::model::{
    Acl, AclId, AddressSetId, AppliesTo, LogicalModel, LogicalPortId, ModelDelta, PortGroupId,
    SetMembers, SourceKind, SourceRef,
};

/// Table numbers of the stages (see the module doc).
pub mod table {
    use protocol::flow::TableId;
    /// Physical-in.
    pub const PHY_IN: TableId = TableId(0);
    /// Ingress port security, L2.
    pub const PORT_SEC_L2: TableId = TableId(10);
    /// Ingress port security, IP/ARP/ND.
    pub const PORT_SEC_IP: TableId = TableId(11);
    /// Ingress ACL (from-lport).
    pub const IN_ACL: TableId = TableId(20);
    /// ARP responder.
    pub const ARP_RSP: TableId = TableId(24);
    /// L2 lookup.
    pub const L2_LOOKUP: TableId = TableId(25);
    /// IP routing.
    pub const IP_ROUTING: TableId = TableId(30);
    /// ARP resolve.
    pub const ARP_RESOLVE: TableId = TableId(32);
    /// Router delivery (patch into a switch or the tunnel).
    pub const DELIVERY: TableId = TableId(33);
    /// Remote output.
    pub const REMOTE_OUT: TableId = TableId(40);
    /// Egress ACL (to-lport).
    pub const OUT_ACL: TableId = TableId(45);
    /// Egress port security, L2.
    pub const OUT_PORT_SEC_L2: TableId = TableId(50);
    /// Egress port security, IP.
    pub const OUT_PORT_SEC_IP: TableId = TableId(51);
    /// Physical-out.
    pub const PHY_OUT: TableId = TableId(60);

    /// Every stage with its name, in pipeline order.
    pub const STAGES: [(TableId, &str); 14] = [
        (PHY_IN, "physical-in"),
        (PORT_SEC_L2, "ingress port security (L2)"),
        (PORT_SEC_IP, "ingress port security (IP/ARP/ND)"),
        (IN_ACL, "ingress ACL (Kubernetes egress policy)"),
        (ARP_RSP, "ARP responder"),
        (L2_LOOKUP, "L2 lookup"),
        (IP_ROUTING, "IP routing"),
        (ARP_RESOLVE, "ARP resolve"),
        (DELIVERY, "router delivery"),
        (REMOTE_OUT, "remote output (tunnel)"),
        (OUT_ACL, "egress ACL (Kubernetes ingress policy)"),
        (OUT_PORT_SEC_L2, "egress port security (L2)"),
        (OUT_PORT_SEC_IP, "egress port security (IP)"),
        (PHY_OUT, "physical-out"),
    ];

    /// The name of stage `t`.
    pub fn name(t: TableId) -> &'static str {
        STAGES
            .iter()
            .find(|(id, _)| *id == t)
            .map_or("?", |(_, n)| n)
    }
}

/// Register numbers.
pub mod reg {
    /// Logical ingress port.
    pub const INPORT: u8 = 14;
    /// Logical egress port.
    pub const OUTPORT: u8 = 15;
}

/// Flow priorities.
pub mod prio {
    /// Physical-in/out.
    pub const PHY: u16 = 100;
    /// Port security allows.
    pub const PORT_SEC: u16 = 100;
    /// ARP responder.
    pub const ARP_RSP: u16 = 100;
    /// L2 lookup, ARP resolve, delivery, remote output.
    pub const L2: u16 = 100;
    /// ARP resolve of a switch owned by another node: skipped (the owner
    /// resolves after the tunnel).
    pub const REMOTE_RESOLVE: u16 = 50;
    /// Routes: `ROUTE_BASE + 2 * prefix_len + 1`.
    pub const ROUTE_BASE: u16 = 100;
    /// ACL tier 0 (infrastructure) band base.
    pub const ACL_TIER0: u16 = 40000;
    /// ACL tier 1 (NetworkPolicy) band base.
    pub const ACL_TIER1: u16 = 20000;
    /// Highest ACL priority inside a band (band = 2 x this + 1 wide).
    pub const ACL_MAX: u16 = 9999;
}

/// Settings of the compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileConfig {
    /// The Geneve tunnel port's ofport on every node.
    pub tunnel_port: PortNo,
}

impl Default for CompileConfig {
    fn default() -> Self {
        CompileConfig {
            tunnel_port: PortNo(TUNNEL_OFPORT),
        }
    }
}

/// Default ofport of the Geneve tunnel port: above every logical port id
/// (16 bits), so pods and the tunnel never collide.
pub const TUNNEL_OFPORT: u32 = 0x1_0000;

/// The incremental compiler: the model it compiled, every unit's flows, and
/// every node's assembled table.
#[derive(Debug, Clone)]
pub struct Compiler {
    cfg: CompileConfig,
    model: LogicalModel,
    derived: Derived,
    /// Unit -> (node index, slot id) list of what it contributed.
    units: BTreeMap<UnitKey, Vec<(u32, SlotId)>>,
    /// Node name -> index into `tables` (a node that left the model keeps
    /// its index: its table is then empty and `present` is false).
    node_ix: BTreeMap<Arc<str>, u32>,
    tables: Vec<NodeTable<UnitKey>>,
    present: Vec<bool>,
    cookies: BTreeMap<Cookie, SourceRef>,
    /// Which ACLs read which address set and port group.
    acl_index: AclIndex,
    /// Units recompiled by the last [`update`](Self::update).
    recompiled: Vec<UnitKey>,
    /// The nodes of each port group's ports (sorted), as the last compile
    /// saw them: an update drops the groups whose members or members'
    /// nodes changed, so an entry is always the current model's. Saves
    /// the walk of the group's ports (a lookup each) for every ACL whose
    /// only change is its peers (see `update_acl_peers`).
    group_nodes: HashMap<PortGroupId, Vec<String>, FixedState>,
}

/// The ACLs that read each address set (as peer) and port group (as the
/// ports they apply to), and those that apply to every pod: what turns a
/// changed set, group or tenant node set into the ACLs to look at without
/// scanning every ACL.
#[derive(Debug, Clone, Default)]
struct AclIndex {
    by_set: BTreeMap<AddressSetId, BTreeSet<AclId>>,
    by_group: BTreeMap<PortGroupId, BTreeSet<AclId>>,
    all_pods: BTreeSet<AclId>,
}

impl AclIndex {
    fn of(m: &LogicalModel) -> AclIndex {
        let mut ix = AclIndex::default();
        for a in m.acls.values() {
            ix.step(a, true);
        }
        ix
    }

    /// Indexes `a` (`up`) or forgets it.
    fn step(&mut self, a: &Acl, up: bool) {
        fn put<K: Ord + Copy>(m: &mut BTreeMap<K, BTreeSet<AclId>>, k: K, id: AclId, up: bool) {
            if up {
                m.entry(k).or_default().insert(id);
            } else if let Some(s) = m.get_mut(&k) {
                s.remove(&id);
                if s.is_empty() {
                    m.remove(&k);
                }
            }
        }
        if let Some(s) = a.matches.peer {
            put(&mut self.by_set, s, a.id, up);
        }
        match a.matches.applies_to {
            AppliesTo::Group(g) => put(&mut self.by_group, g, a.id, up),
            AppliesTo::AllPods if up => {
                self.all_pods.insert(a.id);
            }
            AppliesTo::AllPods => {
                self.all_pods.remove(&a.id);
            }
        }
    }
}

/// `flows` cut into runs of one node (the ACL units emit node by node).
fn runs<'x, 'a>(flows: &'x [(&'a str, FlowSpec)]) -> Vec<(&'a str, &'x [(&'a str, FlowSpec)])> {
    let mut v = Vec::new();
    let mut start = 0;
    for i in 1..=flows.len() {
        if i == flows.len() || flows[i].0 != flows[start].0 {
            v.push((flows[start].0, &flows[start..i]));
            start = i;
        }
    }
    v
}

/// Old versions of the slots an update touched: (node index, slot id) ->
/// the flow before the update.
type Before = BTreeMap<(u32, SlotId), Option<FlowSpec>>;

/// The ACL member clause flows of one node for a full compile: indices
/// into the compile's ACL contexts, ascending.
#[derive(Debug, Clone, Default)]
struct NodeWork {
    /// ACLs on the node (their peer clause flows go there).
    acls: Vec<u32>,
    /// (ACL, member port on the node).
    ports: Vec<(u32, LogicalPortId)>,
}

/// The contexts of `acls` (those that compile to flows), in order.
fn contexts<'a>(acls: &[&'a Acl], m: &'a LogicalModel, d: &'a Derived) -> Vec<AclCtx<'a>> {
    acls.iter()
        .filter_map(|acl| AclCtx::of(acl, m, d))
        .collect()
}

/// Adds the member units' flows of one node (see
/// [`Compiler::with_threads`]): parts grouped by slot, one
/// [`NodeTable::add_shared`] per slot. A fixed hasher: the order slots get
/// their ids is the same on every run and thread count.
fn fill_members(t: &mut NodeTable<UnitKey>, ctxs: &[AclCtx<'_>], w: &NodeWork) {
    type Parts = Vec<(UnitKey, Part)>;
    let mut peers: HashMap<(PeerClass, IpNet, bool), (u32, Parts), FixedState> = HashMap::default();
    for &i in &w.acls {
        let Some(ctx) = ctxs.get(i as usize) else {
            continue;
        };
        let part = ctx.peer_part();
        let class = ctx.peer_class();
        for net in ctx.peers() {
            for arp in ctx.peer_flows_of(net) {
                peers
                    .entry((class, *net, arp))
                    .or_insert_with(|| (i, Vec::new()))
                    .1
                    .push((UnitKey::AclPeer(ctx.id(), *net), part.clone()));
            }
        }
    }
    let mut ports: HashMap<(PeerClass, LogicalPortId), (u32, Parts), FixedState> =
        HashMap::default();
    for &(i, p) in &w.ports {
        let Some(ctx) = ctxs.get(i as usize) else {
            continue;
        };
        ports
            .entry((ctx.peer_class(), p))
            .or_insert_with(|| (i, Vec::new()))
            .1
            .push((UnitKey::AclPort(ctx.id(), p), ctx.port_part()));
    }
    t.reserve(peers.len() + ports.len());
    for ((_, net, arp), (i, parts)) in peers {
        if let Some(ctx) = ctxs.get(i as usize) {
            t.add_shared(ctx.peer_flow(&net, arp), parts);
        }
    }
    for ((_, p), (i, parts)) in ports {
        if let Some(ctx) = ctxs.get(i as usize) {
            t.add_shared(ctx.port_flow(p), parts);
        }
    }
}

/// The prefixes that left and joined each changed address set in one
/// update (computed once per set, shared by the ACLs using it).
type SetDiffs = BTreeMap<AddressSetId, SetMembers>;

/// Peer clause parts to add at the end of an update, by slot: (node index,
/// class, prefix, ARP flow) -> (the slot's flow, the units' parts in unit
/// order). A fixed hasher: slots get their ids in the same order on every
/// run.
type Pending = HashMap<(u32, PeerClass, IpNet, bool), (FlowSpec, Vec<(UnitKey, Part)>), FixedState>;

/// The units other than ACLs whose input may differ between `a` and `b`
/// (a superset, filtered by [`units::input_eq`]): every node, switch and
/// router unit of either model (few), the changed ports, and every pod
/// port of a switch whose fields, nodes or router leg changed or on a node
/// whose underlay address changed.
fn candidates(
    a: &LogicalModel,
    da: &Derived,
    b: &LogicalModel,
    db: &Derived,
    delta: &ModelDelta,
    ch: &units::Changes,
) -> BTreeSet<UnitKey> {
    let mut v: BTreeSet<UnitKey> = BTreeSet::new();
    v.extend(
        a.nodes
            .keys()
            .chain(b.nodes.keys())
            .cloned()
            .map(UnitKey::Node),
    );
    v.extend(
        a.switches
            .keys()
            .chain(b.switches.keys())
            .map(|s| UnitKey::Switch(*s)),
    );
    v.extend(
        a.routers
            .keys()
            .chain(b.routers.keys())
            .map(|r| UnitKey::Router(*r)),
    );
    let is_pod = |m: &LogicalModel, p: &LogicalPortId| {
        m.ports
            .get(p)
            .is_some_and(|p| matches!(p.kind, crate::model::PortKind::Pod { .. }))
    };
    v.extend(
        delta
            .ports
            .iter()
            .filter(|p| is_pod(a, p) || is_pod(b, p))
            .map(|p| UnitKey::Port(*p)),
    );
    // Switch-level inputs of the port units.
    let sw = |m: &LogicalModel, s: &crate::model::DatapathId| {
        m.switches
            .get(s)
            .map(|x| (x.id, x.node.clone(), x.router_port))
    };
    let switches: BTreeSet<crate::model::DatapathId> = a
        .switches
        .keys()
        .chain(b.switches.keys())
        .filter(|s| {
            sw(a, s) != sw(b, s)
                || da.switch_nodes.get(s) != db.switch_nodes.get(s)
                || ch.legs_changed(**s)
        })
        .copied()
        .collect();
    let nodes: BTreeSet<&str> = delta
        .nodes
        .iter()
        .filter(|n| {
            a.nodes.get(*n).map(|x| x.underlay_ip) != b.nodes.get(*n).map(|x| x.underlay_ip)
        })
        .map(String::as_str)
        .collect();
    if !switches.is_empty() || !nodes.is_empty() {
        for m in [a, b] {
            v.extend(
                m.pod_ports()
                    .filter(|p| {
                        switches.contains(&p.switch)
                            || p.node.as_deref().is_some_and(|n| nodes.contains(n))
                    })
                    .map(|p| UnitKey::Port(p.id)),
            );
        }
    }
    v
}

impl Compiler {
    /// Compiles `model` from scratch, the per-node part on as many threads
    /// as the machine has cores ([`with_threads`](Self::with_threads)).
    pub fn new(model: LogicalModel, cfg: CompileConfig) -> Compiler {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Compiler::with_threads(model, cfg, threads)
    }

    /// Compiles `model` from scratch, filling the node tables with the
    /// ACLs' member clause flows on up to `threads` threads (at least one:
    /// the caller's). The result does not depend on `threads`: each node's
    /// table is built by one thread from the same inputs in the same order
    /// (a test compares 1 and 4 threads).
    ///
    /// Stages: the units that record their slots (nodes, switches,
    /// routers, pod ports, each ACL's own flows), serially; then, per node
    /// and in parallel over nodes (a node's table depends on nothing but
    /// the model and the shared per-ACL contexts), the ACLs' member units:
    /// a peer address in the sets of k ACLs of one class (stage, priority,
    /// direction) gives the same clause flow slot for all k, differing only
    /// in cookie and `conjunction` action, and so does a port in the groups
    /// of k ACLs; the parts are grouped by slot per node and each slot's
    /// flow is built and added once ([`NodeTable::add_shared`]), instead of
    /// k flows of ~700 bytes each hashed and merged one by one (~5 million
    /// on the fixture). `update` goes through the per-unit path
    /// (`AclCtx::peer`, `AclCtx::port`); both give the same table (the
    /// incremental == full proptest compares them).
    pub fn with_threads(model: LogicalModel, cfg: CompileConfig, threads: usize) -> Compiler {
        let derived = Derived::of(&model);
        let mut c = Compiler {
            cfg,
            model: LogicalModel::default(),
            derived: Derived::default(),
            units: BTreeMap::new(),
            node_ix: BTreeMap::new(),
            tables: Vec::new(),
            present: Vec::new(),
            cookies: BTreeMap::new(),
            acl_index: AclIndex::of(&model),
            recompiled: Vec::new(),
            group_nodes: HashMap::default(),
        };
        c.register_cookies(&model, None);
        c.sync_nodes(&model);
        let mut sink = BTreeMap::new();
        for u in units::units(&model) {
            if !matches!(u, UnitKey::Acl(_)) {
                c.apply_unit(&u, &model, &derived, &mut sink, false);
            }
        }
        // Each ACL's context once, for its own unit and its members (the
        // same flows as `units::compile_unit`, which would compute it again),
        // on the threads too (one chunk of ACLs each, concatenated in ACL
        // order): a port-group ACL looks up the node of every member port.
        let acls: Vec<&Acl> = model.acls.values().collect();
        let threads = threads.max(1);
        let chunk = acls.len().div_ceil(threads).max(1);
        let ctxs: Vec<AclCtx> = {
            let (model, derived) = (&model, &derived);
            let of = move |part| contexts(part, model, derived);
            let mut parts = acls.chunks(chunk);
            let first = parts.next();
            std::thread::scope(|s| {
                let rest: Vec<_> = parts.map(|p| s.spawn(move || of(p))).collect();
                let mut all = first.map(of).unwrap_or_default();
                for h in rest {
                    match h.join() {
                        Ok(v) => all.extend(v),
                        Err(e) => std::panic::resume_unwind(e),
                    }
                }
                all
            })
        };
        let mut buf = Vec::new();
        for ctx in &ctxs {
            buf.clear();
            ctx.base(&mut buf);
            if !buf.is_empty() {
                let u = UnitKey::Acl(ctx.id());
                let mut mine = Vec::with_capacity(buf.len());
                c.add_flows(&u, &buf, &mut sink, false, Some(&mut mine));
                c.units.insert(u, mine);
            }
        }
        // Per present node: the ACLs on it and their member ports there (in
        // ACL order, so every slot's parts come sorted by unit).
        let ix_of: HashMap<&str, u32, FixedState> = c
            .node_ix
            .iter()
            .filter(|(_, ix)| c.present.get(**ix as usize).copied().unwrap_or(false))
            .map(|(n, ix)| (&**n, *ix))
            .collect();
        let mut work: Vec<NodeWork> = vec![NodeWork::default(); c.tables.len()];
        for (i, ctx) in ctxs.iter().enumerate() {
            for n in ctx.nodes() {
                if let Some(w) = ix_of.get(n).and_then(|ix| work.get_mut(*ix as usize)) {
                    w.acls.push(i as u32);
                }
            }
            let mut last: Option<(&str, Option<u32>)> = None;
            for (p, n) in ctx.member_ports() {
                let ix = match last {
                    Some((l, ix)) if l == n => ix,
                    _ => {
                        let ix = ix_of.get(n).copied();
                        last = Some((n, ix));
                        ix
                    }
                };
                if let Some(w) = ix.and_then(|ix| work.get_mut(ix as usize)) {
                    w.ports.push((i as u32, p));
                }
            }
        }
        for ctx in &ctxs {
            if let AppliesTo::Group(g) = ctx.applies_to() {
                c.group_nodes
                    .entry(g)
                    .or_insert_with(|| ctx.nodes().iter().map(|n| n.to_string()).collect());
            }
        }
        drop(ix_of);
        let threads = threads.clamp(1, c.tables.len().max(1));
        let mut buckets: Vec<Vec<(&mut NodeTable<UnitKey>, &NodeWork)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (k, (t, w)) in c.tables.iter_mut().zip(&work).enumerate() {
            if let Some(b) = buckets.get_mut(k % threads) {
                b.push((t, w));
            }
        }
        let ctxs = &ctxs;
        let fill = move |bucket: Vec<(&mut NodeTable<UnitKey>, &NodeWork)>| {
            for (t, w) in bucket {
                fill_members(t, ctxs, w);
            }
        };
        let mut buckets = buckets.into_iter();
        let mine = buckets.next();
        std::thread::scope(|s| {
            for b in buckets {
                s.spawn(move || fill(b));
            }
            if let Some(b) = mine {
                fill(b);
            }
        });
        c.model = model;
        c.derived = derived;
        c
    }

    /// Gives every node of `m` a table (marks the others absent).
    fn sync_nodes(&mut self, m: &LogicalModel) {
        for n in m.nodes.keys() {
            if !self.node_ix.contains_key(n.as_str()) {
                self.node_ix
                    .insert(Arc::from(n.as_str()), self.tables.len() as u32);
                self.tables.push(NodeTable::default());
                self.present.push(false);
            }
        }
        for (n, ix) in &self.node_ix {
            if let Some(p) = self.present.get_mut(*ix as usize) {
                *p = m.nodes.contains_key(&**n);
            }
        }
    }

    /// Moves to `model`, recompiling only the units whose input changed;
    /// returns the per-node changes (a node that left the model has all its
    /// flows deleted; a new node gets all its flows as adds). Finds what
    /// changed by comparing the two models ([`ModelDelta::between`],
    /// O(model)); [`update_with`](Self::update_with) takes the delta from
    /// the caller instead.
    pub fn update(&mut self, model: LogicalModel) -> BTreeMap<String, NodeDiff> {
        let delta = ModelDelta::between(&self.model, &model);
        self.update_with(model, &delta).0
    }

    /// [`update`](Self::update) for a caller that knows which objects
    /// changed: `delta` names every object of the compiled model and
    /// `model` whose value differs (more is allowed, fewer is not: an
    /// unnamed change keeps its old flows). Costs O(change) plus
    /// O(nodes + switches + routers): only the units of the named objects,
    /// of the sets and groups they belong to and of the switches, routers
    /// and nodes are compared; the derived facts are patched, not rebuilt.
    ///
    /// Returns the per-node changes and the model compiled before: freeing
    /// it is O(model) (10,000 ports, their strings and sets), so the caller
    /// chooses when (after pushing the changes to the nodes, or on another
    /// thread).
    pub fn update_with(
        &mut self,
        model: LogicalModel,
        delta: &ModelDelta,
    ) -> (BTreeMap<String, NodeDiff>, LogicalModel) {
        let old = std::mem::take(&mut self.model);
        let old_d = self.derived.clone();
        let mut derived = std::mem::take(&mut self.derived);
        for p in &delta.ports {
            derived.patch(old.ports.get(p), model.ports.get(p));
        }
        self.register_cookies(&model, Some(delta));
        for id in &delta.acls {
            if let Some(a) = old.acls.get(id) {
                self.acl_index.step(a, false);
            }
            if let Some(a) = model.acls.get(id) {
                self.acl_index.step(a, true);
            }
        }
        // Flows of a node that left the model are removed with the units
        // (their node is gone from the new model's unit inputs).
        let mut before: Before = BTreeMap::new();
        self.sync_nodes(&model);
        self.recompiled.clear();
        let ch = units::Changes::of(&old, &old_d, &model, &derived, delta);
        let todo: Vec<UnitKey> = candidates(&old, &old_d, &model, &derived, delta, &ch)
            .into_iter()
            .filter(|u| !units::input_eq(u, &old, &old_d, &model, &derived, &ch))
            .collect();
        for u in todo {
            self.apply_unit(&u, &model, &derived, &mut before, true);
            self.recompiled.push(u);
        }
        // Port groups whose members or members' nodes changed: their
        // nodes are recomputed when next needed.
        for g in &ch.groups_changed {
            self.group_nodes.remove(g);
        }
        for p in ch.moved() {
            for g in old.port_groups.values().filter(|g| g.ports.contains(p)) {
                self.group_nodes.remove(&g.id);
            }
        }
        let mut set_diffs = SetDiffs::new();
        let mut pending = Pending::default();
        for id in self.acl_candidates(&old, &old_d, &model, &derived, delta, &ch) {
            if units::input_eq(&UnitKey::Acl(id), &old, &old_d, &model, &derived, &ch) {
                continue;
            }
            if self.update_acl_peers(
                id,
                (&old, &old_d),
                (&model, &derived),
                (&ch, delta),
                &mut set_diffs,
                &mut before,
            ) {
                continue;
            }
            self.update_acl(
                id,
                (&old, &old_d),
                (&model, &derived),
                &mut before,
                &mut pending,
            );
        }
        for ((ix, ..), (f, parts)) in pending {
            let Some(t) = self.tables.get_mut(ix as usize) else {
                continue;
            };
            let (_, found) = t.probe(&f);
            if let Some(id) = found {
                before
                    .entry((ix, id))
                    .or_insert_with(|| t.get_id(id).cloned());
            }
            let id = t.add_shared(f, parts);
            if found.is_none() {
                before.entry((ix, id)).or_insert(None);
            }
        }
        let names: BTreeMap<u32, &Arc<str>> = self.node_ix.iter().map(|(n, i)| (*i, n)).collect();
        let mut diffs: BTreeMap<String, NodeDiff> = BTreeMap::new();
        for ((node, slot), old) in &before {
            let Some(name) = names.get(node) else {
                continue;
            };
            let new = self
                .tables
                .get(*node as usize)
                .and_then(|t| t.get_id(*slot));
            diffs
                .entry(name.to_string())
                .or_default()
                .record(old.as_ref(), new);
        }
        for t in &mut self.tables {
            t.recycle();
        }
        diffs.retain(|_, d| !d.is_empty());
        self.model = model;
        self.derived = derived;
        (diffs, old)
    }

    /// The ACLs whose units may differ between `a` and `b`: the changed
    /// ACLs, those reading a changed address set or port group (or a group
    /// holding a port that moved), the `AllPods` ACLs when a tenant's
    /// nodes changed, every ACL when the address families changed.
    fn acl_candidates(
        &self,
        a: &LogicalModel,
        da: &Derived,
        b: &LogicalModel,
        db: &Derived,
        delta: &ModelDelta,
        ch: &units::Changes,
    ) -> BTreeSet<AclId> {
        if da.dual_stack != db.dual_stack {
            return a.acls.keys().chain(b.acls.keys()).copied().collect();
        }
        let mut ids: BTreeSet<AclId> = delta.acls.clone();
        // The index holds the new model's ACLs; an ACL in both models
        // reads the same set and group in both unless it is in the delta.
        for s in &ch.sets_changed {
            ids.extend(self.acl_index.by_set.get(s).into_iter().flatten());
        }
        let mut groups: BTreeSet<PortGroupId> = ch.groups_changed.clone();
        for p in ch.moved() {
            if a.ports.contains_key(p) {
                // A port that moved node: the groups holding it.
                groups.extend(
                    a.port_groups
                        .values()
                        .filter(|g| g.ports.contains(p))
                        .map(|g| g.id),
                );
            }
        }
        for g in &groups {
            ids.extend(self.acl_index.by_group.get(g).into_iter().flatten());
        }
        if ch.tenant_nodes_changed() {
            ids.extend(self.acl_index.all_pods.iter().copied());
        }
        ids
    }

    /// The common case of [`update_acl`](Self::update_acl), cheaper: ACL
    /// `id` is the same in both models, its address set non-empty in both,
    /// its ports and their nodes (so its context) unchanged, and only its
    /// address set's members changed (a pod that joined or left a set used
    /// by many ACLs). Then only the prefixes that joined or left the set
    /// have flows to change, on the ACL's nodes; the set's difference is
    /// computed once per set for all the ACLs using it (`diffs`) and the
    /// context once, from `b`. Returns false (nothing done) when the case
    /// does not apply.
    fn update_acl_peers(
        &mut self,
        id: AclId,
        (a, da): (&LogicalModel, &Derived),
        (b, db): (&LogicalModel, &Derived),
        (ch, delta): (&units::Changes, &ModelDelta),
        diffs: &mut SetDiffs,
        before: &mut Before,
    ) -> bool {
        let (Some(xa), Some(xb)) = (a.acls.get(&id), b.acls.get(&id)) else {
            return false;
        };
        if xa != xb || da.dual_stack != db.dual_stack {
            return false;
        }
        let Some(s) = xb.matches.peer else {
            return false;
        };
        let (Some(sa), Some(sb)) = (a.address_sets.get(&s), b.address_sets.get(&s)) else {
            return false;
        };
        if sa.addresses.is_empty() || sb.addresses.is_empty() {
            return false;
        }
        let same_ports = match xb.matches.applies_to {
            AppliesTo::Group(g) => {
                !ch.groups_changed.contains(&g)
                    && (ch.moved().is_empty()
                        || a.port_groups
                            .get(&g)
                            .is_none_or(|g| g.ports.iter().all(|p| !ch.moved().contains(p))))
            }
            AppliesTo::AllPods => !ch.tenant_nodes_changed() && da.pod_nodes == db.pod_nodes,
        };
        if !same_ports {
            return false;
        }
        // Same ACL, nodes, ports and families: the context of `a` is this
        // one with `a`'s set (not read below: only the diff is).
        let cached: Option<Vec<String>> = match xb.matches.applies_to {
            AppliesTo::Group(g) => self.group_nodes.get(&g).cloned(),
            AppliesTo::AllPods => None,
        };
        let cb = match &cached {
            Some(ns) => AclCtx::with_nodes(xb, b, db, ns.iter().map(String::as_str).collect()),
            None => {
                let cb = AclCtx::of(xb, b, db);
                if let (Some(c), AppliesTo::Group(g)) = (&cb, xb.matches.applies_to) {
                    self.group_nodes
                        .insert(g, c.nodes().iter().map(|n| n.to_string()).collect());
                }
                cb
            }
        };
        let Some(cb) = cb else {
            // No port on any node: no flows in either model.
            return true;
        };
        let d = diffs.entry(s).or_insert_with(|| {
            delta
                .set_members
                .get(&s)
                .cloned()
                .unwrap_or_else(|| SetMembers::between(&sa.addresses, &sb.addresses))
        });
        let mut flows = Vec::new();
        for (nets, joined) in [(&d.gone, false), (&d.joined, true)] {
            for net in nets {
                flows.clear();
                cb.peer_flows_on(net, cb.nodes(), &mut flows);
                let u = UnitKey::AclPeer(id, *net);
                let changed = if joined {
                    self.replace(&u, &[], &flows, before)
                } else {
                    self.replace(&u, &flows, &[], before)
                };
                if changed {
                    self.recompiled.push(u);
                }
            }
        }
        true
    }

    /// Brings the units of ACL `id` from model `a` to model `b`: the ACL's
    /// own unit when its context changed, and the member units (peer
    /// addresses, member ports) whose flows differ: with an unchanged
    /// context only the addresses and ports that joined or left (or whose
    /// port moved), else every member of either model.
    fn update_acl(
        &mut self,
        id: AclId,
        (a, da): (&LogicalModel, &Derived),
        (b, db): (&LogicalModel, &Derived),
        before: &mut Before,
        pending: &mut Pending,
    ) {
        let ca = a.acls.get(&id).and_then(|x| AclCtx::of(x, a, da));
        let cb = b.acls.get(&id).and_then(|x| AclCtx::of(x, b, db));
        let same = match (&ca, &cb) {
            (Some(x), Some(y)) => x.key() == y.key(),
            (None, None) => return,
            _ => false,
        };
        if !same {
            self.apply_unit(&UnitKey::Acl(id), b, db, before, true);
            self.recompiled.push(UnitKey::Acl(id));
        }
        // A context that changed only in its nodes (a pod of the ACL's
        // group on a node new to it, or the last one leaving a node):
        // every member's flows on the nodes of both are unchanged, so the
        // members both have are only removed from the nodes lost and added
        // on the nodes gained.
        let nodes_only = match (&ca, &cb) {
            (Some(x), Some(y)) => !same && x.same_but_nodes(y),
            _ => false,
        };
        let empty = BTreeSet::new();
        let pa = ca.as_ref().and_then(AclCtx::peer_set).unwrap_or(&empty);
        let pb = cb.as_ref().and_then(AclCtx::peer_set).unwrap_or(&empty);
        let nets: Vec<IpNet> = if same || nodes_only {
            pa.symmetric_difference(pb).copied().collect()
        } else {
            pa.union(pb).copied().collect()
        };
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        for net in nets {
            fa.clear();
            fb.clear();
            if let Some(x) = &ca {
                x.peer(&net, &mut fa);
            }
            if let Some(y) = &cb {
                y.peer(&net, &mut fb);
            }
            let u = UnitKey::AclPeer(id, net);
            if self.replace(&u, &fa, &fb, before) {
                self.recompiled.push(u);
            }
        }
        if let (true, Some(x), Some(y)) = (nodes_only, &ca, &cb) {
            let lost: Vec<&str> = x
                .nodes()
                .iter()
                .filter(|n| y.nodes().binary_search(n).is_err())
                .copied()
                .collect();
            let gained: Vec<&str> = y
                .nodes()
                .iter()
                .filter(|n| x.nodes().binary_search(n).is_err())
                .copied()
                .collect();
            // The nodes gained get every shared member's clause flows:
            // grouped by slot across ACLs (`pending`, added once per slot
            // at the end of the update) instead of one flow built, hashed
            // and merged per ACL (a pod on a node new to its policies: ~10
            // ACLs x ~1,100 peers into ~1,000 shared slots).
            let gained_ix: Vec<u32> = gained
                .iter()
                .filter_map(|n| {
                    let ix = *self.node_ix.get(*n)?;
                    self.present.get(ix as usize).copied()?.then_some(ix)
                })
                .collect();
            let (class, part) = (y.peer_class(), y.peer_part());
            for net in pa.intersection(pb) {
                fa.clear();
                x.peer_on(net, &lost, &mut fa);
                let u = UnitKey::AclPeer(id, *net);
                self.remove_flows(&u, &fa, before);
                if !gained_ix.is_empty() {
                    for arp in y.peer_flows_of(net) {
                        for ix in &gained_ix {
                            pending
                                .entry((*ix, class, *net, arp))
                                .or_insert_with(|| (y.peer_flow(net, arp), Vec::new()))
                                .1
                                .push((u.clone(), part.clone()));
                        }
                    }
                }
                if !fa.is_empty() || !gained_ix.is_empty() {
                    self.recompiled.push(u);
                }
            }
        }
        let mut ports: BTreeSet<LogicalPortId> = BTreeSet::new();
        for (c, other) in [(&ca, &cb), (&cb, &ca)] {
            let Some(c) = c else { continue };
            for (p, n) in c.member_ports() {
                if !(same || nodes_only) || other.as_ref().and_then(|o| o.port_node(p)) != Some(n) {
                    ports.insert(p);
                }
            }
        }
        for p in ports {
            fa.clear();
            fb.clear();
            if let Some(x) = &ca {
                x.port(p, &mut fa);
            }
            if let Some(y) = &cb {
                y.port(p, &mut fb);
            }
            let u = UnitKey::AclPort(id, p);
            if self.replace(&u, &fa, &fb, before) {
                self.recompiled.push(u);
            }
        }
    }

    /// Replaces unit `u`'s flows `old` (as compiled from the previous
    /// model) with `new`, node by node: a node whose flows are the same in
    /// both keeps them untouched. Returns false if nothing differs.
    fn replace(
        &mut self,
        u: &UnitKey,
        old: &[(&str, FlowSpec)],
        new: &[(&str, FlowSpec)],
        before: &mut Before,
    ) -> bool {
        if old == new {
            return false;
        }
        let (og, ng) = (runs(old), runs(new));
        for (n, fs) in &og {
            if !ng.iter().any(|(m, g)| m == n && *g == *fs) {
                self.remove_flows(u, fs, before);
            }
        }
        for (n, fs) in &ng {
            if !og.iter().any(|(m, g)| m == n && *g == *fs) {
                self.add_flows(u, fs, before, true, None);
            }
        }
        true
    }

    /// Removes unit `u`'s part of the slots of `flows`, recording their
    /// previous content in `before` (first time only).
    fn remove_flows(&mut self, u: &UnitKey, flows: &[(&str, FlowSpec)], before: &mut Before) {
        for (node, f) in flows {
            let Some(ix) = self.node_ix.get(*node).copied() else {
                continue;
            };
            let Some(t) = self.tables.get_mut(ix as usize) else {
                continue;
            };
            let Some(id) = t.id_of_flow(f) else {
                continue;
            };
            before
                .entry((ix, id))
                .or_insert_with(|| t.get_id(id).cloned());
            t.remove(u, id);
        }
    }

    /// Adds unit `u`'s `flows` to the tables of present nodes, recording
    /// the previous content of every touched slot in `before` (first time
    /// only) when `track`, and the (node, slot) pairs in `mine`.
    fn add_flows(
        &mut self,
        u: &UnitKey,
        flows: &[(&str, FlowSpec)],
        before: &mut Before,
        track: bool,
        mut mine: Option<&mut Vec<(u32, SlotId)>>,
    ) {
        let mut last: Option<(&str, u32)> = None;
        for (node, f) in flows {
            let ix = match last {
                Some((n, ix)) if n == *node => ix,
                _ => {
                    let Some(ix) = self.node_ix.get(*node).copied() else {
                        continue;
                    };
                    if !self.present.get(ix as usize).copied().unwrap_or(false) {
                        continue;
                    }
                    last = Some((node, ix));
                    ix
                }
            };
            let Some(t) = self.tables.get_mut(ix as usize) else {
                continue;
            };
            let (hash, found) = t.probe(f);
            if track && let Some(id) = found {
                // The slot's flow before this update: cloned only the first
                // time the update touches the slot (a clause slot shared by
                // k ACLs gets k parts in one update).
                before
                    .entry((ix, id))
                    .or_insert_with(|| t.get_id(id).cloned());
            }
            let id = t.add_probed(u, f, hash, found);
            if track && found.is_none() {
                // A slot new in this update had no flow before (a slot that
                // emptied earlier in this update keeps its id and its
                // `before` entry until `recycle`).
                before.entry((ix, id)).or_insert(None);
            }
            if let Some(m) = mine.as_deref_mut() {
                m.push((ix, id));
            }
        }
    }

    /// Replaces unit `u`'s contribution with its flows under `model`,
    /// recording the previous content of every touched slot in `before`
    /// (first time only) when `track`.
    fn apply_unit(
        &mut self,
        u: &UnitKey,
        model: &LogicalModel,
        derived: &Derived,
        before: &mut Before,
        track: bool,
    ) {
        if let Some(old) = self.units.remove(u) {
            for (node, slot) in old {
                if let Some(t) = self.tables.get_mut(node as usize) {
                    if track {
                        before
                            .entry((node, slot))
                            .or_insert_with(|| t.get_id(slot).cloned());
                    }
                    t.remove(u, slot);
                }
            }
        }
        let flows = units::compile_unit(u, model, derived, &self.cfg);
        if flows.is_empty() {
            return;
        }
        let mut mine = Vec::with_capacity(flows.len());
        self.add_flows(u, &flows, before, track, Some(&mut mine));
        self.units.insert(u.clone(), mine);
    }

    /// Registers the cookies of `m`'s objects: all of them, or with
    /// `delta` those of the changed tenants, ports and ACLs and of every
    /// switch and router (the others were registered before).
    fn register_cookies(&mut self, m: &LogicalModel, delta: Option<&ModelDelta>) {
        let mut add = |s: &SourceRef| {
            self.cookies
                .entry(cookie::cookie_of(s))
                .or_insert_with(|| s.clone());
        };
        add(&SourceRef::cluster(SourceKind::Infrastructure, "pipeline"));
        for s in m.switches.values() {
            add(&s.source);
        }
        for r in m.routers.values() {
            for route in &r.routes {
                add(&route.source);
            }
            add(&SourceRef::cluster(SourceKind::Tenant, &r.tenant));
        }
        match delta {
            None => {
                m.tenants.values().for_each(|t| add(&t.source));
                m.ports.values().for_each(|p| add(&p.source));
                m.acls.values().for_each(|a| add(&a.source));
            }
            Some(d) => {
                d.tenants
                    .iter()
                    .filter_map(|t| m.tenants.get(t))
                    .for_each(|t| add(&t.source));
                d.ports
                    .iter()
                    .filter_map(|p| m.ports.get(p))
                    .for_each(|p| add(&p.source));
                d.acls
                    .iter()
                    .filter_map(|a| m.acls.get(a))
                    .for_each(|a| add(&a.source));
            }
        }
    }

    /// The units the last [`update`](Self::update) recompiled (their
    /// input changed); every other unit's flows were reused.
    pub fn recompiled(&self) -> &[UnitKey] {
        &self.recompiled
    }

    /// The model last compiled.
    pub fn model(&self) -> &LogicalModel {
        &self.model
    }

    /// The derived facts of [`model`](Self::model) (patched by each
    /// update).
    pub fn derived(&self) -> &Derived {
        &self.derived
    }

    /// Node names with a table.
    pub fn nodes(&self) -> impl Iterator<Item = &str> + '_ {
        self.node_ix
            .iter()
            .filter(|(_, ix)| self.present.get(**ix as usize).copied().unwrap_or(false))
            .map(|(n, _)| &**n)
    }

    /// The flows of `node`, in `dump-flows` order.
    pub fn flows(&self, node: &str) -> Vec<FlowSpec> {
        self.table(node)
            .map(|t| t.flows().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of flows of `node`.
    pub fn flow_count(&self, node: &str) -> usize {
        self.table(node).map_or(0, NodeTable::len)
    }

    /// The node's table (for conflict checks).
    pub fn table(&self, node: &str) -> Option<&NodeTable<UnitKey>> {
        let ix = *self.node_ix.get(node)?;
        if !self.present.get(ix as usize).copied().unwrap_or(false) {
            return None;
        }
        self.tables.get(ix as usize)
    }

    /// The cookie table of `node`: one entry per cookie its flows carry
    /// (what the node gets with `SetCookieInfo`).
    pub fn cookie_infos(&self, node: &str) -> Vec<CookieInfo> {
        let used: BTreeSet<Cookie> = self
            .table(node)
            .map(|t| t.flows().map(|f| f.cookie).collect())
            .unwrap_or_default();
        used.iter()
            .filter_map(|c| self.cookies.get(c))
            .map(cookie::cookie_info)
            .collect()
    }

    /// What produced `cookie`, if known.
    pub fn source_of(&self, cookie: Cookie) -> Option<&SourceRef> {
        self.cookies.get(&cookie)
    }
}
