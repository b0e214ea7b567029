//! The per-worker exact-match cache (EMC), in the spirit of OVS
//! `dpif-netdev`'s `emc_*`: a bounded, 2-way set-associative table keyed by
//! the packet's exact [`FlowKey`] as extracted, that lets
//! [`Pipeline::process_batch`](super::Pipeline::process_batch) skip every
//! classifier lookup for packets of a flow it has seen.
//!
//! # What an entry holds: a rule path, and a flat action list if it can
//!
//! OVS caches a *datapath action list*: translation compiles OpenFlow
//! actions into a list of `set(...)`/`push_vlan`/`output` commands and the
//! datapath replays it. Weft's executor ([`super::exec`]) applies actions
//! directly to the packet (header rewrites at per-packet layer offsets,
//! `NORMAL` learning and forwarding from the worker's live MAC table,
//! packet-in truncation by packet length). An entry caches what is a pure
//! function of (snapshot, key):
//!
//! * always the **rule path**, i.e. the result of every lookup the
//!   translation made, in order (`(table, rule index)` or a miss) plus the
//!   packet length change at that point: rule and table counters come
//!   from it, and a hit without a flat list runs the same executor with
//!   lookups answered from the path (no classifier, no subtable probes,
//!   no conjunction work);
//! * when the translation only sent the packet to ordinary ports and
//!   wrote header fields, a **flat action list** ([`FlatOp`]): the
//!   outputs with every decision already taken (input-port skip,
//!   `in_port`, `FLOOD`/`ALL` expansion, `no-forward`), and each header
//!   write with the value it wrote (set-field, move, `dec_ttl`, all
//!   computed from the key). A hit with a flat list executes just that:
//!   per header write, the key field is set and committed to the bytes by
//!   the same [`super::rewrite::commit_field`] the executor calls (with
//!   the packet's own layer offsets, so checksums are updated exactly as
//!   live); per output, the sink is called. Register, metadata, port and
//!   tunnel writes are not replayed: they only steer lookups and outputs,
//!   already resolved. The verdict (table miss or no output) is stored.
//!   Anything whose effect depends on more than the key is left out and
//!   makes the whole translation replay the path instead: `NORMAL` (MAC
//!   table), packet-ins (`controller`, `dec_ttl` expiry, table-miss
//!   `controller`), tunnel output (encapsulation can fail on the length),
//!   VLAN push/pop/modify (can fail on the bytes), and lists longer than
//!   [`MAX_FLAT`]. One executor still defines the semantics: the flat list
//!   is recorded by it, step by step, while it runs the first packet.
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
//! for the rest of that packet and credits it per packet. A flat list has
//! no such check (it holds no lookups); it rests on the same argument,
//! restricted to the actions whose effect is a function of the key, and
//! on `tests/emc_equivalence.rs`.
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
//! 120 bytes, kept in [`ORDER`]: `in_port` and the five words the
//! extraction fast path can set ([`protocol::flow::FAST_WORDS`]) first,
//! in the tag's cache line. A key whose other nine words are zero is
//! *compact* (every untagged TCP/UDP over IPv4 frame, known from
//! [`protocol::flow::extract_shaped`] without reading the key; any other
//! packet is checked word by word). The hash carries that fact in bit 1,
//! and the hash is the tag, so equal tags mean both keys are compact or
//! neither is: a compact probe compares six words, any other all fifteen,
//! and a compact key can never match a full one. The hash covers only
//! the words that vary between flows in practice (addresses, ports,
//! `in_port`, EtherType, protocol: see `hash_words`), two seeded
//! two-word multiplies and a final one, never the whole 312-byte key, and
//! skips the words a compact key has zero (same value). Hash and compare
//! read the packet's key in place ([`key_hash`], `key_eq`: an OR of XORs,
//! no `memcmp` call, no bounds checks); the entry key is built only on
//! insertion.
//!
//! # Bounds
//!
//! [`EMC_ENTRIES`] entries, paths of at most [`MAX_PATH`] lookups (longer
//! translations are not cached), all allocated once; nothing allocates
//! per packet. A slot's tag, key and path length share one 64-byte-aligned
//! 128-byte entry (512 KiB per worker, written at creation), so a probe
//! touches two cache lines instead of lines in three arrays; the paths
//! (2 MiB, zeroed by the allocator, untouched pages cost nothing) are read
//! only on a replayed hit and once per group, the flat lists ([`MAX_FLAT`]
//! ops of 32 bytes after the path's first two steps, 320 bytes a slot,
//! 1.25 MiB, written at creation) on a hit; paths of one or two lookups,
//! the common case, are read from there too. Insertion replaces the other way of the set when both
//! are taken.
//!
//! # Groups
//!
//! Within a batch, the hits on entries with the same path (same steps,
//! length deltas included, and both flat or both replayed) form a group
//! (found through a direct-mapped hint on the path's first step, not a
//! scan, and checked step by step): many flows through the same rules
//! are one group, so a batch of 32 distinct flows pays the crediting
//! walk once, not 32 times. At the end of the batch
//! (or before the entry is replaced) each group's path is added to a
//! per-rule accumulator ([`Credits`]) and every distinct rule's atomic
//! counters (packets, bytes, `used` time for idle timeouts) are updated
//! once per batch: 32 flows through one ACL rule cost one `fetch_add` pair,
//! not 32. Execution itself stays in arrival order: per-port output order
//! and `NORMAL` learning are exactly those of the uncached pipeline (OVS
//! executes per flow batch and may reorder packets of different flows;
//! Weft keeps arrival order, and what grouping saves is the counter
//! work). A flat hit's table lookups (`dump-tables`) are also counted per
//! group, at the same time, so a flat hit reads its entry and its flat
//! list, never its path.

