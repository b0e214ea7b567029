//! The per-table flow classifier: given a packet's [`FlowKey`], find the
//! highest-priority rule that matches it.
//!
//! # What
//!
//! A [`Classifier<T>`] holds rules, each a [`Match`] (key and mask), a
//! [`Priority`] and a caller value `T` (in the pipeline: the rule's interned
//! actions, cookie and counters). [`Classifier::lookup`] takes a key and
//! returns a [`Hit`]: the winning rule's value and priority, or `None` on a
//! miss. One goal: the lookup as fast as a handful of hash probes, with no
//! allocation. Model: OVS `lib/classifier.h`, `lib/classifier.c`,
//! `lib/classifier-private.h`.
//!
//! # Semantics
//!
//! * **Priority**: the matching rule with the highest priority wins.
//! * **Ties**: OpenFlow leaves the choice between overlapping rules of equal
//!   priority undefined (OVS: "returns one arbitrarily"). We make it
//!   deterministic: **the rule inserted first wins**. Every rule gets an
//!   insertion sequence number when first inserted; replacing its value
//!   (same match and priority) keeps it; removing and re-inserting makes it
//!   the newest. Tested by `tie_first_inserted_wins`.
//! * **Identity and replace**: a rule is identified by (match, priority).
//!   Inserting an identical match and priority replaces the old value and
//!   returns it (OpenFlow `OFPFC_ADD` on an identical flow). Matches are
//!   normalised on insert (key bits outside the mask are dropped), so two
//!   matches that differ only outside their mask are the same rule.
//! * **Overlap** is allowed at any priorities; **miss** is `None` (the
//!   pipeline applies the table-miss behaviour). The `goto_table`/`resubmit`
//!   depth limit belongs to the pipeline, not here.
//!
//! ## Conjunctive matches
//!
//! A *soft* rule ([`Classifier::insert_soft`]) carries only
//! `conjunction(id,k/n)` clauses ([`Conjunction`]); every other rule is
//! *hard*. OVS semantics (`classifier_lookup__` in `lib/classifier.c`,
//! "Conjunctive Match Fields" in `ovs-fields(7)`):
//!
//! 1. `H` = the best hard rule matching the key (rules above).
//! 2. Only soft rules with priority **strictly above** `H`'s count
//!    (`if (hard_pri >= soft_pri) return hard` in OVS).
//! 3. Priority levels with matching soft rules are tried from the highest
//!    down. At a level `P`, conjunction `id` is *complete* if each of its
//!    clauses `1..=n` is carried by at least one matching soft rule of
//!    priority exactly `P` (flows with the same id at different priorities
//!    are different conjunctive flows, `ovs-fields(7)`).
//! 4. For a complete `id`, the lookup is repeated with `conj_id = id` in the
//!    key, ignoring soft rules ("the search for the `conj_id=id` flow itself
//!    ignores conjunctive flows, to avoid recursion"). If it finds a rule,
//!    that rule is the result ([`Hit::conj_id`] is `Some(id)`), whatever its
//!    priority. If it finds nothing, "Open vSwitch acts as if the
//!    conjunctive flow had not matched at all, and continues searching":
//!    the next complete id at `P` is tried, then the next lower level, and
//!    finally `H` (or a miss).
//! 5. **Several ids complete at one level**: OVS calls such overlapping
//!    conjunctive flows "unpredictable" (it tries them in the order its
//!    subtable scan completes them). We try them in **ascending id** order;
//!    the first whose re-lookup finds a rule wins.
//!
//! Deliberate differences from OVS, both in corners OVS itself leaves
//! unspecified or treats as an artifact of its data structure:
//! * OVS's first pass sees only the highest-priority rule among rules with
//!   an identical match (lower ones are reached by "dropping back" after a
//!   failed level), and its conj_id re-lookup skips such a chain entirely if
//!   its head is soft. We consider every matching rule, so a hard rule
//!   sharing its exact match with a higher-priority soft rule is visible to
//!   the re-lookup. The results differ only in that case.
//! * A conjunction id used with two different `n` at one priority never
//!   completes by mixing clauses of both (OVS: depends on scan order).
//!
//! # Design
//!
//! Tuple-space search (OVS "Basic Classifier Design"): one subtable (`subtable.rs`) per
//! distinct mask, each a `hashbrown::HashTable` keyed by the masked key.
//! Only the mask's non-zero words (usually 1 to 5 of 39) are masked, hashed
//! and stored. Each bucket holds the rules with that exact masked key,
//! highest priority first.
//!
//! * **Index table over dense buckets**: the hash table holds 4-byte
//!   indices into a `Vec` of buckets and is kept at most half full, so a
//!   miss (the common case: most subtables miss for most packets) reads one
//!   control group and nothing else. Cost: a removal swaps the last bucket
//!   into the hole and repoints its slot (one extra hash); a hit reads one
//!   more cache line. Measured: with 1,000 rules in 20 masks a full miss
//!   went from ~4.2 to ~5.3 Mpps.
//! * **Priority-ordered subtables** (OVS `pvector`): a small array of
//!   `(max rank, subtable id)` sorted by the best rule each subtable holds.
//!   A rule's *rank* packs (priority, inverted insertion sequence) into one
//!   `u64`, so "better rule" is one integer compare and the tie rule costs
//!   nothing extra. Lookup stops as soon as the next subtable's best rank
//!   cannot beat the best match so far. Cost: every insert/remove that
//!   changes a subtable's best rank moves its entry (`O(subtables)`), and
//!   each subtable keeps a `BTreeSet` of its ranks (`O(log n)` per change).
//! * **Hashing**: `foldhash` quality hashing with a random per-classifier
//!   seed, because keys come from attacker-controlled packets (hash
//!   flooding); words are fed in pairs (`write_u128`, one folded multiply
//!   per pair). Cost: a few ns per probe over a non-keyed hash.
//! * **Soft rules** ride in the same subtables; matching soft rules are
//!   collected during the one pass (stack buffer of 16) and resolved only if
//!   one beats the hard match, so tables without conjunctions pay one
//!   predictable branch per hit.
//! * Not done (yet): OVS staged lookup and prefix tries (they reduce
//!   un-wildcarding, see [`Classifier::lookup_wc`]), and a per-worker exact
//!   match cache, which belongs in front of the whole pipeline.
//!
//! # Invariants
//!
//! Enforced by [`Classifier::check_invariants`]:
//! * no two rules with an equal match and priority (one bucket per masked
//!   key; bucket priorities strictly descending);
//! * every stored key satisfies `key & mask == key`;
//! * no empty subtable or bucket; every bucket is found by its own key;
//! * the subtable order is sorted by best rank, strictly descending, and
//!   each entry's rank is its subtable's best; ranks are unique and carry
//!   their rule's priority;
//! * the rule and soft-rule counts are right; soft rules have valid clauses.
//!
//! # Versioning and publication
//!
//! The classifier has no internal versioning (OVS classifier versions).
//! Instead, the pipeline publishes immutable snapshots: the control thread
//! edits its own copy (`Classifier: Clone`; unchanged tables are shared as
//! `Arc<Table>`) and publishes the new `Pipeline` with `ArcSwap`; a worker
//! loads the snapshot once per batch, so a batch never sees a half-applied
//! change (STYLE.md section 5).
//!
//! # Thread-safety
//!
//! Single writer: mutation takes `&mut self`, so the type system rules out
//! concurrent mutation. Lookups take `&self`; `Classifier<T>` is `Sync` when
//! `T` is, so any number of workers may look up one published snapshot at
//! once. No locks, no atomics, no interior mutability.
//!
//! # Limits and complexity
//!
//! | quantity | designed for | worst case |
//! |---|---|---|
//! | rules per table | 10^5 | memory: ~100 B + `T` per rule plus hash-table slack |
//! | distinct masks per table | 1 to 50 | lookup probes every subtable: `O(masks)` hashes |
//! | rules per bucket (same match, different priority) | 1 | `O(bucket)` walk |
//! | matching soft rules per lookup | <= 16 | beyond 16 the lookup allocates |
//! | insertions | < 2^48 - 1 | then all ranks are renumbered once, `O(n log n)` |
//!
//! Lookup: `O(subtables probed x mask words)`, no allocation (tested by
//! `switchd/tests/classifier_alloc.rs`). Measured (`cargo bench -p
//! weft-benches --bench classify`, shared 2-core VM): 1,000 rules in 20
//! masks, ~20 Mpps on hits and ~5 Mpps on full misses (every subtable
//! probed, ~9.5 ns each); one mask, 60 to 90 Mpps. A conjunctive match costs one
//! extra hard lookup per complete id tried. Insert/remove: `O(log n +
//! subtables)` amortised.
//!
//! # Testing
//!
//! [`reference::Reference`] is a deliberately naive linear scan with the same
//! semantics (including ties and conjunctions). A proptest at the bottom of
//! `reference.rs` applies random insert/remove/lookup sequences to both over
//! overlapping realistic masks, compares every lookup and runs
//! [`Classifier::check_invariants`] after each step (OVS
//! `tests/test-classifier.c`). Unit tests below cover each semantic rule.
//! A `classifier_model` fuzz target against the reference is planned.

