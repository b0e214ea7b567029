//! One subtable: every rule whose mask is exactly one [`FlowMask`], found
//! through a hash table keyed by the masked key (OVS `struct
//! cls_subtable`). The table holds indices into a dense bucket list.
//!
//! The masked key is stored and hashed as the list of the mask's non-zero
//! words only (the subtable's word map, OVS's miniflow), usually 1 to 5 of
//! the 39. All rules with the same masked key share one [`Bucket`], sorted by
//! priority, highest first (OVS chains "otherwise identical" rules off the
//! highest-priority one in the same way).

use std::collections::BTreeSet;

use core::hash::{BuildHasher, Hasher};

use foldhash::quality::RandomState;
use hashbrown::HashTable;
use protocol::flow::{FLOW_WORDS, FlowKey, FlowMask, Match, Priority};
use smallvec::SmallVec;

use super::conj::Conjunction;

/// Mask words stored inline in a subtable or bucket before spilling to the
/// heap. Realistic masks touch 1 to 5 words: in_port/conj_id (word 0), a
/// register (2..=9), dl_type (25), nw_src/nw_dst (28), nw_proto (33),
/// tp_src/tp_dst (34). Wider masks still work; they cost one allocation per
/// bucket at insert time and a pointer chase per probe.
pub(crate) const INLINE_WORDS: usize = 6;

/// Bits of a rank that hold the (inverted) insertion sequence number.
pub(crate) const SEQ_BITS: u32 = 48;
/// Sequence numbers are `0..SEQ_LIMIT`; at the limit the classifier
/// renumbers its rules (keeping their order).
pub(crate) const SEQ_LIMIT: u64 = (1 << SEQ_BITS) - 1;

/// The total order in which rules win: higher priority first, then lower
/// insertion sequence number (older rule) first. Packed so a comparison is
/// one `u64` compare; never zero, so 0 means "nothing found yet".
#[inline]
pub(crate) fn rank(priority: Priority, seq: u64) -> u64 {
    (u64::from(priority.0) << SEQ_BITS) | (SEQ_LIMIT - seq)
}

/// The sequence number packed in a rank.
#[inline]
pub(crate) fn rank_seq(rank: u64) -> u64 {
    SEQ_LIMIT - (rank & ((1 << SEQ_BITS) - 1))
}

/// One rule, as stored in its bucket.
#[derive(Debug, Clone)]
pub(crate) struct Rule<T> {
    /// See [`rank`]. Unique in the classifier.
    pub(crate) rank: u64,
    /// The rule's priority (also in the top bits of `rank`).
    pub(crate) priority: Priority,
    /// `None` for a hard rule; the clauses for a soft (conjunctive) rule.
    pub(crate) conj: Option<Box<[Conjunction]>>,
    /// The caller's value.
    pub(crate) value: T,
}

impl<T> Rule<T> {
    /// True for a soft rule (only `conjunction` clauses).
    #[inline]
    pub(crate) fn is_soft(&self) -> bool {
        self.conj.is_some()
    }
}

/// The rules that share one masked key, highest priority first (priorities
/// are distinct: an equal match and priority replaces).
#[derive(Debug, Clone)]
pub(crate) struct Bucket<T> {
    /// The masked key words, one per word of the subtable's word map.
    pub(crate) words: SmallVec<[u64; INLINE_WORDS]>,
    /// Never empty.
    pub(crate) rules: SmallVec<[Rule<T>; 1]>,
}

/// A hash table of buckets for one mask.
#[derive(Debug, Clone)]
pub(crate) struct Subtable<T> {
    // Immutable after creation; read by lookups. (The full 312-byte mask is
    // not stored: it would push the hot fields apart; see `mask()`.)
    /// Indices of the mask's non-zero words, ascending.
    idx: SmallVec<[u8; 8]>,
    /// The mask's non-zero words, parallel to `idx`.
    mw: SmallVec<[u64; INLINE_WORDS]>,

    // Read by lookups, changed by the control thread.
    /// Indices into `buckets`, keyed by the hash of the bucket's `words`.
    /// Slots are 4 bytes, so the table is kept at most half full cheaply: a
    /// miss almost always ends at the first control group with no key
    /// compare, and never touches `buckets`.
    table: HashTable<u32>,
    /// The buckets, dense (removal swaps the last one in).
    buckets: Vec<Bucket<T>>,

    // Control only.
    /// The rank of every rule here; the last one is the subtable's best.
    ranks: BTreeSet<u64>,
}

/// Hashes a masked word list: one foldhash folded multiply per pair of
/// words (`write_u128`), rather than one sponge step per word. Stored
/// buckets and probing packets must hash the same way.
#[inline]
fn hash_words(state: &RandomState, words: &[u64]) -> u64 {
    let mut h = state.build_hasher();
    let mut pairs = words.chunks_exact(2);
    for pair in &mut pairs {
        if let [lo, hi] = pair {
            h.write_u128(u128::from(*lo) | (u128::from(*hi) << 64));
        }
    }
    if let [last] = pairs.remainder() {
        h.write_u64(*last);
    }
    h.finish()
}