use protocol::flow::FlowKey;

/// Entries per worker (a power of two).
pub const EMC_ENTRIES: usize = 4096;
/// Most lookups in a cached path.
pub const MAX_PATH: usize = 64;
/// Most steps in a flat action list (longer ones replay the path).
pub const MAX_FLAT: usize = 8;
/// Leading path steps kept next to the flat list (see [`Flat`]).
pub(crate) const HEAD: usize = 2;
/// [`Entry::flat`] of an entry without a flat list.
const NO_FLAT: u8 = u8::MAX;
/// Words of the key an entry keeps: word 0 and words 25..=38.
const KEY_WORDS: usize = 15;
/// First packet word of the key.
const FIRST_PACKET_WORD: usize = protocol::flow::key::FIRST_PACKET_WORD;
/// Leading words of an entry key that a compact key can have non-zero:
/// `in_port` and [`protocol::flow::FAST_WORDS`].
const COMPACT: usize = 6;
/// The key word held at each position of an entry key: the compact words
/// first (they share the tag's cache line), then the rest.
const ORDER: [usize; KEY_WORDS] = {
    let f = protocol::flow::FAST_WORDS;
    [
        0, f[0], f[1], f[2], f[3], f[4], 27, 29, 30, 31, 32, 35, 36, 37, 38,
    ]
};
// `ORDER` names word 0 and each packet word exactly once.
const _: () = {
    let mut seen = [false; 39];
    let mut i = 0;
    while i < KEY_WORDS {
        assert!(ORDER[i] == 0 || ORDER[i] >= FIRST_PACKET_WORD);
        assert!(!seen[ORDER[i]]);
        seen[ORDER[i]] = true;
        i += 1;
    }
    assert!(protocol::flow::key::FLOW_WORDS == FIRST_PACKET_WORD + KEY_WORDS - 1);
};
/// Hash bit that marks a compact key (bit 0 is always set, see [`Emc::find`]).
const COMPACT_BIT: u32 = 2;

/// The key words an entry compares, in [`ORDER`].
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

/// One step of a flat action list (see the module doc): what a hit does
/// to the packet, with every decision the executor made on the key
/// already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlatOp {
    /// Send the packet as it is now to this ordinary port (not the input
    /// port unless the translation chose it, not `no-forward`, not a
    /// tunnel port: all resolved when recorded).
    Emit(protocol::flow::PortNo),
    /// Write `value` into header field `field` of the key and commit it
    /// to the packet bytes (checksums updated), as the translation did.
    Set(protocol::flow::Field, u128),
}

/// A path being recorded by a translation (on the stack).
#[derive(Debug, Clone)]
pub(crate) struct PathRec {
    pub(crate) steps: [u64; MAX_PATH],
    pub(crate) n: usize,
    /// Set when the translation cannot be cached (too long, a rewrite that
    /// failed on the bytes, the resubmit limit).
    pub(crate) uncacheable: bool,
    /// The flat action list being recorded, valid while `flat_ok`.
    pub(crate) flat: [FlatOp; MAX_FLAT],
    pub(crate) n_flat: usize,
    /// Cleared by anything a flat list cannot replay (`NORMAL`, packet-ins,
    /// tunnel output, VLAN edits) or by more than [`MAX_FLAT`] ops.
    pub(crate) flat_ok: bool,
}

