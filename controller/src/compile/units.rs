//! The compile units: the flows of one logical object, per node.
//!
//! | unit | flows | nodes |
//! |---|---|---|
//! | `Node(n)` | the catch-all (priority 0) flow of every stage | `n` |
//! | `Port(p)` (pods) | physical-in, port security in and out, ARP responder, L2 lookup, ARP resolve, remote output, physical-out | its node; for a switch spanning nodes also every node of the switch |
//! | `Switch(s)` | tunnel entry, gateway ARP responder, gateway L2 lookup | nodes of the switch (or its tenant, for the gateway) |
//! | `Router(r)` | routes, delivery into a switch (local) or into the tunnel (a remote node's switch), router tunnel entry | every node of the tenant |
//! | `Acl(a)` | the traffic clauses and the `conj_id` flow of a conjunctive ACL (or its single plain flow) | the nodes of the ports it applies to |
//! | `AclPeer(a, prefix)` | the peer clause flows of one address of the ACL's address set (`nw_src=10.244.3.7 actions=conjunction(a,2/3)`, and the ARP one) | the nodes of the ACL |
//! | `AclPort(a, port)` | the port clause flow of one member of the ACL's port group (`reg15=7 actions=conjunction(a,1/3)`) | the port's node |
//!
//! Each unit's flows are a pure function of its *input* (the parts of the
//! model it reads, compared by [`input_eq`]): that is what lets the
//! incremental compiler skip units whose input did not change.
//!
//! The two member units of an ACL are not recorded one by one (a large
//! cluster has millions of them): they exist for every address of the
//! ACL's address set and every port of its port group, and the compiler
//! recomputes their flows from the old model when it must remove them
//! (see [`super::acl`]). A pod that joins or leaves sets therefore costs
//! one unit per set, not one per ACL using the set times the set's size.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use protocol::flow::{Action, Cookie, Field, FlowSpec, PortNo, TableId};
use protocol::wire::EthernetAddress;

use super::acl::AclCtx;
use super::cookie::cookie_of;
use super::flow::{self, FlowBuilder, bits, mac, v4, v6};
use super::{CompileConfig, prio, reg, table};
use crate::model::{
    Acl, AclAction, AclDirection, AclId, AclTier, AddressSetId, AppliesTo, DatapathId, L4Protocol,
    LogicalModel, LogicalPort, LogicalPortId, ModelDelta, PortGroupId, PortKind, SourceKind,
    SourceRef, Traffic,
};

/// Identifies a compile unit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitKey {
    /// A node's defaults.
    Node(String),
    /// A logical switch.
    Switch(DatapathId),
    /// A logical router.
    Router(DatapathId),
    /// A pod port.
    Port(LogicalPortId),
    /// An ACL: its traffic clauses and `conj_id` flow.
    Acl(AclId),
    /// One peer address (prefix) of an ACL's address set.
    AclPeer(AclId, IpNet),
    /// One member port of an ACL's port group.
    AclPort(AclId, LogicalPortId),
}

/// Facts derived from the whole model that several units read.
///
/// Kept with the pod counts behind each set, so that an update patches it
/// with the ports that changed ([`Derived::patch`]) instead of recomputing
/// it from every port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    /// Nodes with at least one pod of the tenant.
    pub tenant_nodes: BTreeMap<String, BTreeSet<String>>,
    /// Nodes with at least one pod on the switch.
    pub switch_nodes: BTreeMap<DatapathId, BTreeSet<String>>,
    /// True if any port has an IPv6 address (ACL traffic clauses are then
    /// emitted for both families).
    pub dual_stack: bool,
    /// Nodes with at least one pod (the nodes of an `AllPods` ACL).
    pub pod_nodes: BTreeSet<String>,
    /// Pods per (tenant, node), (switch, node) and node, and pods with an
    /// IPv6 address: the sets above are the non-zero counts.
    counts: Counts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts {
    tenant_node: BTreeMap<String, BTreeMap<String, u32>>,
    switch_node: BTreeMap<DatapathId, BTreeMap<String, u32>>,
    node: BTreeMap<String, u32>,
    v6: u32,
}

/// Counts one pod more (`up`) or less in `m[k]`; true if the count went
/// from 0 to 1 or from 1 to 0 (the set of non-zero keys changed).
fn count(m: &mut BTreeMap<String, u32>, k: &str, up: bool) -> bool {
    match m.get_mut(k) {
        Some(c) if up => {
            *c += 1;
            false
        }
        Some(c) => {
            *c -= 1;
            if *c == 0 {
                m.remove(k);
                return true;
            }
            false
        }
        None if up => {
            m.insert(k.to_owned(), 1);
            true
        }
        // Removing a pod that was never counted: a caller bug; ignored
        // rather than underflowing.
        None => false,
    }
}

