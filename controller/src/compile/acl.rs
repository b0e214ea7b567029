//! ACLs to flows: the product "ports x peer prefixes x traffic clauses" of
//! one ACL becomes a conjunctive match (`conjunction(id,k/n)` clause flows
//! plus one `conj_id=id` flow carrying the verdict), so the flow count of an
//! ACL is the *sum* of its three set sizes, not their product (OVN and
//! Antrea do the same). With only one constrained dimension the flows are
//! plain (one per value); with none, one flow.
//!
//! Clause numbering: the port dimension (`reg14`/`reg15` = a port the ACL
//! applies to) is clause 1 when present, then the peer (`nw_src` for a
//! to-lport ACL, `nw_dst` for from-lport; `arp_spa`/`arp_tpa` too when the
//! ACL covers ARP), then the traffic clauses. The conjunction id is the
//! ACL id. An empty port group or an empty peer address set matches
//! nothing, so such an ACL compiles to no flow at all.
//!
//! Per node: the port clauses of the ports on that node; the peer and
//! traffic clauses and the `conj_id` flow on every node that has at least
//! one of the ACL's ports (only there does the stage see those ports).
//!
//! # Units
//!
//! An ACL's flows come from three kinds of compile units (OVN's address-set
//! and port-group incremental processing, `ovn-controller`'s
//! `lflow_handle_addr_set_update`): the ACL itself ([`AclCtx::base`]: the
//! traffic clauses and the `conj_id` flow, or its only flow when no set
//! dimension is constrained), one unit per **peer address**
//! ([`AclCtx::peer`]: that prefix's clause flows on every node of the ACL)
//! and one per **member port** ([`AclCtx::port`]: its clause on its node).
//! A pod joining or leaving an address set or a port group therefore
//! changes the member units of its address or port only, a handful of
//! flows, instead of the whole ACL. All of them read the same context
//! ([`AclCtx`]: the ACL, the nodes it is on, whether its sets are empty,
//! the address families); when that context changes every unit of the ACL
//! is recomputed, and only flows that really differ are replaced.

use std::collections::BTreeSet;

use ipnet::IpNet;
use protocol::flow::{Action, Field, FlowSpec, TableId};

use super::assemble::Part;
use super::cookie::cookie_of;
use super::flow::{FlowBuilder, v4};
use super::units::{Derived, acl_actions, acl_priority, acl_stage, traffic_flows};
use crate::model::{Acl, AclDirection, AclId, AppliesTo, LogicalModel, LogicalPortId, Traffic};

/// What every unit of one ACL reads from the model: computed once per ACL
/// and model, then asked for the flows of the ACL itself, of one peer
/// prefix or of one member port.
#[derive(Debug, Clone)]
pub(crate) struct AclCtx<'a> {
    acl: &'a Acl,
    /// Nodes with at least one port the ACL applies to (sorted).
    nodes: Vec<&'a str>,
    /// Member ports with their node, sorted by port, for a port-group ACL
    /// (a vector: built in group order, no tree inserts).
    ports: Vec<(LogicalPortId, &'a str)>,
    port_dim: bool,
    /// The peer prefixes (None = any peer); never empty.
    peer: Option<&'a BTreeSet<IpNet>>,
    dual: bool,
    n_dims: u8,
    plain: bool,
    covers_arp: bool,
    port_reg: u8,
    peer_is_dst: bool,
    verdict: Vec<Action>,
    base: FlowBuilder,
}

/// The table, priority and direction of an ACL's peer clause flows: with
/// the prefix (and whether it is the ARP flow), their slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PeerClass {
    table: TableId,
    priority: u16,
    peer_is_dst: bool,
}

/// What decides every flow of an ACL besides its member sets: two models
/// with equal keys give equal flows for every member both have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CtxKey<'a> {
    acl: &'a Acl,
    nodes: Vec<&'a str>,
    dual: bool,
    peer_any: bool,
}

