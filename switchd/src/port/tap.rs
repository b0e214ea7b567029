//! A port on a TAP device, through `tun-rs`.
//!
//! [`TapPort::open`] issues `TUNSETIFF` with `IFF_TAP | IFF_NO_PI`: it
//! creates the device if no interface of that name exists, or attaches to an
//! existing persistent TAP of that name. The switch owns the file descriptor;
//! the netdev can then be moved into a pod's network namespace
//! (`ip link set NAME netns POD`) and the descriptor keeps working (verified,
//! CRATES.md §2.3). Closing the port destroys a non-persistent device.
//!
//! The descriptor is non-blocking. A TAP has no batched read: `recv_batch`
//! loops `read` until `EAGAIN` or the batch is full, `flush` loops `write`
//! (one syscall per frame).
//!
//! # Several workers: `IFF_MULTI_QUEUE`
//!
//! [`TapPort::open_queues`] with `n > 1` creates the device with
//! `IFF_MULTI_QUEUE` and attaches `n` queues (tun-rs `try_clone`, one
//! `TUNSETIFF` per queue), one per worker. Frames the pod sends are spread
//! over the queues by the tun driver (`tun_select_queue`: its flow table,
//! else the symmetric flow hash), so a flow stays on one queue while the
//! driver's steering entry for it does not change; each worker writes to
//! its own queue. All queues must be attached while the netdev is still in
//! the switch's namespace (the lookup is by name), which is how the daemon
//! opens them. Attaching to an existing TAP needs its multi-queue flag to
//! match: a single-queue persistent TAP can only be used with one worker
//! (`--workers 1`); the kernel refuses the attach with `EINVAL` otherwise.
//!
//! # Offloads: `IFF_VNET_HDR`
//!
//! By default ([`TapPort::open_queues_with`] `offload = true`) the device
//! is created with `IFF_VNET_HDR` and `TUNSETOFFLOAD` (`TUN_F_CSUM`, TSO4/6
//! and, on Linux 6.2+, USO4/6; tun-rs `offload(true)`): the kernel gives the
//! TAP checksum and TSO features, so the pod's stack hands us partial
//! checksums and 64 KiB super-frames behind a `virtio_net_hdr`, which
//! becomes the packet's [`Offload`] metadata; frames we write carry theirs
//! back (the kernel segments if the receiving side needs it). We read and
//! write the header ourselves (tun-rs `recv`/`send` are plain
//! `read`/`write`), not through tun-rs `recv_multiple`/`GROTable`. If the
//! kernel refuses the flags, the device is opened without: then the kernel
//! gives the TAP no checksum/TSO features and every frame is plain.
//!
//! # Persistence across a crash ([`TapPort::set_persistent`])
//!
//! The daemon makes an `internal` port's device persistent
//! (`TUNSETPERSIST`, in `sys.rs`) for as long as the port exists, and
//! clears the flag when the port is closed (port deleted, clean shutdown).
//! If the switch dies without closing it (`kill -9`, a crash), the device
//! stays, with the host's addresses, routes and its MAC, and the restarted
//! switch attaches to it by name. Without this the node lost its underlay
//! address (it lives on the internal port) on every crash and kept no
//! tunnel traffic after the restart; OVS does the same for its userspace
//! datapath's tap devices (`netdev_linux_construct_tap`). After a clean
//! shutdown the device is gone, as with OVS (whose `ovs-ctl restart` saves
//! and restores the addresses around it).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use super::{Port, PortKind, PortStats, TxQueue, sys, too_long};
use crate::buf::{BATCH_MAX, MAX_PACKET, PacketBuf};
use crate::offload::{Offload, VNET_HDR_LEN};

/// A port on a TAP device; see the module documentation.
pub struct TapPort {
    name: String,
    dev: SyncDevice,
    txq: TxQueue,
    stats: PortStats,
    /// Set persistent by this handle; cleared when it is dropped.
    persistent: bool,
    /// `IFF_VNET_HDR` is on.
    vnet: bool,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("txq", &self.txq)
            .field("stats", &self.stats)
            .field("vnet", &self.vnet)
            .finish_non_exhaustive()
    }
}

impl TapPort {
    /// Creates TAP device `name` (or attaches to an existing persistent TAP
    /// of that name) in the calling thread's network namespace, sets it up
    /// and makes the descriptor non-blocking.
    pub fn open(name: &str) -> io::Result<TapPort> {
        let mut v = Self::open_queues(name, 1)?;
        v.pop()
            .ok_or_else(|| io::Error::other("no TAP queue opened"))
    }