/// Adds (`up`) or removes `n` in the set `m[k]`, dropping an emptied set.
fn toggle<K: Ord + Clone>(m: &mut BTreeMap<K, BTreeSet<String>>, k: &K, n: &str, up: bool) {
    if up {
        m.entry(k.clone()).or_default().insert(n.to_owned());
    } else if let Some(s) = m.get_mut(k) {
        s.remove(n);
        if s.is_empty() {
            m.remove(k);
        }
    }
}

impl Derived {
    /// Computes the derived facts of `m`.
    pub fn of(m: &LogicalModel) -> Derived {
        let mut d = Derived::default();
        for p in m.pod_ports() {
            d.step(p, true);
        }
        d
    }

    /// Moves the facts from a model with port `old` to one with port `new`
    /// (the same port id; either may be absent). O(log model).
    pub fn patch(&mut self, old: Option<&LogicalPort>, new: Option<&LogicalPort>) {
        if old == new {
            return;
        }
        if let Some(p) = old {
            self.step(p, false);
        }
        if let Some(p) = new {
            self.step(p, true);
        }
    }

    /// Counts pod port `p` in (`up`) or out.
    fn step(&mut self, p: &LogicalPort, up: bool) {
        if !matches!(p.kind, PortKind::Pod { .. }) {
            return;
        }
        if p.ips.iter().any(IpAddr::is_ipv6) {
            if up {
                self.counts.v6 += 1;
            } else {
                self.counts.v6 = self.counts.v6.saturating_sub(1);
            }
            self.dual_stack = self.counts.v6 > 0;
        }
        let Some(n) = p.node.as_deref() else { return };
        let c = &mut self.counts;
        let t = c.tenant_node.entry(p.tenant.clone()).or_default();
        if count(t, n, up) {
            toggle(&mut self.tenant_nodes, &p.tenant, n, up);
        }
        if t.is_empty() {
            c.tenant_node.remove(&p.tenant);
        }
        let s = c.switch_node.entry(p.switch).or_default();
        if count(s, n, up) {
            toggle(&mut self.switch_nodes, &p.switch, n, up);
        }
        if s.is_empty() {
            c.switch_node.remove(&p.switch);
        }
        if count(&mut c.node, n, up) {
            if up {
                self.pod_nodes.insert(n.to_owned());
            } else {
                self.pod_nodes.remove(n);
            }
        }
    }

    fn tenant(&self, t: &str) -> Option<&BTreeSet<String>> {
        self.tenant_nodes.get(t)
    }
}

/// Every unit of `m` except the ACL member units ([`UnitKey::AclPeer`],
/// [`UnitKey::AclPort`]), which exist for every member of an ACL's sets.
pub fn units(m: &LogicalModel) -> Vec<UnitKey> {
    let mut v: Vec<UnitKey> = m.nodes.keys().cloned().map(UnitKey::Node).collect();
    v.extend(m.switches.keys().map(|d| UnitKey::Switch(*d)));
    v.extend(m.routers.keys().map(|d| UnitKey::Router(*d)));
    v.extend(m.pod_ports().map(|p| UnitKey::Port(p.id)));
    v.extend(m.acls.keys().map(|a| UnitKey::Acl(*a)));
    v
}

/// What differs between two models, computed once per update so that
/// [`input_eq`] of each of the model's units is cheap (no per-unit scan of
/// routers or of every member port's node).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Ports whose node differs (or that exist in one model only).
    moved: BTreeSet<LogicalPortId>,
    /// Switch -> (router, router-side port) of its first router leg.
    legs_a: BTreeMap<DatapathId, (DatapathId, LogicalPortId)>,
    legs_b: BTreeMap<DatapathId, (DatapathId, LogicalPortId)>,
    /// `tenant_nodes` equal in both.
    tenant_nodes_eq: bool,
    /// Address sets whose content differs (or that exist in one model
    /// only).
    pub sets_changed: BTreeSet<AddressSetId>,
    /// Port groups whose members differ (or that exist in one model only).
    pub groups_changed: BTreeSet<PortGroupId>,
}

impl Changes {
    /// The differences between `a` and `b` (compares every port, address
    /// set and port group: O(model)).
    pub fn between(a: &LogicalModel, da: &Derived, b: &LogicalModel, db: &Derived) -> Changes {
        Changes::of(a, da, b, db, &ModelDelta::between(a, b))
    }

