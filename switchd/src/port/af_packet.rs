//! A port on an existing interface (a veth end, a NIC) through an
//! `AF_PACKET`/`SOCK_RAW` socket.
//!
//! The socket (see `sys::PacketSocket`) is bound to the interface with
//! `ETH_P_ALL`, joined in promiscuous mode (`PACKET_MR_PROMISC`, undone by the
//! kernel when the socket closes), non-blocking, with:
//!
//! * `PACKET_IGNORE_OUTGOING` (Linux 4.20+): frames we, or the host stack,
//!   transmit on the interface are not looped back to us. On older kernels
//!   the same frames are dropped by their `PACKET_OUTGOING` packet type.
//! * `PACKET_QDISC_BYPASS`: transmit goes straight to the driver, as for OVS
//!   and DPDK-style switches; a full device queue drops (counted).
//! * `PACKET_AUXDATA`: the kernel takes the 802.1Q/802.1ad tag out of every
//!   received frame (`skb_vlan_untag` runs before packet taps, even without
//!   the 8021q module) and reports it as `tp_vlan_tci`/`tp_vlan_tpid` with
//!   `TP_STATUS_VLAN_VALID`. We put the tag back into the frame, so the
//!   pipeline sees the bytes that were on the wire (OVS `netdev-linux.c`
//!   `netdev_linux_rxq_recv_sock` does the same).
//!
//! # Several workers: `PACKET_FANOUT`
//!
//! [`AfPacketPort::open_group`] opens one socket per worker on the same
//! interface and joins them to one fanout group (OVS's netdev-afxdp and
//! DPDK's af_packet PMD spread queues the same way):
//!
//! * mode `PACKET_FANOUT_HASH`: the kernel's *symmetric* flow hash
//!   (`__skb_get_hash_symmetric`) picks the socket, so every packet of a
//!   flow reaches the same worker, in order, and both directions of a
//!   connection hash alike. Non-first IP fragments carry no ports and may
//!   hash elsewhere (fragments can be reordered; receivers reassemble).
//! * no `PACKET_FANOUT_FLAG_ROLLOVER` (moving a busy socket's frames to
//!   another would reorder flows) and no `PACKET_FANOUT_FLAG_DEFRAG` (the
//!   kernel would hand us reassembled datagrams, changing the bytes).
//! * `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` (4.20+): the per-socket
//!   `PACKET_IGNORE_OUTGOING` does not apply to group members, the group
//!   flag does; without it the packet-type check drops our own frames.
//! * the group id is chosen by the kernel (`PACKET_FANOUT_FLAG_UNIQUEID`
//!   on the first socket), so two switches, or a capture tool, in the same
//!   namespace cannot collide.
//! * the second and later sockets are opened with a drop-all BPF filter,
//!   joined, then the filter removed: between bind and join a socket would
//!   otherwise get a *copy* of frames the group also delivers (duplicates).
//!   Frames hashed to a socket in the microseconds between join and filter
//!   removal are lost, only while the port is being added.
//!
//! Each worker transmits on its own socket of the group, so transmit needs
//! no lock either.
//!
//! # Receive: a `PACKET_MMAP` ring
//!
//! Every socket maps a `TPACKET_V2` receive ring (2,048 slots of 2 KiB,
//! see `sys::RxRing`): the kernel copies each frame into a slot in the
//! sender's softirq, and [`Port::recv_batch`] copies up to [`BATCH_MAX`]
//! published slots into the caller's [`PacketBuf`]s and hands the slots
//! back, with no system call. The VLAN tag comes from the slot header
//! (`tp_vlan_tci`, `TP_STATUS_VLAN_VALID`), the vnet header from right in
//! front of the frame, the packet type (for the outgoing check) from the
//! slot's `sockaddr_ll`. Why V2 and not V3: V3 hands over whole blocks, on
//! a quiet port only when the block timeout expires, which adds to the
//! latency of every request/response frame; V2 publishes each frame.
//!
//! * Frames longer than a slot (TSO super-frames with their vnet header,
//!   jumbo frames): the kernel also queues them whole on the socket and
//!   marks the slot `TP_STATUS_COPY`; they are read with `recvmsg` (and
//!   `PACKET_AUXDATA` for the tag). If the socket's receive buffer is full
//!   the kernel cannot queue the copy: the truncated slot is counted in
//!   `rx_errors`.
//! * A full ring: the kernel drops and counts in `tp_drops`, read with
//!   `PACKET_STATISTICS` into `rx_dropped`.
//! * A kernel that refuses the ring: `recvmmsg` of up to [`BATCH_MAX`]
//!   frames, as before the ring, logged once. `WEFT_AFPACKET_RING=0` in
//!   the environment forces it.
//!
//! Transmit: one `sendmmsg` per batch (a `PACKET_TX_RING` would still need
//! a `send` per batch to kick the kernel; not measured yet).
//! # Offloads: `PACKET_VNET_HDR`
//!
//! By default ([`AfPacketPort::open_group_with`] `offload = true`) the
//! socket is opened with `PACKET_VNET_HDR`: every received frame comes
//! behind a `virtio_net_hdr`, which becomes the packet's
//! [`Offload`](crate::offload::Offload) metadata, so the peer of a veth
//! keeps TSO/GSO and checksum offload and hands us 64 KiB super-frames with
//! partial checksums; [`Port::send_offload`] gives the kernel the metadata
//! back, and it segments (or the veth peer takes the super-frame as is).
//! A frame the kernel cannot describe with a vnet header (a GSO type
//! virtio has no code for) fails `recvmsg` with `EINVAL` and is counted in
//! `rx_errors`. Without the option (or on a kernel that refuses it) the
//! peer must not hand us partial checksums or TSO super-frames: turn its
//! offloads off ([`super::disable_offloads`]). Frames longer than a
//! [`PacketBuf`] are counted in `rx_errors` and dropped.
//!
//! # Not (yet) supported
//!
//! * Noticing that the interface was deleted on receive: the socket simply
//!   goes quiet; transmit then fails with `ENXIO`, which `flush` reports.

