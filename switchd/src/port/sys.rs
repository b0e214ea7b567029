//! The only module of weft-switchd allowed `unsafe` (with its child
//! `sys/xsk.rs`, the AF_XDP sockets and XDP program): thin, safe wrappers over
//! the Linux calls the ports need that no safe crate offers (AF_PACKET socket
//! options, the `PACKET_MMAP` receive ring, `recvmmsg`/`sendmmsg` with
//! `PACKET_AUXDATA`, the `SIOCETHTOOL`
//! ioctl), plus the safe `nix`/`socket2` calls they sit beside, so that every
//! syscall of the port layer is in one file.
//!
//! Each `unsafe` block has a one-line `SAFETY:` comment. The wrappers take
//! borrowed slices and return `io::Result`, so callers stay safe code; raw
//! pointers never leave a function, except the ring mapping's base, which
//! stays private to `RxRing`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use socket2::{Domain, Socket, Type};

use crate::buf::{BATCH_MAX, MAX_PACKET, PacketBuf};
use crate::offload::VNET_HDR_LEN;

pub(crate) mod xsk;

/// Turns a C return value into `io::Result`, reading `errno` on `-1`.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An interface name as a C string, checked against `IFNAMSIZ`.
fn ifname_c(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name length",
        ));
    }
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))
}

/// The index of interface `name` in the calling thread's network namespace.
pub(crate) fn if_index(name: &str) -> io::Result<u32> {
    let c = ifname_c(name)?;
    // SAFETY: `c` is a NUL-terminated string that lives across the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// `setsockopt(fd, level, name, &val, sizeof val)`.
fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    let len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` points to an initialised `T` of exactly `len` bytes, live for the call.
    cvt(unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr::from_ref(val).cast(), len) })?;
    Ok(())
}

/// Moves the calling thread into the network namespace at `path` (for example
/// `/run/netns/NAME` or a CNI `CNI_NETNS` path).
///
/// Only the calling thread changes namespace; sockets and devices opened
/// afterwards belong to the new namespace and keep it when used from other
/// threads.
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Legacy ethtool "set one feature" commands (`linux/ethtool.h`).
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ethtool_value`.
#[repr(C)]
#[derive(Clone, Copy)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns off transmit checksum offload, scatter-gather, TSO, GSO and GRO on
/// interface `name` in the calling thread's network namespace (what
/// `ethtool -K NAME tx off sg off tso off gso off gro off` does).
///
/// Needed on the *peer* side of a veth whose other end is an AF_PACKET port
/// until the port speaks `PACKET_VNET_HDR`: otherwise the peer's stack hands
/// over frames with unfinished checksums (`CHECKSUM_PARTIAL`) and 64 KiB TSO
/// super-frames, which a plain packet socket receives as-is. Features the
/// driver cannot change are skipped.
pub fn disable_offloads(name: &str) -> io::Result<()> {
    let c = ifname_c(name)?;
    let sock = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), None)?;
    for cmd in [
        ETHTOOL_STXCSUM,
        ETHTOOL_SSG,
        ETHTOOL_STSO,
        ETHTOOL_SGSO,
        ETHTOOL_SGRO,
    ] {
        let mut val = EthtoolValue { cmd, data: 0 };
        // SAFETY: all-zero bytes are a valid `ifreq` (a name array and a union of plain data).
        let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(c.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = ptr::from_mut(&mut val).cast();
        // SAFETY: `ifr` is a valid ifreq whose data pointer refers to `val`; both outlive the call.
        let r =
            unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, ptr::from_mut(&mut ifr)) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `PACKET_FANOUT` socket option and its mode and flags (`linux/if_packet.h`;
/// not all of them are in every `libc` release).
const PACKET_FANOUT: libc::c_int = 18;
/// Fanout mode: by the kernel's symmetric flow hash.
pub(crate) const PACKET_FANOUT_HASH: u32 = 0;
/// The kernel picks an unused group id (Linux 4.3); only for the first socket.
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
/// The group does not see frames sent on the interface (Linux 4.20); the
/// group-level form of `PACKET_IGNORE_OUTGOING`, which does not apply to
/// members of a group.
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;

/// Link-layer facts about an interface, read with `SIOCGIF*` ioctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Hardware address (all zeros for devices without one).
    pub mac: [u8; 6],
    /// MTU in bytes.
    pub mtu: u32,
    /// `IFF_UP` and `IFF_RUNNING` (administratively up with carrier).
    pub running: bool,
}

/// An `ifreq` carrying interface name `c`.
fn ifreq_named(c: &CString) -> libc::ifreq {
    // SAFETY: all-zero bytes are a valid `ifreq` (a name array and a union of plain data).
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(c.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr
}

/// MAC address, MTU and state of interface `name` in the calling thread's
/// network namespace (`SIOCGIFHWADDR`, `SIOCGIFMTU`, `SIOCGIFFLAGS`).
pub fn link_info(name: &str) -> io::Result<LinkInfo> {
    let c = ifname_c(name)?;
    let sock = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), None)?;
    let mut ifr = ifreq_named(&c);
    // SAFETY: `ifr` is a valid ifreq naming the interface; the kernel writes its hwaddr member.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFHWADDR,
            ptr::from_mut(&mut ifr),
        )
    })?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds `ifru_hwaddr`.
    let hw = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(hw.iter()) {
        *m = *b as u8;
    }
    let mut ifr = ifreq_named(&c);
    // SAFETY: as above; the kernel writes the mtu member.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, ptr::from_mut(&mut ifr)) })?;
    // SAFETY: SIOCGIFMTU succeeded, so the union holds `ifru_mtu`.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    let mut ifr = ifreq_named(&c);
    // SAFETY: as above; the kernel writes the flags member.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            ptr::from_mut(&mut ifr),
        )
    })?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds `ifru_flags`.
    let flags = i32::from(unsafe { ifr.ifr_ifru.ifru_flags });
    let up = libc::IFF_UP | libc::IFF_RUNNING;
    Ok(LinkInfo {
        mac,
        mtu: u32::try_from(mtu).unwrap_or(0),
        running: flags & up == up,
    })
}

