//! Tunnels through the real pipeline: every VXLAN/Geneve capture in
//! `$WEFT_PCAPS` (tcpdump's test captures, IPv4 and IPv6 underlays)
//! decapsulates and the trace shows the tunnel fields and the inner frame;
//! encapsulation through flows (`set_field:...->tun_dst`, `output:geneve`),
//! the MTU error, the missing-next-hop event and host bridging.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use protocol::ctl::{TlvMapping, TunnelConfig};
use protocol::flow::{FlowKey, PortNo};
use protocol::pcap::PcapReader;
use protocol::wire::EthernetAddress;
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::{CollectSink, DropReason, Pipeline, TreeTrace, WorkerState, compile};
use weft_switchd::tunnel::{
    NextHops, TlvMap, TunnelEvent, TunnelKind, TunnelPort, Tunnels, Underlay,
};

const UNDERLAY: PortNo = PortNo(1);
const POD: PortNo = PortNo(2);
const GENEVE: PortNo = PortNo(10);
const VXLAN: PortNo = PortNo(11);

fn pcaps_dir() -> PathBuf {
    std::env::var_os("WEFT_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"))
        })
}

fn cfg() -> weft_switchd::pipeline::SwitchConfig {
    weft_switchd::pipeline::SwitchConfig::with_ports([UNDERLAY, POD, GENEVE, VXLAN, PortNo::LOCAL])
}

fn pipeline(flows: &str, t: Tunnels) -> Pipeline {
    compile(&common::flows(flows), cfg())
        .unwrap()
        .with_tunnels(Arc::new(t))
}

/// The outer source/destination and the tunnel payload (after UDP), by
/// etherparse.
fn outer(frame: &[u8]) -> (IpAddr, IpAddr, u16, Vec<u8>) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let (s, d) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
        _ => panic!("not IP"),
    };
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!("not UDP")
    };
    (s, d, u.destination_port(), u.payload().to_vec())
}

struct Expect {
    file: &'static str,
    records: usize,
    kind: TunnelKind,
    udp: u16,
    /// VNIs seen (any record).
    vnis: &'static [u64],
}

