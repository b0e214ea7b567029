//! The logical network model: what the cluster network *is*, with no
//! Kubernetes types inside (OVN's northbound database, typed and in memory).
//!
//! The translation (`crate::translate`) builds it from Kubernetes objects; the
//! compiler turns it into one flow table per node. A model is a plain value:
//! built in one go, never mutated in place by the loader, compared with `==`,
//! and fully deterministic (same objects, same model: all maps are
//! `BTreeMap`s, all lists sorted, ids derived from names, see [`ids`]).
//!
//! | object | key | what |
//! |---|---|---|
//! | [`Tenant`] | name | isolated address space (VPC), its router and switches |
//! | [`Node`] | name | a switchd: underlay IP (tunnel endpoint), podCIDRs |
//! | [`LogicalSwitch`] | [`DatapathId`] | subnet, gateway, pod ports, router peer port |
//! | [`LogicalRouter`] | [`DatapathId`] | one per tenant: router ports, routes |
//! | [`LogicalPort`] | [`LogicalPortId`] | pod port (MAC, IPs, node, port security) or router peer |
//! | [`Acl`] | [`AclId`] | direction, tier, priority, action, typed match, source rule |
//! | [`AddressSet`] | [`AddressSetId`] | IP prefixes an ACL matches as its peer |
//! | [`PortGroup`] | [`PortGroupId`] | ports an ACL is attached to |
//! | [`LoadBalancer`] | name | VIP:port -> backends (modelled, not yet compiled) |
//!
//! Invariants (checked by [`LogicalModel::validate`], which the translation
//! runs before returning): every id referenced exists; every pod port is on a
//! switch of its own tenant and on a node of the model; no two ports of one
//! tenant share an IP; a tenant's switches and router exist; router ports and
//! their switch peers point at each other.

pub mod acl;
pub mod delta;
pub mod ids;
pub mod network;
pub mod source;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

pub use acl::{
    Acl, AclAction, AclDirection, AclMatch, AclTier, AddressSet, AddressSetOrigin, AppliesTo,
    ICMP_RETURN, IpBlock, PortGroup, PortRange, Traffic,
};
pub use delta::{ModelDelta, SetMembers};
pub use ids::{
    AclId, AddressSetId, DatapathId, IdAllocator, IdSpaceFull, LogicalPortId, PortGroupId,
};
pub use network::{
    Backend, L4Protocol, LoadBalancer, LogicalPort, LogicalRouter, LogicalSwitch, Node, PortKind,
    PortSecurity, Route, RouteKind, RouterPort, Tenant,
};
pub use source::{RuleDirection, RulePart, RuleRef, SourceKind, SourceRef};

/// The whole logical network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogicalModel {
    /// Tenants by name.
    pub tenants: BTreeMap<String, Tenant>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Logical switches.
    pub switches: BTreeMap<DatapathId, LogicalSwitch>,
    /// Logical routers.
    pub routers: BTreeMap<DatapathId, LogicalRouter>,
    /// Logical switch ports (pods and router peers). Router-side ports are in
    /// [`LogicalRouter::ports`].
    pub ports: BTreeMap<LogicalPortId, LogicalPort>,
    /// ACLs.
    pub acls: BTreeMap<AclId, Acl>,
    /// Address sets.
    pub address_sets: BTreeMap<AddressSetId, AddressSet>,
    /// Port groups.
    pub port_groups: BTreeMap<PortGroupId, PortGroup>,
    /// Load balancers by name.
    pub load_balancers: BTreeMap<String, LoadBalancer>,
}

/// A broken model invariant (a translation bug, or a hand-built model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("logical model invariant broken: {0}")]
pub struct ModelError(pub String);

impl LogicalModel {
    /// The pod port of `namespace/pod`.
    pub fn pod_port(&self, namespace: &str, pod: &str) -> Option<&LogicalPort> {
        self.ports.values().find(|p| {
            matches!(&p.kind, PortKind::Pod { namespace: n, pod: q } if n == namespace && q == pod)
        })
    }

    /// Pod ports (router peers excluded).
    pub fn pod_ports(&self) -> impl Iterator<Item = &LogicalPort> {
        self.ports
            .values()
            .filter(|p| matches!(p.kind, PortKind::Pod { .. }))
    }

