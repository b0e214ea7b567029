//! A port on an existing interface (a pod's veth end) through an AF_XDP
//! socket (OVS `type=afxdp`).
//!
//! At open ([`XskPort::open`]):
//!
//! 1. an XSK socket with its own UMEM ([`UMEM_FRAMES`] frames of
//!    [`FRAME_SIZE`] bytes: half offered to the kernel on the fill ring for
//!    receive, half kept for transmit) is bound to receive queue 0 of the
//!    interface, zero-copy first, else copy mode (veth has no zero-copy:
//!    the kernel copies each frame into the UMEM, which still skips the
//!    socket buffer queues, `PACKET_AUXDATA` and the `recvmmsg` copy of
//!    AF_PACKET);
//! 2. an XSKMAP and the XDP program `bpf_redirect_map(xsks,
//!    rx_queue_index, XDP_PASS)` are attached to the interface with a BPF
//!    link, in native (driver) mode where the driver has it (veth does),
//!    else generic mode. The link belongs to the process: when switchd
//!    exits or is killed, the kernel detaches the program, and a restarted
//!    switchd attaches a new one;
//! 3. the socket is put in the map for queue 0.
//!
//! If any step fails, [`XskPort::open`] says which step and the errno;
//! the worker layer then opens the port as AF_PACKET instead (see
//! `crate::worker`, "AF_XDP ports") and reports the fallback.
//!
//! # Data path
//!
//! * `recv_batch`: up to [`BATCH_MAX`] descriptors from the rx ring; each
//!   frame is copied out of the UMEM into the caller's [`PacketBuf`] (the
//!   batch trait hands out owned buffers; the copy is one `memcpy` of the
//!   frame in our own address space), and its UMEM frame goes straight
//!   back on the fill ring. If the fill ring asks for a wake-up
//!   (`XDP_RING_NEED_WAKEUP`, zero-copy drivers), `recvfrom(MSG_DONTWAIT)`.
//! * `send` copies the frame into a free transmit frame of the UMEM;
//!   `flush` puts the batch on the tx ring (one release store), kicks the
//!   kernel with `sendto(MSG_DONTWAIT)` (in copy mode transmission happens
//!   inside that call, at most 32 frames per call, so it is repeated while
//!   the kernel makes progress), and collects finished frames from the
//!   completion ring back into the free list. A frame that finds no free
//!   UMEM frame or no tx ring slot is dropped and counted in `tx_dropped`.
//! * Nothing allocates after [`XskPort::open`]; the rings are lock-free
//!   single-producer/single-consumer with the kernel (`sys::xsk`).
//!
//! # What the frames look like
//!
//! * VLAN: XDP sees the frame as it is in the buffer. A tag the sender's
//!   stack put in the skb metadata (veth offers `tx-vlan-offload`) is not
//!   in the bytes the program sees; the port therefore does not carry
//!   VLAN-tagged traffic from pods that send tagged frames with that
//!   offload on (turn `txvlan` off on the peer, or use an `afpacket` port,
//!   which restores the tag from `PACKET_AUXDATA`). Untagged pod traffic,
//!   the Kubernetes case, is unaffected.
//! * Offloads: AF_XDP carries no checksum or GSO metadata. While an XDP
//!   program is attached to a veth, the kernel stops offering GSO/TSO to
//!   the peer (`veth_xdp_set`), so pods send MTU-sized segments (expect
//!   lower TCP throughput than an `afpacket` port with `PACKET_VNET_HDR`);
//!   the peer must also not leave checksums to be completed
//!   (`CHECKSUM_PARTIAL`): turn its transmit checksum offload off
//!   (`ethtool -K PEER tx off`, what OVS documents for AF_XDP on veth; the
//!   CNI plugin and the tests do it). [`Port::offloads`] is false, so the
//!   switch segments super-frames from other ports for this one.
//! * Size: frames longer than a UMEM frame minus the XDP headroom
//!   (4096 − 256 bytes) cannot be received (the kernel counts them in the
//!   socket's drop counter, reported as `rx_dropped`). veth refuses native
//!   XDP with a peer MTU above about 3,500 bytes (`ERANGE`); such a port
//!   falls back to AF_PACKET.
//!
//! # Not for the underlay
//!
//! The program redirects *every* frame of the interface to the switch. On
//! a pod's veth that is what a switch port means; on the node's NIC it
//! would take the host's own traffic (SSH, the API server) away from the
//! host stack. The underlay and tunnel ports therefore stay AF_PACKET
//! (`weftctl set-underlay` requires an `afpacket` port).
//!
//! # Workers
//!
//! One XSK per receive queue; a veth has one receive queue unless created
//! with `numrxqueues`, so an `afxdp` port is received by one worker (the
//! first). The other workers transmit to it through AF_PACKET sockets on
//! the same interface; those receive only what the program passes (frames
//! of queues without a socket).

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::sys;
use super::sys::xsk::{XdpMode, XdpRedirect, XskConfig, XskError, XskSocket};
use super::{Port, PortKind, PortStats, too_long};
use crate::buf::{BATCH_MAX, MAX_PACKET, PacketBuf};