impl<'a> AclCtx<'a> {
    /// The context of `acl` in `m`; None when the ACL compiles to no flow
    /// (no port on any node, an empty peer set, a missing group or set).
    pub(crate) fn of(acl: &'a Acl, m: &'a LogicalModel, d: &'a Derived) -> Option<AclCtx<'a>> {
        let mut ports = Vec::new();
        let (nodes, port_dim): (Vec<&str>, bool) = match acl.matches.applies_to {
            AppliesTo::AllPods => (d.pod_nodes.iter().map(String::as_str).collect(), false),
            AppliesTo::Group(g) => {
                let pg = m.port_groups.get(&g)?;
                let mut nodes = BTreeSet::new();
                let mut last = None;
                for id in &pg.ports {
                    if let Some(n) = m.ports.get(id).and_then(|p| p.node.as_deref()) {
                        // Ports of one node are mostly adjacent: skip the
                        // set insert (a string search) for a repeat.
                        if last != Some(n) {
                            nodes.insert(n);
                            last = Some(n);
                        }
                        ports.push((*id, n));
                    }
                }
                (nodes.into_iter().collect(), true)
            }
        };
        Self::with(acl, m, d, nodes, ports, port_dim)
    }

    /// The context of `acl` in `m` given its nodes (as [`of`](Self::of)
    /// finds them from the port group, which costs a port lookup per
    /// member): good for the ACL's own and peer flows only, as it knows no
    /// member port ([`port`](Self::port) and
    /// [`member_ports`](Self::member_ports) see none).
    pub(crate) fn with_nodes(
        acl: &'a Acl,
        m: &'a LogicalModel,
        d: &'a Derived,
        nodes: Vec<&'a str>,
    ) -> Option<AclCtx<'a>> {
        let port_dim = matches!(acl.matches.applies_to, AppliesTo::Group(_));
        Self::with(acl, m, d, nodes, Vec::new(), port_dim)
    }

    fn with(
        acl: &'a Acl,
        m: &'a LogicalModel,
        d: &'a Derived,
        nodes: Vec<&'a str>,
        ports: Vec<(LogicalPortId, &'a str)>,
        port_dim: bool,
    ) -> Option<AclCtx<'a>> {
        let (tbl, next, port_reg, peer_is_dst) = acl_stage(acl.direction);
        if nodes.is_empty() {
            return None;
        }
        let peer: Option<&BTreeSet<IpNet>> = match acl.matches.peer {
            None => None,
            Some(s) => match m.address_sets.get(&s) {
                Some(set) if !set.addresses.is_empty() => Some(&set.addresses),
                _ => return None,
            },
        };
        let traffic = &acl.matches.traffic;
        let covers_arp = traffic.is_empty() || traffic.contains(&Traffic::Arp);
        let n_dims = u8::from(port_dim) + u8::from(peer.is_some()) + u8::from(!traffic.is_empty());
        let plain = n_dims < 2;
        let priority = acl_priority(acl, plain);
        Some(AclCtx {
            acl,
            nodes,
            ports,
            port_dim,
            peer,
            dual: d.dual_stack,
            n_dims,
            plain,
            covers_arp,
            port_reg,
            peer_is_dst,
            verdict: acl_actions(acl.action, next),
            base: FlowBuilder::new(tbl, priority, cookie_of(&acl.source)),
        })
    }

