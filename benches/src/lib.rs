//! Shared inputs for Weft's criterion benchmarks (`benches/benches/*.rs`).
//!
//! Each bench file covers one stage of the data path and reports element
//! throughput, so criterion prints packets per second. The packets are built
//! with etherparse (an independent encoder), so the inputs do not depend on
//! the code under test.

use etherparse::PacketBuilder;

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`): the machine
/// is shared, and wall time would count the time other processes run. For
/// criterion's `iter_custom`.
pub fn thread_cpu() -> std::time::Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

/// CPU time of the whole process, every thread
/// (`CLOCK_PROCESS_CPUTIME_ID`): the total work of a parallel stage.
pub fn process_cpu() -> std::time::Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

/// Fixed-count mode for instruction counting (`perf stat`), where
/// criterion's adaptive iteration counts would make totals meaningless:
/// with `WEFT_BENCH_FIXED=<id>:<batches>` set (`id` as criterion prints it,
/// e.g. `emc/hit/2flows`), the benches that support it skip criterion and
/// run `batches` timed batches of `id` only (every other bench: 0).
/// `None` without the variable. Instructions per packet = the difference
/// between a run with N batches and one with 0, divided by N x 32:
/// the set-up and warm-up cancel out.
pub fn fixed_batches(id: &str) -> Option<u64> {
    let v = std::env::var("WEFT_BENCH_FIXED").ok()?;
    let (want, n) = v.rsplit_once(':')?;
    Some(if want == id {
        n.parse().unwrap_or(0)
    } else {
        0
    })
}

/// A named test frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Short name used as the benchmark id.
    pub name: &'static str,
    /// The Ethernet frame.
    pub bytes: Vec<u8>,
}

const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// Serialises a finished etherparse builder step (TCP or UDP) into a frame.
macro_rules! build {
    ($builder:expr, $payload:expr, $name:expr) => {{
        let b = $builder;
        let payload: &[u8] = $payload;
        let mut bytes = Vec::with_capacity(b.size(payload.len()));
        // Writing into a Vec cannot fail.
        if b.write(&mut bytes, payload).is_err() {
            bytes.clear();
        }
        Frame { name: $name, bytes }
    }};
}

/// TCP over IPv4, 64-byte frame class (SYN, no payload).
pub fn tcp4() -> Frame {
    let b = PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 244, 0, 1], [10, 244, 1, 2], 64)
        .tcp(40000, 80, 0x1234_5678, 64240)
        .syn();
    build!(b, &[], "tcp4")
}

/// TCP over IPv4 SYN like [`tcp4`], from 10.244.0.1:40000 to `dst`:`dst_port`
/// (for benches that spread lookups over many destinations).
pub fn tcp4_to(dst: [u8; 4], dst_port: u16) -> Frame {
    let b = PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 244, 0, 1], dst, 64)
        .tcp(40000, dst_port, 0x1234_5678, 64240)
        .syn();
    build!(b, &[], "tcp4")
}

/// TCP over IPv4 SYN from 10.244.0.1:`src_port` to `dst`:`dst_port` (for
/// benches that need many distinct flows, e.g. exact-match-cache misses).
pub fn tcp4_flow(src_port: u16, dst: [u8; 4], dst_port: u16) -> Frame {
    let b = PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 244, 0, 1], dst, 64)
        .tcp(src_port, dst_port, 0x1234_5678, 64240)
        .syn();
    build!(b, &[], "tcp4")
}

/// xorshift64*: deterministic inputs without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A 1,000-rule ACL in 20 masks (pipeline and exact-match-cache benches):
/// 999 drop rules in 19 masks (`nw_dst` prefixes /16 to /32 with `tp_dst`
/// exact or `in_port`, or `in_port` + `tp_dst`) that traffic to
/// 10.244.0.0/16 on ports below 10000 never matches (destinations in
/// 192.168.0.0/16 and 172.16.0.0/12, ports >= 10000), priorities
/// 100..1000; the matching rule `in_port=1,ip,nw_dst=10.244.0.0/16 ->
/// output:2` has priority 1 and its own mask, so every subtable is probed.
pub fn acl_1000r_20m() -> String {
    let ip = |v: u32| std::net::Ipv4Addr::from(v).to_string();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut s = String::new();
    for i in 0..999u32 {
        let m = i % 19;
        let base: u32 = if rng.next_u64() & 1 == 0 {
            0xc0a8_0000 | (rng.next_u64() as u32 & 0xffff)
        } else {
            0xac10_0000 | (rng.next_u64() as u32 & 0x000f_ffff)
        };
        let port = 10_000 + (rng.next_u64() % 50_000) as u16;
        let prio = 100 + (i * 37) % 900;
        let rule = if m < 18 {
            let plen = 16 + 2 * (m % 9);
            let net = base & (u32::MAX << (32 - plen));
            if m < 9 {
                format!(
                    "priority={prio},tcp,nw_dst={}/{plen},tp_dst={port}",
                    ip(net)
                )
            } else {
                format!("priority={prio},in_port=1,tcp,nw_dst={}/{plen}", ip(net))
            }
        } else {
            format!("priority={prio},in_port=1,tcp,tp_dst={port}")
        };
        s.push_str(&rule);
        s.push_str(",actions=drop\n");
    }
    s.push_str("priority=1,in_port=1,ip,nw_dst=10.244.0.0/16,actions=output:2\n");
    s
}

