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
use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use smallvec::SmallVec;

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
pub(crate) struct Part {
    cookie: Cookie,
    actions: PartActions,
}

impl Part {
    /// The part of a flow with `cookie` and `actions` (what
    /// [`NodeTable::add`] stores for it).
    pub(crate) fn new(cookie: Cookie, actions: &[Action]) -> Part {
        Part {
            cookie,
            actions: PartActions::of(actions),
        }
    }
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
    /// Nearly every slot has one part: kept inline.
    parts: SmallVec<[(U, Part); 1]>,
    /// Number of parts whose actions are not conjunction-only (so "all
    /// parts are conjunction-only" is O(1), not a scan of the parts: a
    /// clause flow shared by k ACLs would otherwise cost O(k^2) to build).
    hard: u32,
}

impl<U> Entry<U> {
    fn all_conj(&self) -> bool {
        self.hard == 0
    }
}

/// The flows of one node, by slot, with every unit's contribution.
///
/// Slots are interned: each gets a small id ([`SlotId`]) for as long as some
/// unit contributes to it, so the compiler's per-unit bookkeeping holds ids
/// (4 bytes) instead of slots (628 bytes). The id of a slot that emptied is
/// reserved until [`recycle`](Self::recycle), so a slot keeps its id
/// through one update even when its last unit leaves and another fills it.
///
/// The slot itself is stored once, in its entry's flow: the hash index
/// holds only ids (hash and equality are computed from the entry), and the
/// `dump-flows` order is sorted on demand and cached until the set of
/// slots changes (a full compile never sorts; an update re-sorts a node
/// only if a slot appeared or went, and only when its flows are read).
#[derive(Debug, Clone)]
pub struct NodeTable<U: Ord + Clone> {
    /// Slot ids, hashed by their slot.
    lookup: HashTable<SlotId>,
    /// Boxed: a growing table moves 8-byte pointers, not ~700-byte entries
    /// (one update adding a slot to a full vector would otherwise copy the
    /// whole node table: ~3 MB and its page faults on the fixture,
    /// 7 ms of a 24 ms pod add).
    entries: Vec<Option<Box<Entry<U>>>>,
    /// Ids free for reuse.
    free: Vec<SlotId>,
    /// Ids emptied since the last [`recycle`](Self::recycle) (still in
    /// `lookup`, with no parts).
    freed: Vec<SlotId>,
    /// Number of slots with at least one part.
    live: usize,
    /// Occupied and reserved ids in `dump-flows` order (None: not computed
    /// since the last slot was created or released).
    order: OnceLock<Vec<SlotId>>,
}

/// The id of an occupied slot of a [`NodeTable`].
pub type SlotId = u32;

impl<U: Ord + Clone> Default for NodeTable<U> {
    fn default() -> Self {
        NodeTable {
            lookup: HashTable::new(),
            entries: Vec::new(),
            free: Vec::new(),
            freed: Vec::new(),
            live: 0,
            order: OnceLock::new(),
        }
    }
}

