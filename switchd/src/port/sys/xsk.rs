//! AF_XDP sockets (XSK) and the XDP program that feeds them, with raw
//! system calls: `bpf(2)` through `libc::syscall`, `setsockopt`,
//! `getsockopt`, `mmap`. No libbpf/libxdp.
//!
//! * [`XdpRedirect`]: a `BPF_MAP_TYPE_XSKMAP` (one entry per receive queue)
//!   and a hand-encoded XDP program
//!   `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`,
//!   attached with `BPF_LINK_CREATE`. A link is owned by its file
//!   descriptor: when the process dies (even `kill -9`) the last reference
//!   goes and the kernel detaches the program, so no stale XDP program is
//!   left on the interface. Native (driver) mode first, generic (skb) mode
//!   if the driver has none.
//! * [`XskSocket`]: `socket(AF_XDP)`, one UMEM per socket (`XDP_UMEM_REG` of an
//!   anonymous mapping), the four rings (fill, completion, rx, tx) sized
//!   with `setsockopt` and mapped at the offsets `XDP_MMAP_OFFSETS`
//!   reports, bound to one queue of one interface with `XDP_ZEROCOPY` or
//!   `XDP_COPY`, and `XDP_USE_NEED_WAKEUP`.
//!
//! # Rings
//!
//! Each ring is single-producer/single-consumer shared with the kernel. As
//! in `tools/lib/bpf/xsk.h` (libxdp): the side that produces writes the
//! descriptors, then publishes them with a *release* store of the producer
//! index; the side that consumes reads the producer index with an
//! *acquire* load before reading descriptors, and hands the slots back with
//! a *release* store of the consumer index (so our reads of the slots
//! happen before the kernel may overwrite them). The indices are free-running
//! `u32`s; a slot is `index & (size - 1)`. Each side keeps cached copies of
//! the other side's index and refreshes them only when they say the ring is
//! empty/full.
//!
//! Everything here is owned by one thread at a time (the worker that owns
//! the port); nothing is shared between sockets.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{cvt, setsockopt};

/// `AF_XDP` (`linux/socket.h`).
const AF_XDP: libc::c_int = 44;
/// `SOL_XDP`.
const SOL_XDP: libc::c_int = 283;

// bpf(2) commands, map and program types, attach type (`linux/bpf.h`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
/// `bpf_redirect_map` helper number.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `ld_imm64` source register meaning "imm is a map fd".
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `XDP_PASS` return code.
const XDP_PASS: i32 = 2;
/// `XDP_FLAGS_SKB_MODE` / `XDP_FLAGS_DRV_MODE` (`linux/if_link.h`).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// mmap offsets of the four rings (`linux/if_xdp.h`).
const XDP_PGOFF_RX_RING: libc::off_t = 0;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// `XDP_RING_NEED_WAKEUP` in a ring's flags word.
const XDP_RING_NEED_WAKEUP: u32 = 1;

/// A failed step of AF_XDP set-up: which call, and the error.
#[derive(Debug)]
pub(crate) struct XskError {
    /// The call that failed (`"BPF_PROG_LOAD"`, `"bind"`, ...).
    pub(crate) step: &'static str,
    /// What the kernel said.
    pub(crate) err: io::Error,
}

impl std::fmt::Display for XskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.err)
    }
}

fn step<T>(step: &'static str, r: io::Result<T>) -> Result<T, XskError> {
    r.map_err(|err| XskError { step, err })
}

/// `bpf(cmd, attr, sizeof attr)`; returns the (non-negative) result.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` bpf_attr prefix of exactly
    // `size_of::<T>()` bytes; the kernel reads (and may write) only that many bytes.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, ptr::from_mut(attr), mem::size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A descriptor `bpf(2)` returned, owned.
fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: the kernel just returned this new descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bpf_attr` for `BPF_MAP_CREATE` (prefix).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf_attr` for `BPF_PROG_LOAD` (prefix up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf_attr` for `BPF_LINK_CREATE` (prefix).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// One eBPF instruction (`struct bpf_insn`): opcode, `dst | src << 4`,
/// offset, immediate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The XDP program, for the XSKMAP with descriptor `map_fd`:
///
/// ```text
/// r2 = *(u32 *)(r1 + 16)        ; ctx->rx_queue_index
/// r1 = map_fd ll                ; ld_imm64, BPF_PSEUDO_MAP_FD
/// r3 = XDP_PASS                 ; returned if the queue has no socket
/// call bpf_redirect_map
/// exit                          ; r0 = XDP_REDIRECT or XDP_PASS
/// ```
fn redirect_program(map_fd: i32) -> [Insn; 6] {
    [
        insn(0x61, 2, 1, 16, 0),                     // BPF_LDX | BPF_MEM | BPF_W
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), // BPF_LD | BPF_IMM | BPF_DW
        insn(0, 0, 0, 0, 0),                         // second half of ld_imm64
        insn(0xb7, 3, 0, 0, XDP_PASS),               // BPF_ALU64 | BPF_MOV | BPF_K
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),  // BPF_JMP | BPF_CALL
        insn(0x95, 0, 0, 0, 0),                      // BPF_JMP | BPF_EXIT
    ]
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`; veth has it).
    Native,
    /// Generic, on the skb (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// An XSKMAP and the redirect program attached to an interface through a
/// BPF link; dropping it detaches the program.
#[derive(Debug)]
pub(crate) struct XdpRedirect {
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
    mode: XdpMode,
}

impl XdpRedirect {
    /// Creates the map (`queues` entries), loads the program and attaches
    /// it to `ifindex`, native mode first, else generic. Fails with
    /// `EBUSY` at `BPF_LINK_CREATE` if the interface already has an XDP
    /// program.
    pub(crate) fn attach(ifindex: u32, queues: u32) -> Result<XdpRedirect, XskError> {
        let mut m = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: queues.max(1),
            ..MapCreateAttr::default()
        };
        m.map_name[..8].copy_from_slice(b"weft_xsk");
        let map = step("BPF_MAP_CREATE(xskmap)", bpf_fd(BPF_MAP_CREATE, &mut m))?;

        let insns = redirect_program(map.as_raw_fd());
        let license = c"GPL";
        let mut p = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            expected_attach_type: BPF_XDP,
            ..ProgLoadAttr::default()
        };
        p.prog_name[..8].copy_from_slice(b"weft_xsk");
        let prog = step("BPF_PROG_LOAD(xdp)", bpf_fd(BPF_PROG_LOAD, &mut p))?;

        let link = |flags: u32| {
            let mut l = LinkCreateAttr {
                prog_fd: prog.as_raw_fd() as u32,
                target_ifindex: ifindex,
                attach_type: BPF_XDP,
                flags,
            };
            bpf_fd(BPF_LINK_CREATE, &mut l)
        };
        let (link, mode) = match link(XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, XdpMode::Native),
            // No native XDP in this driver: EOPNOTSUPP (or EINVAL on some).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => (
                step("BPF_LINK_CREATE(xdp, skb mode)", link(XDP_FLAGS_SKB_MODE))?,
                XdpMode::Generic,
            ),
            Err(e) => return step("BPF_LINK_CREATE(xdp)", Err(e)),
        };
        Ok(XdpRedirect {
            map,
            _prog: prog,
            _link: link,
            mode,
        })
    }

    /// How the program is attached.
    pub(crate) fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Sends frames arriving on receive queue `queue` to `sock`.
    pub(crate) fn insert(&self, queue: u32, sock: &XskSocket) -> Result<(), XskError> {
        let key: u32 = queue;
        let value: u32 = sock.fd.as_raw_fd() as u32;
        let mut a = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            key: ptr::from_ref(&key) as u64,
            value: ptr::from_ref(&value) as u64,
            ..MapElemAttr::default()
        };
        step(
            "BPF_MAP_UPDATE_ELEM(xskmap)",
            bpf(BPF_MAP_UPDATE_ELEM, &mut a),
        )
        .map(|_| ())
    }
}

/// A private anonymous or ring mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: Option<(BorrowedFd<'_>, libc::off_t)>) -> io::Result<Mapping> {
        let (flags, raw, off) = match fd {
            Some((fd, off)) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd(), off),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0),
        };
        // SAFETY: a fresh mapping at an address the kernel picks; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing refers to it after drop.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// One ring: its mapping, the shared producer/consumer/flags words, the
/// descriptor array, and our cached indices.
#[derive(Debug)]
struct Ring {
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut u8,
    size: u32,
    /// Producer side: our next slot. Consumer side: the producer index last seen.
    cached_prod: u32,
    /// Producer side: the consumer index last seen. Consumer side: our next slot.
    cached_cons: u32,
}

impl Ring {
    /// Maps ring `off` (of `entries` descriptors of `desc_size` bytes) of `fd`.
    fn map(
        fd: BorrowedFd<'_>,
        pgoff: libc::off_t,
        off: &libc::xdp_ring_offset,
        entries: u32,
        desc_size: usize,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + entries as usize * desc_size;
        let map = Mapping::new(len, Some((fd, pgoff)))?;
        let at = |o: u64| map.ptr.wrapping_add(o as usize);
        let ring = Ring {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc),
            size: entries,
            cached_prod: 0,
            cached_cons: 0,
            _map: map,
        };
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: `producer` points at the aligned u32 the kernel placed in our live mapping;
        // the kernel accesses it atomically too.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { &*self.flags };
        flags.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    /// Initialises the cached indices from the kernel's (at set-up).
    fn sync(&mut self) {
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_cons = self.consumer().load(Ordering::Acquire);
    }

    /// Producer side: free slots (refreshing the consumer index if fewer
    /// than `want`).
    fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Producer side: publishes everything written up to `cached_prod`.
    fn submit(&self) {
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Consumer side: descriptors ready (refreshing the producer index if
    /// none are cached).
    fn ready(&mut self) -> u32 {
        let n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n > 0 {
            return n;
        }
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Consumer side: hands back everything read up to `cached_cons`.
    fn release(&self) {
        self.consumer().store(self.cached_cons, Ordering::Release);
    }

    /// The u64 slot for index `i` (fill and completion rings).
    fn addr_slot(&self, i: u32) -> *mut u64 {
        let slot = (i & (self.size - 1)) as usize;
        self.descs.cast::<u64>().wrapping_add(slot)
    }

    /// The `xdp_desc` slot for index `i` (rx and tx rings).
    fn desc_slot(&self, i: u32) -> *mut libc::xdp_desc {
        let slot = (i & (self.size - 1)) as usize;
        self.descs.cast::<libc::xdp_desc>().wrapping_add(slot)
    }
}

/// Ring and UMEM geometry of an [`XskSocket`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct XskConfig {
    /// Bytes per UMEM frame (a power of two, 2048 or 4096).
    pub(crate) frame_size: u32,
    /// Frames in the UMEM.
    pub(crate) frames: u32,
    /// Entries of the fill and rx rings (a power of two).
    pub(crate) rx_size: u32,
    /// Entries of the tx and completion rings (a power of two).
    pub(crate) tx_size: u32,
}

/// Counters the kernel keeps for an XSK (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct XskKernelStats {
    /// Frames dropped for lack of room (no fill frame, frame too long, ...).
    pub(crate) rx_dropped: u64,
    /// Rx ring full.
    pub(crate) rx_ring_full: u64,
    /// Tx descriptors the kernel refused (bad address or length).
    pub(crate) tx_invalid: u64,
}

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM.
#[derive(Debug)]
pub(crate) struct XskSocket {
    // Field order is drop order: rings and socket before the UMEM they use.
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    fd: OwnedFd,
    umem: Mapping,
    frame_size: u32,
    zerocopy: bool,
}

// SAFETY: the raw pointers refer only to mappings this value owns; the socket is used by one
// thread at a time (`&mut self` for every ring operation), so moving it between threads is sound.
unsafe impl Send for XskSocket {}

fn getsockopt_into<T>(fd: BorrowedFd<'_>, name: libc::c_int, val: &mut T) -> io::Result<usize> {
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live, writable `T` of `len` bytes; `len` is live for the call.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            ptr::from_mut(val).cast(),
            &mut len,
        )
    })?;
    Ok(len as usize)
}

impl XskSocket {
    /// Opens, maps and binds a socket on queue `queue` of `ifindex`:
    /// zero-copy if `zerocopy`, else copy mode.
    pub(crate) fn open(
        ifindex: u32,
        queue: u32,
        cfg: XskConfig,
        zerocopy: bool,
    ) -> Result<XskSocket, XskError> {
        // SAFETY: plain socket(2) call; the result is checked below before use.
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        let raw = step("socket(AF_XDP)", cvt(raw))?;
        // SAFETY: `raw` is the new descriptor socket(2) just returned; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let umem_len = cfg.frames as usize * cfg.frame_size as usize;
        let umem = step("mmap(umem)", Mapping::new(umem_len, None))?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        step(
            "setsockopt(XDP_UMEM_REG)",
            setsockopt(fd.as_fd(), SOL_XDP, libc::XDP_UMEM_REG, &reg),
        )?;
        for (name, opt, n) in [
            (
                "setsockopt(XDP_UMEM_FILL_RING)",
                libc::XDP_UMEM_FILL_RING,
                cfg.rx_size,
            ),
            (
                "setsockopt(XDP_UMEM_COMPLETION_RING)",
                libc::XDP_UMEM_COMPLETION_RING,
                cfg.tx_size,
            ),
            ("setsockopt(XDP_RX_RING)", libc::XDP_RX_RING, cfg.rx_size),
            ("setsockopt(XDP_TX_RING)", libc::XDP_TX_RING, cfg.tx_size),
        ] {
            step(name, setsockopt(fd.as_fd(), SOL_XDP, opt, &n))?;
        }
        // SAFETY: all-zero bytes are a valid `xdp_mmap_offsets` (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { mem::zeroed() };
        let got = step(
            "getsockopt(XDP_MMAP_OFFSETS)",
            getsockopt_into(fd.as_fd(), libc::XDP_MMAP_OFFSETS, &mut off),
        )?;
        if got != mem::size_of::<libc::xdp_mmap_offsets>() {
            // Kernels before 5.4 have no flags word (and no need_wakeup).
            return step(
                "getsockopt(XDP_MMAP_OFFSETS)",
                Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
            );
        }
        let desc = mem::size_of::<libc::xdp_desc>();
        let rx = step(
            "mmap(rx ring)",
            Ring::map(fd.as_fd(), XDP_PGOFF_RX_RING, &off.rx, cfg.rx_size, desc),
        )?;
        let tx = step(
            "mmap(tx ring)",
            Ring::map(fd.as_fd(), XDP_PGOFF_TX_RING, &off.tx, cfg.tx_size, desc),
        )?;
        let fill = step(
            "mmap(fill ring)",
            Ring::map(
                fd.as_fd(),
                XDP_UMEM_PGOFF_FILL_RING,
                &off.fr,
                cfg.rx_size,
                8,
            ),
        )?;
        let comp = step(
            "mmap(completion ring)",
            Ring::map(
                fd.as_fd(),
                XDP_UMEM_PGOFF_COMPLETION_RING,
                &off.cr,
                cfg.tx_size,
                8,
            ),
        )?;
        let mut sock = XskSocket {
            rx,
            tx,
            fill,
            comp,
            fd,
            umem,
            frame_size: cfg.frame_size,
            zerocopy,
        };
        sock.fill.sync();
        sock.tx.sync();
        sock.rx.sync();
        sock.comp.sync();

        let mode = if zerocopy {
            libc::XDP_ZEROCOPY
        } else {
            libc::XDP_COPY
        };
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: AF_XDP as u16,
            sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        let len = mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t;
        // SAFETY: `sxdp` is an initialised sockaddr_xdp of `len` bytes, live for the call.
        let r = unsafe { libc::bind(sock.fd.as_raw_fd(), ptr::from_ref(&sxdp).cast(), len) };
        step(
            if zerocopy {
                "bind(XDP_ZEROCOPY)"
            } else {
                "bind(XDP_COPY)"
            },
            cvt(r),
        )?;
        Ok(sock)
    }

    /// True if bound in zero-copy mode.
    pub(crate) fn zerocopy(&self) -> bool {
        self.zerocopy
    }

    /// The descriptor, for poll/epoll (readable when the rx ring has frames).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes per UMEM frame.
    pub(crate) fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Offers UMEM frames (by address) for the kernel to receive into;
    /// returns how many were taken (fewer if the fill ring is full).
    pub(crate) fn fill(&mut self, addrs: &[u64]) -> usize {
        let n = self.fill.free(addrs.len() as u32).min(addrs.len() as u32);
        for (k, &a) in addrs.iter().take(n as usize).enumerate() {
            let slot = self
                .fill
                .addr_slot(self.fill.cached_prod.wrapping_add(k as u32));
            // SAFETY: `slot` is inside the fill ring's live mapping, in a slot the kernel does not
            // read until the release store in `submit`.
            unsafe { slot.write_volatile(a) };
        }
        if n > 0 {
            self.fill.cached_prod = self.fill.cached_prod.wrapping_add(n);
            self.fill.submit();
        }
        n as usize
    }

    /// True if the kernel asks for a wake-up to look at the fill ring
    /// (zero-copy drivers; copy mode never sets it).
    pub(crate) fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Receives up to `max` frames: calls `f(addr, frame)` for each, in
    /// order, with the frame's bytes in the UMEM, then returns the slots
    /// to the kernel. `f` must not keep the slice. Returns how many.
    pub(crate) fn recv(&mut self, max: usize, mut f: impl FnMut(u64, &[u8])) -> usize {
        let n = self.rx.ready().min(max as u32);
        for k in 0..n {
            let slot = self.rx.desc_slot(self.rx.cached_cons.wrapping_add(k));
            // SAFETY: the slot is inside the rx ring's live mapping and was published by the
            // kernel before the producer index we loaded with acquire in `ready`.
            let d = unsafe { slot.read_volatile() };
            let frame = self.umem_slice(d.addr, d.len as usize);
            f(d.addr, frame);
        }
        if n > 0 {
            self.rx.cached_cons = self.rx.cached_cons.wrapping_add(n);
            self.rx.release();
        }
        n as usize
    }

    /// The UMEM bytes `[addr, addr + len)`; empty if out of range.
    fn umem_slice(&self, addr: u64, len: usize) -> &[u8] {
        let start = addr as usize;
        if start.checked_add(len).is_none_or(|end| end > self.umem.len) {
            return &[];
        }
        // SAFETY: the range was checked to lie in the UMEM mapping, which lives as long as
        // `self`; the kernel does not write a frame while it is in the rx ring or ours.
        unsafe { std::slice::from_raw_parts(self.umem.ptr.add(start), len) }
    }

    /// The whole frame at `addr` (a frame start we own, not offered to the
    /// kernel), for writing a frame to transmit.
    pub(crate) fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let start = addr as usize;
        let len = self.frame_size as usize;
        if start.checked_add(len).is_none_or(|end| end > self.umem.len) {
            return &mut [];
        }
        // SAFETY: the range lies in the UMEM mapping (checked), which lives as long as `self`;
        // `&mut self` makes this the only reference we hand out, and the caller owns the frame.
        unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.add(start), len) }
    }

    /// Queues `(addr, len)` frames on the tx ring; returns how many fit.
    pub(crate) fn tx_push(&mut self, frames: &[(u64, u32)]) -> usize {
        let n = self.tx.free(frames.len() as u32).min(frames.len() as u32);
        for (k, &(addr, len)) in frames.iter().take(n as usize).enumerate() {
            let slot = self
                .tx
                .desc_slot(self.tx.cached_prod.wrapping_add(k as u32));
            let d = libc::xdp_desc {
                addr,
                len,
                options: 0,
            };
            // SAFETY: `slot` is inside the tx ring's live mapping, in a slot the kernel does not
            // read until the release store in `submit`.
            unsafe { slot.write_volatile(d) };
        }
        if n > 0 {
            self.tx.cached_prod = self.tx.cached_prod.wrapping_add(n);
            self.tx.submit();
        }
        n as usize
    }

    /// True if the kernel wants a `sendto` to process the tx ring (always
    /// true in copy mode, where transmit happens inside `sendto`).
    pub(crate) fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Frames on the tx ring the kernel has not taken yet.
    pub(crate) fn tx_ring_pending(&self) -> u32 {
        self.tx
            .cached_prod
            .wrapping_sub(self.tx.consumer().load(Ordering::Acquire))
    }

    /// Kicks transmission: `sendto(fd, NULL, 0, MSG_DONTWAIT)`.
    /// `EAGAIN`/`EBUSY`/`ENOBUFS` mean "try again later" and are `Ok`.
    pub(crate) fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length send with no buffer and no address; only the fd is used.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(()),
                _ => Err(e),
            };
        }
        Ok(())
    }

    /// Wakes the kernel to refill from the fill ring:
    /// `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`.
    pub(crate) fn kick_rx(&self) {
        // SAFETY: a zero-length receive with no buffer; only the fd is used.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
                ptr::null_mut(),
            );
        }
    }

    /// Takes up to `out.len()` completed tx frame addresses.
    pub(crate) fn complete(&mut self, out: &mut [u64]) -> usize {
        let n = self.comp.ready().min(out.len() as u32);
        for (k, o) in out.iter_mut().take(n as usize).enumerate() {
            let slot = self
                .comp
                .addr_slot(self.comp.cached_cons.wrapping_add(k as u32));
            // SAFETY: the slot is inside the completion ring's live mapping and was published
            // before the producer index loaded with acquire in `ready`.
            *o = unsafe { slot.read_volatile() };
        }
        if n > 0 {
            self.comp.cached_cons = self.comp.cached_cons.wrapping_add(n);
            self.comp.release();
        }
        n as usize
    }

    /// The kernel's counters for this socket.
    pub(crate) fn kernel_stats(&self) -> io::Result<XskKernelStats> {
        // SAFETY: all-zero bytes are a valid `xdp_statistics` (plain integers).
        let mut s: libc::xdp_statistics = unsafe { mem::zeroed() };
        getsockopt_into(self.fd.as_fd(), libc::XDP_STATISTICS, &mut s)?;
        Ok(XskKernelStats {
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            tx_invalid: s.tx_invalid_descs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding() {
        let p = redirect_program(7);
        assert_eq!(p[0].code, 0x61);
        assert_eq!(p[0].regs, 0x12);
        assert_eq!(p[0].off, 16);
        assert_eq!(p[1].regs, 0x11);
        assert_eq!(p[1].imm, 7);
        assert_eq!(p[4].imm, 51);
        assert_eq!(mem::size_of::<Insn>(), 8);
        assert_eq!(mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(mem::offset_of!(MapCreateAttr, map_name), 28);
    }
}
