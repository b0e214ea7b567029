//! Per-node flow tables assembled from the contributions of compile units,
//! and the diff between two versions of a node's table.
//!
//! A *unit* (one logical port, one ACL, one datapath, ...) contributes flows
//! to nodes. Two units may contribute a flow with the same table, priority
//! and match: that happens by design for conjunction clauses (a pod in the
//! port groups of two policies gets one `reg15=<pod>` clause flow carrying
//! both `conjunction` actions). The assembled flow is then the merge: the
//! union of the `conjunction` actions in ascending order, with the cookie of
//! the first contributing unit (in unit order). Any other collision (two
//! hard flows with one match and priority) keeps the first unit's flow and
//! is reported by [`NodeTable::conflicts`]; the compiler never produces one
//! (a test checks it).
//!
//! The table keeps, per flow slot, every unit's contribution, so removing a
//! unit or changing it re-merges only the slots it touched, and the
//! assembled result never depends on the order in which units were applied
//! (which is what makes incremental == full compile hold).

use std::collections::{BTreeMap, BTreeSet};

use protocol::flow::{Action, Cookie, FLOW_WORDS, FlowSpec, Priority, TableId};

/// Where a flow sits: table, priority, match (as key and mask words). Two
/// flows with the same slot are the same OpenFlow rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// Table.
    pub table: TableId,
    /// Priority, stored inverted so that slots sort like `dump-flows`
    /// (table ascending, priority descending).
    inv_priority: u16,
    key: [u64; FLOW_WORDS],
    mask: [u64; FLOW_WORDS],
}

impl Slot {
    /// The slot of `f`.
    pub fn of(f: &FlowSpec) -> Slot {
        Slot {
            table: f.table,
            inv_priority: u16::MAX - f.priority.0,
            key: f.r#match.key.0,
            mask: f.r#match.mask.0.0,
        }
    }

    /// The priority.
    pub fn priority(&self) -> Priority {
        Priority(u16::MAX - self.inv_priority)
    }
}

/// One unit's part of a slot: its cookie and actions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    cookie: Cookie,
    actions: Vec<Action>,
}

/// The flows of one node, by slot, with every unit's contribution.
#[derive(Debug, Clone)]
pub struct NodeTable<U: Ord + Clone> {
    slots: BTreeMap<Slot, (FlowSpec, BTreeMap<U, Part>)>,
}

impl<U: Ord + Clone> Default for NodeTable<U> {
    fn default() -> Self {
        NodeTable {
            slots: BTreeMap::new(),
        }
    }
}

impl<U: Ord + Clone + core::fmt::Debug> NodeTable<U> {
    /// Adds `unit`'s flow. Returns its slot.
    pub fn add(&mut self, unit: &U, f: &FlowSpec) -> Slot {
        let slot = Slot::of(f);
        let e = self
            .slots
            .entry(slot)
            .or_insert_with(|| (f.clone(), BTreeMap::new()));
        let prev = e.1.insert(
            unit.clone(),
            Part {
                cookie: f.cookie,
                actions: f.actions.clone(),
            },
        );
        // Fast path (a conjunction clause shared by many ACLs: one peer
        // address in the sets of k policies): the assembled flow already
        // holds the sorted union of the other parts' actions, so insert
        // only the new ones instead of re-merging all k parts (a BTreeSet and a
        // Vec per add: 20% of a full compile of the bench cluster).
        if prev.is_none() && e.1.len() > 2 && e.1.values().all(|p| is_conj_only(&p.actions)) {
            for a in &f.actions {
                let k = conj_key(a);
                if let Err(i) = e.0.actions.binary_search_by(|x| conj_key(x).cmp(&k)) {
                    e.0.actions.insert(i, a.clone());
                }
            }
            if let Some(first) = e.1.values().next() {
                e.0.cookie = first.cookie;
            }
            return slot;
        }
        e.0 = merge(f, &e.1);
        slot
    }

    /// Removes `unit`'s part of `slot` (no-op if absent).
    pub fn remove(&mut self, unit: &U, slot: &Slot) {
        let empty = match self.slots.get_mut(slot) {
            Some(e) => {
                e.1.remove(unit);
                if e.1.is_empty() {
                    true
                } else {
                    let base = e.0.clone();
                    e.0 = merge(&base, &e.1);
                    false
                }
            }
            None => false,
        };
        if empty {
            self.slots.remove(slot);
        }
    }