/// Bytes per UMEM frame (one page, as OVS and libxdp use).
const FRAME_SIZE: u32 = 4096;
/// Frames in a port's UMEM: half for receive, half for transmit (16 MiB
/// would be OVS's default per queue; 8 MiB here).
const UMEM_FRAMES: u32 = 2048;
/// Entries of each ring.
const RING_SIZE: u32 = UMEM_FRAMES / 2;
/// Receive queue served (veth default: one queue).
const QUEUE: u32 = 0;
/// Entries of the XSKMAP (receive queues that could get a socket).
const MAP_ENTRIES: u32 = 64;
/// `sendto` kicks per flush while the kernel keeps taking frames.
const MAX_KICKS: usize = 8;

/// An AF_XDP port; see the module documentation.
#[derive(Debug)]
pub struct XskPort {
    name: String,
    // Drop order: the program (and its map entry) before the socket.
    xdp: XdpRedirect,
    sock: XskSocket,
    /// Transmit frames we own (stack of UMEM addresses).
    tx_free: Vec<u64>,
    /// Frames copied by `send`, waiting for `flush`: (UMEM address, length).
    pending: [(u64, u32); BATCH_MAX],
    n_pending: usize,
    /// Frames on the tx ring or in flight in the kernel.
    outstanding: usize,
    stats: PortStats,
    kernel: std::cell::Cell<sys::xsk::XskKernelStats>,
}

/// How long [`XskPort::open`] waits for a queue that is still bound: a
/// socket of a process that just died (`kill -9`, then a restart) releases
/// its queue only when the kernel's deferred pool release runs (a
/// workqueue, after the socket and the XSKMAP holding it are freed), so the
/// restarted switch's bind sees `EBUSY` for a moment. Control path only.
const BUSY_WAIT: Duration = Duration::from_secs(3);

