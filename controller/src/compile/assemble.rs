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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use foldhash::fast::FixedState;

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

/// One unit's part of a slot: its cookie and actions. A single
/// `conjunction` action (the usual clause flow, millions of them on a large
/// cluster) is kept inline, without a heap allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    cookie: Cookie,
    actions: PartActions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PartActions {
    /// Exactly one `conjunction(id, clause/n_clauses)`.
    Conj(u32, u8, u8),
    /// Anything else.
    List(Vec<Action>),
}

impl PartActions {
    fn of(actions: &[Action]) -> PartActions {
        match actions {
            [
                Action::Conjunction {
                    id,
                    clause,
                    n_clauses,
                },
            ] => PartActions::Conj(*id, *clause, *n_clauses),
            _ => PartActions::List(actions.to_vec()),
        }
    }

    fn is_conj_only(&self) -> bool {
        match self {
            PartActions::Conj(..) => true,
            PartActions::List(a) => is_conj_only(a),
        }
    }

    fn to_vec(&self) -> Vec<Action> {
        match self {
            PartActions::Conj(id, clause, n_clauses) => vec![Action::Conjunction {
                id: *id,
                clause: *clause,
                n_clauses: *n_clauses,
            }],
            PartActions::List(a) => a.clone(),
        }
    }

    fn conj_keys(&self) -> impl Iterator<Item = (u32, u8, u8)> + '_ {
        let (one, list) = match self {
            PartActions::Conj(id, c, n) => (Some((*id, *c, *n)), &[][..]),
            PartActions::List(a) => (None, &a[..]),
        };
        one.into_iter().chain(list.iter().filter_map(conj_key))
    }
}

/// A slot's assembled flow and every unit's part (sorted by unit).
#[derive(Debug, Clone)]
struct Entry<U> {
    flow: FlowSpec,
    parts: Vec<(U, Part)>,
}

/// The flows of one node, by slot, with every unit's contribution.
///
/// Slots are interned: each gets a small id ([`SlotId`]) for as long as some
/// unit contributes to it, so the compiler's per-unit bookkeeping holds ids
/// (4 bytes) instead of slots (628 bytes). The id of a slot that emptied is
/// reserved until [`recycle`](Self::recycle), so a slot keeps its id
/// through one update even when its last unit leaves and another fills it.
#[derive(Debug, Clone)]
pub struct NodeTable<U: Ord + Clone> {
    /// Slot -> id, in `dump-flows` order (touched only when a slot is
    /// created or released).
    index: BTreeMap<Slot, SlotId>,
    /// Slot -> id, for the lookups of every contribution (a hash of the
    /// 628 bytes is cheaper than the B-tree's compares of them).
    lookup: HashMap<Slot, SlotId, FixedState>,
    entries: Vec<Option<Entry<U>>>,
    /// Ids free for reuse.
    free: Vec<SlotId>,
    /// Ids emptied since the last [`recycle`](Self::recycle) (still in
    /// `index`, with no parts).
    freed: Vec<SlotId>,
    /// Number of slots with at least one part.
    live: usize,
}

/// The id of an occupied slot of a [`NodeTable`].
pub type SlotId = u32;

impl<U: Ord + Clone> Default for NodeTable<U> {
    fn default() -> Self {
        NodeTable {
            index: BTreeMap::new(),
            lookup: HashMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
            freed: Vec::new(),
            live: 0,
        }
    }
}

impl<U: Ord + Clone + core::fmt::Debug> NodeTable<U> {
    /// Adds `unit`'s flow. Returns its slot's id.
    pub fn add(&mut self, unit: &U, f: &FlowSpec) -> SlotId {
        let slot = Slot::of(f);
        let part = Part {
            cookie: f.cookie,
            actions: PartActions::of(&f.actions),
        };
        let id = match self.lookup.get(&slot) {
            Some(id) => *id,
            None => {
                let id = match self.free.pop() {
                    Some(id) => id,
                    None => {
                        self.entries.push(None);
                        (self.entries.len() - 1) as SlotId
                    }
                };
                self.index.insert(slot, id);
                self.lookup.insert(slot, id);
                self.live += 1;
                self.entries[id as usize] = Some(Entry {
                    flow: f.clone(),
                    parts: vec![(unit.clone(), part)],
                });
                return id;
            }
        };
        let Some(e) = self.entries.get_mut(id as usize).and_then(Option::as_mut) else {
            return id;
        };
        if e.parts.is_empty() {
            // Reserved since a removal in this update: filled again.
            e.flow = f.clone();
            e.parts.push((unit.clone(), part));
            self.live += 1;
            return id;
        }
        let new = match e.parts.binary_search_by(|(u, _)| u.cmp(unit)) {
            Ok(i) => {
                e.parts[i].1 = part;
                false
            }
            Err(i) => {
                e.parts.insert(i, (unit.clone(), part));
                true
            }
        };
        // Fast path (a conjunction clause shared by many ACLs: one peer
        // address in the sets of k policies): the assembled flow already
        // holds the sorted union of the other parts' actions, so insert
        // only the new ones instead of re-merging all k parts.
        if new && e.parts.len() > 2 && e.parts.iter().all(|(_, p)| p.actions.is_conj_only()) {
            for a in &f.actions {
                let k = conj_key(a);
                if let Err(i) = e.flow.actions.binary_search_by(|x| conj_key(x).cmp(&k)) {
                    e.flow.actions.insert(i, a.clone());
                }
            }
            e.flow.cookie = e.parts[0].1.cookie;
            return id;
        }
        merge(&mut e.flow, &e.parts);
        id
    }