    /// The differences between `a` and `b`, looking only at the objects
    /// `delta` names (O(change), plus the routers' ports).
    pub fn of(
        a: &LogicalModel,
        da: &Derived,
        b: &LogicalModel,
        db: &Derived,
        delta: &ModelDelta,
    ) -> Changes {
        let moved = delta
            .ports
            .iter()
            .filter(|id| a.ports.get(id).map(|x| &x.node) != b.ports.get(id).map(|x| &x.node))
            .copied()
            .collect();
        let legs = |m: &LogicalModel| {
            let mut l = BTreeMap::new();
            for r in m.routers.values() {
                for rp in &r.ports {
                    l.entry(rp.switch).or_insert((r.id, rp.id));
                }
            }
            l
        };
        let sets_changed = delta
            .address_sets
            .iter()
            .filter(|id| match delta.set_members.get(id) {
                Some(d) if a.address_sets.contains_key(id) && b.address_sets.contains_key(id) => {
                    !d.is_empty()
                }
                _ => {
                    a.address_sets.get(id).map(|s| &s.addresses)
                        != b.address_sets.get(id).map(|s| &s.addresses)
                }
            })
            .copied()
            .collect();
        let groups_changed = delta
            .port_groups
            .iter()
            .filter(|id| {
                a.port_groups.get(id).map(|g| &g.ports) != b.port_groups.get(id).map(|g| &g.ports)
            })
            .copied()
            .collect();
        Changes {
            moved,
            legs_a: legs(a),
            legs_b: legs(b),
            tenant_nodes_eq: da.tenant_nodes == db.tenant_nodes,
            sets_changed,
            groups_changed,
        }
    }

    /// Ports whose node differs (or that exist in one model only).
    pub fn moved(&self) -> &BTreeSet<LogicalPortId> {
        &self.moved
    }

    /// True if switch `s`'s first router leg differs.
    pub fn legs_changed(&self, s: DatapathId) -> bool {
        self.legs_a.get(&s) != self.legs_b.get(&s)
    }

    /// True if some tenant's node set differs.
    pub fn tenant_nodes_changed(&self) -> bool {
        !self.tenant_nodes_eq
    }
}

/// True if unit `u` reads the same input in both models (so its flows are
/// the same). Must cover everything [`compile_unit`] reads. `ch` is
/// [`Changes::between`] the two models. For an ACL, true means that
/// none of its units (the member units included) changed; false, that
/// some may have (the compiler then compares the ACL's contexts and
/// member sets, [`super::acl`]).
pub fn input_eq(
    u: &UnitKey,
    a: &LogicalModel,
    da: &Derived,
    b: &LogicalModel,
    db: &Derived,
    ch: &Changes,
) -> bool {
    match u {
        UnitKey::Node(n) => a.nodes.contains_key(n) == b.nodes.contains_key(n),
        UnitKey::Port(p) => {
            let (pa, pb) = (a.ports.get(p), b.ports.get(p));
            if pa != pb {
                return false;
            }
            let Some(port) = pa else { return true };
            // Only the switch fields the port's flows read (not its port
            // list, which changes with every pod).
            let sw = |m: &LogicalModel| {
                m.switches
                    .get(&port.switch)
                    .map(|s| (s.id, s.node.clone(), s.router_port))
            };
            let (sa, sb) = (sw(a), sw(b));
            sa == sb
                && node_ip(a, port.node.as_deref()) == node_ip(b, port.node.as_deref())
                && da.switch_nodes.get(&port.switch) == db.switch_nodes.get(&port.switch)
                && ch.legs_a.get(&port.switch) == ch.legs_b.get(&port.switch)
        }
        UnitKey::Switch(s) => {
            let (sa, sb) = (a.switches.get(s), b.switches.get(s));
            if sa != sb {
                return false;
            }
            let Some(sw) = sa else { return true };
            da.switch_nodes.get(s) == db.switch_nodes.get(s)
                && da.tenant(&sw.tenant) == db.tenant(&sw.tenant)
                && a.router_port(sw.router_port_router_side(a))
                    .map(|(r, p)| (r.id, p))
                    == b.router_port(sw.router_port_router_side(b))
                        .map(|(r, p)| (r.id, p))
        }
        UnitKey::Router(r) => {
            let (ra, rb) = (a.routers.get(r), b.routers.get(r));
            if ra != rb {
                return false;
            }
            let Some(rt) = ra else { return true };
            if da.tenant(&rt.tenant) != db.tenant(&rt.tenant)
                || a.tenants.get(&rt.tenant) != b.tenants.get(&rt.tenant)
            {
                return false;
            }
            rt.ports.iter().all(|rp| {
                let sw = |m: &LogicalModel| {
                    m.switches
                        .get(&rp.switch)
                        .map(|s| (s.id, s.node.clone(), s.router_port, s.source.clone()))
                };
                let sa = a.switches.get(&rp.switch);
                sw(a) == sw(b)
                    && da.switch_nodes.get(&rp.switch) == db.switch_nodes.get(&rp.switch)
                    && sa.is_none_or(|s| {
                        node_ip(a, s.node.as_deref()) == node_ip(b, s.node.as_deref())
                    })
            })
        }
        UnitKey::Acl(id) | UnitKey::AclPeer(id, _) | UnitKey::AclPort(id, _) => {
            let (xa, xb) = (a.acls.get(id), b.acls.get(id));
            if xa != xb {
                return false;
            }
            let Some(acl) = xa else { return true };
            if da.dual_stack != db.dual_stack {
                return false;
            }
            if let Some(s) = acl.matches.peer
                && ch.sets_changed.contains(&s)
            {
                return false;
            }
            match acl.matches.applies_to {
                AppliesTo::Group(g) => {
                    !ch.groups_changed.contains(&g)
                        && (ch.moved.is_empty()
                            || a.port_groups
                                .get(&g)
                                .is_none_or(|g| g.ports.iter().all(|p| !ch.moved.contains(p))))
                }
                AppliesTo::AllPods => ch.tenant_nodes_eq,
            }
        }
    }
}

