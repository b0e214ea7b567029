//! The `NORMAL` action: a VLAN-aware MAC-learning switch (OVS
//! `xlate_normal`, without bonds, mirrors, STP or port VLAN modes: every
//! port is a trunk, the VLAN is the packet's outer VID or 0).
//!
//! 1. A destination in `01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0` (802.1D
//!    reserved: STP, LACP, ...) is dropped, as OVS does without
//!    `forward-bpdu`.
//! 2. A unicast source is learned: (MAC, VLAN) -> input port, time `now`.
//! 3. A multicast or broadcast destination, or an unknown one, is flooded
//!    to every port except the input port and `no-flood` ports.
//! 4. A known destination is sent to its port, unless that is the input
//!    port (then dropped, "learned port is input port").
//!
//! # The MAC table
//!
//! One per worker (in [`WorkerState`](super::WorkerState)), never locked.
//! OVS shares one table between its handler threads behind a rwlock, so a
//! station learned on any thread is known to all. We get the same
//! behaviour without a lock per packet by *announcing* learning:
//!
//! * With [`MacTable::enable_sync`], `learn` records an announcement
//!   ([`MacEvent`]) in a fixed outbox when a station is new, has moved, or
//!   was last announced more than a quarter of the aging time ago (so a
//!   station active on one worker only never ages out on the others).
//! * The worker drains the outbox after each batch
//!   ([`MacTable::drain_announcements`]) into a bounded channel per peer
//!   worker, and before each batch applies what its peers announced
//!   ([`MacTable::learn_remote`]: the newer timestamp wins, so crossing
//!   announcements of a moved station settle on the last move).
//!
//! Convergence: a station learned by worker A is known to worker B from
//! B's first batch that starts after A's batch ended. Until then B floods
//! packets for it, exactly as for any unknown destination. A full outbox
//! or peer channel loses the announcement (counted by the worker); the
//! station is announced again at its next move or refresh interval, and
//! is flooded on that worker meanwhile. Fixed
//! capacity allocated at start (power of two), open addressing with a probe
//! window of [`PROBE`] slots and no tombstones: lookups and learning never
//! allocate. When the window is full the least recently seen entry is
//! evicted. Entries older than the aging time are treated as absent and
//! reused. The hash is keyed with a random seed per table (source MACs are
//! attacker-chosen), so flooding one window needs knowledge of the seed.

use core::hash::BuildHasher;

use foldhash::quality::RandomState;
use protocol::flow::PortNo;
use protocol::wire::EthernetAddress;

/// Slots probed per lookup.
pub const PROBE: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// MAC (48 bits) | VLAN << 48 | 1 << 63 when used.
    tag: u64,
    port: PortNo,
    seen_ms: u64,
    /// When this entry was last announced to (or by) the peers.
    announced_ms: u64,
}

/// Capacity of a table's announcement outbox: more than one batch can
/// learn (32 packets, one `NORMAL` each, unless resubmitted).
pub const OUTBOX: usize = 64;

/// A learning announcement exchanged between workers' tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacEvent {
    /// The station.
    pub mac: EthernetAddress,
    /// Its VLAN (VID, 0 for untagged).
    pub vlan: u16,
    /// The port it was seen on.
    pub port: PortNo,
    /// When.
    pub seen_ms: u64,
}

const USED: u64 = 1 << 63;

/// What learning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new entry.
    New,
    /// The station moved from another port.
    Moved(PortNo),
    /// Already known on this port (timestamp refreshed).
    Refreshed,
}

/// A bounded MAC-learning table (see the module doc).
#[derive(Debug, Clone)]
pub struct MacTable {
    entries: Box<[Entry]>,
    mask: usize,
    hasher: RandomState,
    /// Announcements not yet drained; `None` until [`MacTable::enable_sync`].
    outbox: Option<Box<[MacEvent; OUTBOX]>>,
    outbox_len: usize,
    /// Announcements lost because the outbox was full.
    outbox_overflow: u64,
}