/// What the kernel said about one received frame.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RxMeta {
    /// Bytes placed in the buffer.
    pub(crate) len: usize,
    /// The frame was longer than the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
    /// The frame was sent *by* this host (`PACKET_OUTGOING`).
    pub(crate) outgoing: bool,
    /// A VLAN tag the kernel took out of the frame: `(tpid, tci)`.
    pub(crate) vlan: Option<(u16, u16)>,
}

/// Control-message space per frame: `CMSG_SPACE(sizeof(tpacket_auxdata))`
/// is 40 on 64-bit Linux; 64 leaves room.
const CMSG_BUF: usize = 64;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; CMSG_BUF]);

/// Receive buffer asked for on packet sockets.
const RCVBUF: libc::c_int = 4 << 20;

/// `TPACKET_V2` (`enum tpacket_versions` in `linux/if_packet.h`).
const TPACKET_V2: libc::c_int = 1;
/// Bytes per RX ring slot: the `tpacket2_hdr`, the `sockaddr_ll`, the
/// alignment pad, a vnet header and a 1500-MTU frame with two VLAN tags fit
/// (the frame starts at offset 80 with vnet headers, 64 without). Larger
/// frames (TSO super-frames, jumbo frames) take the copy path.
pub(crate) const RING_FRAME_SIZE: usize = 2048;
/// Bytes per ring block (frames never span blocks; a multiple of the page
/// size).
const RING_BLOCK_SIZE: usize = 64 << 10;
/// Blocks per ring: 64 x 64 KiB = 4 MiB, 2048 slots, the same memory as
/// the 4 MiB `SO_RCVBUF` the socket asks for.
const RING_BLOCKS: usize = 64;
/// Slots in a ring of [`RING_BLOCKS`] blocks.
pub(crate) const RING_FRAMES: usize = RING_BLOCKS * RING_BLOCK_SIZE / RING_FRAME_SIZE;
/// Offset of the `sockaddr_ll` in a slot: `TPACKET_ALIGN(sizeof(tpacket2_hdr))`.
const RING_SLL_OFFSET: usize = (mem::size_of::<libc::tpacket2_hdr>() + 15) & !15;