trait SwitchExt {
    fn router_port_router_side(&self, m: &LogicalModel) -> LogicalPortId;
}

impl SwitchExt for crate::model::LogicalSwitch {
    /// The router-side port id of this switch's router leg (0 if none).
    fn router_port_router_side(&self, m: &LogicalModel) -> LogicalPortId {
        match m.ports.get(&self.router_port).map(|p| &p.kind) {
            Some(PortKind::Router { router_port, .. }) => *router_port,
            _ => LogicalPortId(0),
        }
    }
}

fn node_ip(m: &LogicalModel, n: Option<&str>) -> Option<IpAddr> {
    n.and_then(|n| m.nodes.get(n)).map(|n| n.underlay_ip)
}

/// The flows of unit `u`, as (node, flow) pairs.
pub fn compile_unit<'a>(
    u: &UnitKey,
    m: &'a LogicalModel,
    d: &'a Derived,
    cfg: &CompileConfig,
) -> Vec<(&'a str, FlowSpec)> {
    let mut out = Vec::new();
    match u {
        UnitKey::Node(n) => {
            if let Some((n, _)) = m.nodes.get_key_value(n) {
                node_defaults(n, &mut out);
            }
        }
        UnitKey::Port(p) => {
            if let Some(port) = m.ports.get(p) {
                pod_port(port, m, d, cfg, &mut out);
            }
        }
        UnitKey::Switch(s) => switch(*s, m, d, cfg, &mut out),
        UnitKey::Router(r) => router(*r, m, d, cfg, &mut out),
        UnitKey::Acl(a) | UnitKey::AclPeer(a, _) | UnitKey::AclPort(a, _) => {
            if let Some(ctx) = m.acls.get(a).and_then(|acl| AclCtx::of(acl, m, d)) {
                match u {
                    UnitKey::AclPeer(_, net) => ctx.peer(net, &mut out),
                    UnitKey::AclPort(_, p) => ctx.port(*p, &mut out),
                    _ => ctx.base(&mut out),
                }
            }
        }
    }
    out
}

/// The pipeline's own flows (cookie `Infrastructure/pipeline`).
pub fn pipeline_cookie() -> Cookie {
    cookie_of(&SourceRef::cluster(SourceKind::Infrastructure, "pipeline"))
}

fn node_defaults<'a>(n: &'a str, out: &mut Vec<(&'a str, FlowSpec)>) {
    let c = pipeline_cookie();
    let mut push = |f: FlowSpec| out.push((n, f));
    // Drops: physical-in (unknown port or VNI), port security, L2 lookup
    // (unknown unicast, broadcast), routing (no route), ARP resolve
    // (unknown neighbour), delivery, egress port security, physical-out.
    for t in [
        table::PHY_IN,
        table::PORT_SEC_L2,
        table::PORT_SEC_IP,
        table::L2_LOOKUP,
        table::IP_ROUTING,
        table::ARP_RESOLVE,
        table::DELIVERY,
        table::OUT_PORT_SEC_L2,
        table::OUT_PORT_SEC_IP,
        table::PHY_OUT,
    ] {
        push(FlowBuilder::new(t, 0, c).build());
    }
    // Pass-throughs: ACL stages (a port nobody isolates), ARP responder
    // (not an ARP for a known address), remote output (local port).
    for (t, next) in [
        (table::IN_ACL, table::ARP_RSP),
        (table::ARP_RSP, table::L2_LOOKUP),
        (table::REMOTE_OUT, table::OUT_ACL),
        (table::OUT_ACL, table::OUT_PORT_SEC_L2),
    ] {
        push(FlowBuilder::new(t, 0, c).goto(next).build());
    }
    // Port security drops above every port's allow rules (OVN's
    // ls_in_port_sec_l2 drops VLAN-tagged frames; a pod is no DHCP server
    // nor router): a frame with an 802.1Q tag (VLAN 0 included; the
    // pipeline does not match `vlan_tci` anywhere else, so a tagged frame
    // with the pod's own addresses would otherwise be delivered tagged),
    // DHCPv4/DHCPv6 server replies and ICMPv6 router advertisements.
    // Found by `tools/tests/demo_portsec.rs` (real packets from a pod).
    let above = prio::PORT_SEC + 10;
    let cfi = u128::from(protocol::flow::key::VLAN_CFI);
    push(
        FlowBuilder::new(table::PORT_SEC_L2, above, c)
            .masked(Field::VlanTci, cfi, cfi)
            .build(),
    );
    for (ip6, sport, dport) in [(false, 67, 68), (true, 547, 546)] {
        let b = FlowBuilder::new(table::PORT_SEC_IP, above, c);
        let b = if ip6 { b.ipv6() } else { b.ip() };
        push(
            b.m(Field::NwProto, 17)
                .m(Field::TpSrc, sport)
                .m(Field::TpDst, dport)
                .build(),
        );
    }
    push(
        FlowBuilder::new(table::PORT_SEC_IP, above, c)
            .ipv6()
            .m(Field::NwProto, 58)
            .m(Field::IcmpType, 134)
            .build(),
    );
}