#[test]
fn every_capture_decapsulates_through_the_pipeline() {
    let dir = pcaps_dir();
    let expects = [
        Expect {
            file: "tcpdump-geneve.pcap",
            records: 39,
            kind: TunnelKind::Geneve,
            udp: 6081,
            vnis: &[0xa, 0xb],
        },
        Expect {
            file: "tcpdump-geneve-gcp.pcap",
            records: 1,
            kind: TunnelKind::Geneve,
            udp: 6081,
            vnis: &[0],
        },
        Expect {
            file: "tcpdump-vxlan.pcap",
            records: 10,
            kind: TunnelKind::Vxlan,
            udp: 4789,
            vnis: &[100],
        },
        Expect {
            file: "tcpdump-vxlan_port_8472.pcap",
            records: 10,
            kind: TunnelKind::Vxlan,
            udp: 8472,
            vnis: &[100],
        },
        Expect {
            file: "tcpdump-gso-ipv4-vxlan-ipv4.pcap",
            records: 1,
            kind: TunnelKind::Vxlan,
            udp: 4789,
            vnis: &[5001],
        },
        Expect {
            file: "tcpdump-gso-ipv6-vxlan-ipv6.pcap",
            records: 1,
            kind: TunnelKind::Vxlan,
            udp: 4789,
            vnis: &[5001],
        },
        Expect {
            file: "tcpdump-gso-ipv6-geneve-ipv6.pcap",
            records: 1,
            kind: TunnelKind::Geneve,
            udp: 6081,
            vnis: &[5001],
        },
    ];
    let flows = "in_port=10,actions=output:2\nin_port=11,actions=output:2\n";
    let tlv = TlvMap::new(&[TlvMapping {
        class: 0,
        r#type: 0x80,
        len: 4,
        slot: 0,
    }])
    .unwrap();
    for e in &expects {
        let path = dir.join(e.file);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("{}: {err} (set WEFT_PCAPS)", path.display()));
        let reader = PcapReader::new(&bytes).unwrap();
        let mut n = 0;
        for rec in reader.records() {
            let frame = rec.unwrap().data.to_vec();
            n += 1;
            let (src, dst, udp, payload) = outer(&frame);
            assert_eq!(udp, e.udp, "{} #{n}", e.file);
            let (local_ipv4, local_ipv6) = match dst {
                IpAddr::V4(a) => (Some(a), None),
                IpAddr::V6(a) => (None, Some(a)),
            };
            let port = if e.kind == TunnelKind::Geneve {
                GENEVE
            } else {
                VXLAN
            };
            let t = Tunnels::new(
                vec![TunnelPort::new(
                    port,
                    e.kind,
                    TunnelConfig {
                        dst_port: Some(e.udp),
                        ..TunnelConfig::default()
                    },
                )],
                Some(Underlay {
                    port: UNDERLAY,
                    host_port: Some(PortNo::LOCAL),
                    local_ipv4,
                    local_ipv6,
                    local_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
                    mtu: 1500,
                }),
                NextHops::default(),
                tlv,
            )
            .unwrap();
            let pl = pipeline(flows, t);
            let mut ws = WorkerState::new(pl.config());
            let mut buf = PacketBuf::from_slice(&frame);
            let mut trace = TreeTrace::new();
            let mut sink = CollectSink::default();
            let v = pl.process(&mut buf, UNDERLAY, 0, &mut ws, &mut sink, &mut trace);
            let text = trace.to_text(&v);
            let at = format!("{} #{n}:\n{text}", e.file);
            assert_eq!(v.reason, None, "{at}");
            assert_eq!(sink.outputs.len(), 1, "{at}");
            assert_eq!(sink.outputs[0].0, POD, "{at}");
            assert_eq!(ws.tunnel.decapsulated, 1);
            // The inner frame: the tunnel payload after the header, by
            // raw offsets (independent of our views).
            let hdr = if e.kind == TunnelKind::Geneve {
                8 + usize::from(payload[0] & 0x3f) * 4
            } else {
                8
            };
            let vni = u64::from(u32::from_be_bytes([0, payload[4], payload[5], payload[6]]));
            assert!(e.vnis.contains(&vni), "{at}");
            let inner = &payload[hdr..];
            let proto = u16::from_be_bytes([payload[2], payload[3]]);
            if e.kind == TunnelKind::Geneve && proto == 0x0800 {
                // GCP: IPv4 without Ethernet; a dummy header in front.
                assert_eq!(
                    &sink.outputs[0].1[..14],
                    &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0]
                );
                assert_eq!(&sink.outputs[0].1[14..], inner, "{at}");
                assert!(text.contains("dummy Ethernet header"), "{at}");
                assert!(text.contains("tcp,"), "{at}");
            } else {
                assert_eq!(sink.outputs[0].1, inner, "{at}");
            }
            // The trace: tunnel fields on the Flow: line, the decap note.
            let tun_id = if vni == 0 {
                "tun_id=0,".to_string()
            } else {
                format!("tun_id={vni:#x},")
            };
            assert!(text.contains(&tun_id), "{at}");
            let (src_f, dst_f) = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => (format!("tun_src={s}"), format!("tun_dst={d}")),
                (s, d) => (format!("tun_ipv6_src={s}"), format!("tun_ipv6_dst={d}")),
            };
            assert!(text.contains(&src_f) && text.contains(&dst_f), "{at}");
            assert!(text.contains(&format!("in_port={}", port.0)), "{at}");
            assert!(
                text.contains(&format!(
                    "{} packet on underlay port 1: decapsulated",
                    e.kind
                )),
                "{at}"
            );
            // The one Geneve option of VNI 0xa (class 0, type 0x80, data
            // 0000000c) is mapped to tun_metadata0.
            if e.file == "tcpdump-geneve.pcap" && vni == 0xa {
                assert!(text.contains("tun_metadata0=0xc"), "{at}");
            }
        }
        assert_eq!(n, e.records, "{}", e.file);
    }
}

fn node(local: Ipv4Addr, mtu: u32) -> Tunnels {
    Tunnels::new(
        vec![
            TunnelPort::new(GENEVE, TunnelKind::Geneve, TunnelConfig::default()),
            TunnelPort::new(VXLAN, TunnelKind::Vxlan, TunnelConfig::default()),
        ],
        Some(Underlay {
            port: UNDERLAY,
            host_port: Some(PortNo::LOCAL),
            local_ipv4: Some(local),
            local_ipv6: None,
            local_mac: EthernetAddress([2, 0, 0, 0, 0, local.octets()[3]]),
            mtu,
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
        ]),
        TlvMap::new(&[TlvMapping {
            class: 0xff57,
            r#type: 0x80,
            len: 4,
            slot: 0,
        }])
        .unwrap(),
    )
    .unwrap()
}