    /// The assembled flow in `slot`.
    pub fn get(&self, slot: &Slot) -> Option<&FlowSpec> {
        self.slots.get(slot).map(|e| &e.0)
    }

    /// Every assembled flow, in `dump-flows` order (table ascending,
    /// priority descending).
    pub fn flows(&self) -> impl Iterator<Item = &FlowSpec> + '_ {
        self.slots.values().map(|e| &e.0)
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if the node has no flow.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slots where two units contributed flows that cannot be merged (not
    /// all conjunction-only and not all with the same actions), with the
    /// units.
    pub fn conflicts(&self) -> Vec<(Slot, Vec<U>)> {
        self.slots
            .iter()
            .filter(|(_, (_, parts))| {
                let mut it = parts.values();
                let first = it.next().map(|p| &p.actions);
                parts.len() > 1
                    && !parts.values().all(|p| is_conj_only(&p.actions))
                    && !it.all(|p| Some(&p.actions) == first)
            })
            .map(|(s, (_, parts))| (*s, parts.keys().cloned().collect()))
            .collect()
    }
}

/// The sort key of a `conjunction` action in a merged flow (the order
/// [`merge`] produces).
fn conj_key(a: &Action) -> Option<(u32, u8, u8)> {
    match a {
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => Some((*id, *clause, *n_clauses)),
        _ => None,
    }
}

fn is_conj_only(a: &[Action]) -> bool {
    !a.is_empty() && a.iter().all(|x| matches!(x, Action::Conjunction { .. }))
}

/// The flow of a slot from its parts (see the module doc).
fn merge<U: Ord>(base: &FlowSpec, parts: &BTreeMap<U, Part>) -> FlowSpec {
    let mut f = base.clone();
    let Some(first) = parts.values().next() else {
        return f;
    };
    f.cookie = first.cookie;
    if parts.len() > 1 && parts.values().all(|p| is_conj_only(&p.actions)) {
        let set: BTreeSet<(u32, u8, u8)> = parts
            .values()
            .flat_map(|p| p.actions.iter())
            .filter_map(conj_key)
            .collect();
        f.actions = set
            .into_iter()
            .map(|(id, clause, n_clauses)| Action::Conjunction {
                id,
                clause,
                n_clauses,
            })
            .collect();
    } else {
        f.actions = first.actions.clone();
    }
    f
}

/// The changes that turn one version of a node's flows into another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDiff {
    /// New flows (no flow had their slot).
    pub adds: Vec<FlowSpec>,
    /// Removed flows (as they were).
    pub deletes: Vec<FlowSpec>,
    /// Same slot, new actions or cookie (the new flow).
    pub modifies: Vec<FlowSpec>,
}

impl NodeDiff {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.deletes.is_empty() && self.modifies.is_empty()
    }

    /// Total number of changes.
    pub fn len(&self) -> usize {
        self.adds.len() + self.deletes.len() + self.modifies.len()
    }

    /// Records the change of one slot from `old` to `new`.
    pub fn record(&mut self, old: Option<&FlowSpec>, new: Option<&FlowSpec>) {
        match (old, new) {
            (None, Some(n)) => self.adds.push(n.clone()),
            (Some(o), None) => self.deletes.push(o.clone()),
            (Some(o), Some(n)) if o != n => self.modifies.push(n.clone()),
            _ => {}
        }
    }

    /// The diff between two complete flow lists (slot-wise).
    pub fn between(old: &[FlowSpec], new: &[FlowSpec]) -> NodeDiff {
        let o: BTreeMap<Slot, &FlowSpec> = old.iter().map(|f| (Slot::of(f), f)).collect();
        let n: BTreeMap<Slot, &FlowSpec> = new.iter().map(|f| (Slot::of(f), f)).collect();
        let mut d = NodeDiff::default();
        for (s, f) in &o {
            d.record(Some(f), n.get(s).copied());
        }
        for (s, f) in &n {
            if !o.contains_key(s) {
                d.record(None, Some(f));
            }
        }
        d
    }
}