/// Set once the first ring set-up failed, so the fallback is logged once.
static RING_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// A `PACKET_MMAP` `TPACKET_V2` receive ring: `frames` slots of
/// [`RING_FRAME_SIZE`] bytes, shared with the kernel. A slot belongs to the
/// kernel while its `tp_status` is `TP_STATUS_KERNEL` (0); the kernel
/// fills it in the sender's softirq (`tpacket_rcv`), then publishes it by
/// storing `TP_STATUS_USER` (after a write barrier); we read it after an
/// acquire load of that status and hand it back with a release store of 0.
/// Slots are used in order, so `head` is the only cursor.
#[derive(Debug)]
struct RxRing {
    /// Start of the mapping (`len` bytes), unmapped on drop.
    base: NonNull<u8>,
    len: usize,
    frames: usize,
    head: usize,
}

// SAFETY: the mapping is owned by this value alone (no other pointer to it leaves this
// module); the kernel side synchronises through `tp_status` only, so moving the ring to
// another thread is sound.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Asks for a ring on `fd` (after `PACKET_VERSION`) and maps it.
    fn new(fd: BorrowedFd<'_>) -> io::Result<RxRing> {
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V2)?;
        let req = libc::tpacket_req {
            tp_block_size: RING_BLOCK_SIZE as libc::c_uint,
            tp_block_nr: RING_BLOCKS as libc::c_uint,
            tp_frame_size: RING_FRAME_SIZE as libc::c_uint,
            tp_frame_nr: RING_FRAMES as libc::c_uint,
        };
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        Self::map(fd).inspect_err(|_| {
            // A ring the socket cannot read would make it deaf (frames go
            // to the ring, not the queue): free it for the recvmmsg path.
            let none = libc::tpacket_req {
                tp_block_size: 0,
                tp_block_nr: 0,
                tp_frame_size: 0,
                tp_frame_nr: 0,
            };
            let _ = setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &none);
        })
    }

    /// The rest of [`RxRing::new`], once the kernel has the ring.
    fn map(fd: BorrowedFd<'_>) -> io::Result<RxRing> {
        // Frames longer than a slot are also queued whole on the socket
        // (`TP_STATUS_COPY` in the slot), read with recvmsg.
        let on: libc::c_int = 1;
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_COPY_THRESH, &on)?;
        let len = RING_BLOCK_SIZE * RING_BLOCKS;
        // The ring's pages are kernel memory, inserted into the mapping by
        // the mmap itself: no MAP_LOCKED or MAP_POPULATE needed.
        // SAFETY: a fresh shared mapping of the socket's ring (no fixed address); the kernel
        // checks `len` against the ring size and the result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(RxRing {
            base,
            len,
            frames: RING_FRAMES,
            head: 0,
        })
    }

    /// The status word of slot `i` (`i < frames`).
    #[inline]
    fn status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.frames);
        // SAFETY: slot `i` lies inside the mapping (`i < frames`, frames * RING_FRAME_SIZE ==
        // len); `tp_status` is its first, 4-aligned u32 (slots are 2048-aligned in a
        // page-aligned mapping), accessed only atomically by us and the kernel.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(i * RING_FRAME_SIZE).cast()) }
    }

    /// The header of slot `i`, read after its status said `TP_STATUS_USER`.
    #[inline]
    fn header(&self, i: usize) -> (libc::tpacket2_hdr, u8) {
        let slot = self.base.as_ptr().wrapping_add(i * RING_FRAME_SIZE);
        // SAFETY: the slot is inside the mapping and owned by us (status USER, loaded with
        // acquire); the header and the sockaddr_ll behind it fit in a slot.
        unsafe {
            let h = ptr::read_volatile(slot.cast::<libc::tpacket2_hdr>());
            let sll = ptr::read_volatile(slot.add(RING_SLL_OFFSET).cast::<libc::sockaddr_ll>());
            (h, sll.sll_pkttype)
        }
    }

    /// Copies `dst.len()` bytes from offset `off` of slot `i` (the caller
    /// checked `off + dst.len() <= RING_FRAME_SIZE`).
    #[inline]
    fn copy_out(&self, i: usize, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= RING_FRAME_SIZE);
        // SAFETY: the range is inside slot `i` (asserted), which we own until we release it;
        // `dst` is a distinct Rust buffer.
        unsafe {
            ptr::copy_nonoverlapping(
                self.base.as_ptr().add(i * RING_FRAME_SIZE + off),
                dst.as_mut_ptr(),
                dst.len(),
            );
        }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `new`, unmapped once here.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A non-blocking `AF_PACKET`/`SOCK_RAW` socket bound to one interface.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    /// Declared before `fd`, so it is unmapped before the socket closes.
    ring: Option<RxRing>,
    fd: OwnedFd,
    /// `PACKET_VNET_HDR` is on: every frame, both ways, starts with a
    /// `virtio_net_hdr`.
    vnet: bool,
}

