//! Tunnel encapsulation and decapsulation per packet
//! (`weft_switchd::tunnel`), sans-IO: `Tunnels::encap` on a 128-byte inner
//! TCP/IPv4 frame whose key is already extracted (the outer headers are
//! written into the headroom, then pulled off again so every iteration
//! starts from the same buffer), and `Tunnels::decap` on the encapsulated
//! frame (the outer headers are pushed back afterwards, which re-exposes
//! the unchanged bytes still in the headroom). Only encap or decap is
//! between the clock readings, besides the `PacketBuf` offset moves (two
//! integer updates): the decap key is not reset per iteration (decap
//! writes the same tunnel fields into it every time; the pipeline's
//! per-packet key reset belongs to extraction, measured in `extract`).
//!
//! Scenarios: Geneve with 0 and 2 options (4 and 8 data bytes, mapped to
//! `tun_metadata0/1`) and VXLAN, each over an IPv4 underlay (no UDP
//! checksum, the OVS default) and an IPv6 underlay (`_ipv6`: the UDP
//! checksum over the whole packet is computed, RFC 8200).
//!
//! Timed in thread CPU time (`weft_benches::thread_cpu`), so that other
//! processes on the shared machine do not count.
//!
//! Run alone (about 40 s for the 12 rows after the build):
//! `cargo bench -p weft-benches --bench tunnel -- --warm-up-time 1
//! --measurement-time 2`; one row: append its name as a filter, e.g.
//! `encap/geneve2_ipv6`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::ctl::{TlvMapping, TunnelConfig};
use protocol::flow::{ExtractConfig, FlowKey, PortNo, extract};
use protocol::wire::EthernetAddress;
use weft_benches::thread_cpu;
use weft_switchd::buf::PacketBuf;
use weft_switchd::tunnel::{Decap, NextHops, TlvMap, TunnelKind, TunnelPort, Tunnels, Underlay};

const REMOTE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);

fn node(local4: Ipv4Addr, local6: Ipv6Addr) -> Tunnels {
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

fn bench(c: &mut Criterion) {
    let mut inner = weft_benches::tcp4_to([10, 244, 2, 3], 80).bytes;
    inner.resize(128, 0);
    let mut base = FlowKey::default();
    let ex = extract(&inner, &ExtractConfig::default(), &mut base);
    let tx = node(
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    );
    let rx = node(REMOTE4, REMOTE6);
    let scenarios: [(&str, PortNo, u8, bool); 6] = [
        ("geneve0", PortNo(10), 0, false),
        ("geneve2", PortNo(10), 2, false),
        ("vxlan", PortNo(11), 0, false),
        ("geneve0_ipv6", PortNo(10), 0, true),
        ("geneve2_ipv6", PortNo(10), 2, true),
        ("vxlan_ipv6", PortNo(11), 0, true),
    ];
    let mut g = c.benchmark_group("tunnel");
    g.throughput(Throughput::Elements(1));
    for (name, port, opts, v6) in scenarios {
        let mut key = base;
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
        // The snapshot's own port value, as the pipeline passes it.
        let tp = tx.port(port).expect("port");
        let mut pkt = PacketBuf::from_slice(&inner);
        g.bench_function(format!("encap/{name}"), |b| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    let n = tx
                        .encap(tp, black_box(&key), &ex.layers, &mut pkt)
                        .expect("encap");
                    black_box(pkt.data());
                    pkt.pull_front(n);
                }
                thread_cpu().saturating_sub(start)
            })
        });
        let n = tx.encap(tp, &key, &ex.layers, &mut pkt).expect("encap");
        let wire = pkt.data().to_vec();
        pkt.pull_front(n);
        let mut buf = PacketBuf::from_slice(&wire);
        // Checked once before timing.
        let mut k0 = FlowKey::default();
        assert!(matches!(rx.decap(&mut buf, &mut k0), Decap::Inner { .. }));
        assert_eq!(buf.data(), &inner[..]);
        assert!(buf.push_front(n).is_some());
        assert_eq!(buf.data(), &wire[..]);
        let mut k = FlowKey::default();
        g.bench_function(format!("decap/{name}"), |b| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    let d = rx.decap(black_box(&mut buf), black_box(&mut k));
                    let Decap::Inner { outer_len, .. } = d else {
                        panic!("{d:?}")
                    };
                    black_box(&k);
                    buf.push_front(outer_len);
                }
                thread_cpu().saturating_sub(start)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
