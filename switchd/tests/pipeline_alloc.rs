//! The pipeline's per-packet path does not allocate after warm-up:
//! `Pipeline::process` with `NoTrace` over outputs, FLOOD, NORMAL,
//! resubmits, gotos, header rewrites, VLAN push/pop, dec_ttl, the action
//! set, conjunctions, packet-ins, misses and malformed packets, and the
//! tunnel hooks (encap, decap, host bridging, ICMP too-big), counted by a
//! global allocator wrapper.

#![allow(unsafe_code, clippy::unwrap_used)]

mod common;

use protocol::flow::{ControllerReason, Cookie, PortNo, TableId};
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::{MissBehavior, NoTrace, OutputSink, WorkerState, compile};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

/// A sink that only counts (a worker would copy into preallocated tx
/// batches).
#[derive(Default)]
struct CountSink {
    outputs: usize,
    bytes: usize,
    packet_ins: usize,
}

impl OutputSink for CountSink {
    fn output(&mut self, _port: PortNo, bytes: &[u8]) {
        self.outputs += 1;
        self.bytes += bytes.len();
    }
    fn packet_in(&mut self, _r: ControllerReason, _t: TableId, _c: Cookie, bytes: &[u8]) {
        self.packet_ins += 1;
        self.bytes += bytes.len();
    }
}

const FLOWS: &str = "\
table=0,priority=100,tcp,tp_dst=80,actions=dec_ttl,mod_nw_dst:10.0.0.9,mod_tp_dst:8080,push_vlan:0x8100,mod_vlan_vid:5,output:2,pop_vlan,resubmit(,1),write_actions(output:4),goto_table:2
table=0,priority=90,udp,actions=load:0x7->NXM_NX_REG0[],move:NXM_OF_IP_SRC[]->NXM_NX_REG1[],set_field:2001->udp_dst,FLOOD,controller(max_len=64)
table=0,priority=80,ip,nw_src=10.0.0.3,actions=conjunction(9,1/2)
table=0,priority=80,icmp,actions=conjunction(9,2/2)
table=0,priority=70,conj_id=9,actions=NORMAL
table=0,priority=60,arp,actions=NORMAL
table=0,priority=50,ipv6,actions=dec_ttl,set_field:2001:db8::9->ipv6_dst,output:3,resubmit(,0)
table=1,actions=output:3
table=2,tcp,actions=clear_actions,write_actions(mod_nw_tos:32,output:1)
";

#[test]
fn process_does_not_allocate_after_warm_up() {
    let mut cfg = common::ports(4);
    cfg.table_miss.insert(TableId(2), MissBehavior::Controller);
    let pl = compile(&common::flows(FLOWS), cfg).unwrap();
    let mut ws = WorkerState::new(pl.config());
    let packets: Vec<Vec<u8>> = [
        "tcp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=80",
        "udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=53",
        "icmp,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:01,nw_src=10.0.0.3,nw_dst=10.0.0.1,icmp_type=8",
        "arp,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.3",
        "tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,tp_dst=22",
        "tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_dst=22",
        "ip,nw_proto=17,nw_frag=first,tp_dst=53",
    ]
    .iter()
    .map(|m| common::pkt(m))
    .chain([vec![0u8; 10]]) // malformed: shorter than Ethernet
    .collect();
    let mut bufs: Vec<PacketBuf> = packets.iter().map(|_| PacketBuf::new()).collect();
    let mut sink = CountSink::default();
    let run = |ws: &mut WorkerState, sink: &mut CountSink, bufs: &mut [PacketBuf], now: u64| {
        for (i, (b, p)) in bufs.iter_mut().zip(&packets).enumerate() {
            b.set_from_slice(p);
            let in_port = PortNo(1 + (i as u32 % 3));
            pl.process(b, in_port, now, ws, sink, &mut NoTrace);
        }
    };
    run(&mut ws, &mut sink, &mut bufs, 0);
    let before = allocs();
    for round in 1..200u64 {
        run(&mut ws, &mut sink, &mut bufs, round * 10);
    }
    let n = allocs() - before;
    assert_eq!(n, 0, "{n} allocations in 199 rounds");
    assert!(
        sink.outputs > 1000 && sink.packet_ins > 100,
        "the paths ran"
    );
    assert_eq!(ws.counters.packets, 200 * packets.len() as u64);
    // The malformed frame, every round.
    assert_eq!(
        ws.counters
            .drops_for(weft_switchd::pipeline::DropReason::Malformed),
        200
    );
}