    /// Like [`TapPort::open`], with `n` queues (one per worker): `n > 1`
    /// uses `IFF_MULTI_QUEUE` (see the module documentation).
    pub fn open_queues(name: &str, n: usize) -> io::Result<Vec<TapPort>> {
        Self::open_queues_with(name, n, true)
    }

    /// [`TapPort::open_queues`], with `IFF_VNET_HDR` offloads on or off
    /// (see the module documentation; on is the default, and falls back to
    /// off if the kernel refuses it).
    pub fn open_queues_with(name: &str, n: usize, offload: bool) -> io::Result<Vec<TapPort>> {
        if offload && let Ok(v) = Self::open_inner(name, n, true) {
            return Ok(v);
        }
        Self::open_inner(name, n, false)
    }

    fn open_inner(name: &str, n: usize, offload: bool) -> io::Result<Vec<TapPort>> {
        let mq_err = |e: io::Error| {
            if n > 1 {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{name}: opening {n} queues of a multi-queue TAP (an existing \
                         single-queue TAP needs --workers 1): {e}"
                    ),
                )
            } else {
                e
            }
        };
        let dev = DeviceBuilder::new()
            .name(name)
            .layer(Layer::L2)
            .packet_information(false)
            .offload(offload)
            .multi_queue(n > 1)
            .enable(true)
            .build_sync()
            .map_err(mq_err)?;
        let mut devs = Vec::with_capacity(n.max(1));
        for _ in 1..n {
            devs.push(dev.try_clone().map_err(mq_err)?);
        }
        devs.insert(0, dev);
        devs.into_iter()
            .map(|dev| {
                dev.set_nonblocking(true)?;
                Ok(TapPort {
                    name: name.to_owned(),
                    dev,
                    txq: TxQueue::new(),
                    stats: PortStats::default(),
                    persistent: false,
                    vnet: offload,
                })
            })
            .collect()
    }

    /// Keeps the device when the process dies without closing this handle
    /// (see the module documentation); dropping the handle undoes it.
    pub fn set_persistent(&mut self) -> io::Result<()> {
        sys::tun_set_persist(self.dev.as_fd(), true)?;
        self.persistent = true;
        Ok(())
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        if self.persistent
            && let Err(e) = sys::tun_set_persist(self.dev.as_fd(), false)
        {
            tracing::warn!(port = %self.name, error = %e, "clearing TUNSETPERSIST");
        }
    }
}

/// How a failed `write` to the TAP affects the frames still queued.
fn tx_fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::ENODEV | libc::EBADFD)
    )
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn recv_batch(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let want = bufs.len().min(BATCH_MAX);
        let mut n = 0;
        while n < want {
            match self.dev.recv(bufs[n].rx_area()) {
                Ok(len) => {
                    let b = &mut bufs[n];
                    b.set_received(len);
                    if len > MAX_PACKET || len == 0 {
                        self.stats.rx_errors += 1;
                        continue;
                    }
                    if self.vnet && !b.take_vnet_header() {
                        self.stats.rx_errors += 1;
                        continue;
                    }
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += b.len() as u64;
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if n > 0 {
                        // Hand over what we have; the error comes back next call.
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.send_offload(frame, &Offload::NONE)
    }

    fn offloads(&self) -> bool {
        self.vnet
    }

    fn send_offload(&mut self, frame: &[u8], off: &Offload) -> io::Result<()> {
        if frame.len() > MAX_PACKET {
            self.stats.tx_errors += 1;
            return Err(too_long());
        }
        let len = frame.len() + if self.vnet { VNET_HDR_LEN } else { 0 };
        if !self.txq.has_room(len) {
            self.flush()?;
        }
        let queued = if self.vnet {
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
        let n = self.txq.len();
        let mut sent = 0;
        let mut result = Ok(());
        for i in 0..n {
            let frame = self.txq.frame(i);
            match self.dev.send(frame) {
                Ok(_) => {
                    sent += 1;
                    self.stats.tx_packets += 1;
                    let hdr = if self.vnet { VNET_HDR_LEN } else { 0 };
                    self.stats.tx_bytes += frame.len().saturating_sub(hdr) as u64;
                }
                Err(e) if tx_fatal(&e) => {
                    self.stats.tx_errors += (n - i) as u64;
                    result = Err(e);
                    break;
                }
                // EAGAIN, EIO (device down), ENOBUFS ...: the frame is dropped.
                Err(e)
                    if e.kind() == io::ErrorKind::InvalidInput
                        || e.raw_os_error() == Some(libc::EMSGSIZE) =>
                {
                    self.stats.tx_errors += 1;
                }
                Err(_) => self.stats.tx_dropped += 1,
            }
        }
        self.txq.clear();
        result.map(|()| sent)
    }

    fn pending(&self) -> usize {
        self.txq.len()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}
