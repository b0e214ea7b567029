//! Ports: where frames enter and leave the switch, behind one batch trait.
//!
//! A worker thread drives its ports like this (OVS `dp_netdev_process_rxq_port`,
//! VPP input nodes):
//!
//! ```text
//! loop {
//!     poll(fd of every port, POLLIN)            // sleep until something is ready
//!     for each readable port:
//!         n = port.recv_batch(&mut bufs[..BATCH_MAX])   // one syscall, up to 32 frames
//!         pipeline.process(&bufs[..n]) -> outputs
//!         for (out_port, frame) in outputs: ports[out_port].send(frame)   // queue only
//!     for each port with pending() > 0: port.flush()    // one syscall per port per batch
//! }
//! ```
//!
//! Implementations:
//!
//! * [`AfPacketPort`]: an existing interface (veth end, NIC) through an
//!   `AF_PACKET` socket, `recvmmsg`/`sendmmsg` batches.
//! * [`XskPort`]: an existing interface (a pod's veth end) through an
//!   AF_XDP socket fed by an XDP redirect program (copy mode on veth).
//! * [`TapPort`]: a TAP device (the switch owns the fd; the netdev may live in
//!   a pod's namespace).
//! * [`MemoryPort`]: two in-memory queues, for tests and benches.
//!
//! # Threading
//!
//! Every worker has its own handle on every port: for AF_PACKET one socket
//! per worker in a `PACKET_FANOUT` group ([`AfPacketPort::open_group`]),
//! for TAP one queue per worker of a multi-queue device
//! ([`TapPort::open_queues`]). A handle is owned by exactly one worker thread: the trait takes `&mut self`
//! for I/O and requires only `Send` (so a port can be handed to the worker
//! that will own it), not `Sync`. Nothing in a port is locked on the data
//! path ([`MemoryPort`] takes one uncontended lock per batch, not per frame).
//!
//! # Errors and accounting
//!
//! Transient conditions never surface as `Err`: an empty receive queue is
//! `Ok(0)`, a full or down transmit path drops the frames and counts them in
//! [`PortStats::tx_dropped`]. `Err` means the port itself is broken (its
//! interface was deleted, its descriptor is bad) and the worker should remove
//! it.
//!
//! `sys.rs` (with its child `sys/xsk.rs`) is the only module of the crate
//! allowed `unsafe`; everything else here is safe code.

mod af_packet;
mod memory;
mod sys;
mod tap;
mod xsk;

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;

use crate::buf::{BATCH_MAX, MAX_PACKET, PacketBuf};
use crate::offload::{Offload, OffloadError, VNET_HDR_LEN, refresh_partial};

pub use af_packet::AfPacketPort;
pub use memory::{MemoryPort, MemoryPortHandle};
pub use sys::{LinkInfo, disable_offloads, enter_netns, link_info};
pub use tap::TapPort;
pub use xsk::XskPort;

/// What kind of device backs a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// A TAP device ([`TapPort`]).
    Tap,
    /// An existing interface through an `AF_PACKET` socket ([`AfPacketPort`]).
    AfPacket,
    /// An existing interface through an AF_XDP socket ([`XskPort`]).
    AfXdp,
    /// In-memory queues ([`MemoryPort`]).
    Memory,
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::Tap => "tap",
            PortKind::AfPacket => "af_packet",
            PortKind::AfXdp => "af_xdp",
            PortKind::Memory => "memory",
        })
    }
}

/// Per-port counters, as the port saw them (monotonic from port creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames handed to the caller by `recv_batch`.
    pub rx_packets: u64,
    /// Bytes of those frames (including any VLAN tag the port re-inserted).
    pub rx_bytes: u64,
    /// Frames lost before the caller saw them: the kernel's receive queue
    /// overflowed (AF_PACKET `PACKET_STATISTICS`).
    pub rx_dropped: u64,
    /// Frames received but discarded as malformed: longer than a
    /// [`PacketBuf`] holds, or too short to carry the VLAN tag to re-insert.
    pub rx_errors: u64,
    /// Frames the kernel accepted for transmission.
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames not transmitted because the device was busy or down (queue
    /// full, `ENOBUFS`, link down).
    pub tx_dropped: u64,
    /// Frames not transmitted because they were invalid (too long, rejected
    /// by the kernel).
    pub tx_errors: u64,
}