/// The hash of a flow's slot (table, priority, match; not cookie or
/// actions).
fn slot_hash(f: &FlowSpec) -> u64 {
    FixedState::default().hash_one((f.table, f.priority, &f.r#match))
}

/// True if `a` and `b` sit in the same slot.
fn same_slot(a: &FlowSpec, b: &FlowSpec) -> bool {
    a.table == b.table && a.priority == b.priority && a.r#match == b.r#match
}

/// `dump-flows` order of two flows' slots (the order of [`Slot`]).
fn slot_cmp(a: &FlowSpec, b: &FlowSpec) -> core::cmp::Ordering {
    a.table
        .cmp(&b.table)
        .then_with(|| b.priority.0.cmp(&a.priority.0))
        .then_with(|| a.r#match.key.0.cmp(&b.r#match.key.0))
        .then_with(|| a.r#match.mask.0.0.cmp(&b.r#match.mask.0.0))
}

impl<U: Ord + Clone + core::fmt::Debug> NodeTable<U> {
    /// Reserves room for `n` more slots.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
        let entries = &self.entries;
        self.lookup.reserve(n, |id| Self::hash_of(entries, *id));
    }

    fn hash_of(entries: &[Option<Box<Entry<U>>>], id: SlotId) -> u64 {
        entries
            .get(id as usize)
            .and_then(Option::as_ref)
            .map_or(0, |e| slot_hash(&e.flow))
    }

    fn find(&self, hash: u64, f: &FlowSpec) -> Option<SlotId> {
        let entries = &self.entries;
        self.lookup
            .find(hash, |id| {
                entries
                    .get(*id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| same_slot(&e.flow, f))
            })
            .copied()
    }

    /// Stores `e` under a new id (a free one if any) for a slot not in
    /// the table; `hash` is the slot's hash. Returns the id.
    fn insert_new(&mut self, hash: u64, e: Entry<U>) -> SlotId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as SlotId
            }
        };
        self.entries[id as usize] = Some(Box::new(e));
        let entries = &self.entries;
        self.lookup
            .insert_unique(hash, id, |id| Self::hash_of(entries, *id));
        self.order.take();
        self.live += 1;
        id
    }

    /// The entry of found slot `id`, counted live again if it was reserved
    /// (no parts: emptied since the last [`recycle`](Self::recycle)); the
    /// caller adds at least one part.
    fn refill(&mut self, id: SlotId) -> Option<&mut Entry<U>> {
        let e = self
            .entries
            .get_mut(id as usize)
            .and_then(Option::as_deref_mut)?;
        if e.parts.is_empty() {
            self.live += 1;
        }
        Some(e)
    }

    /// Adds `unit`'s flow. Returns its slot's id.
    pub fn add(&mut self, unit: &U, f: &FlowSpec) -> SlotId {
        let (hash, found) = self.probe(f);
        self.add_probed(unit, f, hash, found)
    }

    /// The slot hash of `f` and the id of its slot if occupied or reserved:
    /// for a caller that needs the id before [`add_probed`](Self::add_probed)
    /// (one hash and lookup instead of two).
    pub(crate) fn probe(&self, f: &FlowSpec) -> (u64, Option<SlotId>) {
        let hash = slot_hash(f);
        (hash, self.find(hash, f))
    }

    /// [`add`](Self::add) with `(hash, found)` from [`probe`](Self::probe)
    /// of the same flow (the table unchanged since).
    pub(crate) fn add_probed(
        &mut self,
        unit: &U,
        f: &FlowSpec,
        hash: u64,
        found: Option<SlotId>,
    ) -> SlotId {
        let part = Part {
            cookie: f.cookie,
            actions: PartActions::of(&f.actions),
        };
        let Some(id) = found else {
            let hard = u32::from(!part.actions.is_conj_only());
            return self.insert_new(
                hash,
                Entry {
                    flow: f.clone(),
                    parts: smallvec::smallvec![(unit.clone(), part)],
                    hard,
                },
            );
        };
        let Some(e) = self.refill(id) else {
            return id;
        };
        if e.parts.is_empty() {
            // Reserved since a removal in this update: filled again.
            e.flow = f.clone();
            e.hard = u32::from(!part.actions.is_conj_only());
            e.parts.push((unit.clone(), part));
            return id;
        }
        let conj = part.actions.is_conj_only();
        // Units are mostly applied in ascending order: check the end first.
        let pos = match e.parts.last() {
            Some((last, _)) if *last < *unit => Err(e.parts.len()),
            _ => e.parts.binary_search_by(|(u, _)| u.cmp(unit)),
        };
        let new = match pos {
            Ok(i) => {
                let was = e.parts[i].1.actions.is_conj_only();
                e.hard = e.hard + u32::from(was) - u32::from(conj);
                e.parts[i].1 = part;
                false
            }
            Err(i) => {
                e.hard += u32::from(!conj);
                e.parts.insert(i, (unit.clone(), part));
                true
            }
        };
        // Fast path (a conjunction clause shared by many ACLs: one peer
        // address in the sets of k policies): the assembled flow already
        // holds the sorted union of the other parts' actions, so insert
        // only the new ones instead of re-merging all k parts.
        if new && e.parts.len() > 2 && e.all_conj() {
            for a in &f.actions {
                let k = conj_key(a);
                let at = match e.flow.actions.last() {
                    Some(x) if conj_key(x) < k => Err(e.flow.actions.len()),
                    _ => e.flow.actions.binary_search_by(|x| conj_key(x).cmp(&k)),
                };
                if let Err(i) = at {
                    e.flow.actions.insert(i, a.clone());
                }
            }
            e.flow.cookie = e.parts[0].1.cookie;
            return id;
        }
        merge(&mut e.flow, &e.parts, e.hard == 0);
        id
    }

    /// Adds the parts of several units to the slot of `f` at once (its
    /// cookie and actions are ignored: they come from the parts), the same
    /// result as [`add`](Self::add) of each unit's flow but with one slot
    /// lookup, one merge and no per-unit flow: a full compile builds a
    /// clause flow shared by k ACLs (one peer address in k address sets)
    /// once instead of k times. `parts` must be sorted by unit, without
    /// duplicates. Returns the slot's id.
    pub(crate) fn add_shared(&mut self, mut f: FlowSpec, parts: Vec<(U, Part)>) -> SlotId {
        debug_assert!(parts.windows(2).all(|w| w[0].0 < w[1].0));
        let hard = parts
            .iter()
            .filter(|(_, p)| !p.actions.is_conj_only())
            .count() as u32;
        let hash = slot_hash(&f);
        let Some(id) = self.find(hash, &f) else {
            merge(&mut f, &parts, hard == 0);
            return self.insert_new(
                hash,
                Entry {
                    flow: f,
                    parts: SmallVec::from_vec(parts),
                    hard,
                },
            );
        };
        // A reserved slot (emptied in this update) is filled again: the
        // merge below sets its flow from the parts.
        let Some(e) = self.refill(id) else {
            return id;
        };
        for (unit, part) in parts {
            let conj = part.actions.is_conj_only();
            match e.parts.binary_search_by(|(u, _)| u.cmp(&unit)) {
                Ok(i) => {
                    let was = e.parts[i].1.actions.is_conj_only();
                    e.hard = e.hard + u32::from(was) - u32::from(conj);
                    e.parts[i].1 = part;
                }
                Err(i) => {
                    e.hard += u32::from(!conj);
                    e.parts.insert(i, (unit, part));
                }
            }
        }
        merge(&mut e.flow, &e.parts, e.hard == 0);
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
        e.hard -= u32::from(!gone.actions.is_conj_only());
        if e.parts.is_empty() {
            self.live -= 1;
            self.freed.push(id);
        } else if e.parts.len() >= 2 && gone.actions.is_conj_only() && e.hard == 0 {
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
            merge(&mut e.flow, &e.parts, e.hard == 0);
        }
    }

    /// Releases the slots left empty since the last call: their ids become
    /// reusable.
    pub fn recycle(&mut self) {
        for id in core::mem::take(&mut self.freed) {
            let Some(hash) = self
                .entries
                .get(id as usize)
                .and_then(Option::as_ref)
                .filter(|e| e.parts.is_empty())
                .map(|e| slot_hash(&e.flow))
            else {
                continue;
            };
            if let Ok(found) = self.lookup.find_entry(hash, |x| *x == id) {
                found.remove();
            }
            self.entries[id as usize] = None;
            self.free.push(id);
            self.order.take();
        }
    }

    /// The id of `slot`, if it is occupied or reserved.
    pub fn id_of(&self, slot: &Slot) -> Option<SlotId> {
        let f = FlowSpec {
            table: slot.table,
            priority: slot.priority(),
            r#match: protocol::flow::Match {
                key: protocol::flow::FlowKey(slot.key),
                mask: protocol::flow::FlowMask(protocol::flow::FlowKey(slot.mask)),
            },
            ..FlowSpec::default()
        };
        self.find(slot_hash(&f), &f)
    }

    /// The id of the slot `f` sits in, if it is occupied or reserved.
    pub fn id_of_flow(&self, f: &FlowSpec) -> Option<SlotId> {
        self.find(slot_hash(f), f)
    }

    /// The assembled flow in `slot`.
    pub fn get(&self, slot: &Slot) -> Option<&FlowSpec> {
        self.id_of(slot).and_then(|id| self.get_id(id))
    }

    /// The assembled flow of slot `id` (None once that slot emptied).
    pub fn get_id(&self, id: SlotId) -> Option<&FlowSpec> {
        self.entries
            .get(id as usize)
            .and_then(Option::as_ref)
            .filter(|e| !e.parts.is_empty())
            .map(|e| &e.flow)
    }

    /// Occupied and reserved ids in `dump-flows` order.
    fn order(&self) -> &[SlotId] {
        self.order.get_or_init(|| {
            let mut ids: Vec<(&FlowSpec, SlotId)> = self
                .entries
                .iter()
                .zip(0..)
                .filter_map(|(e, id)| e.as_ref().map(|e| (&e.flow, id)))
                .collect();
            ids.sort_unstable_by(|a, b| slot_cmp(a.0, b.0));
            ids.into_iter().map(|(_, id)| id).collect()
        })
    }

    /// Every assembled flow, in `dump-flows` order (table ascending,
    /// priority descending).
    pub fn flows(&self) -> impl Iterator<Item = &FlowSpec> + '_ {
        self.order().iter().filter_map(|id| self.get_id(*id))
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
        self.order()
            .iter()
            .filter_map(|id| {
                let e = self.entries.get(*id as usize)?.as_ref()?;
                let parts = &e.parts;
                let first = parts.first().map(|(_, p)| &p.actions);
                let conflict = parts.len() > 1
                    && !e.all_conj()
                    && !parts.iter().all(|(_, p)| Some(&p.actions) == first);
                conflict.then(|| {
                    (
                        Slot::of(&e.flow),
                        parts.iter().map(|(u, _)| u.clone()).collect(),
                    )
                })
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
fn merge<U>(f: &mut FlowSpec, parts: &[(U, Part)], all_conj: bool) {
    let Some((_, first)) = parts.first() else {
        return;
    };
    f.cookie = first.cookie;
    if parts.len() > 1 && all_conj {
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