    /// Pod ports on `node`.
    pub fn ports_on_node<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a LogicalPort> {
        self.pod_ports()
            .filter(move |p| p.node.as_deref() == Some(node))
    }

    /// The ports an ACL is attached to.
    pub fn acl_ports(&self, acl: &Acl) -> Vec<LogicalPortId> {
        match acl.matches.applies_to {
            AppliesTo::AllPods => self.pod_ports().map(|p| p.id).collect(),
            AppliesTo::Group(g) => self
                .port_groups
                .get(&g)
                .map(|g| g.ports.iter().copied().collect())
                .unwrap_or_default(),
        }
    }

    /// The router port (router side) with this id, and its router.
    pub fn router_port(&self, id: LogicalPortId) -> Option<(&LogicalRouter, &RouterPort)> {
        self.routers
            .values()
            .find_map(|r| r.ports.iter().find(|p| p.id == id).map(|p| (r, p)))
    }

    /// The tenant of a namespace (every namespace of the model has one).
    pub fn tenant_of_namespace(&self, namespace: &str) -> Option<&Tenant> {
        self.tenants
            .values()
            .find(|t| t.namespaces.contains(namespace))
    }

    /// Checks the invariants listed in the module doc.
    pub fn validate(&self) -> Result<(), ModelError> {
        let err = |s: String| Err(ModelError(s));
        for t in self.tenants.values() {
            if !self.routers.contains_key(&t.router) {
                return err(format!(
                    "tenant {} names missing router {}",
                    t.name, t.router
                ));
            }
            for s in &t.switches {
                if !self.switches.contains_key(s) {
                    return err(format!("tenant {} names missing switch {s}", t.name));
                }
            }
        }
        for r in self.routers.values() {
            for rp in &r.ports {
                match self.ports.get(&rp.peer) {
                    Some(LogicalPort {
                        kind: PortKind::Router { router_port, .. },
                        switch,
                        ..
                    }) if *router_port == rp.id && *switch == rp.switch => {}
                    _ => {
                        return err(format!(
                            "router port {} has no matching peer {}",
                            rp.name, rp.peer
                        ));
                    }
                }
                if self.ports.contains_key(&rp.id) {
                    return err(format!(
                        "router port id {} also used by a switch port",
                        rp.id
                    ));
                }
            }
            for route in &r.routes {
                if !r.ports.iter().any(|p| p.id == route.port) {
                    return err(format!(
                        "route {} of {} uses unknown port {}",
                        route.prefix, r.name, route.port
                    ));
                }
            }
        }
        let mut ips: BTreeMap<(&str, IpAddr), &str> = BTreeMap::new();
        for p in self.ports.values() {
            let Some(sw) = self.switches.get(&p.switch) else {
                return err(format!("port {} on missing switch {}", p.name, p.switch));
            };
            if sw.tenant != p.tenant {
                return err(format!(
                    "port {} of tenant {} on switch {} of {}",
                    p.name, p.tenant, sw.name, sw.tenant
                ));
            }
            if let Some(n) = &p.node
                && !self.nodes.contains_key(n)
            {
                return err(format!("port {} on unknown node {n}", p.name));
            }
            for ip in &p.ips {
                if let Some(other) = ips.insert((p.tenant.as_str(), *ip), p.name.as_str()) {
                    return err(format!(
                        "ports {other} and {} of tenant {} share {ip}",
                        p.name, p.tenant
                    ));
                }
            }
        }
        for a in self.acls.values() {
            if let AppliesTo::Group(g) = a.matches.applies_to
                && !self.port_groups.contains_key(&g)
            {
                return err(format!("acl {} uses missing port group {g}", a.name));
            }
            if let Some(s) = a.matches.peer
                && !self.address_sets.contains_key(&s)
            {
                return err(format!("acl {} uses missing address set {s}", a.name));
            }
        }
        for g in self.port_groups.values() {
            if let Some(p) = g.ports.iter().find(|p| !self.ports.contains_key(p)) {
                return err(format!("port group {} has missing port {p}", g.name));
            }
        }
        Ok(())
    }
}