use std::cell::Cell;
use std::io;
use std::os::fd::BorrowedFd;

use super::sys::{self, PacketSocket, RxMeta};
use super::{Port, PortKind, PortStats, TxQueue, too_long};
use crate::buf::{BATCH_MAX, MAX_PACKET, PacketBuf};
use crate::offload::{Offload, VNET_HDR_LEN};

/// Offset of the VLAN tag in an Ethernet frame (after both MAC addresses).
const VLAN_OFFSET: usize = 12;
/// Bytes of one VLAN tag (TPID + TCI).
const VLAN_LEN: usize = 4;

/// A port on an existing interface through an `AF_PACKET` socket; see the
/// module documentation.
#[derive(Debug)]
pub struct AfPacketPort {
    name: String,
    ifindex: u32,
    sock: PacketSocket,
    txq: TxQueue,
    stats: PortStats,
    /// Kernel receive-queue drops collected so far (read-and-reset in the
    /// kernel, so accumulated here; `Cell` because [`Port::stats`] takes
    /// `&self`).
    kernel_drops: Cell<u64>,
}

impl AfPacketPort {
    /// Opens a port on interface `ifname` of the calling thread's network
    /// namespace. The socket stays in that namespace whichever thread uses
    /// it later.
    pub fn open(ifname: &str) -> io::Result<AfPacketPort> {
        Self::open_one(ifname, true)
    }

    fn open_one(ifname: &str, offload: bool) -> io::Result<AfPacketPort> {
        let ifindex = sys::if_index(ifname)?;
        let sock = PacketSocket::open(ifindex, false, offload, ring_wanted())?;
        Ok(Self::with_socket(ifname, ifindex, sock))
    }

    fn with_socket(ifname: &str, ifindex: u32, sock: PacketSocket) -> AfPacketPort {
        AfPacketPort {
            name: ifname.to_owned(),
            ifindex,
            sock,
            txq: TxQueue::new(),
            stats: PortStats::default(),
            kernel_drops: Cell::new(0),
        }
    }

    /// Opens `n` sockets on interface `ifname`, one per worker, as one
    /// `PACKET_FANOUT_HASH` group (see the module documentation). `n == 1`
    /// is [`AfPacketPort::open`] (no group).
    pub fn open_group(ifname: &str, n: usize) -> io::Result<Vec<AfPacketPort>> {
        Self::open_group_with(ifname, n, true)
    }