/// The OpenFlow port of a pod's logical port on its node (see the module
/// doc of [`super`]: the CNI plugin attaches the pod with this ofport).
pub fn ofport(p: LogicalPortId) -> PortNo {
    PortNo(u32::from(p.0))
}

/// The ofport of port `p`: the one the CNI plugin reported, else
/// [`ofport`] of its id.
pub fn port_ofport(p: &LogicalPort) -> PortNo {
    p.ofport.map_or_else(|| ofport(p.id), PortNo)
}

fn arp_responder(
    dp: DatapathId,
    ip: IpAddr,
    hw: EthernetAddress,
    cookie: Cookie,
) -> Option<FlowSpec> {
    let IpAddr::V4(ip) = ip else { return None };
    let eth = |f| bits(f, 0, 48);
    Some(
        FlowBuilder::new(table::ARP_RSP, prio::ARP_RSP, cookie)
            .dp(dp.0)
            .arp()
            .m(Field::ArpOp, 1)
            .m(Field::ArpTpa, v4(ip))
            .mv(eth(Field::DlSrc), eth(Field::DlDst))
            .set(Field::DlSrc, mac(hw))
            .set(Field::ArpOp, 2)
            .mv(eth(Field::ArpSha), eth(Field::ArpTha))
            .set(Field::ArpSha, mac(hw))
            .mv(bits(Field::ArpSpa, 0, 32), bits(Field::ArpTpa, 0, 32))
            .set(Field::ArpSpa, v4(ip))
            .output(PortNo::IN_PORT)
            .build(),
    )
}

fn set_tunnel(b: FlowBuilder, vni: DatapathId, remote: IpAddr, cfg: &CompileConfig) -> FlowBuilder {
    let b = b.set(Field::TunId, u128::from(vni.0));
    let b = match remote {
        IpAddr::V4(a) => b.set(Field::TunDst, v4(a)),
        IpAddr::V6(a) => b.set(Field::TunIpv6Dst, v6(a)),
    };
    b.mv(
        bits(Field::Reg(reg::INPORT), 0, 16),
        bits(Field::TunMetadata(0), 16, 16),
    )
    .mv(
        bits(Field::Reg(reg::OUTPORT), 0, 16),
        bits(Field::TunMetadata(0), 0, 16),
    )
    .output(cfg.tunnel_port)
}

fn tunnel_entry(dp: DatapathId, next: TableId, cookie: Cookie, cfg: &CompileConfig) -> FlowSpec {
    FlowBuilder::new(table::PHY_IN, prio::PHY, cookie)
        .m(Field::InPort, u128::from(cfg.tunnel_port.0))
        .m(Field::TunId, u128::from(dp.0))
        .set(Field::Metadata, u128::from(dp.0))
        .mv(
            bits(Field::TunMetadata(0), 16, 16),
            bits(Field::Reg(reg::INPORT), 0, 16),
        )
        .mv(
            bits(Field::TunMetadata(0), 0, 16),
            bits(Field::Reg(reg::OUTPORT), 0, 16),
        )
        .goto(next)
        .build()
}

