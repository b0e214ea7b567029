//! The per-worker exact-match cache (EMC), in the spirit of OVS
//! `dpif-netdev`'s `emc_*`: a bounded, 2-way set-associative table keyed by
//! the packet's exact [`FlowKey`] as extracted, that lets
//! [`Pipeline::process_batch`](super::Pipeline::process_batch) skip every
//! classifier lookup for packets of a flow it has seen.
//!
//! # What an entry holds, and why not a flat action list
//!
//! OVS caches a *datapath action list*: translation compiles OpenFlow
//! actions into a list of `set(...)`/`push_vlan`/`output` commands and the
//! datapath replays it. Weft's executor ([`super::exec`]) applies actions
//! directly to the packet (header rewrites at per-packet layer offsets,
//! `NORMAL` learning and forwarding from the worker's live MAC table,
//! packet-in truncation by packet length). A second, "compiled" executor
//! would have to reproduce all of that and could drift from the one that
//! traces and golden tests check. So an entry caches what is expensive and
//! a pure function of (snapshot, key): the **rule path**, i.e. the result
//! of every lookup the translation made, in order (`(table, rule index)`
//! or a miss) plus the packet length change at that point. A hit runs the
//! same executor with lookups answered from the path (no classifier, no
//! subtable probes, no conjunction work), and credits rule counters once
//! per group, not once per packet (see below).
//!
//! Why the path is a function of (snapshot, key): each lookup depends on
//! the key at that moment (plus the resubmit `in_port` and the fragment
//! port zeroing, themselves functions of the key and the snapshot), and the
//! key only changes through actions whose effect is a function of the key:
//! field writes, `dec_ttl`, VLAN push/pop, `write_metadata`. `NORMAL` (MAC
//! table), outputs and packet-ins read state or bytes the key does not
//! capture, but they never change the key or the table walk, and they run
//! live on every hit, so MAC learning and aging need no invalidation. The
//! exceptions are the few rewrites that can fail on the bytes (a VLAN
//! tag rewrite that finds no tag, a push without headroom): a translation
//! that hits one is not cached (`uncacheable`). As a last line, a replay
//! checks that each lookup asks for the table the path recorded; if not
//! (it cannot happen by the argument above), it falls back to real lookups
//! for the rest of that packet and credits it per packet.
//!
//! # Invalidation
//!
//! Entries belong to one snapshot ([`super::Pipeline::uid`], unique per
//! compiled snapshot, not just its generation): the first batch on a new
//! snapshot empties the cache. Nothing else invalidates (see above).
//!
//! # Key and hash
//!
//! A fresh key has words 1..=24 (metadata, registers, tunnel) zero (no port
//! type sets tunnel fields before the pipeline), so an entry stores and
//! compares only word 0 (`in_port`) and words 25..=38 (L2..L4): 15 words,
//! 120 bytes. The hash is a sum of independent folded multiplies of those
//! words (parallel, about 15 cycles), never the whole 312-byte key.
//!
//! # Bounds
//!
//! [`EMC_ENTRIES`] entries, paths of at most [`MAX_PATH`] lookups (longer
//! translations are not cached), all allocated once (zeroed, so untouched
//! pages cost nothing); nothing allocates per packet. Insertion replaces
//! the other way of the set when both are taken.
//!
//! # Groups
//!
//! Within a batch, the hits on one entry form a group; their rule credits
//! (packets, bytes, `used` time for idle timeouts) are summed and applied
//! once per rule of the path at the end of the batch (or before the entry
//! is replaced). Execution itself stays in arrival order: per-port output
//! order and `NORMAL` learning are exactly those of the uncached pipeline
//! (OVS executes per flow batch and may reorder packets of different flows;
//! with replayed translations the counters are what grouping saves).

use protocol::flow::FlowKey;

/// Entries per worker (a power of two).
pub const EMC_ENTRIES: usize = 4096;
/// Most lookups in a cached path.
pub const MAX_PATH: usize = 64;
/// Words of the key an entry keeps: word 0 and words 25..=38.
const KEY_WORDS: usize = 15;
/// First packet word of the key.
const FIRST_PACKET_WORD: usize = protocol::flow::key::FIRST_PACKET_WORD;

/// The key words an entry compares.
pub(crate) type EmcKey = [u64; KEY_WORDS];

/// One recorded lookup, packed in a `u64`: rule index (bits 0..32, all
/// ones for a miss), table (32..40), length change in bytes since the
/// start (40..56, signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step(pub(crate) u64);

