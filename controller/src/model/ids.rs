//! Identifiers of logical objects, and how they are chosen.
//!
//! Every id is a newtype (DESIGN.md: never bare integers). Ids are derived
//! from the object's *name* (a string that the translation makes unique, e.g.
//! `ls/tenant-a/node-1`), so the same manifests always give the same ids, on
//! any machine, in any order of loading:
//!
//! 1. the name is hashed with 64-bit FNV-1a (fixed, no random seed) and
//!    reduced into the id space;
//! 2. names are allocated in sorted order; a name whose slot is taken probes
//!    forward (linear probing, wrapping, skipping reserved values).
//!
//! So an id only depends on the set of names of its kind, and it changes only
//! when a *colliding* name is added or removed (with 16-bit port ids and
//! thousands of ports, collisions do happen: the id of a port may move when
//! another port is added; the compiler's diffs then carry that move). There
//! is no hidden state: translating the same objects twice gives equal models.
//!
//! | id | width | space | used as |
//! |---|---|---|---|
//! | [`DatapathId`] | 24 bits | 1..=0xff_ffff | `metadata`, Geneve/VXLAN VNI |
//! | [`LogicalPortId`] | 16 bits | 1..=0xfffe, unique in the whole model | `reg14`/`reg15`, Geneve option |
//! | [`AddressSetId`], [`PortGroupId`], [`AclId`] | 32 bits | 1..=0xffff_fffe | conjunction ids, cookies, diff keys |
//!
//! Limits: 65,534 logical ports (pod ports plus router ports plus switch-side
//! router ports) per model; allocation fails with [`IdSpaceFull`] beyond.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

/// A logical datapath: a logical switch or a logical router. 24 bits, so it
/// fits the Geneve/VXLAN VNI; never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DatapathId(pub u32);

/// A logical port (a pod's port, a router port, or the switch-side peer of a
/// router port). 16 bits (the Geneve option carries two of them); never 0 and
/// never 0xffff; unique in the whole model, not only in its datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LogicalPortId(pub u16);

/// An address set (a set of IP prefixes that ACLs match on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AddressSetId(pub u32);

/// A port group (a set of logical ports that ACLs are attached to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortGroupId(pub u32);

/// An ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AclId(pub u32);

macro_rules! id_display {
    ($($t:ident => $fmt:literal),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, $fmt, self.0)
            }
        }
    )*};
}
id_display!(DatapathId => "dp{}", LogicalPortId => "lp{}", AddressSetId => "as{}",
    PortGroupId => "pg{}", AclId => "acl{}");

/// The id space of one kind is exhausted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free {kind} id left for {name:?} ({capacity} ids in use)")]
pub struct IdSpaceFull {
    /// Which kind of id ("logical port", "datapath", ...).
    pub kind: &'static str,
    /// The name that got no id.
    pub name: String,
    /// How many ids the space holds.
    pub capacity: u64,
}

/// 64-bit FNV-1a: small, fixed and seedless, so ids are the same everywhere.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Allocates ids in `1..=max` from names: hash, then probe forward. Callers
/// allocate in sorted name order (the translation does), which makes the
/// result a function of the set of names.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    kind: &'static str,
    max: u64,
    used: BTreeSet<u64>,
}

impl IdAllocator {
    /// An allocator for ids `1..=max` (`max` >= 1).
    pub fn new(kind: &'static str, max: u64) -> IdAllocator {
        IdAllocator {
            kind,
            max: max.max(1),
            used: BTreeSet::new(),
        }
    }

    /// For [`DatapathId`]s.
    pub fn datapaths() -> IdAllocator {
        IdAllocator::new("datapath", 0x00ff_ffff)
    }

    /// For [`LogicalPortId`]s.
    pub fn ports() -> IdAllocator {
        IdAllocator::new("logical port", 0xfffe)
    }

    /// For 32-bit ids ([`AddressSetId`], [`PortGroupId`], [`AclId`]).
    pub fn wide(kind: &'static str) -> IdAllocator {
        IdAllocator::new(kind, 0xffff_fffe)
    }

    /// Allocates the id for `name`.
    pub fn alloc(&mut self, name: &str) -> Result<u64, IdSpaceFull> {
        if self.used.len() as u64 >= self.max {
            return Err(IdSpaceFull {
                kind: self.kind,
                name: name.to_owned(),
                capacity: self.max,
            });
        }
        let mut id = fnv1a64(name.as_bytes()) % self.max + 1;
        while self.used.contains(&id) {
            id = if id == self.max { 1 } else { id + 1 };
        }
        self.used.insert(id);
        Ok(id)
    }

    /// Allocates a [`DatapathId`].
    pub fn datapath(&mut self, name: &str) -> Result<DatapathId, IdSpaceFull> {
        self.alloc(name).map(|v| DatapathId(v as u32))
    }

    /// Allocates a [`LogicalPortId`].
    pub fn port(&mut self, name: &str) -> Result<LogicalPortId, IdSpaceFull> {
        self.alloc(name).map(|v| LogicalPortId(v as u16))
    }

    /// Number of ids handed out.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// True if no id was handed out.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_names_same_ids_and_collisions_probe() {
        let mut a = IdAllocator::new("t", 4);
        let ids: Vec<u64> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| a.alloc(n).unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 2, 3, 4], "every id in 1..=4 used once");
        assert!(a.alloc("e").is_err());
        let mut b = IdAllocator::new("t", 4);
        let again: Vec<u64> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| b.alloc(n).unwrap())
            .collect();
        assert_eq!(ids, again);
    }

    #[test]
    fn port_ids_avoid_zero_and_ffff() {
        let mut a = IdAllocator::ports();
        for i in 0..20_000 {
            let id = a.port(&format!("p{i}")).unwrap();
            assert!(id.0 != 0 && id.0 != 0xffff);
        }
        assert_eq!(a.len(), 20_000);
    }
}