impl MacTable {
    /// A table with at least `capacity` slots (rounded up to a power of two,
    /// minimum 16). Allocates once.
    pub fn new(capacity: usize) -> MacTable {
        let n = capacity.max(16).next_power_of_two();
        MacTable {
            entries: vec![
                Entry {
                    tag: 0,
                    port: PortNo::NONE,
                    seen_ms: 0,
                    announced_ms: 0,
                };
                n
            ]
            .into_boxed_slice(),
            mask: n - 1,
            hasher: RandomState::default(),
            outbox: None,
            outbox_len: 0,
            outbox_overflow: 0,
        }
    }

    /// Starts recording announcements of local learning (see the module
    /// doc). Allocates the outbox once.
    pub fn enable_sync(&mut self) {
        if self.outbox.is_none() {
            self.outbox = Some(Box::new(
                [MacEvent {
                    mac: EthernetAddress([0; 6]),
                    vlan: 0,
                    port: PortNo::NONE,
                    seen_ms: 0,
                }; OUTBOX],
            ));
        }
    }

    /// Announcements lost because the outbox was full.
    pub fn outbox_overflow(&self) -> u64 {
        self.outbox_overflow
    }

    /// Hands every pending announcement to `f`, oldest first, and empties
    /// the outbox.
    pub fn drain_announcements(&mut self, mut f: impl FnMut(MacEvent)) {
        if let Some(out) = &self.outbox {
            for ev in out.iter().take(self.outbox_len) {
                f(*ev);
            }
        }
        self.outbox_len = 0;
    }

