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
//! One per worker (in [`WorkerState`](super::WorkerState)), so learning is
//! per worker: a station seen only by worker A is flooded by worker B until
//! B sees it too (documented limit; OVS shares one locked table). Fixed
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
                    seen_ms: 0
                };
                n
            ]
            .into_boxed_slice(),
            mask: n - 1,
            hasher: RandomState::default(),
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
                let live = now_ms.saturating_sub(e.seen_ms) <= aging_ms;
                e.port = port;
                e.seen_ms = now_ms;
                return if !live {
                    Learned::New
                } else if was == port {
                    Learned::Refreshed
                } else {
                    Learned::Moved(was)
                };
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
            };
        }
        Learned::New
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