impl Step {
    const MISS: u32 = u32::MAX;

    #[inline]
    pub(crate) fn new(table: u8, rule: Option<u32>, delta: i16) -> Step {
        Step(
            u64::from(rule.unwrap_or(Self::MISS))
                | (u64::from(table) << 32)
                | (u64::from(delta as u16) << 40),
        )
    }
    #[inline]
    pub(crate) fn table(self) -> u8 {
        (self.0 >> 32) as u8
    }
    #[inline]
    pub(crate) fn rule(self) -> Option<u32> {
        let r = self.0 as u32;
        (r != Self::MISS).then_some(r)
    }
    #[inline]
    pub(crate) fn delta(self) -> i16 {
        (self.0 >> 40) as u16 as i16
    }
}

/// A path being recorded by a translation (on the stack).
#[derive(Debug, Clone)]
pub(crate) struct PathRec {
    pub(crate) steps: [u64; MAX_PATH],
    pub(crate) n: usize,
    /// Set when the translation cannot be cached (too long, a rewrite that
    /// failed on the bytes, the resubmit limit).
    pub(crate) uncacheable: bool,
}

impl PathRec {
    pub(crate) const fn new() -> PathRec {
        PathRec {
            steps: [0; MAX_PATH],
            n: 0,
            uncacheable: false,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, s: Step) {
        match self.steps.get_mut(self.n) {
            Some(slot) => {
                *slot = s.0;
                self.n += 1;
            }
            None => self.uncacheable = true,
        }
    }
}

/// True if `k`'s words 1..=24 are zero, the precondition of [`emc_key`]:
/// a packet decapsulated from a tunnel has `tun_*` fields set before the
/// pipeline, which the 15 entry words leave out, so it takes the full
/// translation instead (a tunnel-aware entry layout is future work).
#[inline]
pub(crate) fn cacheable(k: &FlowKey) -> bool {
    k.0.get(1..FIRST_PACKET_WORD)
        .is_some_and(|w| w.iter().fold(0, |a, b| a | b) == 0)
}

/// The entry words of `k` (see the module doc).
#[inline]
pub(crate) fn emc_key(k: &FlowKey) -> EmcKey {
    let mut out = [0u64; KEY_WORDS];
    out[0] = k.0[0];
    for (o, w) in out[1..].iter_mut().zip(&k.0[FIRST_PACKET_WORD..]) {
        *o = *w;
    }
    out
}

/// Per-word seeds (digits of pi), so equal values in different words hash
/// differently.
const SEEDS: [u64; KEY_WORDS] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
    0x9216_d5d9_8979_fb1b,
    0xd131_0ba6_98df_b5ac,
    0x2ffd_72db_d01a_dfb7,
    0xb8e1_afed_6a26_7e96,
    0xba7c_9045_f12c_7f99,
    0x24a1_9947_b391_6cf7,
    0x0801_f2e2_858e_fc16,
];
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// 32-bit hash of the entry words.
#[inline]
pub(crate) fn emc_hash(w: &EmcKey) -> u32 {
    let mut acc = 0u64;
    for (x, s) in w.iter().zip(SEEDS) {
        let p = u128::from(x ^ s) * u128::from(MUL);
        acc = acc.wrapping_add((p as u64) ^ ((p >> 64) as u64));
    }
    let p = u128::from(acc) * u128::from(MUL);
    ((p as u64) ^ ((p >> 64) as u64)) as u32
}

/// The cache (one per worker, in [`super::WorkerState`]).
#[derive(Clone)]
pub struct Emc {
    /// `len - 1` of every array; unused when `tags` is empty (disabled).
    mask: usize,
    /// Snapshot the entries belong to.
    owner: u64,
    /// Hash tag of each slot, `0` for empty (tags have bit 0 set).
    tags: Box<[u32]>,
    keys: Box<[EmcKey]>,
    /// Recorded path lengths.
    lens: Box<[u8]>,
    paths: Box<[[u64; MAX_PATH]]>,
}