impl PacketSocket {
    /// Opens a socket on interface `ifindex`: all protocols, promiscuous,
    /// `PACKET_AUXDATA` on, our own transmissions not looped back
    /// (`PACKET_IGNORE_OUTGOING`, Linux 4.20; also filtered by packet type in
    /// [`PacketSocket::recv_batch`]), transmit bypassing the qdisc.
    ///
    /// With `quiet`, a drop-everything BPF filter is attached before the
    /// bind, so the socket queues nothing until [`PacketSocket::unquiet`]:
    /// used by sockets that join an existing fanout group, which would
    /// otherwise receive a copy of every frame between bind and join.
    ///
    /// With `vnet`, `PACKET_VNET_HDR` is asked for before the bind (the
    /// kernel refuses it later); a kernel that refuses it leaves the socket
    /// without, see [`PacketSocket::vnet`].
    ///
    /// With `ring`, a `TPACKET_V2` receive ring is set up (see [`RxRing`]);
    /// if the kernel refuses it the socket receives with `recvmmsg`, and
    /// the first such fallback is logged.
    pub(crate) fn open(
        ifindex: u32,
        quiet: bool,
        vnet: bool,
        ring: bool,
    ) -> io::Result<PacketSocket> {
        // Protocol 0: the socket receives nothing until it is bound below,
        // so no frame of another interface is ever queued.
        let sock = Socket::new(Domain::PACKET, Type::RAW.nonblocking().cloexec(), None)?;
        if quiet {
            // `ret #0`: accept zero bytes of every frame.
            let mut drop_all = [libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            }];
            let prog = libc::sock_fprog {
                len: 1,
                filter: drop_all.as_mut_ptr(),
            };
            // The kernel copies the program during the call.
            setsockopt(
                sock.as_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog,
            )?;
        }
        // Room for bursts between two polls (the default ~200 KiB is ~90
        // frames of truesize). Above `net.core.rmem_max` only with
        // CAP_NET_ADMIN (SO_RCVBUFFORCE); otherwise take what is allowed.
        let fd = OwnedFd::from(sock);
        let rcvbuf: libc::c_int = RCVBUF;
        if setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
            setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf)?;
        }
        let on: libc::c_int = 1;
        setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, &on)?;
        if let Err(e) = setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &on,
        ) {
            // Older kernels: fall back to the packet-type filter.
            if e.raw_os_error() != Some(libc::ENOPROTOOPT) {
                return Err(e);
            }
        }
        setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &on)?;
        let vnet =
            vnet && setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_VNET_HDR, &on).is_ok();
        // The ring after PACKET_VNET_HDR (which the kernel refuses once a
        // ring exists) and before the bind, so no frame is queued outside it.
        let ring = if ring {
            match RxRing::new(fd.as_fd()) {
                Ok(r) => Some(r),
                Err(e) => {
                    if !RING_FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "AF_PACKET: no PACKET_MMAP rx ring, receiving with recvmmsg");
                    }
                    None
                }
            }
        } else {
            None
        };

        let ifindex = libc::c_int::try_from(ifindex).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range")
        })?;
        // SAFETY: all-zero bytes are a valid `sockaddr_ll`.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::sa_family_t;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        let len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `sll` is an initialised sockaddr_ll of `len` bytes, live for the call.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), ptr::from_ref(&sll).cast(), len) })?;

        // SAFETY: all-zero bytes are a valid `packet_mreq`.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
        setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
        )?;
        Ok(PacketSocket { ring, fd, vnet })
    }

    /// Joins fanout group `id` (or, with `None`, a new group with an id
    /// the kernel chooses) in `mode`, with the group ignoring outgoing
    /// frames where the kernel supports it; returns the group id.
    pub(crate) fn join_fanout(&self, id: Option<u16>, mode: u32) -> io::Result<u16> {
        let join = |flags: u32| -> io::Result<()> {
            let uniq = if id.is_none() {
                PACKET_FANOUT_FLAG_UNIQUEID
            } else {
                0
            };
            let arg = u32::from(id.unwrap_or(0)) | ((mode | flags | uniq) << 16);
            setsockopt(
                self.fd.as_fd(),
                libc::SOL_PACKET,
                PACKET_FANOUT,
                &(arg as libc::c_int),
            )
        };
        // Kernels before 4.20 refuse the flag; the packet-type check in
        // `recv_batch` then drops outgoing frames instead. Every member of
        // a group must use the same flags, so the first socket's choice
        // holds for the group.
        if let Err(e) = join(PACKET_FANOUT_FLAG_IGNORE_OUTGOING) {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
            join(0)?;
        }
        let mut val: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `val`/`len` are live and describe a buffer of exactly `len` bytes.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_FANOUT,
                ptr::from_mut(&mut val).cast(),
                &mut len,
            )
        })?;
        Ok((val & 0xffff) as u16)
    }

    /// Removes the filter [`PacketSocket::open`] attached with `quiet`.
    pub(crate) fn unquiet(&self) -> io::Result<()> {
        let zero: libc::c_int = 0;
        setsockopt(
            self.fd.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            &zero,
        )
    }

    /// True if `PACKET_VNET_HDR` is on (see [`PacketSocket::open`]).
    #[inline]
    pub(crate) fn vnet(&self) -> bool {
        self.vnet
    }

    /// True if the socket receives through a `PACKET_MMAP` ring.
    #[inline]
    pub(crate) fn has_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// The descriptor, for poll/epoll.
    #[inline]
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Receives up to `min(bufs.len(), meta.len(), BATCH_MAX)` frames, from
    /// the ring if there is one, else with [`PacketSocket::recv_mmsg`].
    /// `Err(WouldBlock)` when nothing is queued.
    pub(crate) fn recv_batch(
        &mut self,
        bufs: &mut [PacketBuf],
        meta: &mut [RxMeta],
    ) -> io::Result<usize> {
        if self.ring.is_none() {
            return self.recv_mmsg(bufs, meta);
        }
        let n = bufs.len().min(meta.len()).min(BATCH_MAX);
        let vnet_len = if self.vnet { VNET_HDR_LEN } else { 0 };
        let mut got = 0;
        while got < n {
            let Some(ring) = self.ring.as_mut() else {
                break;
            };
            let i = ring.head;
            let st = ring.status(i).load(Ordering::Acquire);
            if st & libc::TP_STATUS_USER == 0 {
                break;
            }
            let (h, pkttype) = ring.header(i);
            let mut m = RxMeta {
                len: 0,
                truncated: false,
                outgoing: pkttype == libc::PACKET_OUTGOING,
                vlan: None,
            };
            let copy = st & libc::TP_STATUS_COPY != 0;
            if !copy {
                if st & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if st & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        h.tp_vlan_tpid
                    } else {
                        libc::ETH_P_8021Q as u16
                    };
                    m.vlan = Some((tpid, h.tp_vlan_tci));
                }
                let snap = h.tp_snaplen as usize;
                let mac = usize::from(h.tp_mac);
                // The vnet header sits right in front of the MAC header.
                let start = mac.wrapping_sub(vnet_len);
                let len = snap + vnet_len;
                if mac < vnet_len || start + len > RING_FRAME_SIZE || len > MAX_PACKET {
                    m.truncated = true;
                    bufs[got].set_received(0);
                } else {
                    let area = bufs[got].rx_area();
                    ring.copy_out(i, start, &mut area[..len]);
                    bufs[got].set_received(len);
                    m.len = len;
                    m.truncated = (h.tp_len as usize) > snap;
                }
            }
            ring.status(i).store(0, Ordering::Release);
            ring.head = if i + 1 == ring.frames { 0 } else { i + 1 };
            if copy {
                // The whole frame is the next skb on the socket queue (the
                // kernel queues it under the same lock as it fills the
                // slot, so the orders agree).
                let outgoing = m.outgoing;
                let mut one = [RxMeta::default()];
                match self.recv_mmsg(&mut bufs[got..=got], &mut one) {
                    Ok(1) => {
                        m = one[0];
                        m.outgoing = outgoing;
                    }
                    // Queue and ring out of step (should not happen), or
                    // the kernel could not describe the frame with a vnet
                    // header (EINVAL, frame consumed): a receive error.
                    _ => m.truncated = true,
                }
            }
            meta[got] = m;
            got += 1;
        }
        if got == 0 {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(got)
    }

    /// Receives up to `min(bufs.len(), meta.len(), BATCH_MAX)` frames with one
    /// `recvmmsg`, filling each buffer's receive area and marking its length
    /// with [`PacketBuf::set_received`]. `Err(WouldBlock)` when nothing is
    /// queued.
    pub(crate) fn recv_mmsg(
        &self,
        bufs: &mut [PacketBuf],
        meta: &mut [RxMeta],
    ) -> io::Result<usize> {
        let n = bufs.len().min(meta.len()).min(BATCH_MAX);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: all-zero bytes are valid for these plain C structs (null pointers, zero lengths).
        let mut hdrs: [libc::mmsghdr; BATCH_MAX] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH_MAX] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut addrs: [libc::sockaddr_ll; BATCH_MAX] = unsafe { mem::zeroed() };
        let mut cmsgs = [CmsgBuf([0; CMSG_BUF]); BATCH_MAX];
        for i in 0..n {
            let area = bufs[i].rx_area();
            iovs[i] = libc::iovec {
                iov_base: area.as_mut_ptr().cast(),
                iov_len: area.len(),
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = ptr::from_mut(&mut addrs[i]).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_iov = ptr::from_mut(&mut iovs[i]);
            h.msg_iovlen = 1;
            h.msg_control = cmsgs[i].0.as_mut_ptr().cast();
            h.msg_controllen = CMSG_BUF;
        }
        // SAFETY: `hdrs[..n]` point at live iovecs (into distinct buffers), addresses and
        // control buffers on this stack frame, with their true lengths; the kernel writes only there.
        let got = cvt(unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        })?;
        let got = (got as usize).min(n);
        for i in 0..got {
            let h = &hdrs[i];
            let len = h.msg_len as usize;
            bufs[i].set_received(len);
            let mut m = RxMeta {
                len,
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                outgoing: addrs[i].sll_pkttype == libc::PACKET_OUTGOING,
                vlan: None,
            };
            // SAFETY: `msg_hdr` was filled by the kernel; its control pointer/length describe `cmsgs[i]`.
            let mut c = unsafe { libc::CMSG_FIRSTHDR(&h.msg_hdr) };
            while !c.is_null() {
                // SAFETY: `c` is non-null and inside `cmsgs[i]` (CMSG_FIRSTHDR/NXTHDR check bounds).
                let cm = unsafe { ptr::read_unaligned(c) };
                // SAFETY: computing the length of a fixed-size payload, no memory access.
                let need = unsafe { libc::CMSG_LEN(mem::size_of::<libc::tpacket_auxdata>() as u32) }
                    as usize;
                if cm.cmsg_level == libc::SOL_PACKET
                    && cm.cmsg_type == libc::PACKET_AUXDATA
                    && cm.cmsg_len >= need
                {
                    // SAFETY: the cmsg holds at least a full tpacket_auxdata (length checked above).
                    let aux: libc::tpacket_auxdata = unsafe {
                        ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>())
                    };
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            libc::ETH_P_8021Q as u16
                        };
                        m.vlan = Some((tpid, aux.tp_vlan_tci));
                    }
                }
                // SAFETY: `c` is a valid cmsg inside the control buffer described by `msg_hdr`.
                c = unsafe { libc::CMSG_NXTHDR(&h.msg_hdr, c) };
            }
            meta[i] = m;
        }
        Ok(got)
    }

    /// Transmits `frames` with one `sendmmsg` and returns how many the kernel
    /// took (possibly fewer than given). `Err` only if the first frame failed.
    pub(crate) fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let n = frames.len().min(BATCH_MAX);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: all-zero bytes are valid for these plain C structs (null pointers, zero lengths).
        let mut hdrs: [libc::mmsghdr; BATCH_MAX] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH_MAX] = unsafe { mem::zeroed() };
        for i in 0..n {
            // The kernel only reads through this pointer (sendmmsg), despite `*mut`.
            iovs[i] = libc::iovec {
                iov_base: frames[i].as_ptr().cast_mut().cast(),
                iov_len: frames[i].len(),
            };
            // No address: a bound packet socket sends on its interface.
            hdrs[i].msg_hdr.msg_iov = ptr::from_mut(&mut iovs[i]);
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..n]` point at live iovecs over borrowed frames; sendmmsg only reads them.
        let sent = cvt(unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        })?;
        Ok((sent as usize).min(n))
    }

    /// Frames the kernel dropped because the socket's receive queue was full
    /// since the last call (`PACKET_STATISTICS`, which resets on read).
    pub(crate) fn take_kernel_drops(&self) -> io::Result<u64> {
        // SAFETY: all-zero bytes are a valid `tpacket_stats`.
        let mut st: libc::tpacket_stats = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st`/`len` are live and describe a buffer of exactly `len` bytes.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                ptr::from_mut(&mut st).cast(),
                &mut len,
            )
        })?;
        Ok(u64::from(st.tp_drops))
    }
}

/// `TUNSETPERSIST` (`_IOW('T', 203, int)`, `linux/if_tun.h`).
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;

/// Makes the TUN/TAP device behind `fd` persistent (`on`) or not: a
/// persistent device outlives its last descriptor, with its addresses,
/// routes and MAC; a non-persistent one is destroyed when the last
/// descriptor closes.
pub(crate) fn tun_set_persist(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: TUNSETPERSIST takes an integer argument, no pointer; `fd` is open for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST as _, libc::c_ulong::from(on)) })?;
    Ok(())
}