    /// Removes `unit`'s part of slot `id` (no-op if absent). A slot left
    /// without parts stays reserved (same id if a unit fills it again)
    /// until [`recycle`](Self::recycle).
    pub fn remove(&mut self, unit: &U, id: SlotId) {
        let Some(e) = self.entries.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let Ok(i) = e.parts.binary_search_by(|(u, _)| u.cmp(unit)) else {
            return;
        };
        let (_, gone) = e.parts.remove(i);
        if e.parts.is_empty() {
            self.live -= 1;
            self.freed.push(id);
        } else if e.parts.len() >= 2
            && gone.actions.is_conj_only()
            && e.parts.iter().all(|(_, p)| p.actions.is_conj_only())
        {
            // Fast path (the mirror of `add`'s): the flow holds the sorted
            // union of every part's conjunctions, so drop only the removed
            // part's ones that no other part has, instead of re-merging the
            // k remaining parts (k removals from one slot, when many ACLs
            // sharing a peer address change at once, were quadratic).
            for k in gone.actions.conj_keys() {
                if !e
                    .parts
                    .iter()
                    .any(|(_, p)| p.actions.conj_keys().any(|x| x == k))
                {
                    e.flow.actions.retain(|a| conj_key(a) != Some(k));
                }
            }
            e.flow.cookie = e.parts[0].1.cookie;
        } else {
            merge(&mut e.flow, &e.parts);
        }
    }

    /// Releases the slots left empty since the last call: their ids become
    /// reusable.
    pub fn recycle(&mut self) {
        for id in self.freed.drain(..) {
            let Some(slot) = self
                .entries
                .get(id as usize)
                .and_then(Option::as_ref)
                .filter(|e| e.parts.is_empty())
                .map(|e| Slot::of(&e.flow))
            else {
                continue;
            };
            self.index.remove(&slot);
            self.lookup.remove(&slot);
            self.entries[id as usize] = None;
            self.free.push(id);
        }
    }

    /// The id of `slot`, if it is occupied or reserved.
    pub fn id_of(&self, slot: &Slot) -> Option<SlotId> {
        self.lookup.get(slot).copied()
    }

    /// The assembled flow in `slot`.
    pub fn get(&self, slot: &Slot) -> Option<&FlowSpec> {
        self.lookup.get(slot).and_then(|id| self.get_id(*id))
    }

    /// The assembled flow of slot `id` (None once that slot emptied).
    pub fn get_id(&self, id: SlotId) -> Option<&FlowSpec> {
        self.entries
            .get(id as usize)
            .and_then(Option::as_ref)
            .filter(|e| !e.parts.is_empty())
            .map(|e| &e.flow)
    }

    /// Every assembled flow, in `dump-flows` order (table ascending,
    /// priority descending).
    pub fn flows(&self) -> impl Iterator<Item = &FlowSpec> + '_ {
        self.index.values().filter_map(|id| self.get_id(*id))
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True if the node has no flow.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Slots where two units contributed flows that cannot be merged (not
    /// all conjunction-only and not all with the same actions), with the
    /// units.
    pub fn conflicts(&self) -> Vec<(Slot, Vec<U>)> {
        self.index
            .iter()
            .filter_map(|(s, id)| {
                let e = self.entries.get(*id as usize)?.as_ref()?;
                let parts = &e.parts;
                let first = parts.first().map(|(_, p)| &p.actions);
                let conflict = parts.len() > 1
                    && !parts.iter().all(|(_, p)| p.actions.is_conj_only())
                    && !parts.iter().all(|(_, p)| Some(&p.actions) == first);
                conflict.then(|| (*s, parts.iter().map(|(u, _)| u.clone()).collect()))
            })
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

/// Sets the flow of a slot from its parts (see the module doc): match and
/// priority stay, cookie and actions come from the parts.
fn merge<U>(f: &mut FlowSpec, parts: &[(U, Part)]) {
    let Some((_, first)) = parts.first() else {
        return;
    };
    f.cookie = first.cookie;
    if parts.len() > 1 && parts.iter().all(|(_, p)| p.actions.is_conj_only()) {
        let set: BTreeSet<(u32, u8, u8)> = parts
            .iter()
            .flat_map(|(_, p)| p.actions.conj_keys())
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
        f.actions = first.actions.to_vec();
    }
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