const SEND: &str = "
in_port=2,tcp,actions=set_field:192.0.2.7->tun_dst,set_field:42->tun_id,set_field:0x10002->tun_metadata0,output:10
in_port=2,udp,actions=set_field:192.0.2.7->tun_dst,set_field:43->tun_id,output:11
in_port=2,icmp,actions=set_field:192.0.2.99->tun_dst,output:10
in_port=10,tun_id=42,tun_metadata0=0x10002,actions=output:2
in_port=11,tun_id=43,actions=output:2
";

#[test]
fn encap_through_flows_and_decap_on_the_other_node() {
    let a = pipeline(SEND, node(Ipv4Addr::new(192, 0, 2, 1), 1500));
    let b = pipeline(SEND, node(Ipv4Addr::new(192, 0, 2, 7), 1500));
    for (m, port) in [
        (
            "tcp,dl_src=02:00:00:00:00:0a,dl_dst=02:00:00:00:00:0b,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_src=1000,tp_dst=80",
            "geneve",
        ),
        (
            "udp,dl_src=02:00:00:00:00:0a,dl_dst=02:00:00:00:00:0b,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_src=1000,tp_dst=53",
            "vxlan",
        ),
    ] {
        let inner = common::pkt(m);
        let mut ws = WorkerState::new(a.config());
        let r = common::run_on(&a, &mut ws, 2, &inner, 0);
        assert_eq!(r.ports(), vec![UNDERLAY], "{}", r.text());
        assert!(r.text().contains(&format!("{port} port")), "{}", r.text());
        let wire = r.out(0).to_vec();
        let (s, d, _, _) = outer(&wire);
        assert_eq!(
            (s.to_string(), d.to_string()),
            ("192.0.2.1".into(), "192.0.2.7".into())
        );
        // Node B decapsulates and its flows match tun_id/tun_metadata0.
        let mut wsb = WorkerState::new(b.config());
        let rb = common::run_on(&b, &mut wsb, 1, &wire, 0);
        assert_eq!(rb.ports(), vec![POD], "{}", rb.text());
        assert_eq!(rb.out(0), &inner[..]);
    }
}

#[test]
fn missing_next_hop_is_an_event_and_a_counted_drop() {
    let a = pipeline(SEND, node(Ipv4Addr::new(192, 0, 2, 1), 1500));
    let inner = common::pkt("icmp,nw_src=10.244.1.2,nw_dst=10.244.2.3,icmp_type=8");
    let mut ws = WorkerState::new(a.config());
    let mut sink = CollectSink::default();
    let mut trace = TreeTrace::new();
    let v = a.process(
        &mut PacketBuf::from_slice(&inner),
        POD,
        0,
        &mut ws,
        &mut sink,
        &mut trace,
    );
    assert_eq!(v.reason, Some(DropReason::TunnelNoNextHop));
    assert!(v.dropped());
    assert_eq!(
        sink.events,
        vec![TunnelEvent::MissingNextHop(IpAddr::V4(Ipv4Addr::new(
            192, 0, 2, 99
        )))]
    );
    assert_eq!(ws.counters.drops_for(DropReason::TunnelNoNextHop), 1);
    assert!(
        trace
            .to_text(&v)
            .contains("tunnel: dropped (tunnel_no_next_hop)")
    );
    // Republished with the neighbour: sent.
    let t2 = a.tunnels().with_next_hops(NextHops::from_entries([(
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)),
        EthernetAddress([2, 0, 0, 0, 0, 0x99]),
    )]));
    let a2 = a.with_new_tunnels(Arc::new(t2), a.generation() + 1);
    let r = common::run_on(&a2, &mut ws, 2, &inner, 0);
    assert_eq!(r.ports(), vec![UNDERLAY]);
    assert_eq!(&r.out(0)[..6], &[2, 0, 0, 0, 0, 0x99]);
}

#[test]
fn too_big_gets_icmp_back_out_of_the_input_port() {
    let a = pipeline(SEND, node(Ipv4Addr::new(192, 0, 2, 1), 1500));
    // A 1500-byte TCP/IPv4 packet with DF (packet_from_key sets DF on
    // unfragmented packets); Geneve + one 4-byte option over IPv4: the
    // pod MTU is 1500 - 58 = 1442.
    let mut inner = common::pkt("tcp,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_dst=80");
    inner.resize(14 + 1500, 0);
    let total = 1500u16;
    inner[16..18].copy_from_slice(&total.to_be_bytes());
    let mut ip = protocol::wire::Ipv4Packet::new_unchecked(&mut inner[14..]);
    ip.fill_checksum();
    let mut ws = WorkerState::new(a.config());
    let r = common::run_on(&a, &mut ws, 2, &inner, 0);
    assert_eq!(
        r.verdict.reason,
        Some(DropReason::TunnelTooBig),
        "{}",
        r.text()
    );
    assert_eq!(r.ports(), vec![POD], "{}", r.text());
    let icmp = r.out(0);
    let k = common::verify_checksums(icmp);
    assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (1, 3, 4));
    assert_eq!(
        u16::from_be_bytes([icmp[14 + 20 + 6], icmp[14 + 20 + 7]]),
        1442
    );
    assert!(
        r.text().contains("ICMP error with MTU 1442"),
        "{}",
        r.text()
    );
    assert_eq!(r.ws.counters.drops_for(DropReason::TunnelTooBig), 1);
    assert_eq!(r.ws.tunnel.icmp_too_big, 1);
}