/// Masks with at most this many words are probed through a stack buffer
/// (the common case); wider ones collect into a `SmallVec`, which may
/// allocate beyond [`INLINE_WORDS`].
const PROBE_BUF: usize = 8;

impl<T> Subtable<T> {
    /// An empty subtable for `mask`.
    pub(crate) fn new(mask: FlowMask) -> Self {
        let mut idx = SmallVec::new();
        let mut mw = SmallVec::new();
        for (i, w) in mask.0.0.iter().enumerate() {
            if *w != 0 {
                idx.push(i as u8);
                mw.push(*w);
            }
        }
        Subtable {
            idx,
            mw,
            table: HashTable::new(),
            buckets: Vec::new(),
            ranks: BTreeSet::new(),
        }
    }

    /// The mask shared by every rule here.
    pub(crate) fn mask(&self) -> FlowMask {
        let mut mask = FlowMask::CATCHALL;
        self.or_mask_into(&mut mask);
        mask
    }

    /// Number of rules.
    #[inline]
    pub(crate) fn n_rules(&self) -> usize {
        self.ranks.len()
    }

    /// The best rank here (0 if empty).
    #[inline]
    pub(crate) fn max_rank(&self) -> u64 {
        self.ranks.last().copied().unwrap_or(0)
    }

    /// The masked words of `key` for this subtable's mask.
    #[inline]
    fn masked_words<'k>(&'k self, key: &'k FlowKey) -> impl Iterator<Item = u64> + 'k {
        self.idx
            .iter()
            .zip(self.mw.iter())
            .map(move |(i, m)| key.0.get(usize::from(*i)).copied().unwrap_or(0) & m)
    }

    /// The bucket whose masked key equals `key` under this mask, if any.
    /// Per-packet path: no allocation for masks of up to [`PROBE_BUF`]
    /// words.
    #[inline]
    pub(crate) fn find(&self, key: &FlowKey, state: &RandomState) -> Option<&Bucket<T>> {
        let n = self.idx.len();
        if n <= PROBE_BUF {
            let mut buf = [0u64; PROBE_BUF];
            for (b, w) in buf.iter_mut().zip(self.masked_words(key)) {
                *b = w;
            }
            let words = buf.get(..n)?;
            self.find_words(words, state)
        } else {
            let words: SmallVec<[u64; FLOW_WORDS]> = self.masked_words(key).collect();
            self.find_words(&words, state)
        }
    }

    /// The bucket with masked key `words`.
    #[inline]
    fn find_words(&self, words: &[u64], state: &RandomState) -> Option<&Bucket<T>> {
        let i = self.index_of(hash_words(state, words), words)?;
        self.buckets.get(i)
    }

    /// The index in `buckets` of the bucket with masked key `words`.
    #[inline]
    fn index_of(&self, hash: u64, words: &[u64]) -> Option<usize> {
        // An element loop, not `==` on slices: the slices are short and
        // `==` would call `memcmp` on every tag false positive.
        self.table
            .find(hash, |i| {
                self.buckets.get(*i as usize).is_some_and(|b| {
                    b.words.len() == words.len() && b.words.iter().zip(words).all(|(a, w)| a == w)
                })
            })
            .map(|i| *i as usize)
    }

    /// ORs this subtable's mask into `wc`.
    #[inline]
    pub(crate) fn or_mask_into(&self, wc: &mut FlowMask) {
        for (i, m) in self.idx.iter().zip(self.mw.iter()) {
            if let Some(w) = wc.0.0.get_mut(usize::from(*i)) {
                *w |= m;
            }
        }
    }

    /// The match a bucket stands for.
    pub(crate) fn match_of(&self, b: &Bucket<T>) -> Match {
        let mut key = FlowKey([0; FLOW_WORDS]);
        for (i, w) in self.idx.iter().zip(b.words.iter()) {
            if let Some(k) = key.0.get_mut(usize::from(*i)) {
                *k = *w;
            }
        }
        Match {
            key,
            mask: self.mask(),
        }
    }

    /// The rule with match `m` (whose mask must be this subtable's) and
    /// `priority`.
    pub(crate) fn get(
        &self,
        m: &Match,
        priority: Priority,
        state: &RandomState,
    ) -> Option<&Rule<T>> {
        let b = self.find(&m.key, state)?;
        b.rules.iter().find(|r| r.priority == priority)
    }

