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

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use protocol::flow::{Action, Field, FlowSpec};

use super::cookie::cookie_of;
use super::flow::{FlowBuilder, v4};
use super::units::{Derived, acl_actions, acl_priority, acl_stage, traffic_flows};
use crate::model::{Acl, AclDirection, AppliesTo, LogicalModel, LogicalPortId, Traffic};

/// Appends the flows of `acl` as (node, flow).
pub(crate) fn compile_acl<'a>(
    acl: &Acl,
    m: &'a LogicalModel,
    d: &Derived,
    out: &mut Vec<(&'a str, FlowSpec)>,
) {
    let (tbl, next, port_reg, peer_is_dst) = acl_stage(acl.direction);
    let cookie = cookie_of(&acl.source);
    // Ports by node.
    let mut by_node: BTreeMap<&str, Vec<LogicalPortId>> = BTreeMap::new();
    let port_dim = match acl.matches.applies_to {
        AppliesTo::AllPods => {
            for p in m.pod_ports() {
                if let Some(n) = &p.node {
                    by_node.entry(n.as_str()).or_default();
                }
            }
            false
        }
        AppliesTo::Group(g) => {
            let Some(pg) = m.port_groups.get(&g) else {
                return;
            };
            for id in &pg.ports {
                if let Some(n) = m.ports.get(id).and_then(|p| p.node.as_deref()) {
                    by_node.entry(n).or_default().push(*id);
                }
            }
            true
        }
    };
    if by_node.is_empty() {
        return;
    }
    // Peer prefixes.
    let peer: Option<&BTreeSet<IpNet>> = match acl.matches.peer {
        None => None,
        Some(s) => match m.address_sets.get(&s) {
            Some(set) if !set.addresses.is_empty() => Some(&set.addresses),
            _ => return,
        },
    };
    let traffic = &acl.matches.traffic;
    let covers_arp = traffic.is_empty() || traffic.contains(&Traffic::Arp);
    let n_dims = u8::from(port_dim) + u8::from(peer.is_some()) + u8::from(!traffic.is_empty());
    let plain = n_dims < 2;
    let priority = acl_priority(acl, plain);
    let verdict = acl_actions(acl.action, next);
    let base = FlowBuilder::new(tbl, priority, cookie);

    let peer_flows = |b: &FlowBuilder| -> Vec<FlowBuilder> {
        let mut v = Vec::new();
        for net in peer.into_iter().flatten() {
            v.push(b.clone().prefix(peer_is_dst, net));
            if covers_arp && let IpNet::V4(n) = net {
                let f = if peer_is_dst {
                    Field::ArpTpa
                } else {
                    Field::ArpSpa
                };
                v.push(b.clone().arp().masked(f, v4(n.network()), v4(n.netmask())));
            }
        }
        v
    };
    let traffic_all = |b: &FlowBuilder| -> Vec<FlowBuilder> {
        traffic
            .iter()
            .flat_map(|t| traffic_flows(t, d.dual_stack, b))
            .collect()
    };

    for (node, ports) in &by_node {
        let mut push = |f: FlowSpec| out.push((*node, f));
        let port_flows = |b: &FlowBuilder| -> Vec<FlowBuilder> {
            ports
                .iter()
                .map(|p| b.clone().m(Field::Reg(port_reg), u128::from(p.0)))
                .collect()
        };
        if plain {
            let flows = if port_dim {
                port_flows(&base)
            } else if peer.is_some() {
                peer_flows(&base)
            } else if !traffic.is_empty() {
                traffic_all(&base)
            } else {
                vec![base.clone()]
            };
            for b in flows {
                let mut f = b.build();
                f.actions = verdict.clone();
                push(f);
            }
            continue;
        }
        let mut dims: Vec<Vec<FlowBuilder>> = Vec::new();
        if port_dim {
            dims.push(port_flows(&base));
        }
        if peer.is_some() {
            dims.push(peer_flows(&base));
        }
        if !traffic.is_empty() {
            dims.push(traffic_all(&base));
        }
        for (i, flows) in dims.into_iter().enumerate() {
            let clause = i as u8 + 1;
            for b in flows {
                push(
                    b.a(Action::Conjunction {
                        id: acl.id.0,
                        clause,
                        n_clauses: n_dims,
                    })
                    .build(),
                );
            }
        }
        let mut f = base.clone().m(Field::ConjId, u128::from(acl.id.0)).build();
        f.actions = verdict.clone();
        push(f);
    }
}

/// Which stage an ACL direction runs in (for explanations).
pub fn stage_name(dir: AclDirection) -> &'static str {
    match dir {
        AclDirection::FromLport => "ingress ACL (from-lport: Kubernetes egress)",
        AclDirection::ToLport => "egress ACL (to-lport: Kubernetes ingress)",
    }
}