pub mod conj;
pub mod reference;
pub(crate) mod subtable;

use core::fmt;

use foldhash::quality::RandomState;
use protocol::flow::{FlowKey, FlowMask, Match, Priority};
use smallvec::SmallVec;

use conj::Tally;
pub use conj::{ConjError, Conjunction};
use subtable::{Rule, SEQ_LIMIT, Subtable, rank, rank_seq};

/// Matching soft rules kept on the stack during one lookup.
const SOFT_INLINE: usize = 16;

/// The result of a successful lookup.
pub struct Hit<'a, T> {
    /// The winning rule's value.
    pub value: &'a T,
    /// The winning rule's priority.
    pub priority: Priority,
    /// `Some(id)` if the rule was found by the re-lookup after conjunction
    /// `id` completed (the key had `conj_id = id`).
    pub conj_id: Option<u32>,
}

impl<T> Clone for Hit<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Hit<'_, T> {}

impl<T: fmt::Debug> fmt::Debug for Hit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hit")
            .field("value", self.value)
            .field("priority", &self.priority)
            .field("conj_id", &self.conj_id)
            .finish()
    }
}

impl<T: PartialEq> PartialEq for Hit<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
            && self.priority == other.priority
            && self.conj_id == other.conj_id
    }
}
impl<T: Eq> Eq for Hit<'_, T> {}

/// One rule as seen by [`Classifier::iter`].
#[derive(Debug)]
pub struct Entry<'a, T> {
    /// The rule's match (normalised: `key & mask == key`).
    pub r#match: Match,
    /// The rule's priority.
    pub priority: Priority,
    /// The rule's value.
    pub value: &'a T,
    /// The clauses of a soft rule; empty for a hard rule.
    pub conjunctions: &'a [Conjunction],
}

/// One slot of the priority-ordered subtable list (OVS `pvector` entry).
#[derive(Debug, Clone, Copy)]
struct OrderEntry {
    /// The best rank in the subtable.
    max_rank: u64,
    /// Index into `Classifier::subtables`.
    id: u32,
}

/// Where ORs of probed masks go during a lookup (nowhere, or a megaflow
/// wildcard mask).
trait WcSink {
    fn probed<T>(&mut self, st: &Subtable<T>);
}
impl WcSink for () {
    #[inline(always)]
    fn probed<T>(&mut self, _: &Subtable<T>) {}
}
impl WcSink for FlowMask {
    #[inline]
    fn probed<T>(&mut self, st: &Subtable<T>) {
        st.or_mask_into(self);
    }
}

/// A flow table's rules, searched by tuple-space search. See the
/// [module documentation](self).
#[derive(Clone)]
pub struct Classifier<T> {
    // Read by lookups.
    /// Live subtables, best rank first.
    order: Vec<OrderEntry>,
    /// Subtables by id; `None` marks a free id.
    subtables: Vec<Option<Subtable<T>>>,
    /// Keyed hashing of masked keys; fixed for the classifier's life.
    hash_state: RandomState,

