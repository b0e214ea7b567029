//! `protocol::flow::extract` never allocates: 10,000 extractions of frames
//! of several kinds (TCP/IPv4, VLAN UDP, QinQ, ARP, IPv6 with extension
//! headers, ND, malformed) under a counting global allocator allocate zero
//! bytes.
//!
//! Also holds an `#[ignore]`d timing test (`cargo test --release -p
//! weft-protocol --test extract_alloc -- --ignored --nocapture`), a quick
//! stand-in until the criterion bench exists.

// SAFETY (module): the only unsafe code is the `GlobalAlloc` impl below,
// which forwards every call unchanged to the system allocator and only adds
// relaxed atomic counter updates. This is an integration test, a separate
// crate: the protocol crate itself stays `forbid(unsafe_code)`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use protocol::flow::{ExtractConfig, FlowKey, extract};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` with the caller's arguments, so `System`'s
// guarantees hold; the counters have no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` via `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Inner Ethernet frame of packet 3 of tcpdump-geneve.pcap (after outer
/// Ethernet, IPv4, UDP and Geneve): TCP SYN 30.0.0.2:51225 -> 30.0.0.1:22.
const TCP_SYN: [u8; 74] = [
    0xb6, 0x9e, 0xd2, 0x49, 0x51, 0x48, 0xfe, 0x71, 0xd8, 0x83, 0x72, 0x4f, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x3c, 0x5a, 0x11, 0x40, 0x00, 0x40, 0x06, 0xa4, 0xa8, 0x1e, 0x00, 0x00, 0x02, 0x1e, 0x00,
    0x00, 0x01, 0xc8, 0x19, 0x00, 0x16, 0x17, 0xb3, 0x0c, 0xaf, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
    0x39, 0x08, 0xe4, 0x37, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xab, 0x6d,
    0x56, 0xbe, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
];

/// Inner Ethernet frame of packet 2 of tcpdump-vxlan.pcap: ARP request.
const ARP: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x30, 0x88, 0x01, 0x00, 0x02, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x00, 0x30, 0x88, 0x01, 0x00, 0x02, 0xc0, 0xa8, 0xcb, 0x05,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0xcb, 0x03,
];

/// Hand-built frames of the other kinds (built once, before counting).
fn frames() -> Vec<Vec<u8>> {
    let mac = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    let udp = [0x00, 0x35, 0x14, 0xe9, 0x00, 0x08, 0x00, 0x00];
    let ipv4_udp: Vec<u8> = [
        &[
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ][..],
        &udp,
    ]
    .concat();
    // VLAN 100, UDP.
    let vlan = [&mac[..], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00], &ipv4_udp].concat();
    // QinQ, UDP.
    let qinq = [
        &mac[..],
        &[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00],
        &ipv4_udp,
    ]
    .concat();
    // IPv6, hop-by-hop, UDP.
    let hbh = [17u8, 0, 1, 4, 0, 0, 0, 0];
    let mut v6 = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
    v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v6.extend_from_slice(&hbh);
    v6.extend_from_slice(&udp);
    let ipv6 = [&mac[..], &[0x86, 0xdd], &v6].concat();
    // IPv6 NS with a source link-layer option.
    let mut ns = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
    ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ns.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2]);
    ns.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ns.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 1]);
    let nd = [&mac[..], &[0x86, 0xdd], &ns].concat();
    // Malformed: truncated TCP, bad IHL, runt.
    let trunc = TCP_SYN[..50].to_vec();
    let mut bad_ihl = TCP_SYN.to_vec();
    bad_ihl[14] = 0x44;
    let runt = TCP_SYN[..9].to_vec();
    vec![
        TCP_SYN.to_vec(),
        ARP.to_vec(),
        vlan,
        qinq,
        ipv6,
        nd,
        trunc,
        bad_ihl,
        runt,
    ]
}

#[test]
fn extract_allocates_nothing() {
    let frames = frames();
    let cfgs = [
        ExtractConfig { vlan_limit: 1 },
        ExtractConfig { vlan_limit: 2 },
    ];
    let mut key = FlowKey::default();
    let mut sum = 0u64;
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let bytes = BYTES.load(Ordering::SeqCst);
    for i in 0..10_000 {
        let f = &frames[i % frames.len()];
        let ex = extract(f, &cfgs[i % 2], &mut key);
        sum = sum.wrapping_add(u64::from(ex.layers.l4) + u64::from(ex.error.is_some()));
        sum = sum.wrapping_add(key.0[33]);
    }
    let allocs = ALLOCS.load(Ordering::SeqCst) - allocs;
    let bytes = BYTES.load(Ordering::SeqCst) - bytes;
    assert_eq!((allocs, bytes), (0, 0), "extract allocated");
    // Keep the loop observable; also proves the frames were parsed.
    assert_ne!(sum, 0);
    assert_eq!(extract(&frames[0], &cfgs[0], &mut key).error, None);
    assert_eq!(key.tp_dst(), 22);
}

/// CPU time of this thread in ns (first field of
/// `/proc/thread-self/schedstat`): unlike wall time, not inflated when other
/// builds compete for the CPU.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[test]
#[ignore = "timing, run in release with --ignored --nocapture"]
fn extract_timing() {
    use std::hint::black_box;
    use std::time::Instant;
    let frames = frames();
    let cfg = ExtractConfig::default();
    let mut key = FlowKey::default();
    for (name, f) in [
        ("tcp/ipv4", &frames[0]),
        ("vlan udp/ipv4", &frames[2]),
        ("ipv6+hbh/udp", &frames[4]),
        ("nd ns", &frames[5]),
    ] {
        let n = 5_000_000u32;
        let cpu = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..n {
            black_box(extract(black_box(f), &cfg, &mut key));
            black_box(&key);
        }
        let wall = t.elapsed().as_nanos() as f64 / f64::from(n);
        let cpu = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / f64::from(n)),
            _ => "?".to_string(),
        };
        println!("extract {name}: {cpu} ns/frame CPU ({wall:.1} wall)");
    }
}