/// A switch port with batched receive and transmit.
///
/// Receive is non-blocking: [`Port::recv_batch`] returns `Ok(0)` when nothing
/// is ready; wait for readability of [`Port::fd`] with poll/epoll. Transmit is
/// two-phase: [`Port::send`] copies a frame into the port's transmit queue,
/// [`Port::flush`] hands everything queued to the kernel in one batch. Call
/// `flush` once per worker batch for each port that has something
/// [`Port::pending`].
pub trait Port: Send + fmt::Debug {
    /// The interface name (or a test name).
    fn name(&self) -> &str;

    /// What backs this port.
    fn kind(&self) -> PortKind;

    /// Receives up to `bufs.len()` frames (at most [`BATCH_MAX`] per call),
    /// filling `bufs[..n]` through [`PacketBuf::rx_area`] and
    /// [`PacketBuf::set_received`], and returns `n`. Buffers beyond `n` are
    /// left in an unspecified (but valid) state. `Ok(0)` when nothing is ready.
    fn recv_batch(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize>;

    /// Queues a copy of `frame` (a whole Ethernet frame, no FCS) for
    /// transmission. A full queue is flushed first. Frames longer than
    /// [`MAX_PACKET`](crate::buf::MAX_PACKET) are counted in `tx_errors` and refused with
    /// `InvalidInput`; `Err` otherwise only as for [`Port::flush`].
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;

    /// Transmits every queued frame and empties the queue; returns how many
    /// frames the kernel accepted. Frames it did not take are counted in
    /// [`PortStats`] (`tx_dropped` or `tx_errors`), never retried.
    fn flush(&mut self) -> io::Result<usize>;

    /// Frames queued by [`Port::send`] and not yet flushed.
    fn pending(&self) -> usize;

    /// A descriptor that becomes readable when [`Port::recv_batch`] has
    /// something to return (level-triggered).
    fn fd(&self) -> BorrowedFd<'_>;

    /// A snapshot of the counters.
    fn stats(&self) -> PortStats;

    /// True if the port exchanges offload metadata with the kernel
    /// (`PACKET_VNET_HDR`, `IFF_VNET_HDR`): it receives partial checksums
    /// and GSO super-frames and takes them through [`Port::send_offload`].
    fn offloads(&self) -> bool {
        false
    }

    /// Queues `frame` with its offload metadata. Only for a port whose
    /// [`Port::offloads`] is true; the caller segments and completes
    /// checksums for the others (see [`crate::offload::segment`]). The
    /// default ignores the metadata.
    fn send_offload(&mut self, frame: &[u8], off: &Offload) -> io::Result<()> {
        let _ = off;
        self.send(frame)
    }
}

/// What [`transmit`] did with a frame's offload metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOffload {
    /// An ordinary frame, queued as it is.
    Plain,
    /// Queued with its metadata on a port with offloads.
    Passed,
    /// Segmented (or its checksum completed) in software into this many
    /// frames, for a port without offloads.
    Segmented(usize),
    /// Refused: the headers do not match the metadata (nothing queued).
    Refused(OffloadError),
}

/// Queues `frame` with offload metadata `off` on `port`: passed on if the
/// port [`Port::offloads`], else segmented and checksummed in software
/// through `scratch` (at least [`MAX_PACKET`] bytes). Transmit errors are
/// counted by the port, as for [`Port::send`].
pub fn transmit(port: &mut dyn Port, frame: &[u8], off: &Offload, scratch: &mut [u8]) -> TxOffload {
    if off.is_none() {
        let _ = port.send(frame);
        return TxOffload::Plain;
    }
    if port.offloads() {
        let _ = port.send_offload(frame, off);
        return TxOffload::Passed;
    }
    match crate::offload::segment(frame, off, scratch, |seg| {
        let _ = port.send(seg);
    }) {
        Ok(n) => TxOffload::Segmented(n),
        Err(e) => TxOffload::Refused(e),
    }
}

/// Bytes of frame data a transmit queue holds before it must be flushed:
/// room for a few GSO super-frames with their vnet headers (a batch of
/// ordinary frames is bounded by [`BATCH_MAX`] first).
const TX_ARENA: usize = 4 * (MAX_PACKET + VNET_HDR_LEN);