    // Control only.
    /// Subtable id by mask.
    by_mask: hashbrown::HashMap<FlowMask, u32>,
    /// Free subtable ids.
    free_ids: Vec<u32>,
    /// Number of rules.
    n_rules: usize,
    /// Number of soft rules.
    n_soft: usize,
    /// Next insertion sequence number.
    next_seq: u64,
}

impl<T> fmt::Debug for Classifier<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("n_rules", &self.n_rules)
            .field("n_soft", &self.n_soft)
            .field("n_subtables", &self.order.len())
            .finish_non_exhaustive()
    }
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Classifier<T> {
    /// An empty classifier with a fresh random hash seed.
    pub fn new() -> Self {
        Classifier {
            order: Vec::new(),
            subtables: Vec::new(),
            hash_state: RandomState::default(),
            by_mask: hashbrown::HashMap::new(),
            free_ids: Vec::new(),
            n_rules: 0,
            n_soft: 0,
            next_seq: 0,
        }
    }

    /// Number of rules (hard and soft).
    #[inline]
    pub fn len(&self) -> usize {
        self.n_rules
    }

    /// True if there are no rules.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    /// Number of soft (conjunctive) rules.
    #[inline]
    pub fn n_soft(&self) -> usize {
        self.n_soft
    }

    /// Number of subtables (distinct masks).
    #[inline]
    pub fn n_subtables(&self) -> usize {
        self.order.len()
    }

    /// Inserts a hard rule. If a rule with an identical match and priority
    /// exists, its value is replaced (it keeps its place in the tie order
    /// and becomes hard) and the old value is returned.
    pub fn insert(&mut self, m: Match, priority: Priority, value: T) -> Option<T> {
        self.insert_rule(&m, priority, value, None)
    }

    /// Inserts a soft rule: one whose actions are only the `conj` clauses.
    /// `value` is kept (for counters and `iter`) but never returned by a
    /// lookup. Replaces like [`insert`](Self::insert).
    ///
    /// # Errors
    /// [`ConjError`] if `conj` is empty, a clause number or count is out of
    /// range, or an id repeats.
    pub fn insert_soft(
        &mut self,
        m: Match,
        priority: Priority,
        value: T,
        conj: &[Conjunction],
    ) -> Result<Option<T>, ConjError> {
        conj::validate(conj)?;
        Ok(self.insert_rule(&m, priority, value, Some(conj.into())))
    }

    fn insert_rule(
        &mut self,
        m: &Match,
        priority: Priority,
        value: T,
        conj: Option<Box<[Conjunction]>>,
    ) -> Option<T> {
        if self.next_seq >= SEQ_LIMIT {
            self.renumber();
        }
        let id = self.subtable_for(&m.mask);
        let soft = conj.is_some();
        let rule = Rule {
            rank: rank(priority, self.next_seq),
            priority,
            conj,
            value,
        };
        let st = self.subtables.get_mut(id as usize)?.as_mut()?;
        let old_max = st.max_rank();
        let old = st.insert(&m.key, rule, &self.hash_state);
        let new_max = st.max_rank();
        match &old {
            Some(o) => {
                if o.is_soft() != soft {
                    if soft {
                        self.n_soft += 1;
                    } else {
                        self.n_soft -= 1;
                    }
                }
            }
            None => {
                self.next_seq += 1;
                self.n_rules += 1;
                self.n_soft += usize::from(soft);
            }
        }
        if new_max != old_max {
            self.reorder(id, new_max);
        }
        old.map(|r| r.value)
    }

    /// The id of the subtable for `mask`, creating it (empty, not yet in
    /// `order`) if needed.
    fn subtable_for(&mut self, mask: &FlowMask) -> u32 {
        if let Some(id) = self.by_mask.get(mask) {
            return *id;
        }
        let st = Subtable::new(*mask);
        let id = match self.free_ids.pop() {
            Some(id) => {
                if let Some(slot) = self.subtables.get_mut(id as usize) {
                    *slot = Some(st);
                }
                id
            }
            None => {
                self.subtables.push(Some(st));
                (self.subtables.len() - 1) as u32
            }
        };
        self.by_mask.insert(*mask, id);
        id
    }

    /// Moves subtable `id` to its place for best rank `max_rank` (0: the
    /// subtable is empty and leaves the order).
    fn reorder(&mut self, id: u32, max_rank: u64) {
        if let Some(pos) = self.order.iter().position(|e| e.id == id) {
            self.order.remove(pos);
        }
        if max_rank != 0 {
            let pos = self.order.partition_point(|e| e.max_rank > max_rank);
            self.order.insert(pos, OrderEntry { max_rank, id });
        }
    }

    /// Removes the rule with match `m` and `priority`, returning its value.
    pub fn remove(&mut self, m: &Match, priority: Priority) -> Option<T> {
        let id = *self.by_mask.get(&m.mask)?;
        let st = self.subtables.get_mut(id as usize)?.as_mut()?;
        let old_max = st.max_rank();
        let rule = st.remove(&m.key, priority, &self.hash_state)?;
        let new_max = st.max_rank();
        self.n_rules -= 1;
        self.n_soft -= usize::from(rule.is_soft());
        if st.n_rules() == 0 {
            self.by_mask.remove(&m.mask);
            if let Some(slot) = self.subtables.get_mut(id as usize) {
                *slot = None;
            }
            self.free_ids.push(id);
        }
        if new_max != old_max {
            self.reorder(id, new_max);
        }
        Some(rule.value)
    }

    fn find_rule(&self, m: &Match, priority: Priority) -> Option<&Rule<T>> {
        let id = *self.by_mask.get(&m.mask)?;
        let st = self.subtables.get(id as usize)?.as_ref()?;
        st.get(m, priority, &self.hash_state)
    }

    /// The value of the rule with match `m` and `priority`, hard or soft.
    pub fn get(&self, m: &Match, priority: Priority) -> Option<&T> {
        self.find_rule(m, priority).map(|r| &r.value)
    }

    /// The clauses of the rule with match `m` and `priority`: `Some(&[])`
    /// for a hard rule, `None` if there is no such rule.
    pub fn conjunctions(&self, m: &Match, priority: Priority) -> Option<&[Conjunction]> {
        self.find_rule(m, priority)
            .map(|r| r.conj.as_deref().unwrap_or(&[]))
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'_, T>> + '_ {
        self.subtables.iter().flatten().flat_map(|st| {
            st.buckets().flat_map(move |b| {
                let m = st.match_of(b);
                b.rules.iter().map(move |r| Entry {
                    r#match: m,
                    priority: r.priority,
                    value: &r.value,
                    conjunctions: r.conj.as_deref().unwrap_or(&[]),
                })
            })
        })
    }

    #[inline]
    fn subtable(&self, id: u32) -> Option<&Subtable<T>> {
        self.subtables.get(id as usize).and_then(Option::as_ref)
    }

    /// The highest-priority rule matching `key` (see the module doc for
    /// ties and conjunctions). Per-packet path: does not allocate unless
    /// more than 16 soft rules match.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<Hit<'_, T>> {
        self.lookup_impl(key, &mut ())
    }

    /// Like [`lookup`](Self::lookup), and ORs into `wc` the mask bits the
    /// result depended on, for a megaflow cache. A correct
    /// over-approximation: the masks of every subtable probed (including
    /// conj_id re-lookups). Any key that agrees with `key` on every bit of
    /// the final `wc` gets the same result.
    pub fn lookup_wc(&self, key: &FlowKey, wc: &mut FlowMask) -> Option<Hit<'_, T>> {
        self.lookup_impl(key, wc)
    }

    #[inline]
    fn lookup_impl<W: WcSink>(&self, key: &FlowKey, wc: &mut W) -> Option<Hit<'_, T>> {
        // Pass 1 (OVS main loop): the best hard rule, and every soft rule
        // that might beat it.
        let mut best: Option<&Rule<T>> = None;
        let mut best_rank = 0u64;
        let mut soft: SmallVec<[&Rule<T>; SOFT_INLINE]> = SmallVec::new();
        for e in &self.order {
            if e.max_rank <= best_rank {
                break;
            }
            let Some(st) = self.subtable(e.id) else {
                continue;
            };
            wc.probed(st);
            if let Some(b) = st.find(key, &self.hash_state) {
                for r in &b.rules {
                    if r.rank <= best_rank {
                        break;
                    }
                    if r.is_soft() {
                        soft.push(r);
                    } else {
                        best = Some(r);
                        best_rank = r.rank;
                        break;
                    }
                }
            }
        }
        let hard = best.map(|r| Hit {
            value: &r.value,
            priority: r.priority,
            conj_id: None,
        });
        if soft.is_empty() {
            return hard;
        }
        self.resolve_soft(key, hard, soft, wc)
    }

    /// Pass 2 (OVS soft match loop): try the soft levels above the hard
    /// match, highest first. Kept out of line: tables without conjunctions
    /// never get here.
    #[inline(never)]
    fn resolve_soft<'a, W: WcSink>(
        &'a self,
        key: &FlowKey,
        hard: Option<Hit<'a, T>>,
        mut soft: SmallVec<[&'a Rule<T>; SOFT_INLINE]>,
        wc: &mut W,
    ) -> Option<Hit<'a, T>> {
        if let Some(h) = &hard {
            soft.retain(|r| r.priority > h.priority);
        }
        soft.sort_unstable_by_key(|r| core::cmp::Reverse(r.priority));
        let mut rest: &[&Rule<T>] = &soft;
        while let Some(first) = rest.first() {
            let p = first.priority;
            let n = rest.iter().take_while(|r| r.priority == p).count();
            let (level, tail) = rest.split_at(n);
            rest = tail;
            let mut tally = Tally::default();
            for r in level {
                for c in r.conj.as_deref().unwrap_or(&[]) {
                    // As OVS: a conjunction with more clauses than there are
                    // soft rules at this level cannot complete (each rule
                    // carries at most one clause per id).
                    if usize::from(c.n_clauses) <= level.len() {
                        tally.add(c);
                    }
                }
            }
            for id in tally.complete() {
                let mut k = *key;
                k.set_conj_id(id);
                if let Some(r) = self.lookup_hard(&k, wc) {
                    return Some(Hit {
                        value: &r.value,
                        priority: r.priority,
                        conj_id: Some(id),
                    });
                }
            }
        }
        hard
    }

    /// The best hard rule matching `key`, ignoring soft rules (the conj_id
    /// re-lookup).
    fn lookup_hard<W: WcSink>(&self, key: &FlowKey, wc: &mut W) -> Option<&Rule<T>> {
        let mut best: Option<&Rule<T>> = None;
        let mut best_rank = 0u64;
        for e in &self.order {
            if e.max_rank <= best_rank {
                break;
            }
            let Some(st) = self.subtable(e.id) else {
                continue;
            };
            wc.probed(st);
            if let Some(b) = st.find(key, &self.hash_state)
                && let Some(r) = b.rules.iter().find(|r| !r.is_soft())
                && r.rank > best_rank
            {
                best = Some(r);
                best_rank = r.rank;
            }
        }
        best
    }

    /// Renumbers every rule's sequence number to `0..n` (keeping their
    /// order), when the sequence space runs out.
    fn renumber(&mut self) {
        let mut seqs: Vec<u64> = self
            .subtables
            .iter()
            .flatten()
            .flat_map(|st| {
                st.buckets()
                    .flat_map(|b| b.rules.iter().map(|r| rank_seq(r.rank)))
            })
            .collect();
        seqs.sort_unstable();
        for st in self.subtables.iter_mut().flatten() {
            st.remap_ranks(|old| {
                let new_seq = seqs.partition_point(|s| *s < rank_seq(old)) as u64;
                rank(Priority((old >> subtable::SEQ_BITS) as u16), new_seq)
            });
        }
        self.next_seq = seqs.len() as u64;
        let ids: Vec<(u32, u64)> = self
            .subtables
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, s.max_rank())))
            .collect();
        self.order.clear();
        for (id, max) in ids {
            self.reorder(id, max);
        }
    }

    /// Checks every invariant listed in the module doc. A debug helper for
    /// tests and fuzzing: `O(rules)`.
    ///
    /// # Errors
    /// A description of the first violated invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut n_rules = 0;
        let mut n_soft = 0;
        let mut live = 0;
        for (id, st) in self.subtables.iter().enumerate() {
            let Some(st) = st else {
                if !self.free_ids.contains(&(id as u32)) {
                    return Err(format!("dead subtable id {id} not free"));
                }
                continue;
            };
            live += 1;
            st.check(&self.hash_state)
                .map_err(|e| format!("subtable {id}: {e}"))?;
            if self.by_mask.get(&st.mask()) != Some(&(id as u32)) {
                return Err(format!("subtable {id} not indexed by its mask"));
            }
            match self.order.iter().find(|e| e.id == id as u32) {
                Some(e) if e.max_rank == st.max_rank() => {}
                Some(_) => return Err(format!("subtable {id}: stale max rank in order")),
                None => return Err(format!("subtable {id} missing from order")),
            }
            for b in st.buckets() {
                for r in &b.rules {
                    n_rules += 1;
                    n_soft += usize::from(r.is_soft());
                    if rank_seq(r.rank) >= self.next_seq {
                        return Err(format!("subtable {id}: sequence number from the future"));
                    }
                }
            }
        }
        if self.order.len() != live || self.by_mask.len() != live {
            return Err("order / mask index size differs from live subtables".into());
        }
        if self
            .order
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.max_rank <= b.max_rank))
        {
            return Err("subtables not sorted by strictly descending max rank".into());
        }
        if n_rules != self.n_rules || n_soft != self.n_soft {
            return Err(format!(
                "counts: {n_rules} rules / {n_soft} soft, recorded {} / {}",
                self.n_rules, self.n_soft
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
impl<T> Classifier<T> {
    /// Forces the sequence counter near its limit (tests renumbering).
    fn set_next_seq(&mut self, seq: u64) {
        self.next_seq = seq;
    }
}

/// Type-level check that published classifiers can be shared by workers.
const _: fn() = || {
    fn is_send_sync<X: Send + Sync>() {}
    is_send_sync::<Classifier<u64>>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::flow::Field;

    fn prefix(plen: u32) -> u128 {
        if plen == 0 {
            0
        } else {
            u128::from(u32::MAX << (32 - plen))
        }
    }

    /// `ip,nw_dst=a.b.c.d/plen`.
    fn nw_dst(a: [u8; 4], plen: u32) -> Match {
        let mut m = Match::default();
        m.set_exact(Field::DlType, 0x0800);
        m.set_masked(
            Field::NwDst,
            u128::from(u32::from_be_bytes(a)),
            prefix(plen),
        );
        m
    }

    fn field(f: Field, v: u128) -> Match {
        let mut m = Match::default();
        m.set_exact(f, v);
        m
    }

    fn both(a: Match, b: &Match) -> Match {
        let mut m = a;
        m.key = FlowKey(core::array::from_fn(|i| a.key.0[i] | b.key.0[i]));
        m.mask = a.mask.or(&b.mask);
        m
    }

    fn pkt(dst: [u8; 4], tp_dst: u16, in_port: u32) -> FlowKey {
        let mut k = FlowKey::default();
        k.set_dl_type(0x0800);
        k.set_nw_dst(dst.into());
        k.set_nw_proto(6);
        k.set_tp_dst(tp_dst);
        k.set_in_port(in_port);
        k
    }

    fn p(x: u16) -> Priority {
        Priority(x)
    }

    fn c(id: u32, clause: u8, n_clauses: u8) -> Conjunction {
        Conjunction {
            id,
            clause,
            n_clauses,
        }
    }

    /// Value and priority of a lookup, for compact assertions.
    fn look<T: Copy>(cls: &Classifier<T>, k: &FlowKey) -> Option<(T, u16, Option<u32>)> {
        cls.check_invariants().unwrap();
        cls.lookup(k).map(|h| (*h.value, h.priority.0, h.conj_id))
    }

    #[test]
    fn empty_misses() {
        let cls: Classifier<u32> = Classifier::new();
        assert!(cls.is_empty());
        assert_eq!(look(&cls, &pkt([10, 0, 0, 1], 80, 1)), None);
        assert_eq!(cls.n_subtables(), 0);
    }

    #[test]
    fn highest_priority_wins_regardless_of_insert_order() {
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let rules = [
                (nw_dst([10, 0, 0, 0], 8), 10, 'a'),
                (nw_dst([10, 1, 0, 0], 16), 20, 'b'),
                (nw_dst([10, 1, 2, 0], 24), 5, 'c'),
            ];
            let mut cls = Classifier::new();
            for i in order {
                let (m, pr, v) = rules[i];
                assert_eq!(cls.insert(m, p(pr), v), None);
            }
            assert_eq!(cls.n_subtables(), 3);
            // Matches all three: /16 at 20 wins even over the longer /24.
            assert_eq!(
                look(&cls, &pkt([10, 1, 2, 3], 80, 1)),
                Some(('b', 20, None))
            );
            assert_eq!(
                look(&cls, &pkt([10, 2, 2, 3], 80, 1)),
                Some(('a', 10, None))
            );
            assert_eq!(look(&cls, &pkt([11, 1, 2, 3], 80, 1)), None);
        }
    }

    #[test]
    fn tie_first_inserted_wins() {
        // Two overlapping rules in different subtables, equal priority.
        let a = field(Field::TpDst, 80);
        let b = field(Field::InPort, 1);
        let k = pkt([10, 0, 0, 1], 80, 1);

        let mut cls = Classifier::new();
        cls.insert(a, p(100), 'a');
        cls.insert(b, p(100), 'b');
        assert_eq!(look(&cls, &k), Some(('a', 100, None)));

        let mut cls = Classifier::new();
        cls.insert(b, p(100), 'b');
        cls.insert(a, p(100), 'a');
        assert_eq!(look(&cls, &k), Some(('b', 100, None)));

        // Replacing the value keeps the rule's place...
        assert_eq!(cls.insert(b, p(100), 'B'), Some('b'));
        assert_eq!(look(&cls, &k), Some(('B', 100, None)));
        // ...removing and re-inserting makes it the newest.
        assert_eq!(cls.remove(&b, p(100)), Some('B'));
        cls.insert(b, p(100), 'b');
        assert_eq!(look(&cls, &k), Some(('a', 100, None)));
        // A higher-priority subtable probed first does not matter either:
        // a third overlapping rule, inserted last, loses the tie.
        let c3 = field(Field::DlType, 0x0800);
        cls.insert(c3, p(100), 'c');
        assert_eq!(look(&cls, &k), Some(('a', 100, None)));
    }

    #[test]
    fn replace_returns_old_value() {
        let mut cls = Classifier::new();
        let m = nw_dst([10, 0, 0, 0], 8);
        assert_eq!(cls.insert(m, p(1), 1u32), None);
        assert_eq!(cls.insert(m, p(1), 2), Some(1));
        assert_eq!(cls.len(), 1);
        assert_eq!(cls.get(&m, p(1)), Some(&2));
        // Same match, another priority: a second rule in the same bucket.
        assert_eq!(cls.insert(m, p(2), 3), None);
        assert_eq!(cls.len(), 2);
        assert_eq!(cls.n_subtables(), 1);
        assert_eq!(look(&cls, &pkt([10, 9, 9, 9], 1, 1)), Some((3, 2, None)));
        // Key bits outside the mask do not make a different rule.
        let mut dirty = m;
        dirty.key.0[28] |= 0xff_u64 << 32; // low byte of nw_dst, wildcarded
        assert_eq!(cls.insert(dirty, p(2), 4), Some(3));
        assert_eq!(cls.get(&dirty, p(2)), Some(&4));
        cls.check_invariants().unwrap();
    }

    #[test]
    fn remove_and_subtable_lifecycle() {
        let mut cls = Classifier::new();
        let a = nw_dst([10, 0, 0, 0], 8);
        let b = nw_dst([10, 1, 0, 0], 16);
        cls.insert(a, p(10), 'a');
        cls.insert(b, p(20), 'b');
        cls.insert(b, p(5), 'x');
        assert_eq!(cls.remove(&b, p(99)), None);
        assert_eq!(cls.remove(&nw_dst([10, 2, 0, 0], 16), p(20)), None);
        assert_eq!(cls.remove(&field(Field::TpDst, 1), p(20)), None);
        let k = pkt([10, 1, 0, 1], 1, 1);
        assert_eq!(look(&cls, &k), Some(('b', 20, None)));
        assert_eq!(cls.remove(&b, p(20)), Some('b'));
        // The lower rule with the same match is now the subtable's best.
        assert_eq!(look(&cls, &k), Some(('a', 10, None)));
        assert_eq!(cls.remove(&a, p(10)), Some('a'));
        assert_eq!(look(&cls, &k), Some(('x', 5, None)));
        assert_eq!(cls.n_subtables(), 1);
        assert_eq!(cls.remove(&b, p(5)), Some('x'));
        assert_eq!(cls.n_subtables(), 0);
        assert!(cls.is_empty());
        assert_eq!(look(&cls, &k), None);
        // Subtable ids are reused.
        cls.insert(a, p(1), 'a');
        assert_eq!(look(&cls, &k), Some(('a', 1, None)));
    }

    #[test]
    fn masks_and_catchall() {
        let mut cls = Classifier::new();
        cls.insert(Match::CATCHALL, p(0), "miss");
        cls.insert(
            both(field(Field::InPort, 3), &field(Field::TpDst, 443)),
            p(50),
            "p3-443",
        );
        cls.insert(field(Field::TpDst, 443), p(40), "443");
        let mut r0 = Match::default();
        r0.set_masked(Field::Reg(0), 0x10, 0xf0);
        cls.insert(r0, p(60), "reg0");
        assert_eq!(
            look(&cls, &pkt([1, 2, 3, 4], 443, 3)),
            Some(("p3-443", 50, None))
        );
        assert_eq!(
            look(&cls, &pkt([1, 2, 3, 4], 443, 4)),
            Some(("443", 40, None))
        );
        assert_eq!(
            look(&cls, &pkt([1, 2, 3, 4], 80, 3)),
            Some(("miss", 0, None))
        );
        let mut k = pkt([1, 2, 3, 4], 443, 3);
        k.set_reg(0, 0x1f);
        assert_eq!(look(&cls, &k), Some(("reg0", 60, None)));
        k.set_reg(0, 0x2f);
        assert_eq!(look(&cls, &k), Some(("p3-443", 50, None)));
        // Every packet bit is a wildcard for the catch-all.
        assert_eq!(
            look(&cls, &FlowKey([u64::MAX; 39])),
            Some(("miss", 0, None))
        );
    }

    #[test]
    fn exact_mask_wider_than_probe_buffer() {
        // All 39 words: the probe takes the collect-into-SmallVec path.
        let mut cls = Classifier::new();
        let k = pkt([10, 0, 0, 1], 80, 1);
        let m = Match {
            key: k,
            mask: FlowMask::EXACT,
        };
        cls.insert(m, p(1), 'x');
        cls.insert(Match::CATCHALL, p(0), 'c');
        assert_eq!(look(&cls, &k), Some(('x', 1, None)));
        let mut k2 = k;
        k2.set_nw_ttl(1);
        assert_eq!(look(&cls, &k2), Some(('c', 0, None)));
        assert_eq!(cls.remove(&m, p(1)), Some('x'));
        assert_eq!(look(&cls, &k), Some(('c', 0, None)));
    }

    #[test]
    fn many_buckets_insert_remove() {
        // Exercises bucket swap-removal and table growth.
        let mut cls = Classifier::new();
        let rule = |i: u32| nw_dst((0x0a00_0000 | i).to_be_bytes(), 32);
        for i in 0..300 {
            cls.insert(rule(i), p((i % 3) as u16), i);
        }
        cls.check_invariants().unwrap();
        for i in (0..300).step_by(2) {
            assert_eq!(cls.remove(&rule(i), p((i % 3) as u16)), Some(i));
        }
        cls.check_invariants().unwrap();
        for i in 0..300u32 {
            let want = (i % 2 == 1).then_some((i, (i % 3) as u16, None));
            assert_eq!(
                look(&cls, &pkt((0x0a00_0000 | i).to_be_bytes(), 1, 1)),
                want
            );
        }
    }

    #[test]
    fn iter_lists_every_rule() {
        let mut cls = Classifier::new();
        let a = nw_dst([10, 0, 0, 0], 8);
        let b = field(Field::TpDst, 80);
        cls.insert(a, p(1), 1);
        cls.insert(a, p(2), 2);
        cls.insert_soft(b, p(3), 3, &[c(1, 1, 2)]).unwrap();
        let mut all: Vec<(Match, u16, i32, usize)> = cls
            .iter()
            .map(|e| (e.r#match, e.priority.0, *e.value, e.conjunctions.len()))
            .collect();
        all.sort_by_key(|x| x.1);
        assert_eq!(all, vec![(a, 1, 1, 0), (a, 2, 2, 0), (b, 3, 3, 1)]);
        assert_eq!(cls.conjunctions(&b, p(3)), Some(&[c(1, 1, 2)][..]));
        assert_eq!(cls.conjunctions(&a, p(1)), Some(&[][..]));
        assert_eq!(cls.conjunctions(&a, p(9)), None);
    }

    #[test]
    fn renumbering_keeps_tie_order() {
        let a = field(Field::TpDst, 80);
        let b = field(Field::InPort, 1);
        let k = pkt([10, 0, 0, 1], 80, 1);
        let mut cls = Classifier::new();
        cls.insert(b, p(100), 'b');
        cls.insert(a, p(100), 'a');
        cls.set_next_seq(SEQ_LIMIT - 1);
        cls.insert(field(Field::DlType, 0x0800), p(100), 'c');
        assert_eq!(cls.next_seq, SEQ_LIMIT);
        cls.insert(field(Field::NwProto, 6), p(100), 'd');
        assert_eq!(cls.next_seq, 4);
        assert_eq!(look(&cls, &k), Some(('b', 100, None)));
        cls.remove(&b, p(100));
        assert_eq!(look(&cls, &k), Some(('a', 100, None)));
        cls.remove(&a, p(100));
        assert_eq!(look(&cls, &k), Some(('c', 100, None)));
    }

    /// OVS `ovs-fields(7)` example: `ip_src` in {1,4} x `ip_dst` in {2,5}.
    fn conj_2d() -> Classifier<&'static str> {
        let mut cls = Classifier::new();
        for s in [1, 4] {
            let mut m = Match::default();
            m.set_exact(Field::NwSrc, u128::from(u32::from_be_bytes([10, 0, 0, s])));
            cls.insert_soft(m, p(100), "soft-src", &[c(1234, 1, 2)])
                .unwrap();
        }
        for d in [2, 5] {
            cls.insert_soft(
                nw_dst([10, 0, 0, d], 32),
                p(100),
                "soft-dst",
                &[c(1234, 2, 2)],
            )
            .unwrap();
        }
        cls.insert(field(Field::ConjId, 1234), p(100), "conj-1234");
        cls.insert(Match::CATCHALL, p(0), "default");
        cls
    }

    fn src_dst(s: u8, d: u8) -> FlowKey {
        let mut k = pkt([10, 0, 0, d], 80, 1);
        k.set_nw_src([10, 0, 0, s].into());
        k
    }

    #[test]
    fn conjunction_two_clauses() {
        let cls = conj_2d();
        assert_eq!(cls.n_soft(), 4);
        for (s, d) in [(1, 2), (1, 5), (4, 2), (4, 5)] {
            assert_eq!(
                look(&cls, &src_dst(s, d)),
                Some(("conj-1234", 100, Some(1234))),
                "{s} {d}"
            );
        }
        // Incomplete: only one dimension matches, fall back to hard match.
        assert_eq!(look(&cls, &src_dst(1, 3)), Some(("default", 0, None)));
        assert_eq!(look(&cls, &src_dst(3, 2)), Some(("default", 0, None)));
        // Soft rules are never returned themselves, and conj_id in the
        // incoming key is only what the packet carries.
        let mut k = src_dst(3, 3);
        k.set_conj_id(1234);
        assert_eq!(look(&cls, &k), Some(("conj-1234", 100, None)));
    }

    #[test]
    fn conjunction_three_clauses_several_rules_per_clause() {
        let mut cls = Classifier::new();
        for port in [80, 443, 8080] {
            cls.insert_soft(field(Field::TpDst, port), p(200), 0, &[c(7, 3, 3)])
                .unwrap();
        }
        for inp in [1, 2] {
            cls.insert_soft(field(Field::InPort, inp), p(200), 0, &[c(7, 1, 3)])
                .unwrap();
        }
        cls.insert_soft(nw_dst([10, 0, 0, 0], 8), p(200), 0, &[c(7, 2, 3)])
            .unwrap();
        cls.insert_soft(nw_dst([192, 168, 0, 0], 16), p(200), 0, &[c(7, 2, 3)])
            .unwrap();
        cls.insert(field(Field::ConjId, 7), p(10), 77);
        assert_eq!(
            look(&cls, &pkt([10, 1, 1, 1], 443, 2)),
            Some((77, 10, Some(7)))
        );
        assert_eq!(
            look(&cls, &pkt([192, 168, 1, 1], 8080, 1)),
            Some((77, 10, Some(7)))
        );
        // Each missing dimension: a miss (no hard rule matches).
        assert_eq!(look(&cls, &pkt([11, 1, 1, 1], 443, 2)), None);
        assert_eq!(look(&cls, &pkt([10, 1, 1, 1], 22, 2)), None);
        assert_eq!(look(&cls, &pkt([10, 1, 1, 1], 443, 3)), None);
    }

    #[test]
    fn conjunction_at_or_below_hard_priority_is_ignored() {
        let mut cls = conj_2d();
        let k = src_dst(1, 2);
        cls.insert(field(Field::TpDst, 80), p(150), "hard-150");
        assert_eq!(look(&cls, &k), Some(("hard-150", 150, None)));
        cls.remove(&field(Field::TpDst, 80), p(150));
        // Equal priority: soft must be strictly above the hard match.
        cls.insert(field(Field::TpDst, 80), p(100), "hard-100");
        assert_eq!(look(&cls, &k), Some(("hard-100", 100, None)));
        cls.remove(&field(Field::TpDst, 80), p(100));
        cls.insert(field(Field::TpDst, 80), p(99), "hard-99");
        assert_eq!(look(&cls, &k), Some(("conj-1234", 100, Some(1234))));
        // ...but the hard rule is the fallback when the conjunction is
        // incomplete.
        assert_eq!(look(&cls, &src_dst(1, 9)), Some(("hard-99", 99, None)));
    }

    #[test]
    fn conjunction_different_priorities_do_not_mix() {
        let mut cls = Classifier::new();
        cls.insert_soft(field(Field::TpDst, 80), p(100), 0, &[c(1, 1, 2)])
            .unwrap();
        cls.insert_soft(field(Field::InPort, 1), p(90), 0, &[c(1, 2, 2)])
            .unwrap();
        cls.insert(field(Field::ConjId, 1), p(1), 1);
        assert_eq!(look(&cls, &pkt([1, 1, 1, 1], 80, 1)), None);
        cls.insert_soft(field(Field::InPort, 1), p(100), 0, &[c(1, 2, 2)])
            .unwrap();
        assert_eq!(look(&cls, &pkt([1, 1, 1, 1], 80, 1)), Some((1, 1, Some(1))));
    }

    #[test]
    fn conjunction_failed_relookup_falls_through() {
        // Level 300: ids 5 and 3 complete. Level 200: id 9 completes. The
        // hard fallback matches only conj_id=0, so it is invisible to the
        // conj_id re-lookups.
        let mut cls = Classifier::new();
        let a = field(Field::TpDst, 80);
        let b = field(Field::InPort, 1);
        cls.insert_soft(a, p(300), 0, &[c(5, 1, 2), c(3, 1, 2)])
            .unwrap();
        cls.insert_soft(b, p(300), 0, &[c(3, 2, 2), c(5, 2, 2)])
            .unwrap();
        cls.insert_soft(a, p(200), 0, &[c(9, 1, 2)]).unwrap();
        cls.insert_soft(b, p(200), 0, &[c(9, 2, 2)]).unwrap();
        let mut h = field(Field::DlType, 0x0800);
        h.set_exact(Field::ConjId, 0);
        cls.insert(h, p(100), 100);
        let k = pkt([1, 1, 1, 1], 80, 1);
        // No conj_id rule at all: as if no conjunction matched.
        assert_eq!(look(&cls, &k), Some((100, 100, None)));
        // Level 300 fails (no rule for 3 or 5), level 200 succeeds.
        cls.insert(field(Field::ConjId, 9), p(1000), 9);
        assert_eq!(look(&cls, &k), Some((9, 1000, Some(9))));
        // Id 3 fails, id 5 succeeds, at level 300, whatever the priority
        // of the rule found.
        cls.insert(field(Field::ConjId, 5), p(50), 5);
        assert_eq!(look(&cls, &k), Some((5, 50, Some(5))));
        // Both complete ids have rules: ascending id order, 3 first.
        cls.insert(field(Field::ConjId, 3), p(40), 3);
        assert_eq!(look(&cls, &k), Some((3, 40, Some(3))));
        // The re-lookup is a full hard lookup: a conj-independent rule at a
        // higher priority than the conj_id rule wins it.
        cls.insert(field(Field::NwProto, 6), p(45), 45);
        assert_eq!(look(&cls, &k), Some((45, 45, Some(3))));
    }

    #[test]
    fn soft_and_hard_with_identical_match() {
        // A soft rule above a hard rule with the same match (same bucket).
        let mut cls = Classifier::new();
        let a = field(Field::TpDst, 80);
        cls.insert_soft(a, p(200), 0, &[c(1, 1, 2)]).unwrap();
        cls.insert(a, p(100), 100);
        let k = pkt([1, 1, 1, 1], 80, 1);
        assert_eq!(look(&cls, &k), Some((100, 100, None)));
        // Replace the soft rule by a hard one and back.
        assert_eq!(cls.insert(a, p(200), 200), Some(0));
        assert_eq!(cls.n_soft(), 0);
        assert_eq!(look(&cls, &k), Some((200, 200, None)));
        assert_eq!(cls.insert_soft(a, p(200), 0, &[c(1, 1, 2)]), Ok(Some(200)));
        assert_eq!(cls.n_soft(), 1);
        assert_eq!(look(&cls, &k), Some((100, 100, None)));
        assert_eq!(
            cls.insert_soft(a, p(200), 0, &[]),
            Err(ConjError::Empty),
            "invalid clauses are rejected before touching the table"
        );
        assert_eq!(cls.len(), 2);
    }

    #[test]
    fn lookup_wc_covers_probed_masks() {
        let mut cls = Classifier::new();
        cls.insert(nw_dst([10, 0, 0, 0], 8), p(30), 1);
        cls.insert(field(Field::TpDst, 80), p(20), 2);
        cls.insert(field(Field::InPort, 1), p(10), 3);
        let mut wc = FlowMask::default();
        let h = cls
            .lookup_wc(&pkt([10, 0, 0, 1], 80, 1), &mut wc)
            .map(|h| *h.value);
        assert_eq!(h, Some(1));
        // Stopped after the first subtable: only dl_type and nw_dst/8.
        let mut want = nw_dst([10, 0, 0, 0], 8).mask;
        assert_eq!(wc, want);
        let mut wc = FlowMask::default();
        let h = cls
            .lookup_wc(&pkt([11, 0, 0, 1], 80, 1), &mut wc)
            .map(|h| *h.value);
        assert_eq!(h, Some(2));
        want = want.or(&field(Field::TpDst, 80).mask);
        assert_eq!(wc, want);
    }
}