/// The tunnel hooks: Geneve encap with an option, VXLAN encap over IPv6,
/// decap with an option mapped to tun_metadata0, host bridging, a
/// missing next hop and the ICMP "too big" error.
#[test]
fn tunnel_paths_do_not_allocate_after_warm_up() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    use protocol::ctl::{TlvMapping, TunnelConfig};
    use protocol::wire::EthernetAddress;
    use weft_switchd::pipeline::{CollectSink, DropReason, SwitchConfig};
    use weft_switchd::tunnel::{NextHops, TlvMap, TunnelKind, TunnelPort, Tunnels, Underlay};

    let flows = "\
in_port=2,tcp,actions=set_field:192.0.2.7->tun_dst,set_field:42->tun_id,set_field:0x10002->tun_metadata0,output:10
in_port=2,udp,actions=set_field:2001:db8::7->tun_ipv6_dst,set_field:43->tun_id,output:11
in_port=2,icmp,actions=set_field:192.0.2.99->tun_dst,output:10
in_port=10,actions=output:2
";
    let node = |local: u8| {
        let t = Tunnels::new(
            vec![
                TunnelPort::new(PortNo(10), TunnelKind::Geneve, TunnelConfig::default()),
                TunnelPort::new(PortNo(11), TunnelKind::Vxlan, TunnelConfig::default()),
            ],
            Some(Underlay {
                port: PortNo(1),
                host_port: Some(PortNo::LOCAL),
                local_ipv4: Some(Ipv4Addr::new(192, 0, 2, local)),
                local_ipv6: Some(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    u16::from(local),
                )),
                local_mac: EthernetAddress([2, 0, 0, 0, 0, local]),
                mtu: 1500,
            }),
            NextHops::from_entries([
                (
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                    EthernetAddress([2, 0, 0, 0, 0, 7]),
                ),
                (
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                    EthernetAddress([2, 0, 0, 0, 0, 1]),
                ),
                (
                    "2001:db8::7".parse().unwrap(),
                    EthernetAddress([2, 0, 0, 0, 0, 7]),
                ),
            ]),
            TlvMap::new(&[TlvMapping {
                class: 0xff57,
                r#type: 0x80,
                len: 4,
                slot: 0,
            }])
            .unwrap(),
        )
        .unwrap();
        let cfg = SwitchConfig::with_ports(
            [1, 2, 10, 11]
                .map(PortNo)
                .into_iter()
                .chain([PortNo::LOCAL]),
        );
        compile(&common::flows(flows), cfg)
            .unwrap()
            .with_tunnels(Arc::new(t))
    };
    let a = node(1);
    let b = node(7);
    let tcp = common::pkt("tcp,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_dst=80");
    let udp = common::pkt("udp,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_dst=53");
    let icmp = common::pkt("icmp,nw_src=10.244.1.2,nw_dst=10.244.2.3,icmp_type=8");
    let arp = common::pkt("arp,arp_op=1,arp_spa=192.0.2.7,arp_tpa=192.0.2.1");
    let mut big = tcp.clone();
    big.resize(14 + 1500, 0);
    big[16..18].copy_from_slice(&1500u16.to_be_bytes());
    protocol::wire::Ipv4Packet::new_unchecked(&mut big[14..]).fill_checksum();
    // A Geneve frame (with the option) from node 7 to node 1, made during
    // set-up: node 7's flows address 192.0.2.7, so its frame is
    // re-addressed from .7 to .1.
    let mut sink = CollectSink::default();
    let mut wsb = WorkerState::new(b.config());
    let tcp_b = common::pkt("tcp,nw_src=10.244.2.3,nw_dst=10.244.1.2,tp_dst=80");
    let mut pb = PacketBuf::from_slice(&tcp_b);
    b.process(&mut pb, PortNo(2), 0, &mut wsb, &mut sink, &mut NoTrace);
    let mut wire = sink.outputs[0].1.clone();
    wire[26..30].copy_from_slice(&[192, 0, 2, 7]);
    wire[30..34].copy_from_slice(&[192, 0, 2, 1]);

    let inputs: Vec<(PortNo, Vec<u8>)> = vec![
        (PortNo(2), tcp),
        (PortNo(2), udp),
        (PortNo(2), icmp),
        (PortNo(2), big),
        (PortNo(1), wire),
        (PortNo(1), arp.clone()),
        (PortNo::LOCAL, arp),
    ];
    let mut ws = WorkerState::new(a.config());
    let mut bufs: Vec<PacketBuf> = inputs.iter().map(|_| PacketBuf::new()).collect();
    let mut sink = CountSink::default();
    let run = |ws: &mut WorkerState, sink: &mut CountSink, bufs: &mut [PacketBuf]| {
        for (b, (port, p)) in bufs.iter_mut().zip(&inputs) {
            b.set_from_slice(p);
            a.process(b, *port, 0, ws, sink, &mut NoTrace);
        }
    };
    run(&mut ws, &mut sink, &mut bufs);
    let before = allocs();
    for _ in 1..200 {
        run(&mut ws, &mut sink, &mut bufs);
    }
    let n = allocs() - before;
    assert_eq!(n, 0, "{n} allocations in 199 rounds");
    assert_eq!(ws.tunnel.encapsulated, 400);
    assert_eq!(ws.tunnel.decapsulated, 200);
    assert_eq!(ws.tunnel.icmp_too_big, 200);
    assert_eq!(ws.tunnel.host_bridged, 400);
    assert_eq!(ws.counters.drops_for(DropReason::TunnelNoNextHop), 200);
    assert_eq!(ws.counters.drops_for(DropReason::TunnelTooBig), 200);
    // tcp, udp (encap), big (ICMP), wire (decap), 2 x arp.
    assert_eq!(sink.outputs, 200 * 6);
}