fn pod_port<'a>(
    p: &'a LogicalPort,
    m: &'a LogicalModel,
    d: &'a Derived,
    cfg: &CompileConfig,
    out: &mut Vec<(&'a str, FlowSpec)>,
) {
    let (Some(node), Some(sw)) = (&p.node, m.switches.get(&p.switch)) else {
        return;
    };
    let c = cookie_of(&p.source);
    let dp = sw.id.0;
    let lp = u128::from(p.id.0);
    let hw = p.security.as_ref().map_or(p.mac, |s| s.mac);
    let sec_ips: &[IpAddr] = p.security.as_ref().map_or(&p.ips, |s| &s.ips);
    let local = |f: FlowSpec, out: &mut Vec<(&'a str, FlowSpec)>| out.push((node.as_str(), f));
    // Physical-in.
    local(
        FlowBuilder::new(table::PHY_IN, prio::PHY, c)
            .m(Field::InPort, u128::from(port_ofport(p).0))
            .set(Field::Metadata, u128::from(dp))
            .set(Field::Reg(reg::INPORT), lp)
            .goto(table::PORT_SEC_L2)
            .build(),
        out,
    );
    // Ingress port security: L2, then IP/ARP (ND: only from its own
    // addresses, so a spoofed NA from another address is dropped too).
    local(
        FlowBuilder::new(table::PORT_SEC_L2, prio::PORT_SEC, c)
            .m(Field::Reg(reg::INPORT), lp)
            .m(Field::DlSrc, mac(hw))
            .goto(table::PORT_SEC_IP)
            .build(),
        out,
    );
    for ip in sec_ips {
        let f = match ip {
            IpAddr::V4(a) => FlowBuilder::new(table::PORT_SEC_IP, prio::PORT_SEC, c)
                .m(Field::Reg(reg::INPORT), lp)
                .ip()
                .m(Field::NwSrc, v4(*a)),
            IpAddr::V6(a) => FlowBuilder::new(table::PORT_SEC_IP, prio::PORT_SEC, c)
                .m(Field::Reg(reg::INPORT), lp)
                .ipv6()
                .m(Field::Ipv6Src, v6(*a)),
        };
        local(f.goto(table::IN_ACL).build(), out);
        if let IpAddr::V4(a) = ip {
            local(
                FlowBuilder::new(table::PORT_SEC_IP, prio::PORT_SEC, c)
                    .m(Field::Reg(reg::INPORT), lp)
                    .arp()
                    .m(Field::ArpSpa, v4(*a))
                    .m(Field::ArpSha, mac(hw))
                    .goto(table::IN_ACL)
                    .build(),
                out,
            );
        }
    }
    // Egress port security and physical-out (where the port lives).
    local(
        FlowBuilder::new(table::OUT_PORT_SEC_L2, prio::PORT_SEC, c)
            .m(Field::Reg(reg::OUTPORT), lp)
            .m(Field::DlDst, mac(hw))
            .goto(table::OUT_PORT_SEC_IP)
            .build(),
        out,
    );
    for ip in sec_ips {
        let f = match ip {
            IpAddr::V4(a) => FlowBuilder::new(table::OUT_PORT_SEC_IP, prio::PORT_SEC, c)
                .m(Field::Reg(reg::OUTPORT), lp)
                .ip()
                .m(Field::NwDst, v4(*a)),
            IpAddr::V6(a) => FlowBuilder::new(table::OUT_PORT_SEC_IP, prio::PORT_SEC, c)
                .m(Field::Reg(reg::OUTPORT), lp)
                .ipv6()
                .m(Field::Ipv6Dst, v6(*a)),
        };
        local(f.goto(table::PHY_OUT).build(), out);
        if let IpAddr::V4(a) = ip {
            local(
                FlowBuilder::new(table::OUT_PORT_SEC_IP, prio::PORT_SEC, c)
                    .m(Field::Reg(reg::OUTPORT), lp)
                    .arp()
                    .m(Field::ArpTpa, v4(*a))
                    .goto(table::PHY_OUT)
                    .build(),
                out,
            );
        }
    }
    local(
        FlowBuilder::new(table::PHY_OUT, prio::PHY, c)
            .m(Field::Reg(reg::OUTPORT), lp)
            .output(port_ofport(p))
            .build(),
        out,
    );
    // Switch-wide flows: on every node that runs this switch's pipeline
    // (the port's node for a per-node switch; every node with a pod on a
    // spanning switch).
    let mut nodes: BTreeSet<&String> = BTreeSet::new();
    nodes.insert(node);
    if sw.node.is_none()
        && let Some(ns) = d.switch_nodes.get(&sw.id)
    {
        nodes.extend(ns.iter());
    }
    let router = m
        .routers
        .values()
        .find(|r| r.ports.iter().any(|rp| rp.switch == sw.id));
    let node_ip = m.nodes.get(node).map(|n| n.underlay_ip);
    for n in nodes {
        let mut push = |f: FlowSpec| out.push((n.as_str(), f));
        for ip in &p.ips {
            if let Some(f) = arp_responder(sw.id, *ip, p.mac, c) {
                push(f);
            }
        }
        push(
            FlowBuilder::new(table::L2_LOOKUP, prio::L2, c)
                .dp(dp)
                .m(Field::DlDst, mac(p.mac))
                .set(Field::Reg(reg::OUTPORT), lp)
                .goto(table::REMOTE_OUT)
                .build(),
        );
        if let Some(r) = router
            && let Some(rp) = r.ports.iter().find(|rp| rp.switch == sw.id)
        {
            for ip in &p.ips {
                let b = FlowBuilder::new(table::ARP_RESOLVE, prio::L2, c)
                    .dp(r.id.0)
                    .m(Field::Reg(reg::OUTPORT), u128::from(rp.id.0));
                let b = match ip {
                    IpAddr::V4(a) => b.ip().m(Field::NwDst, v4(*a)),
                    IpAddr::V6(a) => b.ipv6().m(Field::Ipv6Dst, v6(*a)),
                };
                push(
                    b.set(Field::DlDst, mac(p.mac))
                        .goto(table::DELIVERY)
                        .build(),
                );
            }
        }
        if n != node
            && let Some(ip) = node_ip
        {
            let b = FlowBuilder::new(table::REMOTE_OUT, prio::L2, c)
                .dp(dp)
                .m(Field::Reg(reg::OUTPORT), lp);
            push(set_tunnel(b, sw.id, ip, cfg).build());
        }
    }
}

/// An empty node set.
static NO_NODES: BTreeSet<String> = BTreeSet::new();

fn switch<'a>(
    s: DatapathId,
    m: &'a LogicalModel,
    d: &'a Derived,
    cfg: &CompileConfig,
    out: &mut Vec<(&'a str, FlowSpec)>,
) {
    let Some(sw) = m.switches.get(&s) else { return };
    let c = cookie_of(&sw.source);
    let here = d.switch_nodes.get(&s).unwrap_or(&NO_NODES);
    // Tunnel entry: packets for this switch's ports resume at the egress
    // ACL (the sender ran ingress, lookup and routing).
    for n in here {
        out.push((n.as_str(), tunnel_entry(s, table::OUT_ACL, c, cfg)));
    }
    // The gateway: ARP responder and L2 lookup into the router, on the
    // nodes where pods of the switch send.
    let rp = match m.ports.get(&sw.router_port).map(|p| &p.kind) {
        Some(PortKind::Router {
            router,
            router_port,
        }) => m.routers.get(router).and_then(|r| {
            r.ports
                .iter()
                .find(|p| p.id == *router_port)
                .map(|p| (r, p))
        }),
        _ => None,
    };
    let Some((r, rp)) = rp else { return };
    for n in here {
        let mut push = |f: FlowSpec| out.push((n.as_str(), f));
        if let Some(f) = arp_responder(s, rp.ip, rp.mac, c) {
            push(f);
        }
        push(
            FlowBuilder::new(table::L2_LOOKUP, prio::L2, c)
                .dp(s.0)
                .m(Field::DlDst, mac(rp.mac))
                .set(Field::Metadata, u128::from(r.id.0))
                .set(Field::Reg(reg::INPORT), u128::from(rp.id.0))
                .set(Field::Reg(reg::OUTPORT), 0)
                .goto(table::IP_ROUTING)
                .build(),
        );
    }
}

fn router<'a>(
    r: DatapathId,
    m: &'a LogicalModel,
    d: &'a Derived,
    cfg: &CompileConfig,
    out: &mut Vec<(&'a str, FlowSpec)>,
) {
    let Some(rt) = m.routers.get(&r) else { return };
    let nodes = d.tenant(&rt.tenant).unwrap_or(&NO_NODES);
    let tenant_cookie = m.tenants.get(&rt.tenant).map_or_else(
        || cookie_of(&SourceRef::cluster(SourceKind::Tenant, &rt.tenant)),
        |t| cookie_of(&t.source),
    );
    for n in nodes {
        let mut push = |f: FlowSpec| out.push((n.as_str(), f));
        // Routing: longest prefix wins (priority = 2 x prefix length + 1).
        for route in &rt.routes {
            let Some(rp) = rt.ports.iter().find(|p| p.id == route.port) else {
                continue;
            };
            let plen = u16::from(route.prefix.prefix_len());
            push(
                FlowBuilder::new(
                    table::IP_ROUTING,
                    prio::ROUTE_BASE + 2 * plen + 1,
                    cookie_of(&route.source),
                )
                .dp(r.0)
                .prefix(true, &route.prefix)
                .a(Action::DecTtl)
                .set(Field::Reg(reg::OUTPORT), u128::from(rp.id.0))
                .set(Field::DlSrc, mac(rp.mac))
                .goto(table::ARP_RESOLVE)
                .build(),
            );
        }
        // Delivery: into the switch here, or to the node that owns it.
        for rp in &rt.ports {
            let Some(sw) = m.switches.get(&rp.switch) else {
                continue;
            };
            let c = cookie_of(&sw.source);
            let b = FlowBuilder::new(table::DELIVERY, prio::L2, c)
                .dp(r.0)
                .m(Field::Reg(reg::OUTPORT), u128::from(rp.id.0));
            let f = match &sw.node {
                Some(owner) if owner != n => {
                    // The owner resolves the neighbour: skip ARP resolve here.
                    push(
                        FlowBuilder::new(table::ARP_RESOLVE, prio::REMOTE_RESOLVE, c)
                            .dp(r.0)
                            .m(Field::Reg(reg::OUTPORT), u128::from(rp.id.0))
                            .goto(table::DELIVERY)
                            .build(),
                    );
                    let Some(ip) = m.nodes.get(owner).map(|x| x.underlay_ip) else {
                        continue;
                    };
                    set_tunnel(b, r, ip, cfg).build()
                }
                _ => b
                    .set(Field::Metadata, u128::from(sw.id.0))
                    .set(Field::Reg(reg::INPORT), u128::from(sw.router_port.0))
                    .set(Field::Reg(reg::OUTPORT), 0)
                    .resubmit(table::L2_LOOKUP)
                    .build(),
            };
            push(f);
        }
        // Router tunnel entry: another node routed a packet to a switch
        // owned by this node; resume at ARP resolve.
        if rt.ports.iter().any(|rp| {
            m.switches
                .get(&rp.switch)
                .is_some_and(|s| s.node.as_deref() == Some(n.as_str()))
        }) {
            push(tunnel_entry(r, table::ARP_RESOLVE, tenant_cookie, cfg));
        }
    }
}

/// Flow priority of an ACL flow: tiers are bands (lower tier = higher
/// band), priority inside the band doubled so that plain flows sit one
/// above the conjunction clauses of the same ACL priority (OVS considers
/// conjunctive flows only above the best plain match).
pub fn acl_priority(acl: &Acl, plain: bool) -> u16 {
    let base = match acl.tier {
        AclTier::Infrastructure => prio::ACL_TIER0,
        AclTier::NetworkPolicy => prio::ACL_TIER1,
    };
    base + 2 * acl.priority.min(prio::ACL_MAX) + u16::from(plain)
}

/// The stage and registers of an ACL's direction.
pub fn acl_stage(dir: AclDirection) -> (TableId, TableId, u8, bool) {
    match dir {
        // (table, next, port register, peer is destination)
        AclDirection::FromLport => (table::IN_ACL, table::ARP_RSP, reg::INPORT, true),
        AclDirection::ToLport => (table::OUT_ACL, table::OUT_PORT_SEC_L2, reg::OUTPORT, false),
    }
}

/// The action list of an ACL verdict.
pub fn acl_actions(a: AclAction, next: TableId) -> Vec<Action> {
    match a {
        AclAction::Allow => vec![Action::GotoTable(next)],
        AclAction::Drop | AclAction::Reject => Vec::new(),
    }
}

/// Traffic clause matches of one ACL (one builder per flow), for the
/// address families in use.
pub(crate) fn traffic_flows(t: &Traffic, dual: bool, base: &FlowBuilder) -> Vec<FlowBuilder> {
    let mut v = Vec::new();
    match t {
        Traffic::Arp => v.push(base.clone().arp()),
        Traffic::NeighborDiscovery => {
            for ty in 133..=137u128 {
                v.push(
                    base.clone()
                        .ipv6()
                        .m(Field::NwProto, flow::IPPROTO_ICMPV6)
                        .m(Field::IcmpType, ty),
                );
            }
        }
        Traffic::Icmp { v6, icmp_type } => {
            if !v6 {
                v.push(
                    base.clone()
                        .ip()
                        .m(Field::NwProto, flow::IPPROTO_ICMP)
                        .m(Field::IcmpType, u128::from(*icmp_type)),
                );
            } else if dual {
                v.push(
                    base.clone()
                        .ipv6()
                        .m(Field::NwProto, flow::IPPROTO_ICMPV6)
                        .m(Field::IcmpType, u128::from(*icmp_type)),
                );
            }
        }
        Traffic::L4 {
            protocol,
            dst_ports,
            src_ports,
            tcp_ack,
        } => {
            let proto = match protocol {
                L4Protocol::Tcp => flow::IPPROTO_TCP,
                L4Protocol::Udp => flow::IPPROTO_UDP,
                L4Protocol::Sctp => flow::IPPROTO_SCTP,
            };
            let dst = dst_ports.map_or_else(|| vec![(0u16, 0u16)], |r| r.to_masks());
            let src = src_ports.map_or_else(|| vec![(0u16, 0u16)], |r| r.to_masks());
            let fams: &[bool] = if dual { &[false, true] } else { &[false] };
            for &v6fam in fams {
                for &(dv, dm) in &dst {
                    for &(sv, sm) in &src {
                        let mut b = if v6fam {
                            base.clone().ipv6()
                        } else {
                            base.clone().ip()
                        };
                        b = b.m(Field::NwProto, u128::from(proto));
                        if dm != 0 {
                            b = b.masked(Field::TpDst, u128::from(dv), u128::from(dm));
                        }
                        if sm != 0 {
                            b = b.masked(Field::TpSrc, u128::from(sv), u128::from(sm));
                        }
                        if *tcp_ack && *protocol == L4Protocol::Tcp {
                            b = b.masked(Field::TcpFlags, 0x010, 0x010);
                        }
                        v.push(b);
                    }
                }
            }
        }
    }
    v
}