    /// The comparison key (see [`CtxKey`]).
    pub(crate) fn key(&self) -> CtxKey<'a> {
        CtxKey {
            acl: self.acl,
            nodes: self.nodes.clone(),
            dual: self.dual,
            peer_any: self.peer.is_none(),
        }
    }

    /// True if `other` differs from this context at most in its nodes
    /// (then every member's flows on a node of both are the same).
    pub(crate) fn same_but_nodes(&self, other: &AclCtx<'_>) -> bool {
        self.acl == other.acl
            && self.dual == other.dual
            && self.peer.is_none() == other.peer.is_none()
    }

    /// The ports the ACL applies to.
    pub(crate) fn applies_to(&self) -> AppliesTo {
        self.acl.matches.applies_to
    }

    /// The nodes of the ACL (sorted).
    pub(crate) fn nodes(&self) -> &[&'a str] {
        &self.nodes
    }

    /// The peer prefixes (empty when any peer matches).
    pub(crate) fn peers(&self) -> impl Iterator<Item = &'a IpNet> + 'a {
        self.peer.into_iter().flatten()
    }

    /// The peer prefixes (None when any peer matches).
    pub(crate) fn peer_set(&self) -> Option<&'a BTreeSet<IpNet>> {
        self.peer
    }

    /// The member ports with a node (empty unless a port-group ACL).
    pub(crate) fn member_ports(&self) -> impl Iterator<Item = (LogicalPortId, &'a str)> + '_ {
        self.ports.iter().map(|(p, n)| (*p, *n))
    }

    /// The node of member port `p`.
    pub(crate) fn port_node(&self, p: LogicalPortId) -> Option<&'a str> {
        self.ports
            .binary_search_by_key(&p, |(q, _)| *q)
            .ok()
            .and_then(|i| self.ports.get(i))
            .map(|(_, n)| *n)
    }

    /// A finished flow: a conjunction clause, or the verdict when plain.
    fn finish(&self, b: FlowBuilder, clause: u8) -> FlowSpec {
        if self.plain {
            let mut f = b.build();
            f.actions = self.verdict.clone();
            f
        } else {
            b.a(Action::Conjunction {
                id: self.acl.id.0,
                clause,
                n_clauses: self.n_dims,
            })
            .build()
        }
    }

    /// The ACL's own flows: traffic clauses and the `conj_id` flow, or the
    /// plain traffic flows / the single flow when no set is constrained.
    pub(crate) fn base(&self, out: &mut Vec<(&'a str, FlowSpec)>) {
        let traffic = &self.acl.matches.traffic;
        let member_dim = self.port_dim || self.peer.is_some();
        if self.plain && member_dim {
            return; // the member units carry the verdict
        }
        let clause = u8::from(self.port_dim) + u8::from(self.peer.is_some()) + 1;
        let flows: Vec<FlowSpec> = if traffic.is_empty() {
            if self.plain {
                let mut f = self.base.clone().build();
                f.actions = self.verdict.clone();
                vec![f]
            } else {
                Vec::new()
            }
        } else {
            traffic
                .iter()
                .flat_map(|t| traffic_flows(t, self.dual, &self.base))
                .map(|b| self.finish(b, clause))
                .collect()
        };
        for n in &self.nodes {
            for f in &flows {
                out.push((*n, f.clone()));
            }
            if !self.plain {
                let mut f = self
                    .base
                    .clone()
                    .m(Field::ConjId, u128::from(self.acl.id.0))
                    .build();
                f.actions = self.verdict.clone();
                out.push((*n, f));
            }
        }
    }

    /// The ACL's id.
    pub(crate) fn id(&self) -> AclId {
        self.acl.id
    }

    /// The slots of peer prefix `net`'s clause flows, as (class, `arp`):
    /// the IP flow, and the ARP flow when the ACL covers ARP and `net` is
    /// IPv4. Two ACLs with equal [`PeerClass`]es put the clause flows of one
    /// prefix in the same slots (their flows differ only in cookie and
    /// actions, see [`peer_part`](Self::peer_part)).
    pub(crate) fn peer_flows_of(&self, net: &IpNet) -> impl Iterator<Item = bool> {
        let arp = self.covers_arp && matches!(net, IpNet::V4(_));
        [false, true].into_iter().take(1 + usize::from(arp))
    }

    /// What decides the slot of a peer clause flow besides the prefix.
    pub(crate) fn peer_class(&self) -> PeerClass {
        PeerClass {
            table: self.base.table(),
            priority: self.base.priority(),
            peer_is_dst: self.peer_is_dst,
        }
    }

    /// The clause flow of peer prefix `net` (the ARP one when `arp`),
    /// without checking that `net` is a peer.
    pub(crate) fn peer_flow(&self, net: &IpNet, arp: bool) -> FlowSpec {
        let clause = u8::from(self.port_dim) + 1;
        match net {
            IpNet::V4(n) if arp => {
                let f = if self.peer_is_dst {
                    Field::ArpTpa
                } else {
                    Field::ArpSpa
                };
                self.finish(
                    self.base
                        .clone()
                        .arp()
                        .masked(f, v4(n.network()), v4(n.netmask())),
                    clause,
                )
            }
            _ => self.finish(self.base.clone().prefix(self.peer_is_dst, net), clause),
        }
    }

    /// This ACL's part (cookie and actions) of every peer clause flow.
    pub(crate) fn peer_part(&self) -> Part {
        let clause = u8::from(self.port_dim) + 1;
        let f = self.finish(FlowBuilder::new(TableId(0), 0, self.base.cookie()), clause);
        Part::new(f.cookie, &f.actions)
    }

    /// The clause flow of port `p` (the slot of every ACL with the same
    /// [`PeerClass`]: the port register, from the direction, is part of
    /// it), without checking that `p` is a member.
    pub(crate) fn port_flow(&self, p: LogicalPortId) -> FlowSpec {
        let b = self
            .base
            .clone()
            .m(Field::Reg(self.port_reg), u128::from(p.0));
        self.finish(b, 1)
    }

    /// This ACL's part (cookie and actions) of every member port clause
    /// flow.
    pub(crate) fn port_part(&self) -> Part {
        let f = self.finish(FlowBuilder::new(TableId(0), 0, self.base.cookie()), 1);
        Part::new(f.cookie, &f.actions)
    }

    /// The clause flows of peer prefix `net` (nothing unless it is one of
    /// the ACL's peers), on every node of the ACL.
    pub(crate) fn peer(&self, net: &IpNet, out: &mut Vec<(&'a str, FlowSpec)>) {
        self.peer_on(net, &self.nodes, out);
    }

    /// [`peer`](Self::peer) on `nodes` only (nodes of the ACL or not: the
    /// caller picks).
    pub(crate) fn peer_on<'n>(
        &self,
        net: &IpNet,
        nodes: &[&'n str],
        out: &mut Vec<(&'n str, FlowSpec)>,
    ) {
        if self.peer.is_some_and(|p| p.contains(net)) {
            self.peer_flows_on(net, nodes, out);
        }
    }

    /// The clause flows prefix `net` has as a peer of this ACL, on `nodes`,
    /// whether or not `net` is one of its peers now (for a prefix that
    /// left the ACL's address set: the flows to remove, which depend on
    /// the context only, not on the set's other members).
    pub(crate) fn peer_flows_on<'n>(
        &self,
        net: &IpNet,
        nodes: &[&'n str],
        out: &mut Vec<(&'n str, FlowSpec)>,
    ) {
        if nodes.is_empty() {
            return; // a node gained, none lost: nothing to build
        }
        let flows: Vec<FlowSpec> = self
            .peer_flows_of(net)
            .map(|arp| self.peer_flow(net, arp))
            .collect();
        for n in nodes {
            for f in &flows {
                out.push((*n, f.clone()));
            }
        }
    }

    /// The clause flow of member port `p` on its node (nothing unless `p`
    /// is a member with a node).
    pub(crate) fn port(&self, p: LogicalPortId, out: &mut Vec<(&'a str, FlowSpec)>) {
        let Some(node) = self.port_node(p) else {
            return;
        };
        out.push((node, self.port_flow(p)));
    }
}

/// Which stage an ACL direction runs in (for explanations).
pub fn stage_name(dir: AclDirection) -> &'static str {
    match dir {
        AclDirection::FromLport => "ingress ACL (from-lport: Kubernetes egress)",
        AclDirection::ToLport => "egress ACL (to-lport: Kubernetes ingress)",
    }
}
