//! Packet buffers: fixed-capacity, with headroom for encapsulation and VLAN
//! pushes, recycled through a per-worker pool so the data path allocates
//! nothing in the steady state.
//!
//! ```text
//! |<-- headroom -->|<------- packet (len) ------->|<-- tailroom -->|
//! 0              head                        head+len         CAPACITY
//! ```
//!
//! A buffer is owned by exactly one worker at a time; nothing here is
//! shared or locked.
//!
//! A buffer also carries the packet's offload metadata ([`Offload`]: a
//! partial checksum, a GSO request) from the port that received it to the
//! ports it leaves on; inserting or removing bytes in front of the
//! checksum start moves it along.

use crate::offload::{Offload, VNET_HDR_LEN};

/// Bytes reserved in front of a received packet: enough for an outer
/// Ethernet + IPv6 + UDP + Geneve header with 252 bytes of options, or many
/// VLAN tags.
pub const HEADROOM: usize = 384;
/// Largest packet a buffer holds: a 64 KiB GSO super-frame from a port
/// with offloads (see [`crate::offload`]) with its Ethernet header and two
/// VLAN tags, or a jumbo frame plus tunnel overhead.
pub const MAX_PACKET: usize = 65536 + 256;
/// Total bytes per buffer.
pub const CAPACITY: usize = HEADROOM + MAX_PACKET;
/// Most packets in one batch (the rx burst and the unit of snapshot loads).
pub const BATCH_MAX: usize = 32;

/// One packet and the room around it.
#[derive(Clone)]
pub struct PacketBuf {
    data: Box<[u8]>,
    head: usize,
    len: usize,
    off: Offload,
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("head", &self.head)
            .field("len", &self.len)
            .finish()
    }
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuf {
    /// A new, empty buffer (allocates: call at start-up or through a
    /// [`BufPool`], not per packet).
    pub fn new() -> PacketBuf {
        PacketBuf {
            data: vec![0u8; CAPACITY].into_boxed_slice(),
            head: HEADROOM,
            len: 0,
            off: Offload::NONE,
        }
    }

    /// A buffer holding a copy of `bytes` (tests, packet-out, trace).
    ///
    /// Bytes beyond [`MAX_PACKET`] are cut.
    pub fn from_slice(bytes: &[u8]) -> PacketBuf {
        let mut b = PacketBuf::new();
        b.set_from_slice(bytes);
        b
    }

    /// Replaces the contents with a copy of `bytes` (cut to [`MAX_PACKET`]).
    pub fn set_from_slice(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(MAX_PACKET);
        self.head = HEADROOM;
        self.len = n;
        self.off = Offload::NONE;
        self.data[HEADROOM..HEADROOM + n].copy_from_slice(&bytes[..n]);
    }

    /// Resets to an empty packet at the standard headroom.
    #[inline]
    pub fn reset(&mut self) {
        self.head = HEADROOM;
        self.len = 0;
        self.off = Offload::NONE;
    }

    /// The offload metadata ([`Offload::NONE`] for an ordinary frame).
    #[inline]
    pub fn offload(&self) -> &Offload {
        &self.off
    }

    /// Sets the offload metadata (a port with vnet headers, after receive).
    #[inline]
    pub fn set_offload(&mut self, off: Offload) {
        self.off = off;
    }

    /// Takes the `virtio_net_hdr` in front of a frame read from a port
    /// that speaks vnet headers (AF_PACKET `PACKET_VNET_HDR`, TAP
    /// `IFF_VNET_HDR`): parses and removes it and keeps its offload
    /// metadata, checked against the frame. False when the header is
    /// malformed, no frame follows it, or the metadata does not fit the
    /// frame: the port counts a receive error and drops the frame.
    pub fn take_vnet_header(&mut self) -> bool {
        let off = Offload::parse(self.data());
        if !self.pull_front(VNET_HDR_LEN) || self.is_empty() {
            return false;
        }
        match off.and_then(|o| o.check(self.data()).map(|()| o)) {
            Ok(o) => {
                self.off = o;
                true
            }
            Err(_) => false,
        }
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.data[self.head..self.head + self.len]
    }

    /// The packet bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.head..self.head + self.len]
    }

    /// Packet length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// The whole area a receive may fill (from the standard headroom to the
    /// end); follow with [`PacketBuf::set_received`].
    #[inline]
    pub fn rx_area(&mut self) -> &mut [u8] {
        self.head = HEADROOM;
        &mut self.data[HEADROOM..]
    }

    /// Marks `n` bytes at the standard headroom as the received packet.
    #[inline]
    pub fn set_received(&mut self, n: usize) {
        self.head = HEADROOM;
        self.len = n.min(MAX_PACKET);
        self.off = Offload::NONE;
    }

    /// Grows the packet by `n` bytes at the front (for a pushed header) and
    /// returns the whole packet; `None` if the headroom is too small.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.head {
            return None;
        }
        self.head -= n;
        self.len += n;
        self.off.shift(0, n as isize);
        Some(self.data_mut())
    }

    /// Removes `n` bytes from the front; `false` (and no change) if the
    /// packet is shorter.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        self.off.shift(0, -(n as isize));
        true
    }

    /// Inserts `n` bytes at offset `at` of the packet (moving the first `at`
    /// bytes forward into the headroom) and returns the `n` new bytes, for a
    /// VLAN push behind the MAC addresses. `None` if it does not fit.
    #[inline]
    pub fn insert(&mut self, at: usize, n: usize) -> Option<&mut [u8]> {
        if at > self.len || n > self.head {
            return None;
        }
        let old = self.head;
        self.head -= n;
        self.len += n;
        self.data.copy_within(old..old + at, self.head);
        self.off.shift(at, n as isize);
        Some(&mut self.data[self.head + at..self.head + at + n])
    }

    /// Removes `n` bytes at offset `at` (moving the first `at` bytes back),
    /// for a VLAN pop. `false` (and no change) if out of range.
    #[inline]
    pub fn remove(&mut self, at: usize, n: usize) -> bool {
        if at.checked_add(n).is_none_or(|end| end > self.len) {
            return false;
        }
        let old = self.head;
        self.data.copy_within(old..old + at, old + n);
        self.head += n;
        self.len -= n;
        self.off.shift(at + n, -(n as isize));
        true
    }

    /// Cuts the packet to `n` bytes (no-op if already shorter).
    #[inline]
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
}