impl PathRec {
    pub(crate) const fn new() -> PathRec {
        PathRec {
            steps: [0; MAX_PATH],
            n: 0,
            uncacheable: false,
            flat: [FlatOp::Emit(protocol::flow::PortNo(0)); MAX_FLAT],
            n_flat: 0,
            flat_ok: true,
        }
    }

    #[inline]
    pub(crate) fn push_flat(&mut self, op: FlatOp) {
        match self.flat.get_mut(self.n_flat) {
            Some(slot) if self.flat_ok => {
                *slot = op;
                self.n_flat += 1;
            }
            _ => self.flat_ok = false,
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

/// The entry words of `k` (see the module doc), in [`ORDER`].
#[inline]
pub(crate) fn emc_key(k: &FlowKey) -> EmcKey {
    ORDER.map(|i| k.0.get(i).copied().unwrap_or(0))
}

/// True if `k` is *compact*: every packet word outside
/// [`protocol::flow::FAST_WORDS`] is zero (always so after the extraction
/// fast path; checked word by word for any other packet).
#[inline]
pub(crate) fn is_compact(k: &FlowKey) -> bool {
    ORDER
        .get(COMPACT..)
        .unwrap_or_default()
        .iter()
        .fold(0, |a, &i| a | k.0.get(i).copied().unwrap_or(0))
        == 0
}

/// Per-group seeds (digits of pi), so equal values in different groups
/// hash differently.
const SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// 32-bit hash of the entry words (tests: the same as [`key_hash`]).
#[cfg(test)]
fn emc_hash(w: &EmcKey) -> u32 {
    let mut k = FlowKey::default();
    for (i, v) in ORDER.iter().zip(w) {
        k.0[*i] = *v;
    }
    let compact = is_compact(&k);
    finish_hash(hash_words(&k, compact), compact)
}

/// 32-bit hash of `k`'s entry words, read in place (the same value as
/// `emc_hash(&emc_key(k))`, without building the entry key), with bit 0
/// set and bit 1 ([`COMPACT_BIT`]) saying whether `k` is compact.
/// `compact`: the caller knows `k` is (the extraction fast path wrote
/// it); otherwise the words are checked. Either way the value depends
/// on the key alone.
#[inline(always)]
pub(crate) fn key_hash(k: &FlowKey, compact: bool) -> u32 {
    debug_assert!(!compact || is_compact(k));
    if compact {
        finish_hash(hash_words(k, true), true)
    } else {
        let c = is_compact(k);
        finish_hash(hash_words(k, c), c)
    }
}

#[inline(always)]
fn finish_hash(h: u32, compact: bool) -> u32 {
    (h & !COMPACT_BIT) | 1 | if compact { COMPACT_BIT } else { 0 }
}

/// The hash proper, as OVS hashes the 5-tuple and compares the whole
/// miniflow: only the words that vary between flows in practice, two
/// seeded 64 x 64 -> 128-bit multiplies of two words each, folded
/// (independent, so they overlap), and a final one. The IPv4 pair (or
/// ARP SPA/TPA) times the L4 ports and TCP flags (with `in_port` in that
/// word's free top 16 bits); the MACs, EtherType and VLAN tags rotated
/// into one word times the IPv6 pair and the proto/TOS/TTL/fragment word
/// rotated into another. Words combined
/// with different rotations, never a plain XOR, which would give both
/// directions of a flow the same hash. The ARP
/// and ND hardware addresses and the ND target are left out (they go with
/// MACs and addresses that are hashed). The comparison still covers all
/// 15 words, so a weaker hash can only cost a collision, never a wrong
/// hit. `compact`: `k` is compact (its other words are zero, so they are
/// not read: the value is the same).
#[inline(always)]
fn hash_words(k: &FlowKey, compact: bool) -> u32 {
    let w0 = k.0[0];
    let w = |i: usize| {
        let at = FIRST_PACKET_WORD + i;
        if compact && !protocol::flow::FAST_WORDS.contains(&at) {
            0
        } else {
            k.0.get(at).copied().unwrap_or(0)
        }
    };
    let l2 = w(0) ^ w(1).rotate_left(16) ^ w(2).rotate_left(40);
    let l3 = w(4)
        ^ w(5).rotate_left(17)
        ^ w(6).rotate_left(31)
        ^ w(7).rotate_left(47)
        ^ w(8).rotate_left(8);
    // Two words per multiply (both factors seeded), not XORed together
    // first: XOR-combining the address and port words made whole sets of
    // flows collide exactly.
    let mum = |a: u64, b: u64| {
        let p = u128::from(a) * u128::from(b);
        (p as u64) ^ ((p >> 64) as u64)
    };
    let acc = mum(w(3) ^ SEEDS[0], w(9) ^ (w0 << 48) ^ SEEDS[1])
        .wrapping_add(mum(l2 ^ SEEDS[2], l3 ^ SEEDS[3]));
    let p = u128::from(acc) * u128::from(MUL);
    ((p as u64) ^ ((p >> 64) as u64)) as u32
}

/// True if entry key `e` holds `k`'s entry words; `compact`: both keys
/// are compact (equal tags say so), so only the first [`COMPACT`] words
/// can differ. Branch-free OR of XORs, no `memcmp` call, no bounds checks.
#[inline(always)]
fn key_eq(e: &EmcKey, k: &FlowKey, compact: bool) -> bool {
    let n = if compact { COMPACT } else { KEY_WORDS };
    let diff = e
        .iter()
        .zip(ORDER)
        .take(n)
        .fold(0, |a, (x, i)| a | (x ^ k.0.get(i).copied().unwrap_or(0)));
    diff == 0
}

/// See [`Emc::path_id`]: `n` steps of which the first is `step0` (a step
/// is 56 bits, see [`Step`]).
#[inline]
fn path_id(n: usize, step0: u64, flat: bool) -> u64 {
    const STEP_BITS: u64 = (1 << 56) - 1;
    if n > 1 {
        return 0;
    }
    1 << 63 | u64::from(flat) << 62 | (n as u64) << 56 | (step0 & STEP_BITS)
}

/// Rule credits of a batch's cache hits, merged by rule: every hit group
/// of a batch adds its path here and each distinct rule's atomic counters
/// are updated once per batch (a relaxed `fetch_add` on a shared counter
/// costs about 20 cycles; with many flows through a few rules this was a
/// fifth of a hit's cost when done once per group). On the stack, fixed
/// size; when full it is applied and reused.
#[derive(Debug, Clone)]
pub(crate) struct Credits {
    /// (step bits without the length delta, packets, bytes).
    e: [(u64, u64, u64); CREDITS],
    n: usize,
}

const CREDITS: usize = 64;
/// Step bits naming the (table, rule), without the length delta.
const RULE_BITS: u64 = (1 << 40) - 1;

impl Credits {
    pub(crate) const fn new() -> Credits {
        Credits {
            e: [(0, 0, 0); CREDITS],
            n: 0,
        }
    }

    /// Adds `packets` packets of `bytes` bytes (at the path's start) on
    /// every rule of `path`.
    #[inline]
    pub(crate) fn add_path(
        &mut self,
        pl: &super::Pipeline,
        path: &[u64],
        packets: u64,
        bytes: u64,
        now_ms: u64,
    ) {
        for s in path.iter().map(|s| Step(*s)) {
            if s.rule().is_none() {
                continue;
            }
            let b = (bytes as i64 + i64::from(s.delta()) * packets as i64).max(0) as u64;
            let id = s.0 & RULE_BITS;
            let live = self.e.get_mut(..self.n).unwrap_or_default();
            if let Some(e) = live.iter_mut().find(|e| e.0 == id) {
                e.1 += packets;
                e.2 += b;
                continue;
            }
            if self.n == CREDITS {
                self.apply(pl, now_ms);
            }
            if let Some(e) = self.e.get_mut(self.n) {
                *e = (id, packets, b);
                self.n += 1;
            }
        }
    }

    /// True if nothing is pending (every batch ends with [`apply`](Self::apply)).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Credits every rule and empties the accumulator.
    #[inline]
    pub(crate) fn apply(&mut self, pl: &super::Pipeline, now_ms: u64) {
        for &(id, packets, bytes) in self.e.get(..self.n).unwrap_or_default() {
            super::exec::credit_step(pl, Step(id), packets, bytes, now_ms);
        }
        self.n = 0;
    }
}

/// One slot: what [`Emc::find`] reads, in two cache lines.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    /// Hash tag ([`key_hash`]), `0` for empty (tags have bit 0 set).
    tag: u32,
    /// Recorded path length.
    len: u8,
    /// Flat action list length, [`NO_FLAT`] if the path must be replayed.
    flat: u8,
    /// The translation ended in a table miss (the verdict of a flat hit
    /// that sends nothing).
    missed: bool,
    /// In [`ORDER`]: the tag and the compact words share the first line.
    key: EmcKey,
}

impl Entry {
    const EMPTY: Entry = Entry {
        tag: 0,
        len: 0,
        flat: NO_FLAT,
        missed: false,
        key: [0; KEY_WORDS],
    };
}

const _: () = assert!(std::mem::size_of::<Entry>() == 128);

/// A slot's flat action list, and the first [`HEAD`] steps of its path:
/// a group of hits credits its path once per batch, and most paths are
/// one or two lookups, so they are read from the line the hit already
/// loaded for its first ops instead of a line of the 2 MiB path array
/// (that load was a quarter of the group work in the profile).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Flat {
    head: [u64; HEAD],
    /// The path id ([`Emc::path_id`]).
    id: u64,
    ops: [FlatOp; MAX_FLAT],
}

impl Flat {
    const EMPTY: Flat = Flat {
        head: [0; HEAD],
        id: 0,
        ops: [FlatOp::Emit(protocol::flow::PortNo(0)); MAX_FLAT],
    };
}

/// The cache (one per worker, in [`super::WorkerState`]).
#[derive(Clone)]
pub struct Emc {
    /// `len - 1` of every array; unused when `entries` is empty (disabled).
    mask: usize,
    /// Snapshot the entries belong to.
    owner: u64,
    /// Tag, key and path length of each slot, one aligned 128-byte entry
    /// (two cache lines, the tag's line holds most of the key).
    entries: Box<[Entry]>,
    paths: Box<[[u64; MAX_PATH]]>,
    /// Flat action lists and path heads (read on every hit).
    flats: Box<[Flat]>,
}

impl std::fmt::Debug for Emc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emc")
            .field("entries", &self.entries.len())
            .field("used", &self.used())
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
            entries: vec![Entry::EMPTY; n].into_boxed_slice(),
            paths: vec![[0u64; MAX_PATH]; n].into_boxed_slice(),
            flats: vec![Flat::EMPTY; n].into_boxed_slice(),
        }
    }

    /// Number of slots (0: disabled).
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.entries.iter().filter(|e| e.tag != 0).count()
    }

    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Empties the cache if its entries belong to another snapshot;
    /// `true` if it did.
    #[inline]
    pub(crate) fn sync(&mut self, owner: u64) -> bool {
        if self.owner == owner {
            return false;
        }
        self.owner = owner;
        for e in self.entries.iter_mut() {
            e.tag = 0;
        }
        true
    }

    /// The two candidate slots of hash `h` (from [`key_hash`]) and its
    /// tag (the hash itself: bit 0 set, bit 1 the compact flag, so equal
    /// tags mean both keys are compact or neither is).
    #[inline(always)]
    fn slots(&self, h: u32) -> (usize, usize, u32) {
        let a = (h >> 2) as usize & self.mask;
        let b = (h.rotate_left(15) as usize) & self.mask;
        (a, b, h)
    }

    /// The slot holding `key` (whose [`key_hash`] is `h`), if any: a tag
    /// compare, then [`COMPACT`] words for a compact key (the tag says the
    /// entry's other words are zero too), all 15 otherwise.
    #[inline(always)]
    pub(crate) fn find(&self, h: u32, key: &FlowKey) -> Option<usize> {
        let (a, b, tag) = self.slots(h);
        let compact = h & COMPACT_BIT != 0;
        let hit = |i: usize| {
            self.entries
                .get(i)
                .is_some_and(|e| e.tag == tag && key_eq(&e.key, key, compact))
        };
        if hit(a) {
            Some(a)
        } else if hit(b) {
            Some(b)
        } else {
            None
        }
    }

    /// The recorded path of slot `i` (a short one from the line that
    /// holds the flat list, see [`Flat`]).
    #[inline]
    pub(crate) fn path(&self, i: usize) -> &[u64] {
        let n = self.entries.get(i).map_or(0, |e| usize::from(e.len));
        if n <= HEAD {
            return self
                .flats
                .get(i)
                .and_then(|f| f.head.get(..n))
                .unwrap_or_default();
        }
        self.paths
            .get(i)
            .and_then(|p| p.get(..n))
            .unwrap_or_default()
    }

    /// Slot `i`'s path length and its first [`HEAD`] steps, zero-padded
    /// (from the flat line a flat hit already loaded): for a path of at
    /// most `HEAD` steps, equal keys are equal paths.
    #[inline]
    pub(crate) fn path_key(&self, i: usize) -> (u8, [u64; HEAD]) {
        let n = self.entries.get(i).map_or(0, |e| e.len);
        (n, self.flats.get(i).map_or([0; HEAD], |f| f.head))
    }

    /// Slot `i`'s path id: for a path of at most one step, the step, the
    /// length and the flat-ness packed in one word with the top bit set,
    /// so equal ids are exactly equal [`path_key`](Self::path_key)s with
    /// the same flat-ness (a group's one-word check, one load from the
    /// line a flat hit already read); 0 for a longer path.
    #[inline]
    pub(crate) fn path_id(&self, i: usize) -> u64 {
        self.flats.get(i).map_or(0, |f| f.id)
    }

    /// The flat action list of slot `i` and whether its translation ended
    /// in a table miss, if it has one.
    #[inline]
    pub(crate) fn flat(&self, i: usize) -> Option<(&[FlatOp], bool)> {
        let e = self.entries.get(i)?;
        if e.flat == NO_FLAT {
            return None;
        }
        let ops = self.flats.get(i)?.ops.get(..usize::from(e.flat))?;
        Some((ops, e.missed))
    }

    /// The slot `insert` would use for `h` (to flush its pending credits
    /// first).
    #[inline]
    pub(crate) fn victim(&self, h: u32) -> usize {
        let (a, b, _) = self.slots(h);
        let free = |i: usize| self.entries.get(i).is_none_or(|e| e.tag == 0);
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

    /// Stores `rec` for `key` in slot `i` (from [`victim`](Self::victim));
    /// `missed`: the translation ended in a table miss.
    #[inline]
    pub(crate) fn insert_at(
        &mut self,
        i: usize,
        h: u32,
        key: &EmcKey,
        rec: &PathRec,
        missed: bool,
    ) {
        let (_, _, tag) = self.slots(h);
        let n = rec.n.min(MAX_PATH);
        let nf = rec.n_flat.min(MAX_FLAT);
        if let (Some(e), Some(p), Some(f)) = (
            self.entries.get_mut(i),
            self.paths.get_mut(i),
            self.flats.get_mut(i),
        ) {
            *e = Entry {
                key: *key,
                tag,
                len: n as u8,
                flat: if rec.flat_ok { nf as u8 } else { NO_FLAT },
                missed,
            };
            if let (Some(dst), Some(src)) = (p.get_mut(..n), rec.steps.get(..n)) {
                dst.copy_from_slice(src);
            }
            let h = n.min(HEAD);
            // Zero-padded: `path_key` compares all `HEAD` words.
            f.head = [0; HEAD];
            if let (Some(dst), Some(src)) = (f.head.get_mut(..h), rec.steps.get(..h)) {
                dst.copy_from_slice(src);
            }
            f.id = path_id(n, f.head[0], rec.flat_ok);
            if let (true, Some(dst), Some(src)) =
                (rec.flat_ok, f.ops.get_mut(..nf), rec.flat.get(..nf))
            {
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
        assert_eq!(key_hash(&k, false), h);
        assert_eq!(key_hash(&k, true), h);
        assert_eq!(e.find(h, &k), None);
        let mut rec = PathRec::new();
        rec.push(Step::new(0, Some(4), 0));
        let i = e.victim(h);
        e.insert_at(i, h, &w, &rec, false);
        assert_eq!(e.find(h, &k), Some(i));
        assert_eq!(e.path(i), &[Step::new(0, Some(4), 0).0]);
        k.set_tp_dst(81);
        let w2 = emc_key(&k);
        assert_ne!(emc_hash(&w2), h);
        assert_eq!(key_hash(&k, false), emc_hash(&w2));
        assert_eq!(e.find(emc_hash(&w2), &k), None);
        // Every entry word takes part in the comparison.
        let mut k3 = k;
        k3.set_tp_dst(80);
        assert_eq!(e.find(h, &k3), Some(i));
        k3.set_in_port(4);
        assert_eq!(e.find(h, &k3), None);
        assert!(!e.sync(1));
        assert!(e.sync(2));
        k.set_tp_dst(80);
        assert_eq!(e.find(h, &k), None);
        assert_eq!(e.used(), 0);
    }

    /// Credits merge by rule across paths, with each step's length delta,
    /// and spill correctly when more distinct rules than the accumulator
    /// holds are credited (100 rules > 64 slots).
    #[test]
    fn credits_merge_by_rule_and_spill() {
        use crate::pipeline::{SwitchConfig, compile};
        use protocol::flow::TableId;
        let flows: Vec<_> = (0..100u16)
            .map(|i| {
                protocol::text::parse_flow(&format!("priority={i},tcp,tp_dst={i},actions=drop"))
                    .unwrap()
            })
            .collect();
        let pl = compile(&flows, SwitchConfig::default()).unwrap();
        let t = pl.table(TableId(0)).unwrap();
        let all: Vec<u64> = (0..100u32).map(|r| Step::new(0, Some(r), 4).0).collect();
        let miss = [Step::new(0, None, 0).0];
        let mut c = Credits::new();
        // Two groups over every rule, a miss step (never credited).
        c.add_path(&pl, &all, 2, 100, 7);
        c.add_path(&pl, &miss, 1, 60, 7);
        c.add_path(&pl, &all[..10], 1, 60, 9);
        c.apply(&pl, 9);
        for r in 0..100u32 {
            let (p, b, _) = t.rule(r).unwrap().stats.get();
            if r < 10 {
                assert_eq!((p, b), (3, 100 + 2 * 4 + 60 + 4), "rule {r}");
            } else {
                assert_eq!((p, b), (2, 100 + 2 * 4), "rule {r}");
            }
        }
        assert_eq!(t.rule(0).unwrap().stats.get().2, 9);
    }

    /// Which translations get a flat action list: outputs and header
    /// writes (resolved, with the table walk flattened) do; `NORMAL`,
    /// packet-ins and VLAN edits replay the path instead. Checked on the
    /// entries `process_batch` leaves behind, and each hit's output equals
    /// the first (uncached) packet's.
    #[test]
    fn flat_lists_only_for_replayable_translations() {
        use crate::buf::PacketBuf;
        use crate::pipeline::{CollectSink, SwitchConfig, WorkerState, compile};
        use protocol::flow::PortNo;
        let frame = |s: &str| {
            let f = protocol::text::parse_flow(&format!("{s},actions=drop")).unwrap();
            crate::pipeline::packet::packet_from_key(&f.r#match.key)
        };
        let pkt = frame(
            "tcp,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=9,tp_src=5,tp_dst=80",
        );
        for (flows, flat) in [
            (
                "in_port=1,actions=output:2",
                Some(vec![FlatOp::Emit(PortNo(2))]),
            ),
            (
                "table=0,in_port=1,actions=dec_ttl,resubmit(,1),in_port\ntable=1,tcp,actions=mod_tp_dst:8080,output:2,output:1",
                Some(vec![
                    FlatOp::Set(protocol::flow::Field::NwTtl, 8),
                    FlatOp::Set(protocol::flow::Field::TpDst, 8080),
                    FlatOp::Emit(PortNo(2)),
                    FlatOp::Emit(PortNo(1)),
                ]),
            ),
            ("in_port=1,actions=drop", Some(vec![])),
            ("in_port=1,actions=NORMAL", None),
            ("in_port=1,actions=controller", None),
            ("in_port=1,actions=mod_vlan_vid:5,output:2", None),
        ] {
            let flows: Vec<_> = flows
                .lines()
                .map(|l| protocol::text::parse_flow(l).unwrap())
                .collect();
            let pl = compile(&flows, SwitchConfig::with_ports([PortNo(1), PortNo(2)])).unwrap();
            let mut ws = WorkerState::with_emc_entries(pl.config(), 64);
            let mut bufs: Vec<PacketBuf> = (0..3).map(|_| PacketBuf::new()).collect();
            for b in &mut bufs {
                b.set_from_slice(&pkt);
            }
            let mut out = CollectSink::default();
            pl.process_batch(&mut bufs, PortNo(1), 0, &mut ws, &mut out);
            assert_eq!((ws.counters.emc_misses, ws.counters.emc_hits), (1, 2));
            let slots: Vec<usize> = (0..ws.emc.capacity())
                .filter(|&i| ws.emc.entries[i].tag != 0)
                .collect();
            assert_eq!(slots.len(), 1, "{flows:?}");
            let got = ws.emc.flat(slots[0]).map(|(ops, _)| ops.to_vec());
            assert_eq!(got, flat, "{flows:?}");
            let per_pkt = out.outputs.len() / 3;
            for k in 1..3 {
                assert_eq!(
                    out.outputs[k * per_pkt..(k + 1) * per_pkt],
                    out.outputs[..per_pkt],
                    "{flows:?}"
                );
            }
        }
    }

    /// Compact and full keys: the compact flag is part of the tag, so a
    /// key that equals a compact entry in the compact words but has any
    /// other word set never matches it (nor the reverse), whichever way
    /// its hash was computed; every word of a full key is compared.
    #[test]
    fn compact_and_full_keys_never_match_each_other() {
        let mut e = Emc::new(64);
        e.sync(1);
        let mut k = FlowKey::default();
        k.set_in_port(3);
        k.set_dl_type(0x0800);
        k.set_nw_proto(6);
        k.set_tp_dst(80);
        assert!(is_compact(&k));
        let h = key_hash(&k, true);
        assert_eq!(h & COMPACT_BIT, COMPACT_BIT);
        let mut rec = PathRec::new();
        rec.push(Step::new(0, Some(4), 0));
        let i = e.victim(h);
        e.insert_at(i, h, &emc_key(&k), &rec, false);
        assert_eq!(e.find(h, &k), Some(i));
        // Each non-compact word alone makes a different, full key.
        for &w in &ORDER[COMPACT..] {
            let mut f = k;
            f.0[w] = 1 << (w % 64);
            assert!(!is_compact(&f));
            let hf = key_hash(&f, false);
            assert_eq!(hf & COMPACT_BIT, 0, "word {w}");
            assert_eq!(e.find(hf, &f), None, "word {w}");
            // Even with the compact key's hash, the tag or the words differ.
            assert_eq!(e.find(h & !COMPACT_BIT, &f), None, "word {w}");
            let j = e.victim(hf);
            e.insert_at(j, hf, &emc_key(&f), &rec, false);
            assert_eq!(e.find(hf, &f), Some(j), "word {w}");
            assert_eq!(e.find(h, &k), Some(i), "word {w}");
            // A full key differing in one non-compact word is another key.
            let mut g = f;
            g.0[w] = 2 << (w % 64);
            assert_eq!(e.find(key_hash(&g, false), &g), None, "word {w}");
            e.sync(2);
            e.sync(1);
            let i2 = e.victim(h);
            e.insert_at(i2, h, &emc_key(&k), &rec, false);
            assert_eq!(e.find(h, &k), Some(i2));
        }
    }

    /// No structured collisions: 32,768 TCP flows that differ in source
    /// port and destination address together (the miss bench's set) and
    /// 32,768 that differ in both addresses give (nearly) as many distinct
    /// 32-bit hashes; an XOR of the address and port words before the
    /// multiply once made whole sets of such flows collide exactly.
    #[test]
    fn hash_has_no_structured_collisions() {
        for variant in 0..2 {
            let mut seen = std::collections::HashSet::new();
            for i in 0..32_768u32 {
                let mut k = FlowKey::default();
                k.set_in_port(1);
                k.set_dl_type(0x0800);
                k.set_nw_proto(6);
                let dst = 0x0af4_0000 | (i % 8) << 8 | (i * 7 % 250 + 1);
                if variant == 0 {
                    k.set_nw_src(core::net::Ipv4Addr::new(10, 244, 0, 1));
                    k.set_nw_dst(dst.into());
                    k.set_tp_src((1024 + i / 8) as u16);
                } else {
                    k.set_nw_src((0x0a00_0000 | i).into());
                    k.set_nw_dst((0x0a01_0000 | (i ^ 0x5a5a) & 0xffff).into());
                    k.set_tp_src(40000);
                }
                k.set_tp_dst(80);
                seen.insert(key_hash(&k, false));
            }
            // A random 32-bit hash collides ~0.1 times on 32,768 keys.
            assert!(
                seen.len() >= 32_768 - 4,
                "variant {variant}: {}",
                seen.len()
            );
        }
    }

    #[test]
    fn disabled_cache_finds_nothing() {
        let e = Emc::new(0);
        assert!(!e.enabled());
        let k = FlowKey::default();
        assert_eq!(e.find(key_hash(&k, false), &k), None);
    }
}