/// Parses an `add-flows` text (one flow per line, `#` comments); panics on
/// a bad line (bench inputs are fixed).
pub fn parse_flows(text: &str) -> Vec<protocol::flow::FlowSpec> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| protocol::text::parse_flow(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// UDP over IPv6.
pub fn udp6() -> Frame {
    let b = PacketBuilder::ethernet2(SRC, DST)
        .ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(5353, 53);
    build!(b, &[0u8; 18], "udp6")
}

/// TCP over IPv4 inside an 802.1Q tag.
pub fn vlan_tcp4() -> Frame {
    let b = PacketBuilder::ethernet2(SRC, DST)
        .single_vlan(etherparse::VlanId::try_new(100).unwrap_or(etherparse::VlanId::ZERO))
        .ipv4([10, 244, 0, 1], [10, 244, 1, 2], 64)
        .tcp(40000, 443, 1, 64240)
        .ack(1);
    build!(b, &[], "vlan_tcp4")
}

/// An ARP request (hand-built: etherparse 0.21 emits ARP through its own
/// header type).
pub fn arp() -> Frame {
    let mut bytes = Vec::with_capacity(42);
    bytes.extend_from_slice(&[0xff; 6]);
    bytes.extend_from_slice(&SRC);
    bytes.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    bytes.extend_from_slice(&SRC);
    bytes.extend_from_slice(&[10, 244, 0, 1]);
    bytes.extend_from_slice(&[0; 6]);
    bytes.extend_from_slice(&[10, 244, 0, 2]);
    Frame { name: "arp", bytes }
}

/// A VXLAN packet (outer IPv4/UDP 4789, VNI 42) carrying [`tcp4`].
pub fn vxlan_tcp4() -> Frame {
    let inner = tcp4().bytes;
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    payload.extend_from_slice(&inner);
    let b = PacketBuilder::ethernet2(SRC, DST)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(51000, 4789);
    build!(b, &payload, "vxlan_tcp4")
}

/// Every bench frame.
pub fn all() -> Vec<Frame> {
    vec![tcp4(), udp6(), vlan_tcp4(), arp(), vxlan_tcp4()]
}

/// The tunnel bench's two nodes and packets, shared by
/// `benches/tunnel.rs` (criterion) and `examples/tunnel_count.rs`
/// (fixed iteration counts for `valgrind --tool=cachegrind`, since the
/// VM here exposes no hardware counters to `perf stat`).
pub mod tunnel {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use protocol::ctl::{TlvMapping, TunnelConfig};
    use protocol::flow::{ExtractConfig, FlowKey, Layers, PortNo, extract};
    use protocol::wire::EthernetAddress;
    use weft_switchd::tunnel::{NextHops, TlvMap, TunnelKind, TunnelPort, Tunnels, Underlay};

    /// The receiving node's IPv4 underlay address.
    pub const REMOTE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    /// The receiving node's IPv6 underlay address.
    pub const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);

    /// A node with Geneve port 10 and VXLAN port 11 (flow-based), both
    /// underlay families, next hops for both remotes, and a TLV map of a
    /// 4-byte option (`tun_metadata0`) and an 8-byte one
    /// (`tun_metadata1`).
    pub fn node(local4: Ipv4Addr, local6: Ipv6Addr) -> Tunnels {
        Tunnels::new(
            vec![
                TunnelPort::new(PortNo(10), TunnelKind::Geneve, TunnelConfig::default()),
                TunnelPort::new(PortNo(11), TunnelKind::Vxlan, TunnelConfig::default()),
            ],
            Some(Underlay {
                port: PortNo(1),
                host_port: Some(PortNo::LOCAL),
                local_ipv4: Some(local4),
                local_ipv6: Some(local6),
                local_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
                mtu: 1500,
            }),
            NextHops::from_entries([
                (IpAddr::V4(REMOTE4), EthernetAddress([2, 0, 0, 0, 0, 7])),
                (IpAddr::V6(REMOTE6), EthernetAddress([2, 0, 0, 0, 0, 7])),
                (
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                    EthernetAddress([2, 0, 0, 0, 0, 1]),
                ),
            ]),
            TlvMap::new(&[
                TlvMapping {
                    class: 0xff57,
                    r#type: 0x80,
                    len: 4,
                    slot: 0,
                },
                TlvMapping {
                    class: 0x0102,
                    r#type: 0x05,
                    len: 8,
                    slot: 1,
                },
            ])
            .expect("tlv map"),
        )
        .expect("tunnels")
    }

    /// The sending node (192.0.2.1, 2001:db8::1).
    pub fn tx() -> Tunnels {
        node(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        )
    }

    /// The receiving node ([`REMOTE4`], [`REMOTE6`]).
    pub fn rx() -> Tunnels {
        node(REMOTE4, REMOTE6)
    }

    /// The rows: name, tunnel port, number of Geneve options, IPv6
    /// underlay.
    pub const SCENARIOS: [(&str, PortNo, u8, bool); 6] = [
        ("geneve0", PortNo(10), 0, false),
        ("geneve2", PortNo(10), 2, false),
        ("vxlan", PortNo(11), 0, false),
        ("geneve0_ipv6", PortNo(10), 0, true),
        ("geneve2_ipv6", PortNo(10), 2, true),
        ("vxlan_ipv6", PortNo(11), 0, true),
    ];

    /// The inner frame (a TCP/IPv4 SYN padded to 128 bytes), its
    /// extracted key and layers.
    pub fn inner() -> (Vec<u8>, FlowKey, Layers) {
        let mut inner = crate::tcp4_to([10, 244, 2, 3], 80).bytes;
        inner.resize(128, 0);
        let mut key = FlowKey::default();
        let ex = extract(&inner, &ExtractConfig::default(), &mut key);
        (inner, key, ex.layers)
    }

    /// `base` with the tunnel fields a flow sets for a row: the remote
    /// of the row's family, `tun_id` 42, and `opts` option values.
    pub fn key(base: &FlowKey, opts: u8, v6: bool) -> FlowKey {
        let mut key = *base;
        if v6 {
            key.set_tun_ipv6_dst(REMOTE6);
        } else {
            key.set_tun_dst(REMOTE4);
        }
        key.set_tun_id(42);
        if opts >= 1 {
            key.set_tun_metadata(0, 0x0001_0002);
        }
        if opts >= 2 {
            key.set_tun_metadata(1, 0x1122_3344_5566_7788);
        }
        key
    }
}