#[test]
fn host_traffic_is_bridged_untouched() {
    let a = pipeline(SEND, node(Ipv4Addr::new(192, 0, 2, 1), 1500));
    let arp = common::pkt(
        "arp,dl_src=02:00:00:00:00:07,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=192.0.2.7,arp_tpa=192.0.2.1",
    );
    let r = common::run_on(&a, &mut WorkerState::new(a.config()), 1, &arp, 0);
    assert_eq!(r.ports(), vec![PortNo::LOCAL]);
    assert_eq!(r.out(0), &arp[..]);
    assert!(
        r.text().contains("bridged untouched to port LOCAL"),
        "{}",
        r.text()
    );
    // And back from the host port to the underlay.
    let r = common::run_on(
        &a,
        &mut WorkerState::new(a.config()),
        PortNo::LOCAL.0,
        &arp,
        0,
    );
    assert_eq!(r.ports(), vec![UNDERLAY]);
    // A malformed Geneve frame for us is a counted drop, not bridged.
    let good = {
        let b = pipeline(SEND, node(Ipv4Addr::new(192, 0, 2, 7), 1500));
        let inner = common::pkt("tcp,nw_src=10.244.2.3,nw_dst=10.244.1.2,tp_dst=80");
        let _ = b;
        let mut ws = WorkerState::new(a.config());
        // Encapsulate on A towards .7, then re-address it to A itself.
        let mut f = common::run_on(&a, &mut ws, 2, &inner, 0).out(0).to_vec();
        f[26..30].copy_from_slice(&[192, 0, 2, 7]);
        f[30..34].copy_from_slice(&[192, 0, 2, 1]);
        f
    };
    let r = common::run_on(&a, &mut WorkerState::new(a.config()), 1, &good, 0);
    assert_eq!(r.ports(), vec![POD], "{}", r.text());
    let mut bad = good.clone();
    bad[42] = 0x40; // Geneve version 1
    let r = common::run_on(&a, &mut WorkerState::new(a.config()), 1, &bad, 0);
    assert!(r.verdict.dropped());
    assert_eq!(
        r.verdict.reason,
        Some(DropReason::TunnelMalformed),
        "{}",
        r.text()
    );
    let _ = FlowKey::default();
}

/// The outer header template follows a neighbour change: the same worker
/// sends one frame to the old next-hop MAC, the daemon republishes the
/// tunnels with a new MAC (`with_next_hops` + `with_new_tunnels`, what
/// `control` does when the kernel's neighbour entry changes), and the very
/// next frame carries the new MAC; nothing else in the frame changes.
#[test]
fn changed_neighbour_mac_is_in_the_next_encapsulated_frame() {
    let a = pipeline(SEND, node(Ipv4Addr::new(192, 0, 2, 1), 1500));
    let inner = common::pkt(
        "tcp,dl_src=02:00:00:00:00:0a,dl_dst=02:00:00:00:00:0b,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_src=1000,tp_dst=80",
    );
    let mut ws = WorkerState::new(a.config());
    let r = common::run_on(&a, &mut ws, 2, &inner, 0);
    let first = r.out(0).to_vec();
    assert_eq!(&first[..6], &[2, 0, 0, 0, 0, 7]);
    let t2 = a.tunnels().with_next_hops(NextHops::from_entries([(
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        EthernetAddress([2, 0, 0, 0, 0, 0x77]),
    )]));
    let a2 = a.with_new_tunnels(Arc::new(t2), a.generation() + 1);
    let r = common::run_on(&a2, &mut ws, 2, &inner, 0);
    let second = r.out(0).to_vec();
    assert_eq!(&second[..6], &[2, 0, 0, 0, 0, 0x77]);
    assert_eq!(second[6..], first[6..]);
}