    #[inline]
    fn announce(&mut self, tag: u64, port: PortNo, now_ms: u64) {
        let Some(out) = &mut self.outbox else {
            return;
        };
        match out.get_mut(self.outbox_len) {
            Some(slot) => {
                *slot = MacEvent {
                    mac: EthernetAddress::from_u64(tag & 0xffff_ffff_ffff),
                    vlan: ((tag >> 48) & 0x0fff) as u16,
                    port,
                    seen_ms: now_ms,
                };
                self.outbox_len += 1;
            }
            None => self.outbox_overflow += 1,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    #[inline]
    fn tag(mac: EthernetAddress, vlan: u16) -> u64 {
        mac.to_u64() | (u64::from(vlan & 0x0fff) << 48) | USED
    }

    #[inline]
    fn start(&self, tag: u64) -> usize {
        (self.hasher.hash_one(tag) as usize) & self.mask
    }

    #[inline]
    fn live(e: &Entry, now_ms: u64, aging_ms: u64) -> bool {
        e.tag & USED != 0 && now_ms.saturating_sub(e.seen_ms) <= aging_ms
    }

    /// The port `mac` on `vlan` was last seen on, if not aged out.
    #[inline]
    pub fn lookup(
        &self,
        mac: EthernetAddress,
        vlan: u16,
        now_ms: u64,
        aging_ms: u64,
    ) -> Option<PortNo> {
        let tag = Self::tag(mac, vlan);
        let s = self.start(tag);
        (0..PROBE)
            .filter_map(|i| self.entries.get((s + i) & self.mask))
            .find(|e| e.tag == tag && Self::live(e, now_ms, aging_ms))
            .map(|e| e.port)
    }

    /// Records that `mac` on `vlan` was seen on `port` at `now_ms`.
    #[inline]
    pub fn learn(
        &mut self,
        mac: EthernetAddress,
        vlan: u16,
        port: PortNo,
        now_ms: u64,
        aging_ms: u64,
    ) -> Learned {
        let tag = Self::tag(mac, vlan);
        let Some((learned, announced)) = self.store(tag, port, now_ms, aging_ms, false) else {
            return Learned::Refreshed;
        };
        if self.outbox.is_some()
            && (learned != Learned::Refreshed || now_ms.saturating_sub(announced) >= aging_ms / 4)
        {
            self.set_announced(tag, now_ms);
            self.announce(tag, port, now_ms);
        }
        learned
    }

    /// Applies a peer's announcement: the station is recorded unless this
    /// table saw it more recently, or the announcement is older than the
    /// aging time at `now_ms`. Never announced again. Returns whether the
    /// table changed.
    pub fn learn_remote(&mut self, ev: &MacEvent, now_ms: u64, aging_ms: u64) -> bool {
        if now_ms.saturating_sub(ev.seen_ms) > aging_ms || ev.mac.is_multicast() {
            return false;
        }
        let tag = Self::tag(ev.mac, ev.vlan);
        if self
            .store(tag, ev.port, ev.seen_ms, aging_ms, true)
            .is_none()
        {
            return false;
        }
        self.set_announced(tag, ev.seen_ms);
        true
    }

    fn set_announced(&mut self, tag: u64, when: u64) {
        let s = self.start(tag);
        let mask = self.mask;
        for i in 0..PROBE {
            if let Some(e) = self.entries.get_mut((s + i) & mask)
                && e.tag == tag
            {
                e.announced_ms = e.announced_ms.max(when);
                return;
            }
        }
    }

    /// Records `tag` on `port` at `now_ms`; returns what happened and
    /// when the entry was last announced before. With `only_newer`, an
    /// existing entry seen after `now_ms` is kept as it is (`None`).
    fn store(
        &mut self,
        tag: u64,
        port: PortNo,
        now_ms: u64,
        aging_ms: u64,
        only_newer: bool,
    ) -> Option<(Learned, u64)> {
        let s = self.start(tag);
        let mask = self.mask;
        // The existing entry, else a free or aged slot, else the oldest.
        let mut victim = s & mask;
        let mut victim_age = None::<u64>;
        for i in 0..PROBE {
            let idx = (s + i) & mask;
            let Some(e) = self.entries.get_mut(idx) else {
                continue;
            };
            if e.tag == tag {
                let was = e.port;
                let announced = e.announced_ms;
                if only_newer && e.seen_ms > now_ms {
                    return None;
                }
                let live = now_ms.saturating_sub(e.seen_ms) <= aging_ms;
                e.port = port;
                e.seen_ms = now_ms;
                let l = if !live {
                    Learned::New
                } else if was == port {
                    Learned::Refreshed
                } else {
                    Learned::Moved(was)
                };
                return Some((l, announced));
            }
            let free = !Self::live(e, now_ms, aging_ms);
            let age = if free {
                u64::MAX
            } else {
                now_ms.saturating_sub(e.seen_ms)
            };
            if victim_age.is_none_or(|v| age > v) {
                victim = idx;
                victim_age = Some(age);
            }
        }
        if let Some(e) = self.entries.get_mut(victim) {
            *e = Entry {
                tag,
                port,
                seen_ms: now_ms,
                announced_ms: 0,
            };
        }
        Some((Learned::New, 0))
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        for e in self.entries.iter_mut() {
            e.tag = 0;
        }
    }
}

/// True for the 802.1D reserved group addresses `01:80:c2:00:00:0x`.
#[inline]
pub fn is_reserved_multicast(mac: EthernetAddress) -> bool {
    mac.to_u64() & !0xf == 0x0180_c200_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);

    #[test]
    fn learn_lookup_move_age() {
        let mut t = MacTable::new(16);
        assert_eq!(t.lookup(A, 0, 0, 1000), None);
        assert_eq!(t.learn(A, 0, PortNo(1), 10, 1000), Learned::New);
        assert_eq!(t.lookup(A, 0, 20, 1000), Some(PortNo(1)));
        assert_eq!(t.lookup(A, 5, 20, 1000), None, "other VLAN");
        assert_eq!(t.learn(A, 0, PortNo(1), 30, 1000), Learned::Refreshed);
        assert_eq!(
            t.learn(A, 0, PortNo(2), 40, 1000),
            Learned::Moved(PortNo(1))
        );
        assert_eq!(t.lookup(A, 0, 1040, 1000), Some(PortNo(2)));
        assert_eq!(t.lookup(A, 0, 1041, 1000), None, "aged out");
        assert_eq!(t.learn(A, 0, PortNo(3), 1041, 1000), Learned::New);
    }

    #[test]
    fn bounded_and_evicts_oldest() {
        let mut t = MacTable::new(16);
        for i in 0..1000u64 {
            t.learn(
                EthernetAddress::from_u64(0x0200_0000_0000 | i),
                0,
                PortNo(1),
                i,
                1 << 40,
            );
        }
        assert_eq!(t.capacity(), 16);
        // The most recent one is always there.
        assert_eq!(
            t.lookup(
                EthernetAddress::from_u64(0x0200_0000_0000 | 999),
                0,
                999,
                1 << 40
            ),
            Some(PortNo(1))
        );
        t.learn(B, 1, PortNo(4), 1000, 1 << 40);
        assert_eq!(t.lookup(B, 1, 1000, 1 << 40), Some(PortNo(4)));
        t.clear();
        assert_eq!(t.lookup(B, 1, 1000, 1 << 40), None);
    }

    #[test]
    fn announcements_sync_two_tables() {
        const AGING: u64 = 1000;
        let mut a = MacTable::new(16);
        let mut b = MacTable::new(16);
        // Without sync nothing is recorded.
        a.learn(A, 0, PortNo(1), 10, AGING);
        let mut n = 0;
        a.drain_announcements(|_| n += 1);
        assert_eq!(n, 0);
        a.enable_sync();
        b.enable_sync();
        let sync = |from: &mut MacTable, to: &mut MacTable, now: u64| {
            let mut evs = Vec::new();
            from.drain_announcements(|e| evs.push(e));
            for e in &evs {
                to.learn_remote(e, now, AGING);
            }
            evs
        };
        // New on A: announced; B learns it without seeing a packet.
        assert_eq!(a.learn(B, 7, PortNo(2), 20, AGING), Learned::New);
        let evs = sync(&mut a, &mut b, 21);
        assert_eq!(
            evs,
            [MacEvent {
                mac: B,
                vlan: 7,
                port: PortNo(2),
                seen_ms: 20
            }]
        );
        assert_eq!(b.lookup(B, 7, 21, AGING), Some(PortNo(2)));
        // Applying a peer's announcement does not announce it again.
        assert!(sync(&mut b, &mut a, 22).is_empty());
        // A refresh within a quarter of the aging time is not announced;
        // after it, it is, and keeps B's entry alive past the first aging.
        a.learn(B, 7, PortNo(2), 200, AGING);
        assert!(sync(&mut a, &mut b, 200).is_empty());
        a.learn(B, 7, PortNo(2), 900, AGING);
        assert_eq!(sync(&mut a, &mut b, 900).len(), 1);
        assert_eq!(b.lookup(B, 7, 1500, AGING), Some(PortNo(2)));
        // Moves are announced at once; crossing announcements settle on
        // the newer one whichever order they are applied in.
        a.learn(B, 7, PortNo(3), 1000, AGING);
        b.learn(B, 7, PortNo(4), 1001, AGING);
        let from_a = {
            let mut v = Vec::new();
            a.drain_announcements(|e| v.push(e));
            v
        };
        let from_b = {
            let mut v = Vec::new();
            b.drain_announcements(|e| v.push(e));
            v
        };
        for e in &from_b {
            a.learn_remote(e, 1002, AGING);
        }
        for e in &from_a {
            assert!(!b.learn_remote(e, 1002, AGING), "older move ignored");
        }
        assert_eq!(a.lookup(B, 7, 1002, AGING), Some(PortNo(4)));
        assert_eq!(b.lookup(B, 7, 1002, AGING), Some(PortNo(4)));
        // Stale announcements (older than the aging time) are ignored.
        let old = MacEvent {
            mac: A,
            vlan: 1,
            port: PortNo(9),
            seen_ms: 0,
        };
        assert!(!b.learn_remote(&old, 5000, AGING));
        assert_eq!(b.lookup(A, 1, 5000, AGING), None);
        // The outbox is bounded: overflow is counted, not grown.
        for i in 0..(OUTBOX as u64 + 5) {
            a.learn(
                EthernetAddress::from_u64(0x0200_0000_1000 | i),
                0,
                PortNo(1),
                6000,
                AGING,
            );
        }
        assert_eq!(a.outbox_overflow(), 5);
        let mut n = 0;
        a.drain_announcements(|_| n += 1);
        assert_eq!(n, OUTBOX);
    }

    #[test]
    fn reserved() {
        assert!(is_reserved_multicast(EthernetAddress([
            1, 0x80, 0xc2, 0, 0, 0
        ])));
        assert!(is_reserved_multicast(EthernetAddress([
            1, 0x80, 0xc2, 0, 0, 0x0e
        ])));
        assert!(!is_reserved_multicast(EthernetAddress([
            1, 0x80, 0xc2, 0, 0, 0x10
        ])));
        assert!(!is_reserved_multicast(A));
    }
}