/// A copy-mode socket on `ifindex`, retrying `EBUSY` at bind for up to
/// [`BUSY_WAIT`]; any other error (or a queue still busy after that, as
/// when another live socket has it) is returned as is.
fn open_copy(ifindex: u32, cfg: XskConfig) -> Result<XskSocket, XskError> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match XskSocket::open(ifindex, QUEUE, cfg, false) {
            Err(e)
                if e.err.raw_os_error() == Some(libc::EBUSY)
                    && e.step.starts_with("bind")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

impl XskPort {
    /// Opens an AF_XDP port on interface `ifname` of the calling thread's
    /// network namespace; the error names the step that failed.
    pub fn open(ifname: &str) -> Result<XskPort, String> {
        let ifindex = sys::if_index(ifname).map_err(|e| format!("if_nametoindex: {e}"))?;
        let cfg = XskConfig {
            frame_size: FRAME_SIZE,
            frames: UMEM_FRAMES,
            rx_size: RING_SIZE,
            tx_size: RING_SIZE,
        };
        let xerr = |e: XskError| e.to_string();
        let mut sock = match XskSocket::open(ifindex, QUEUE, cfg, true) {
            Ok(s) => s,
            Err(_) => open_copy(ifindex, cfg).map_err(xerr)?,
        };
        let xdp = XdpRedirect::attach(ifindex, MAP_ENTRIES).map_err(xerr)?;
        // Offer the first half of the UMEM for receive before frames can
        // be redirected to the socket.
        let mut addrs = [0u64; 64];
        let mut next = 0u32;
        while next < RING_SIZE {
            let k = (RING_SIZE - next).min(addrs.len() as u32);
            for (i, a) in addrs.iter_mut().take(k as usize).enumerate() {
                *a = u64::from(next + i as u32) * u64::from(FRAME_SIZE);
            }
            if sock.fill(&addrs[..k as usize]) != k as usize {
                return Err("fill ring: fewer slots than frames".into());
            }
            next += k;
        }
        xdp.insert(QUEUE, &sock).map_err(xerr)?;
        let tx_free = (RING_SIZE..UMEM_FRAMES)
            .rev()
            .map(|i| u64::from(i) * u64::from(FRAME_SIZE))
            .collect();
        Ok(XskPort {
            name: ifname.to_owned(),
            xdp,
            sock,
            tx_free,
            pending: [(0, 0); BATCH_MAX],
            n_pending: 0,
            outstanding: 0,
            stats: PortStats::default(),
            kernel: std::cell::Cell::new(sys::xsk::XskKernelStats::default()),
        })
    }

    /// True if the socket is bound in zero-copy mode (never on veth).
    pub fn zerocopy(&self) -> bool {
        self.sock.zerocopy()
    }

    /// True if the XDP program runs in the driver (native mode), false for
    /// generic (skb) mode.
    pub fn native(&self) -> bool {
        self.xdp.mode() == XdpMode::Native
    }

    /// Takes finished transmit frames back into the free list.
    fn reclaim(&mut self) {
        let mut done = [0u64; BATCH_MAX];
        loop {
            let n = self.sock.complete(&mut done);
            for &a in &done[..n] {
                let frame = a - a % u64::from(FRAME_SIZE);
                self.tx_free.push(frame);
            }
            self.outstanding = self.outstanding.saturating_sub(n);
            if n < done.len() {
                break;
            }
        }
    }
}

impl Port for XskPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::AfXdp
    }

    fn recv_batch(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let want = bufs.len().min(BATCH_MAX);
        let mut refill = [0u64; BATCH_MAX];
        let mut kept = 0;
        let mut errors = 0;
        let mut bytes = 0u64;
        let mut i = 0;
        let n = self.sock.recv(want, |addr, frame| {
            refill[i] = addr - addr % u64::from(FRAME_SIZE);
            i += 1;
            if frame.is_empty() || frame.len() > MAX_PACKET {
                errors += 1;
                return;
            }
            let b = &mut bufs[kept];
            b.rx_area()[..frame.len()].copy_from_slice(frame);
            b.set_received(frame.len());
            bytes += frame.len() as u64;
            kept += 1;
        });
        if n > 0 {
            // The frames came off the fill ring, so there is room for them.
            self.sock.fill(&refill[..n]);
        } else if self.sock.fill_needs_wakeup() {
            self.sock.kick_rx();
        }
        self.stats.rx_packets += kept as u64;
        self.stats.rx_bytes += bytes;
        self.stats.rx_errors += errors;
        Ok(kept)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.len() > MAX_PACKET {
            self.stats.tx_errors += 1;
            return Err(too_long());
        }
        if frame.len() > self.sock.frame_size() as usize {
            // Longer than a UMEM frame: the device could not take it either
            // (veth's MTU is capped while XDP is attached).
            self.stats.tx_errors += 1;
            return Ok(());
        }
        if self.n_pending == BATCH_MAX {
            self.flush()?;
        }
        if self.tx_free.is_empty() {
            self.reclaim();
        }
        let Some(addr) = self.tx_free.pop() else {
            self.stats.tx_dropped += 1;
            return Ok(());
        };
        self.sock.frame_mut(addr)[..frame.len()].copy_from_slice(frame);
        self.pending[self.n_pending] = (addr, frame.len() as u32);
        self.n_pending += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<usize> {
        let n = self.n_pending;
        self.n_pending = 0;
        let k = self.sock.tx_push(&self.pending[..n]);
        for &(addr, len) in &self.pending[..k] {
            let _ = addr;
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += u64::from(len);
        }
        for &(addr, _) in &self.pending[k..n] {
            self.tx_free.push(addr);
        }
        self.stats.tx_dropped += (n - k) as u64;
        self.outstanding += k;
        let mut result = Ok(k);
        if self.outstanding > 0 && (self.sock.tx_needs_wakeup() || !self.sock.zerocopy()) {
            // Copy mode sends inside sendto, a bounded number of frames per
            // call: kick until the ring is drained or the kernel stops.
            for _ in 0..MAX_KICKS {
                if let Err(e) = self.sock.kick_tx() {
                    if e.raw_os_error() != Some(libc::ENETDOWN) {
                        result = Err(e);
                    }
                    break;
                }
                if self.sock.tx_ring_pending() == 0 {
                    break;
                }
            }
        }
        self.reclaim();
        result
    }

    fn pending(&self) -> usize {
        self.n_pending
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.sock.fd()
    }

    fn stats(&self) -> PortStats {
        if let Ok(k) = self.sock.kernel_stats() {
            self.kernel.set(k);
        }
        let k = self.kernel.get();
        PortStats {
            rx_dropped: self.stats.rx_dropped + k.rx_dropped + k.rx_ring_full,
            tx_errors: self.stats.tx_errors + k.tx_invalid,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_names_the_failed_step() {
        let e = XskPort::open("weft-no-such0").unwrap_err();
        assert!(e.starts_with("if_nametoindex"), "{e}");
    }
}