    /// [`AfPacketPort::open_group`], with `PACKET_VNET_HDR` offloads on or
    /// off (see the module documentation; on is the default).
    pub fn open_group_with(ifname: &str, n: usize, offload: bool) -> io::Result<Vec<AfPacketPort>> {
        if n <= 1 {
            return Ok(vec![Self::open_one(ifname, offload)?]);
        }
        let ifindex = sys::if_index(ifname)?;
        let fanout_err = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("{ifname}: joining a PACKET_FANOUT group for {n} workers: {e}"),
            )
        };
        let first = PacketSocket::open(ifindex, false, offload, ring_wanted())?;
        let id = first
            .join_fanout(None, sys::PACKET_FANOUT_HASH)
            .map_err(fanout_err)?;
        let mut ports = vec![Self::with_socket(ifname, ifindex, first)];
        for _ in 1..n {
            let s = PacketSocket::open(ifindex, true, offload, ring_wanted())?;
            s.join_fanout(Some(id), sys::PACKET_FANOUT_HASH)
                .map_err(fanout_err)?;
            s.unquiet()?;
            ports.push(Self::with_socket(ifname, ifindex, s));
        }
        Ok(ports)
    }

    /// True if the port receives through a `PACKET_MMAP` ring (false after
    /// the `recvmmsg` fallback).
    pub fn has_ring(&self) -> bool {
        self.sock.has_ring()
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// Whether new sockets get a `PACKET_MMAP` receive ring: yes unless the
/// environment has `WEFT_AFPACKET_RING=0` (for A/B measurements and to
/// exercise the `recvmmsg` path the daemon falls back to on old kernels).
fn ring_wanted() -> bool {
    std::env::var_os("WEFT_AFPACKET_RING").is_none_or(|v| v != "0")
}

/// Puts a VLAN tag the kernel reported in auxdata back behind the MAC
/// addresses; `false` if the frame is too short to hold one.
fn reinsert_vlan(buf: &mut PacketBuf, tpid: u16, tci: u16) -> bool {
    match buf.insert(VLAN_OFFSET, VLAN_LEN) {
        Some(tag) => {
            tag[..2].copy_from_slice(&tpid.to_be_bytes());
            tag[2..].copy_from_slice(&tci.to_be_bytes());
            true
        }
        None => false,
    }
}

/// How a failed `sendmmsg` affects the frames still queued.
enum TxFailure {
    /// The device is busy or down: drop the rest of the batch.
    Busy,
    /// The interface is gone or the socket is broken: drop the rest and
    /// report the error.
    Fatal,
    /// Only the first frame was bad: skip it and go on.
    Frame,
}

fn classify_tx(e: &io::Error) -> TxFailure {
    if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
        return TxFailure::Busy;
    }
    match e.raw_os_error() {
        Some(libc::ENOBUFS | libc::ENETDOWN) => TxFailure::Busy,
        Some(libc::ENXIO | libc::ENODEV | libc::EBADF) => TxFailure::Fatal,
        _ => TxFailure::Frame,
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::AfPacket
    }

    fn recv_batch(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let want = bufs.len().min(BATCH_MAX);
        let mut meta = [RxMeta::default(); BATCH_MAX];
        let got = match self.sock.recv_batch(&mut bufs[..want], &mut meta) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            // Reported once when the link goes down; not a broken port.
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => return Ok(0),
            // With PACKET_VNET_HDR: a frame whose GSO type has no vnet
            // code; the kernel has consumed it.
            Err(e) if self.sock.vnet() && e.raw_os_error() == Some(libc::EINVAL) => {
                self.stats.rx_errors += 1;
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        let mut kept = 0;
        for (i, m) in meta.iter().enumerate().take(got) {
            if m.outgoing {
                continue;
            }
            if m.truncated || m.len > MAX_PACKET {
                self.stats.rx_errors += 1;
                continue;
            }
            if self.sock.vnet() && !bufs[i].take_vnet_header() {
                self.stats.rx_errors += 1;
                continue;
            }
            if let Some((tpid, tci)) = m.vlan
                && !reinsert_vlan(&mut bufs[i], tpid, tci)
            {
                self.stats.rx_errors += 1;
                continue;
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += bufs[i].len() as u64;
            if kept != i {
                bufs.swap(kept, i);
            }
            kept += 1;
        }
        Ok(kept)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.send_offload(frame, &Offload::NONE)
    }

    fn offloads(&self) -> bool {
        self.sock.vnet()
    }

    fn send_offload(&mut self, frame: &[u8], off: &Offload) -> io::Result<()> {
        if frame.len() > MAX_PACKET {
            self.stats.tx_errors += 1;
            return Err(too_long());
        }
        let vnet = self.sock.vnet();
        let len = frame.len() + if vnet { VNET_HDR_LEN } else { 0 };
        if !self.txq.has_room(len) {
            self.flush()?;
        }
        let queued = if vnet {
            self.txq.push_vnet(frame, off)
        } else {
            self.txq.push(frame)
        };
        if !queued {
            self.stats.tx_dropped += 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<usize> {
        let mut out = [&[][..]; BATCH_MAX];
        let n = self.txq.frames(&mut out);
        let frames = &out[..n];
        let mut i = 0;
        let mut result = Ok(());
        while i < n {
            match self.sock.send_batch(&frames[i..]) {
                Ok(k) if k > 0 => {
                    let hdr = if self.sock.vnet() { VNET_HDR_LEN } else { 0 };
                    for f in &frames[i..i + k] {
                        self.stats.tx_packets += 1;
                        self.stats.tx_bytes += f.len().saturating_sub(hdr) as u64;
                    }
                    i += k;
                }
                Ok(_) => {
                    self.stats.tx_dropped += (n - i) as u64;
                    break;
                }
                Err(e) => match classify_tx(&e) {
                    TxFailure::Busy => {
                        self.stats.tx_dropped += (n - i) as u64;
                        break;
                    }
                    TxFailure::Fatal => {
                        self.stats.tx_errors += (n - i) as u64;
                        result = Err(e);
                        break;
                    }
                    TxFailure::Frame => {
                        self.stats.tx_errors += 1;
                        i += 1;
                    }
                },
            }
        }
        let sent = n.min(i);
        self.txq.clear();
        result.map(|()| sent)
    }

    fn pending(&self) -> usize {
        self.txq.len()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.sock.fd()
    }

    fn stats(&self) -> PortStats {
        if let Ok(d) = self.sock.take_kernel_drops() {
            self.kernel_drops.set(self.kernel_drops.get() + d);
        }
        PortStats {
            rx_dropped: self.stats.rx_dropped + self.kernel_drops.get(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_reinsert_puts_tag_behind_macs() {
        // dst, src, ethertype IPv4, 2 payload bytes
        let mut b =
            PacketBuf::from_slice(&[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x00, 0xaa, 0xbb]);
        assert!(reinsert_vlan(&mut b, 0x8100, 0x2064));
        assert_eq!(
            b.data(),
            &[
                1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x81, 0x00, 0x20, 0x64, 0x08, 0x00, 0xaa, 0xbb
            ]
        );
        let mut short = PacketBuf::from_slice(&[1, 2, 3]);
        assert!(!reinsert_vlan(&mut short, 0x8100, 1));
        assert_eq!(short.data(), &[1, 2, 3]);
    }

    #[test]
    fn open_rejects_bad_names() {
        for bad in ["", "name-longer-than-ifnamsiz", "nul\0name"] {
            let e = AfPacketPort::open(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        // Looked up before any socket is made, so this needs no privilege.
        let e = AfPacketPort::open("weft-no-such0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        let e = super::super::disable_offloads("weft-no-such0").unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EPERM)),
            "{e}"
        );
    }

    #[test]
    fn tx_error_classes() {
        assert!(matches!(
            classify_tx(&io::Error::from_raw_os_error(libc::EAGAIN)),
            TxFailure::Busy
        ));
        assert!(matches!(
            classify_tx(&io::Error::from_raw_os_error(libc::ENOBUFS)),
            TxFailure::Busy
        ));
        assert!(matches!(
            classify_tx(&io::Error::from_raw_os_error(libc::ENETDOWN)),
            TxFailure::Busy
        ));
        assert!(matches!(
            classify_tx(&io::Error::from_raw_os_error(libc::ENXIO)),
            TxFailure::Fatal
        ));
        assert!(matches!(
            classify_tx(&io::Error::from_raw_os_error(libc::EMSGSIZE)),
            TxFailure::Frame
        ));
    }
}
