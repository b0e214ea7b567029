//! What changed between two logical models, by key: the input of
//! [`Compiler::update_with`](crate::compile::Compiler::update_with), which
//! then costs O(change) instead of O(model).
//!
//! A [`ModelDelta`] names every object whose value differs between the
//! old and the new model (or that exists in only one of them). It may name
//! more (an object that did not really change only costs the comparison of
//! its units); it must not name fewer: an object changed but not named
//! keeps its old flows. Whoever builds the new model knows what it touched
//! (the translation of one pod touches its port, its switch's port list and
//! the address sets and port groups whose selectors match it); when nobody
//! does, [`ModelDelta::between`] compares the two models (O(model), what
//! [`Compiler::update`](crate::compile::Compiler::update) does).
//!
//! Load balancers are not compiled yet and are not part of the delta.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use ipnet::IpNet;

use super::{AclId, AddressSetId, DatapathId, LogicalModel, LogicalPortId, PortGroupId};

/// The keys of the objects that differ between two models.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelDelta {
    /// Tenants.
    pub tenants: BTreeSet<String>,
    /// Nodes.
    pub nodes: BTreeSet<String>,
    /// Logical switches (a pod added or removed changes its switch's port
    /// list).
    pub switches: BTreeSet<DatapathId>,
    /// Logical routers.
    pub routers: BTreeSet<DatapathId>,
    /// Logical ports (pods and router peers).
    pub ports: BTreeSet<LogicalPortId>,
    /// ACLs.
    pub acls: BTreeSet<AclId>,
    /// Address sets.
    pub address_sets: BTreeSet<AddressSetId>,
    /// Port groups.
    pub port_groups: BTreeSet<PortGroupId>,
    /// Optional detail of `address_sets`: for a set (named there) present
    /// in both models, the prefixes that left and joined it. Whoever built
    /// the change knows them (the addresses of the pods that joined or left
    /// a selector); given, they must be exact, and the compiler then neither
    /// compares nor walks the set (O(set size) each, ~1,000 addresses per
    /// set and ~100 sets per pod on the fixture). A set without an
    /// entry is compared.
    pub set_members: BTreeMap<AddressSetId, SetMembers>,
}

/// The members that left and joined one address set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetMembers {
    /// Prefixes in the old set only.
    pub gone: Vec<IpNet>,
    /// Prefixes in the new set only.
    pub joined: Vec<IpNet>,
}

impl SetMembers {
    /// The members that differ between `a` and `b`.
    pub fn between(a: &BTreeSet<IpNet>, b: &BTreeSet<IpNet>) -> SetMembers {
        let mut d = SetMembers::default();
        for n in a.symmetric_difference(b) {
            if b.contains(n) {
                d.joined.push(*n);
            } else {
                d.gone.push(*n);
            }
        }
        d
    }

    /// True if the set did not change.
    pub fn is_empty(&self) -> bool {
        self.gone.is_empty() && self.joined.is_empty()
    }
}

/// The keys of `a` and `b` whose values differ or that only one has.
fn changed_keys<K: Ord + Clone, V: PartialEq>(
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
) -> BTreeSet<K> {
    let mut out = BTreeSet::new();
    for (k, va) in a {
        if b.get(k) != Some(va) {
            out.insert(k.clone());
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.insert(k.clone());
        }
    }
    out
}

impl ModelDelta {
    /// Everything that differs between `a` and `b` (compares every object:
    /// O(model)).
    pub fn between(a: &LogicalModel, b: &LogicalModel) -> ModelDelta {
        let address_sets = changed_keys(&a.address_sets, &b.address_sets);
        let set_members = address_sets
            .iter()
            .filter_map(|id| {
                let (x, y) = (a.address_sets.get(id)?, b.address_sets.get(id)?);
                Some((*id, SetMembers::between(&x.addresses, &y.addresses)))
            })
            .collect();
        ModelDelta {
            tenants: changed_keys(&a.tenants, &b.tenants),
            nodes: changed_keys(&a.nodes, &b.nodes),
            switches: changed_keys(&a.switches, &b.switches),
            routers: changed_keys(&a.routers, &b.routers),
            ports: changed_keys(&a.ports, &b.ports),
            acls: changed_keys(&a.acls, &b.acls),
            address_sets,
            port_groups: changed_keys(&a.port_groups, &b.port_groups),
            set_members,
        }
    }

    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
            && self.nodes.is_empty()
            && self.switches.is_empty()
            && self.routers.is_empty()
            && self.ports.is_empty()
            && self.acls.is_empty()
            && self.address_sets.is_empty()
            && self.port_groups.is_empty()
    }
}