/// A per-worker free list of buffers: allocation happens when the pool is
/// created (and if it ever runs dry, which is counted by the caller).
#[derive(Debug, Default)]
pub struct BufPool {
    free: Vec<PacketBuf>,
}

impl BufPool {
    /// A pool with `n` preallocated buffers.
    pub fn with_capacity(n: usize) -> BufPool {
        BufPool {
            free: (0..n).map(|_| PacketBuf::new()).collect(),
        }
    }

    /// A reset buffer from the pool, or a new one if the pool is empty.
    #[inline]
    pub fn get(&mut self) -> PacketBuf {
        match self.free.pop() {
            Some(mut b) => {
                b.reset();
                b
            }
            None => PacketBuf::new(),
        }
    }

    /// Returns a buffer to the pool.
    #[inline]
    pub fn put(&mut self, b: PacketBuf) {
        self.free.push(b);
    }

    /// Buffers available.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_insert_remove() {
        let mut b = PacketBuf::from_slice(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(b.data(), &[1, 2, 3, 4, 5, 6]);
        b.push_front(2).unwrap()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4, 5, 6]);
        assert!(b.pull_front(2));
        b.insert(2, 3).unwrap().copy_from_slice(&[7, 7, 7]);
        assert_eq!(b.data(), &[1, 2, 7, 7, 7, 3, 4, 5, 6]);
        assert!(b.remove(2, 3));
        assert_eq!(b.data(), &[1, 2, 3, 4, 5, 6]);
        assert!(!b.remove(5, 2));
        assert!(!b.pull_front(7));
        assert!(b.push_front(HEADROOM + 1).is_none());
        assert!(b.insert(7, 1).is_none());
        b.truncate(3);
        assert_eq!(b.data(), &[1, 2, 3]);
    }

    #[test]
    fn offload_follows_vlan_push_pop() {
        use crate::offload::Gso;
        let mut b = PacketBuf::from_slice(&[0u8; 80]);
        let off = Offload {
            needs_csum: true,
            csum_start: 34,
            csum_offset: 16,
            gso: Gso::TcpV4,
            ecn: false,
            gso_size: 1000,
            hdr_len: 54,
        };
        b.set_offload(off);
        b.insert(12, 4).unwrap();
        assert_eq!(b.offload().csum_start, 38);
        assert!(b.remove(12, 4));
        assert_eq!(*b.offload(), off);
        b.reset();
        assert!(b.offload().is_none());
    }

    #[test]
    fn pool_recycles() {
        let mut p = BufPool::with_capacity(2);
        let mut a = p.get();
        a.set_from_slice(&[1, 2]);
        p.put(a);
        let a = p.get();
        assert!(a.is_empty());
        assert_eq!(a.headroom(), HEADROOM);
        assert_eq!(p.available(), 1);
    }
}
