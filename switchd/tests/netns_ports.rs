//! Real packets through [`AfPacketPort`], [`TapPort`] and [`XskPort`]: three network
//! namespaces per test, a two-port forwarder in the middle.
//!
//! ```text
//!  ns A                 ns SW (switch thread)                 ns B
//!  eth0 10.244.0.1 ==veth== sw-a [AfPacket] <-> [AfPacket] sw-b ==veth== eth0 10.244.0.2
//!                                          or <-> [Tap]  tap-b ~~fd~~ (netdev moved to B) 10.244.0.2
//! ```
//!
//! Each test creates its own namespaces `weft-t<pid><tag>-{sw,a,b}` (the tag
//! keeps the two tests of one process apart) and deletes them by exact name
//! when it ends, also on failure (a `Drop` guard). No traffic leaves them and
//! the root namespace is never changed.
//!
//! Needs root and `ip`/`ping`. Under `CI=true` their absence is a failure;
//! elsewhere the tests print a loud SKIP and pass.
//!
//! In the first tests the peers' veth offloads are turned off
//! ([`disable_offloads`]): plain frames only (the ports still speak vnet
//! headers, with empty ones). The `offload_*` tests leave the peers' TSO,
//! GSO and checksum offload on: partial checksums and 64 KiB super-frames
//! cross the switch with their metadata (`PACKET_VNET_HDR`/`IFF_VNET_HDR`),
//! or are segmented in software for a port opened without offloads.
//!
//! VLAN: this kernel may lack the 8021q module, so instead of a VLAN netdev
//! the auxdata path is tested by sending tagged frames from namespace A
//! through a packet socket (an `AfPacketPort` used as a raw sender): the
//! receiving veth ends strip the tag into skb metadata whatever modules are
//! loaded, and the frame must arrive in namespace B with its tag.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use weft_switchd::buf::MAX_PACKET;
use weft_switchd::buf::{BATCH_MAX, PacketBuf};
use weft_switchd::offload::Gso;
use weft_switchd::port::{
    AfPacketPort, Port, PortKind, PortStats, TapPort, TxOffload, XskPort, disable_offloads,
    enter_netns, transmit,
};

const ADDR_A: &str = "10.244.0.1";
const ADDR_B: &str = "10.244.0.2";
const TRANSFER: usize = 1 << 20;

/// Runs `ip ARGS`; `Err` with its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).output().is_ok()
}

/// `true` if the test can run; panics under `CI=true` if it cannot.
fn can_run(test: &str) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (effective uid 0)");
    }
    if !have("ip", "-V") {
        missing.push("the `ip` command (iproute2)");
    }
    if !have("ping", "-V") {
        missing.push("the `ping` command");
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but missing {}", missing.join(", "));
    }
    // Straight to the stream: libtest captures `eprintln!` of passing tests.
    let msg = format!(
        "\n**************** SKIP {test}: missing {} ****************\n",
        missing.join(", ")
    );
    let _ = std::io::stderr().write_all(msg.as_bytes());
    false
}

/// The namespaces of one test, deleted by exact name on drop.
struct Namespaces {
    sw: String,
    a: String,
    b: String,
    created: Vec<String>,
}

impl Namespaces {
    fn create(tag: &str) -> Namespaces {
        let base = format!("weft-t{}{tag}", std::process::id());
        let mut ns = Namespaces {
            sw: format!("{base}-sw"),
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            created: Vec::new(),
        };
        for name in [ns.sw.clone(), ns.a.clone(), ns.b.clone()] {
            ip(&["netns", "add", &name]).unwrap();
            ns.created.push(name);
        }
        ns
    }