/// `process_batch` with the exact-match cache: after warm-up, rounds of
/// cache hits, misses (a new TCP source port every round), evictions (a
/// tiny cache) and invalidations (the snapshot alternates) allocate
/// nothing.
#[test]
fn process_batch_does_not_allocate_on_hits_and_misses() {
    let mut cfg = common::ports(4);
    cfg.table_miss.insert(TableId(2), MissBehavior::Controller);
    let pl_a = compile(&common::flows(FLOWS), cfg.clone()).unwrap();
    let pl_b = compile(&common::flows(FLOWS), cfg).unwrap();
    let hits: Vec<Vec<u8>> = [
        "tcp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=80",
        "udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=53",
        "icmp,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:01,nw_src=10.0.0.3,nw_dst=10.0.0.1,icmp_type=8",
        "arp,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.3",
        "tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,tp_dst=22",
        "ip,nw_proto=17,nw_frag=first,tp_dst=53",
    ]
    .iter()
    .map(|m| common::pkt(m))
    .chain([vec![0u8; 10]])
    .collect();
    // One never-seen flow per round.
    let misses: Vec<Vec<u8>> = (0..200u32)
        .map(|r| {
            common::pkt(&format!(
                "tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src={},tp_dst=80",
                1000 + r
            ))
        })
        .collect();
    let mut bufs: Vec<PacketBuf> = (0..=hits.len()).map(|_| PacketBuf::new()).collect();
    for entries in [4096, 4] {
        let mut ws = WorkerState::with_emc_entries(pl_a.config(), entries);
        let mut sink = CountSink::default();
        let mut run = |ws: &mut WorkerState, sink: &mut CountSink, round: u64| {
            for (b, p) in bufs
                .iter_mut()
                .zip(hits.iter().chain([&misses[round as usize]]))
            {
                b.set_from_slice(p);
            }
            let pl = if (round / 50).is_multiple_of(2) {
                &pl_a
            } else {
                &pl_b
            };
            pl.process_batch(
                &mut bufs,
                PortNo(1 + (round as u32 % 3)),
                round * 10,
                ws,
                sink,
            );
        };
        run(&mut ws, &mut sink, 0);
        let before = allocs();
        let (h0, m0) = (ws.counters.emc_hits, ws.counters.emc_misses);
        for round in 1..200u64 {
            run(&mut ws, &mut sink, round);
        }
        let n = allocs() - before;
        assert_eq!(n, 0, "{n} allocations in 199 rounds ({entries} entries)");
        let (hits_n, misses_n) = (ws.counters.emc_hits - h0, ws.counters.emc_misses - m0);
        assert!(misses_n >= 199, "{misses_n} misses");
        if entries > 4 {
            assert!(hits_n > 199 * 3, "{hits_n} hits");
        }
        assert!(
            sink.outputs > 1000 && sink.packet_ins > 100,
            "the paths ran"
        );
        assert_eq!(
            ws.counters.packets,
            200 * (hits.len() as u64 + 1),
            "every packet counted"
        );
    }
}