    /// Inserts `rule` with match key `key` (masked here). If a rule with the
    /// same masked key and priority exists, swaps in the new value and
    /// clauses (keeping the old rule's rank) and returns the old rule.
    pub(crate) fn insert(
        &mut self,
        key: &FlowKey,
        rule: Rule<T>,
        state: &RandomState,
    ) -> Option<Rule<T>> {
        let words: SmallVec<[u64; INLINE_WORDS]> = self.masked_words(key).collect();
        let hash = hash_words(state, &words);
        if let Some(b) = self
            .index_of(hash, &words)
            .and_then(|i| self.buckets.get_mut(i))
        {
            // Highest priority first: the first rule not above `rule`.
            let pos = b.rules.partition_point(|r| r.priority > rule.priority);
            if let Some(old) = b.rules.get_mut(pos).filter(|r| r.priority == rule.priority) {
                let rank = old.rank;
                let mut old_rule = core::mem::replace(old, rule);
                old.rank = rank;
                old_rule.rank = rank;
                return Some(old_rule);
            }
            self.ranks.insert(rule.rank);
            b.rules.insert(pos, rule);
            return None;
        }
        self.ranks.insert(rule.rank);
        let Subtable { table, buckets, .. } = self;
        let rehash = |i: &u32| {
            buckets
                .get(*i as usize)
                .map_or(0, |b| hash_words(state, &b.words))
        };
        // At most half full (see `table`).
        let len = table.len();
        if 2 * (len + 1) > table.capacity() {
            table.reserve(len + 1, rehash);
        }
        let new_index = buckets.len() as u32;
        let mut rules = SmallVec::new();
        rules.push(rule);
        table.insert_unique(hash, new_index, rehash);
        buckets.push(Bucket { words, rules });
        None
    }

    /// Removes and returns the rule with match key `key` and `priority`.
    pub(crate) fn remove(
        &mut self,
        key: &FlowKey,
        priority: Priority,
        state: &RandomState,
    ) -> Option<Rule<T>> {
        let words: SmallVec<[u64; INLINE_WORDS]> = self.masked_words(key).collect();
        let hash = hash_words(state, &words);
        let i = self.index_of(hash, &words)?;
        let b = self.buckets.get_mut(i)?;
        let pos = b.rules.iter().position(|r| r.priority == priority)?;
        let rule = b.rules.remove(pos);
        self.ranks.remove(&rule.rank);
        if b.rules.is_empty() {
            if let Ok(entry) = self.table.find_entry(hash, |j| *j as usize == i) {
                entry.remove();
            }
            self.buckets.swap_remove(i);
            // The former last bucket now lives at `i`: repoint its slot.
            if let Some(moved) = self.buckets.get(i) {
                let last = self.buckets.len();
                let h = hash_words(state, &moved.words);
                if let Some(slot) = self.table.find_mut(h, |j| *j as usize == last) {
                    *slot = i as u32;
                }
            }
        }
        Some(rule)
    }

    /// Every bucket.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = &Bucket<T>> {
        self.buckets.iter()
    }

    /// Rewrites every rule's rank through `f` (used when renumbering).
    pub(crate) fn remap_ranks(&mut self, mut f: impl FnMut(u64) -> u64) {
        self.ranks.clear();
        for b in &mut self.buckets {
            for r in &mut b.rules {
                r.rank = f(r.rank);
                self.ranks.insert(r.rank);
            }
        }
    }

    /// Checks this subtable's internal invariants (see the module doc).
    pub(crate) fn check(&self, state: &RandomState) -> Result<(), String> {
        if self.buckets.is_empty() || self.ranks.is_empty() {
            return Err("empty subtable".into());
        }
        if self.table.len() != self.buckets.len() {
            return Err("index table and bucket list differ in size".into());
        }
        let mut indices: Vec<u32> = self.table.iter().copied().collect();
        indices.sort_unstable();
        if !indices.iter().enumerate().all(|(n, i)| *i as usize == n) {
            return Err("index table does not point at each bucket once".into());
        }
        if self.idx.windows(2).any(|w| matches!(w, [a, b] if a >= b))
            || self.idx.iter().any(|i| usize::from(*i) >= FLOW_WORDS)
            || self.mw.contains(&0)
            || self.idx.len() != self.mw.len()
        {
            return Err("word index list is not the mask's non-zero words".into());
        }
        let mut seen = BTreeSet::new();
        for b in &self.buckets {
            if b.rules.is_empty() {
                return Err("empty bucket".into());
            }
            if b.words.len() != self.idx.len() {
                return Err("bucket key has the wrong number of words".into());
            }
            if b.words.iter().zip(self.mw.iter()).any(|(w, m)| w & !m != 0) {
                return Err("bucket key has bits outside the mask (key & mask != key)".into());
            }
            let m = self.match_of(b);
            if m.key.masked(&m.mask) != m.key {
                return Err("key & mask != key".into());
            }
            match self.find(&m.key, state) {
                Some(found) if core::ptr::eq(found, b) => {}
                _ => return Err("bucket not found by its own key (hash mismatch)".into()),
            }
            for pair in b.rules.windows(2) {
                if let [a, c] = pair
                    && a.priority <= c.priority
                {
                    return Err("bucket not sorted by strictly descending priority".into());
                }
            }
            for r in &b.rules {
                if r.rank >> SEQ_BITS != u64::from(r.priority.0) {
                    return Err("rank does not carry the rule's priority".into());
                }
                if r.rank == 0 || !seen.insert(r.rank) {
                    return Err("duplicate or zero rank".into());
                }
                if let Some(c) = &r.conj {
                    super::conj::validate(c).map_err(|e| format!("stored soft rule: {e}"))?;
                }
            }
        }
        if seen != self.ranks {
            return Err("rank set out of date".into());
        }
        Ok(())
    }
}