    fn path(name: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{name}"))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = Namespaces::path(ns);
    thread::spawn(move || {
        enter_netns(&path).unwrap();
        f()
    })
}

/// Gives namespace `ns` a veth peer `eth0` of switch-side `sw_end`, with
/// `addr`, offloads off.
fn veth_to_switch(ns: &Namespaces, sw_end: &str, peer_ns: &str, addr: &str) {
    veth_offloads(ns, sw_end, peer_ns, addr, false);
}

/// [`veth_to_switch`], with the peer's offloads left on (the veth default:
/// checksum, TSO, GSO) if `offloads`.
fn veth_offloads(ns: &Namespaces, sw_end: &str, peer_ns: &str, addr: &str, offloads: bool) {
    ip(&[
        "-n", &ns.sw, "link", "add", sw_end, "type", "veth", "peer", "name", "eth0", "netns",
        peer_ns,
    ])
    .unwrap();
    ip(&["-n", &ns.sw, "link", "set", sw_end, "up"]).unwrap();
    configure_peer(peer_ns, "eth0", addr);
    if !offloads {
        in_netns(peer_ns, || disable_offloads("eth0"))
            .join()
            .unwrap()
            .unwrap();
    }
}

fn configure_peer(peer_ns: &str, dev: &str, addr: &str) {
    ip(&["-n", peer_ns, "link", "set", "lo", "up"]).unwrap();
    ip(&[
        "-n",
        peer_ns,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        dev,
    ])
    .unwrap();
    ip(&["-n", peer_ns, "link", "set", dev, "up"]).unwrap();
}

/// The forwarding thread; stopped and joined on drop (also when the test
/// panics, before the namespaces go).
struct Switch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Forwarded>>,
}

/// What the forwarder saw: port counters and what happened to GSO
/// super-frames.
#[derive(Debug)]
struct Forwarded {
    stats: [PortStats; 2],
    /// Super-frames received (a `gso_type` in their vnet header).
    gso_rx: u64,
    /// Largest frame received.
    max_rx: usize,
    /// Super-frames passed on with their metadata.
    gso_passed: u64,
    /// Super-frames segmented in software, and the segments made.
    gso_segmented: u64,
    segments: u64,
}