impl std::fmt::Debug for Emc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emc")
            .field("entries", &self.tags.len())
            .field("used", &self.tags.iter().filter(|t| **t != 0).count())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Emc {
    /// A cache of `entries` slots rounded up to a power of two; `0`
    /// disables it (every batch takes the slow path).
    pub fn new(entries: usize) -> Emc {
        let n = if entries == 0 {
            0
        } else {
            entries.next_power_of_two()
        };
        Emc {
            mask: n.saturating_sub(1),
            owner: 0,
            tags: vec![0u32; n].into_boxed_slice(),
            keys: vec![[0u64; KEY_WORDS]; n].into_boxed_slice(),
            lens: vec![0u8; n].into_boxed_slice(),
            paths: vec![[0u64; MAX_PATH]; n].into_boxed_slice(),
        }
    }

    /// Number of slots (0: disabled).
    pub fn capacity(&self) -> usize {
        self.tags.len()
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.tags.iter().filter(|t| **t != 0).count()
    }

    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        !self.tags.is_empty()
    }

    /// Empties the cache if its entries belong to another snapshot;
    /// `true` if it did.
    #[inline]
    pub(crate) fn sync(&mut self, owner: u64) -> bool {
        if self.owner == owner {
            return false;
        }
        self.owner = owner;
        self.tags.fill(0);
        true
    }

    #[inline]
    fn slots(&self, h: u32) -> (usize, usize, u32) {
        let tag = h | 1;
        let a = (h >> 1) as usize & self.mask;
        let b = (h.rotate_left(15) as usize) & self.mask;
        (a, b, tag)
    }

    /// The slot holding `key`, if any.
    #[inline]
    pub(crate) fn find(&self, h: u32, key: &EmcKey) -> Option<usize> {
        let (a, b, tag) = self.slots(h);
        [a, b]
            .into_iter()
            .find(|&i| self.tags.get(i) == Some(&tag) && self.keys.get(i).is_some_and(|k| k == key))
    }

    /// The recorded path of slot `i`.
    #[inline]
    pub(crate) fn path(&self, i: usize) -> &[u64] {
        let n = self.lens.get(i).copied().map_or(0, usize::from);
        self.paths
            .get(i)
            .and_then(|p| p.get(..n))
            .unwrap_or_default()
    }

    /// The slot `insert` would use for `h` (to flush its pending credits
    /// first).
    #[inline]
    pub(crate) fn victim(&self, h: u32) -> usize {
        let (a, b, _) = self.slots(h);
        let free = |i: usize| self.tags.get(i).is_none_or(|t| *t == 0);
        if free(a) {
            a
        } else if free(b) {
            b
        } else if h & (1 << 20) == 0 {
            a
        } else {
            b
        }
    }

    /// Stores `rec` for `key` in slot `i` (from [`victim`](Self::victim)).
    #[inline]
    pub(crate) fn insert_at(&mut self, i: usize, h: u32, key: &EmcKey, rec: &PathRec) {
        let (_, _, tag) = self.slots(h);
        let n = rec.n.min(MAX_PATH);
        if let (Some(t), Some(k), Some(l), Some(p)) = (
            self.tags.get_mut(i),
            self.keys.get_mut(i),
            self.lens.get_mut(i),
            self.paths.get_mut(i),
        ) {
            *t = tag;
            *k = *key;
            *l = n as u8;
            if let (Some(dst), Some(src)) = (p.get_mut(..n), rec.steps.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_round_trips() {
        for (t, r, d) in [
            (0u8, Some(0u32), 0i16),
            (254, None, -8),
            (7, Some(12345), 12),
        ] {
            let s = Step::new(t, r, d);
            assert_eq!((s.table(), s.rule(), s.delta()), (t, r, d));
        }
    }

    #[test]
    fn finds_what_it_stored_and_sync_empties() {
        let mut e = Emc::new(5);
        assert_eq!(e.capacity(), 8);
        e.sync(1);
        let mut k = FlowKey::default();
        k.set_in_port(3);
        k.set_tp_dst(80);
        let w = emc_key(&k);
        let h = emc_hash(&w);
        assert_eq!(e.find(h, &w), None);
        let mut rec = PathRec::new();
        rec.push(Step::new(0, Some(4), 0));
        let i = e.victim(h);
        e.insert_at(i, h, &w, &rec);
        assert_eq!(e.find(h, &w), Some(i));
        assert_eq!(e.path(i), &[Step::new(0, Some(4), 0).0]);
        k.set_tp_dst(81);
        let w2 = emc_key(&k);
        assert_ne!(emc_hash(&w2), h);
        assert_eq!(e.find(emc_hash(&w2), &w2), None);
        assert!(!e.sync(1));
        assert!(e.sync(2));
        assert_eq!(e.find(h, &w), None);
        assert_eq!(e.used(), 0);
    }

    #[test]
    fn disabled_cache_finds_nothing() {
        let e = Emc::new(0);
        assert!(!e.enabled());
        let w = emc_key(&FlowKey::default());
        assert_eq!(e.find(emc_hash(&w), &w), None);
    }
}