/// A port's transmit queue: frames copied back to back into one
/// preallocated arena, at most [`BATCH_MAX`] of them. Allocates only when
/// created.
struct TxQueue {
    arena: Box<[u8]>,
    used: usize,
    /// `(offset, len)` in `arena` of each queued frame.
    slots: [(usize, usize); BATCH_MAX],
    n: usize,
}

impl fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxQueue")
            .field("frames", &self.n)
            .field("bytes", &self.used)
            .finish()
    }
}

impl TxQueue {
    fn new() -> TxQueue {
        TxQueue {
            arena: vec![0u8; TX_ARENA].into_boxed_slice(),
            used: 0,
            slots: [(0, 0); BATCH_MAX],
            n: 0,
        }
    }

    /// Frames queued.
    #[inline]
    fn len(&self) -> usize {
        self.n
    }

    /// True if a frame of `len` bytes fits without a flush.
    #[inline]
    fn has_room(&self, len: usize) -> bool {
        self.n < BATCH_MAX && self.used + len <= self.arena.len()
    }

    /// Copies `frame` in; `false` if it does not fit (see [`TxQueue::has_room`]).
    fn push(&mut self, frame: &[u8]) -> bool {
        if !self.has_room(frame.len()) {
            return false;
        }
        let start = self.used;
        self.arena[start..start + frame.len()].copy_from_slice(frame);
        self.slots[self.n] = (start, frame.len());
        self.used += frame.len();
        self.n += 1;
        true
    }

    /// Copies `frame` in behind the `virtio_net_hdr` for `off`, and
    /// rewrites its partial checksum for the receiving kernel
    /// ([`refresh_partial`]); `false` if it does not fit.
    fn push_vnet(&mut self, frame: &[u8], off: &Offload) -> bool {
        let len = VNET_HDR_LEN + frame.len();
        if !self.has_room(len) {
            return false;
        }
        let start = self.used;
        let (hdr, body) = self.arena[start..start + len].split_at_mut(VNET_HDR_LEN);
        hdr.copy_from_slice(&off.build());
        body.copy_from_slice(frame);
        refresh_partial(body, off);
        self.slots[self.n] = (start, len);
        self.used += len;
        self.n += 1;
        true
    }

    /// Frame `i` (in queue order); empty if out of range.
    #[inline]
    fn frame(&self, i: usize) -> &[u8] {
        if i >= self.n {
            return &[];
        }
        let (off, len) = self.slots[i];
        &self.arena[off..off + len]
    }

    /// Points `out[..n]` at the `n` queued frames and returns `n`.
    fn frames<'a>(&'a self, out: &mut [&'a [u8]; BATCH_MAX]) -> usize {
        for (i, slot) in out.iter_mut().enumerate().take(self.n) {
            let (off, len) = self.slots[i];
            *slot = &self.arena[off..off + len];
        }
        self.n
    }

    /// Empties the queue.
    #[inline]
    fn clear(&mut self) {
        self.n = 0;
        self.used = 0;
    }
}

/// The error [`Port::send`] returns for a frame longer than
/// [`MAX_PACKET`](crate::buf::MAX_PACKET).
fn too_long() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "frame longer than MAX_PACKET")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_queue_packs_and_limits() {
        let mut q = TxQueue::new();
        assert!(q.push(&[1, 2, 3]));
        assert!(q.push(&[4]));
        assert_eq!(q.len(), 2);
        assert_eq!(q.frame(0), &[1, 2, 3]);
        assert_eq!(q.frame(1), &[4]);
        assert_eq!(q.frame(2), &[] as &[u8]);
        let mut out = [&[][..]; BATCH_MAX];
        let n = q.frames(&mut out);
        assert_eq!(&out[..n], &[&[1u8, 2, 3][..], &[4u8][..]]);
        q.clear();
        for i in 0..BATCH_MAX {
            assert!(q.push(&[i as u8]));
        }
        assert!(!q.has_room(1));
        assert!(!q.push(&[0]));
        q.clear();
        let big = vec![0u8; MAX_PACKET];
        let mut k = 0;
        while q.push(&big) {
            k += 1;
        }
        assert_eq!(k, TX_ARENA / MAX_PACKET);
    }

    #[test]
    fn kind_display() {
        assert_eq!(PortKind::AfPacket.to_string(), "af_packet");
        assert_eq!(PortKind::Tap.to_string(), "tap");
        assert_eq!(PortKind::Memory.to_string(), "memory");
    }
}