impl Switch {
    /// Enters `ns`, opens the two ports with `open` and forwards between
    /// them until stopped. Returns once the ports are open.
    fn start(ns: &str, open: fn() -> [Box<dyn Port>; 2]) -> Switch {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let handle = in_netns(ns, move || {
            let ports = open();
            ready_tx.send(()).unwrap();
            forward(ports, &flag)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("switch thread did not open its ports");
        Switch {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> [PortStats; 2] {
        self.finish_all().stats
    }

    fn finish_all(&mut self) -> Forwarded {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Everything from port 0 goes to port 1 and back, through the trait: poll,
/// receive a batch, queue each frame on the other port with its offload
/// metadata ([`transmit`], as the worker does), flush once.
fn forward(mut ports: [Box<dyn Port>; 2], stop: &AtomicBool) -> Forwarded {
    let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| PacketBuf::new()).collect();
    let mut scratch = vec![0u8; MAX_PACKET];
    let mut f = Forwarded {
        stats: [PortStats::default(); 2],
        gso_rx: 0,
        max_rx: 0,
        gso_passed: 0,
        gso_segmented: 0,
        segments: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let ready = {
            let mut fds = [
                PollFd::new(ports[0].fd(), PollFlags::POLLIN),
                PollFd::new(ports[1].fd(), PollFlags::POLLIN),
            ];
            poll(&mut fds, PollTimeout::from(50u16)).unwrap();
            fds.map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        };
        for from in 0..2 {
            if !ready[from] {
                continue;
            }
            let to = 1 - from;
            let n = ports[from].recv_batch(&mut bufs).unwrap();
            for b in &bufs[..n] {
                let gso = b.offload().gso != Gso::None;
                f.gso_rx += u64::from(gso);
                f.max_rx = f.max_rx.max(b.len());
                match transmit(ports[to].as_mut(), b.data(), b.offload(), &mut scratch) {
                    TxOffload::Plain => {}
                    TxOffload::Passed => f.gso_passed += u64::from(gso),
                    TxOffload::Segmented(k) => {
                        f.gso_segmented += u64::from(gso);
                        f.segments += k as u64;
                    }
                    TxOffload::Refused(e) => panic!("offload refused: {e}"),
                }
            }
            if ports[to].pending() > 0 {
                ports[to].flush().unwrap();
            }
        }
    }
    f.stats = [ports[0].stats(), ports[1].stats()];
    f
}

fn ping(ns: &Namespaces) {
    let out = Command::new("ip")
        .args([
            "netns", "exec", &ns.a, "ping", "-c", "3", "-i", "0.2", "-W", "1", ADDR_B,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ping failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("3 packets transmitted, 3 received"),
        "ping lost replies:\n{text}"
    );
}

/// Not periodic at any small stride, so a dropped or duplicated segment shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// 1 MiB from A to B over TCP, echoed back; both directions must be intact.
fn tcp_transfer(ns: &Namespaces) {
    let (port_tx, port_rx) = mpsc::channel();
    let server = in_netns(&ns.b, move || {
        let listener = TcpListener::bind((ADDR_B, 0)).unwrap();
        port_tx.send(listener.local_addr().unwrap().port()).unwrap();
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(&got).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        got
    });
    let port = port_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = in_netns(&ns.a, move || {
        let data = pattern(TRANSFER);
        let addr: SocketAddr = format!("{ADDR_B}:{port}").parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut echo = Vec::new();
        s.read_to_end(&mut echo).unwrap();
        echo
    });
    let echo = client.join().unwrap();
    let got = server.join().unwrap();
    let want = pattern(TRANSFER);
    assert_eq!(got.len(), TRANSFER, "server received {} bytes", got.len());
    assert!(got == want, "server received corrupted data");
    assert_eq!(echo.len(), TRANSFER, "client got {} bytes back", echo.len());
    assert!(echo == want, "echo corrupted");
}

/// Tagged frames sent raw from A must reach B with their tags: the switch's
/// AF_PACKET port re-inserts the tag the kernel stripped into auxdata, and
/// so does the receiving port in B.
fn vlan_frames(ns: &Namespaces) {
    let bcast = [0xff; 6];
    let src = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
    let mut frames = Vec::new();
    // 802.1Q, PCP 1, VID 100; local experimental ethertype 0x88b5.
    // 802.1ad S-tag VID 200 over an 802.1Q C-tag VID 100 (only the outer is stripped).
    // Priority tag (VID 0, PCP 3): TP_STATUS_VLAN_VALID tells it from "no tag".
    for tags in [
        &[0x81, 0x00, 0x20, 0x64][..],
        &[0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64],
        &[0x81, 0x00, 0x60, 0x00],
    ] {
        let mut f = Vec::new();
        f.extend_from_slice(&bcast);
        f.extend_from_slice(&src);
        f.extend_from_slice(tags);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.extend_from_slice(b"weft-vlan-test ");
        f.push(frames.len() as u8);
        f.resize(64, 0);
        frames.push(f);
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    let want = frames.clone();
    let receiver = in_netns(&ns.b, move || {
        let mut port = AfPacketPort::open("eth0").unwrap();
        ready_tx.send(()).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| PacketBuf::new()).collect();
        let mut seen = vec![false; want.len()];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !seen.iter().all(|s| *s) {
            let mut fds = [PollFd::new(port.fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(100u16)).unwrap();
            let n = port.recv_batch(&mut bufs).unwrap();
            for b in &bufs[..n] {
                if let Some(i) = want.iter().position(|w| w.as_slice() == b.data()) {
                    seen[i] = true;
                }
            }
        }
        seen
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    in_netns(&ns.a, move || {
        let mut port = AfPacketPort::open("eth0").unwrap();
        for f in &frames {
            port.send(f).unwrap();
        }
        assert_eq!(port.flush().unwrap(), frames.len());
        assert_eq!(port.stats().tx_packets, frames.len() as u64);
    })
    .join()
    .unwrap();
    let seen = receiver.join().unwrap();
    assert_eq!(
        seen,
        vec![true; seen.len()],
        "tagged frames that arrived intact (802.1Q, QinQ, priority)"
    );
}

fn check_stats(stats: &[PortStats; 2]) {
    for (i, s) in stats.iter().enumerate() {
        eprintln!("port {i}: {s:?}");
        // Bytes, not frames: a TAP with IFF_VNET_HDR gets TSO, so its side
        // sends the 1 MiB in fewer, larger frames.
        assert!(
            s.rx_bytes > TRANSFER as u64,
            "port {i} received too little: {s:?}"
        );
        assert!(
            s.tx_bytes > TRANSFER as u64,
            "port {i} sent too little: {s:?}"
        );
        assert_eq!(s.rx_errors, 0, "port {i}: {s:?}");
        assert_eq!(s.tx_errors, 0, "port {i}: {s:?}");
    }
}

#[test]
fn af_packet_to_af_packet() {
    if !can_run("af_packet_to_af_packet") {
        return;
    }
    let t0 = Instant::now();
    let ns = Namespaces::create("v");
    veth_to_switch(&ns, "sw-a", &ns.a, ADDR_A);
    veth_to_switch(&ns, "sw-b", &ns.b, ADDR_B);
    let switch = Switch::start(&ns.sw, || {
        let a = AfPacketPort::open("sw-a").unwrap();
        let b = AfPacketPort::open("sw-b").unwrap();
        assert_eq!((a.has_ring(), b.has_ring()), (ring(), ring()), "rx ring");
        assert_eq!(a.kind(), PortKind::AfPacket);
        assert_eq!(b.name(), "sw-b");
        [Box::new(a), Box::new(b)]
    });
    ping(&ns);
    tcp_transfer(&ns);
    vlan_frames(&ns);
    let stats = switch.finish();
    check_stats(&stats);
    eprintln!("af_packet_to_af_packet: {:?}", t0.elapsed());
}

#[test]
fn af_packet_to_tap() {
    if !can_run("af_packet_to_tap") {
        return;
    }
    let t0 = Instant::now();
    let ns = Namespaces::create("t");
    veth_to_switch(&ns, "sw-a", &ns.a, ADDR_A);
    let switch = Switch::start(&ns.sw, || {
        let a = AfPacketPort::open("sw-a").unwrap();
        let tap = TapPort::open("tap-b").unwrap();
        assert_eq!(tap.kind(), PortKind::Tap);
        [Box::new(a), Box::new(tap)]
    });
    // The switch keeps the TAP's fd; the netdev moves to the peer namespace.
    ip(&["-n", &ns.sw, "link", "set", "tap-b", "netns", &ns.b]).unwrap();
    configure_peer(&ns.b, "tap-b", ADDR_B);
    ping(&ns);
    tcp_transfer(&ns);
    let stats = switch.finish();
    check_stats(&stats);
    eprintln!("af_packet_to_tap: {:?}", t0.elapsed());
}

/// Offloads on both ways: the veth peers keep TSO/GSO/checksum offload, the
/// switch's AF_PACKET ports speak `PACKET_VNET_HDR`, and the peers' TCP
/// super-frames cross as such (more than one MTU per frame), content intact.
#[test]
fn offload_af_packet_passes_gso() {
    if !can_run("offload_af_packet_passes_gso") {
        return;
    }
    let ns = Namespaces::create("o");
    veth_offloads(&ns, "sw-a", &ns.a, ADDR_A, true);
    veth_offloads(&ns, "sw-b", &ns.b, ADDR_B, true);
    let mut switch = Switch::start(&ns.sw, || {
        let a = AfPacketPort::open("sw-a").unwrap();
        let b = AfPacketPort::open("sw-b").unwrap();
        assert!(a.offloads() && b.offloads(), "PACKET_VNET_HDR refused");
        assert_eq!((a.has_ring(), b.has_ring()), (ring(), ring()), "rx ring");
        [Box::new(a), Box::new(b)]
    });
    ping(&ns);
    tcp_transfer(&ns);
    let f = switch.finish_all();
    eprintln!("offload_af_packet_passes_gso: {f:?}");
    assert!(f.gso_rx > 0, "no GSO super-frame received: {f:?}");
    assert!(f.max_rx > 1514, "no frame above the MTU: {f:?}");
    assert_eq!(f.gso_passed, f.gso_rx, "{f:?}");
    assert_eq!(f.gso_segmented, 0, "{f:?}");
    for s in &f.stats {
        assert_eq!(s.rx_errors, 0, "{f:?}");
        assert_eq!(s.tx_errors, 0, "{f:?}");
    }
}

/// One side without offloads: A's super-frames with partial checksums are
/// segmented and checksummed in software for B's port (opened without
/// `PACKET_VNET_HDR`; B's veth peer has its offloads off, as a port without
/// vnet headers requires), and B's plain frames reach A.
#[test]
fn offload_software_segmentation_to_plain_port() {
    if !can_run("offload_software_segmentation_to_plain_port") {
        return;
    }
    let ns = Namespaces::create("s");
    veth_offloads(&ns, "sw-a", &ns.a, ADDR_A, true);
    veth_offloads(&ns, "sw-b", &ns.b, ADDR_B, false);
    let mut switch = Switch::start(&ns.sw, || {
        let a = AfPacketPort::open("sw-a").unwrap();
        let b = AfPacketPort::open_group_with("sw-b", 1, false)
            .unwrap()
            .pop()
            .unwrap();
        assert!(a.offloads() && !b.offloads());
        [Box::new(a), Box::new(b)]
    });
    ping(&ns);
    tcp_transfer(&ns);
    let f = switch.finish_all();
    eprintln!("offload_software_segmentation_to_plain_port: {f:?}");
    assert!(f.gso_rx > 0, "no GSO super-frame received: {f:?}");
    assert!(f.gso_segmented > 0, "{f:?}");
    assert!(f.segments > f.gso_segmented, "{f:?}");
    for s in &f.stats {
        assert_eq!(s.rx_errors, 0, "{f:?}");
        assert_eq!(s.tx_errors, 0, "{f:?}");
    }
}

/// A TAP with `IFF_VNET_HDR`: the pod side of the TAP gets TSO from the
/// kernel and its super-frames reach the AF_PACKET side with their
/// metadata.
#[test]
fn offload_tap_passes_gso() {
    if !can_run("offload_tap_passes_gso") {
        return;
    }
    let ns = Namespaces::create("p");
    veth_offloads(&ns, "sw-a", &ns.a, ADDR_A, true);
    let mut switch = Switch::start(&ns.sw, || {
        let a = AfPacketPort::open("sw-a").unwrap();
        let tap = TapPort::open("tap-b").unwrap();
        assert!(tap.offloads(), "IFF_VNET_HDR refused");
        [Box::new(a), Box::new(tap)]
    });
    ip(&["-n", &ns.sw, "link", "set", "tap-b", "netns", &ns.b]).unwrap();
    configure_peer(&ns.b, "tap-b", ADDR_B);
    ping(&ns);
    tcp_transfer(&ns);
    let f = switch.finish_all();
    eprintln!("offload_tap_passes_gso: {f:?}");
    assert!(f.gso_rx > 0, "no GSO super-frame received: {f:?}");
    assert_eq!(f.gso_passed, f.gso_rx, "{f:?}");
    for s in &f.stats {
        assert_eq!(s.rx_errors, 0, "{f:?}");
        assert_eq!(s.tx_errors, 0, "{f:?}");
    }
}

/// True if `dev` in `ns` has an XDP program attached (`ip link show` prints
/// `xdp`, `xdpgeneric` or `xdpdrv` and a `prog/xdp` line).
fn has_xdp(ns: &str, dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("prog/xdp") || text.split_whitespace().any(|w| w.starts_with("xdp"))
}

/// AF_XDP on both sides (copy mode on veth, native XDP): ping and a 1 MiB
/// TCP echo through two `XskPort`s; the XDP programs are attached while
/// the ports are open and gone once they are dropped.
#[test]
fn af_xdp_to_af_xdp() {
    if !can_run("af_xdp_to_af_xdp") {
        return;
    }
    let t0 = Instant::now();
    let ns = Namespaces::create("x");
    // AF_XDP carries no checksum metadata: the peers complete checksums.
    veth_to_switch(&ns, "sw-a", &ns.a, ADDR_A);
    veth_to_switch(&ns, "sw-b", &ns.b, ADDR_B);
    assert!(!has_xdp(&ns.sw, "sw-a"));
    let switch = Switch::start(&ns.sw, || {
        let a = XskPort::open("sw-a").unwrap();
        let b = XskPort::open("sw-b").unwrap();
        assert_eq!(a.kind(), PortKind::AfXdp);
        assert!(!a.zerocopy(), "veth has no zero-copy AF_XDP");
        assert!(a.native(), "veth has native XDP");
        [Box::new(a), Box::new(b)]
    });
    assert!(has_xdp(&ns.sw, "sw-a") && has_xdp(&ns.sw, "sw-b"));
    ping(&ns);
    tcp_transfer(&ns);
    let stats = switch.finish();
    check_stats(&stats);
    // The BPF links closed with the ports: nothing left on the veths.
    assert!(!has_xdp(&ns.sw, "sw-a") && !has_xdp(&ns.sw, "sw-b"));
    eprintln!("af_xdp_to_af_xdp: {:?}", t0.elapsed());
}

/// AF_XDP on one side, AF_PACKET (with vnet headers) on the other.
#[test]
fn af_xdp_to_af_packet() {
    if !can_run("af_xdp_to_af_packet") {
        return;
    }
    let ns = Namespaces::create("y");
    veth_to_switch(&ns, "sw-a", &ns.a, ADDR_A);
    veth_to_switch(&ns, "sw-b", &ns.b, ADDR_B);
    let switch = Switch::start(&ns.sw, || {
        let a = XskPort::open("sw-a").unwrap();
        let b = AfPacketPort::open("sw-b").unwrap();
        [Box::new(a), Box::new(b)]
    });
    ping(&ns);
    tcp_transfer(&ns);
    let stats = switch.finish();
    check_stats(&stats);
}

/// A second AF_XDP port on an interface that already has one fails at the
/// link step (the kernel allows one XDP program), naming it; the first is
/// untouched.
#[test]
fn af_xdp_second_open_names_step() {
    if !can_run("af_xdp_second_open_names_step") {
        return;
    }
    let ns = Namespaces::create("z");
    veth_to_switch(&ns, "sw-a", &ns.a, ADDR_A);
    let r = in_netns(&ns.sw, || {
        let first = XskPort::open("sw-a").unwrap();
        let second = XskPort::open("sw-a").map(|_| ()).unwrap_err();
        drop(first);
        second
    })
    .join()
    .unwrap();
    // Either the bind (queue 0 already has a socket) or the link refuses.
    assert!(
        r.contains("bind(") || r.contains("BPF_LINK_CREATE"),
        "unexpected error: {r}"
    );
    assert!(r.contains("os error"), "no errno in: {r}");
}

/// True unless the suite runs with `WEFT_AFPACKET_RING=0`, which keeps
/// AF_PACKET ports on the `recvmmsg` fallback (CI runs this file both ways).
fn ring() -> bool {
    std::env::var_os("WEFT_AFPACKET_RING").is_none_or(|v| v != "0")
}

/// Frames for the ring tests: broadcast, local experimental ethertype
/// 0x88b5, `len` bytes, sequence number `seq` behind a marker.
fn ring_frame(len: usize, seq: u32) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0b, 0x88, 0xb5]);
    f.extend_from_slice(b"weft-ring ");
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend((f.len()..len).map(|i| (i % 251) as u8));
    f
}

/// The `PACKET_MMAP` ring's edges, on one veth (switch side `sw-a` in the
/// switch namespace, `eth0` in A), with an `AfPacketPort` in A as a raw
/// sender:
///
/// 1. frames longer than a ring slot (9000-byte jumbo frames; the 64 KiB
///    GSO super-frames are `offload_af_packet_passes_gso`) arrive whole and
///    intact, through the slot's `TP_STATUS_COPY` path;
/// 2. a burst several times the ring's size, sent while the port does not
///    read: every frame is either received or counted in `rx_dropped`
///    (`PACKET_STATISTICS`), none vanishes.
///
/// With `WEFT_AFPACKET_RING=0` the same holds for the `recvmmsg` fallback
/// (the burst also overflows its receive buffer).
#[test]
fn af_packet_ring_big_frames_and_overflow() {
    if !can_run("af_packet_ring_big_frames_and_overflow") {
        return;
    }
    const BIG: usize = 9000;
    const N_BIG: u32 = 50;
    // Several rings, and more than the fallback's receive buffer (8 MiB of
    // skb truesize after SO_RCVBUFFORCE doubles the 4 MiB asked for).
    const BURST: u32 = 40_000;
    let ns = Namespaces::create("r");
    veth_to_switch(&ns, "sw-a", &ns.a, ADDR_A);
    ip(&["-n", &ns.sw, "link", "set", "sw-a", "mtu", "9100"]).unwrap();
    ip(&["-n", &ns.a, "link", "set", "eth0", "mtu", "9100"]).unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let receiver = in_netns(&ns.sw, move || {
        let mut port = AfPacketPort::open("sw-a").unwrap();
        assert_eq!(port.has_ring(), ring(), "rx ring");
        ready_tx.send(()).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| PacketBuf::new()).collect();
        // Phase 1: big frames, read as they come.
        let mut big = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while big < N_BIG && Instant::now() < deadline {
            let mut fds = [PollFd::new(port.fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(100u16)).unwrap();
            let n = port.recv_batch(&mut bufs).unwrap();
            for b in &bufs[..n] {
                if b.len() == BIG && b.data() == ring_frame(BIG, big).as_slice() {
                    big += 1;
                }
            }
        }
        let errors = port.stats().rx_errors;
        ready_tx.send(()).unwrap();
        // Phase 2: wait until the burst was sent, then drain.
        sent_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let mut ours = 0u64;
        loop {
            let n = port.recv_batch(&mut bufs).unwrap();
            if n == 0 {
                break;
            }
            ours += bufs[..n]
                .iter()
                .filter(|b| b.len() == 60 && b.data()[14..24] == *b"weft-ring ")
                .count() as u64;
        }
        (big, errors, ours, port.stats())
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sender = in_netns(&ns.a, move || {
        let mut port = AfPacketPort::open_group_with("eth0", 1, false)
            .unwrap()
            .pop()
            .unwrap();
        for seq in 0..N_BIG {
            port.send(&ring_frame(BIG, seq)).unwrap();
            assert_eq!(port.flush().unwrap(), 1);
        }
        ready_rx.recv_timeout(Duration::from_secs(15)).unwrap();
        let frames: Vec<Vec<u8>> = (0..BURST).map(|s| ring_frame(60, s)).collect();
        for chunk in frames.chunks(BATCH_MAX) {
            for f in chunk {
                port.send(f).unwrap();
            }
            port.flush().unwrap();
        }
        sent_tx.send(()).unwrap();
        port.stats()
    });
    let tx = sender.join().unwrap();
    let (big, big_errors, ours, rx) = receiver.join().unwrap();
    eprintln!("ring: big {big} (errors {big_errors}), burst sent {tx:?}, received {ours}, {rx:?}");
    assert_eq!(big, N_BIG, "jumbo frames larger than a ring slot");
    assert_eq!(big_errors, 0);
    let burst_sent = tx.tx_packets - u64::from(N_BIG);
    assert_eq!(burst_sent, u64::from(BURST), "sender dropped: {tx:?}");
    assert!(ours < burst_sent, "the ring held the whole burst: {ours}");
    assert!(rx.rx_dropped > 0, "overflow not counted: {rx:?}");
    // Other frames on the link (IPv6 neighbour discovery) may add to both
    // counts, never subtract.
    assert!(
        ours + rx.rx_dropped >= burst_sent,
        "frames lost silently: received {ours} + dropped {} < sent {burst_sent}",
        rx.rx_dropped
    );
}
