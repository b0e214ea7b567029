//! Tunnel decapsulation: any bytes received on the underlay port never
//! panic; the local endpoint is taken from the frame's own destination
//! address so random frames get past the "is it for us" check. On a
//! decapsulation the inner frame is a suffix of the outer one (or it with a
//! 14-byte dummy Ethernet header), only mapped `tun_metadata` slots are
//! present, and every Geneve option lies within the options area. The
//! inner frame then runs through the pipeline, whose flows encapsulate it
//! again (Geneve with options, VXLAN), so encap runs on fuzzed inner
//! frames too.
//!
//! Offload metadata: when the input starts with a `virtio_net_hdr` that
//! parses, the rest is also run with that metadata (as a port with vnet
//! headers would hand it over) through software segmentation and through
//! the pipeline into a tunnel port (segmentation before encapsulation):
//! nothing panics, no segment is longer than the frame, and after the
//! first every segment is the headers plus at most `gso_size`.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use protocol::ctl::{TlvMapping, TunnelConfig};
use protocol::flow::{FlowKey, PortNo};
use protocol::text::parse_flow;
use protocol::wire::{EthernetAddress, geneve};
use weft_switchd::buf::PacketBuf;
use weft_switchd::offload::{Gso, Offload, VNET_HDR_LEN, segment};
use weft_switchd::pipeline::{
    CollectSink, NoTrace, Pipeline, SwitchConfig, WorkerState, compile,
};
use weft_switchd::tunnel::{Decap, NextHops, TlvMap, TunnelKind, TunnelPort, Tunnels, Underlay};

const FLOWS: &[&str] = &[
    "in_port=10,tcp,actions=set_field:192.0.2.7->tun_dst,set_field:0x1234->tun_metadata1,output:10,output:11,output:2",
    "in_port=10,actions=set_field:2001:db8::7->tun_ipv6_dst,output:11,output:10,output:2",
    "in_port=11,actions=set_field:192.0.2.7->tun_dst,output:10,output:2",
    "in_port=12,actions=set_field:192.0.2.7->tun_dst,output:11",
];

/// The flows, compiled once; each input gets its own tunnel settings with
/// `with_new_tunnels` (as the daemon republishes next hops).
static PIPELINE: LazyLock<Pipeline> = LazyLock::new(|| {
    let flows: Vec<_> = FLOWS.iter().map(|f| parse_flow(f).unwrap()).collect();
    let cfg = SwitchConfig::with_ports(
        [1, 2, 10, 11, 12].map(PortNo).into_iter().chain([PortNo::LOCAL]),
    );
    compile(&flows, cfg).unwrap()
});

fn tunnels(frame: &[u8]) -> Tunnels {
    let v4 = frame
        .get(30..34)
        .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        .unwrap_or(Ipv4Addr::new(192, 0, 2, 1));
    let v6 = frame
        .get(38..54)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Ipv6Addr::from)
        .unwrap_or(Ipv6Addr::LOCALHOST);
    let fixed = TunnelConfig {
        remote_ip: frame
            .get(26..30)
            .map(|b| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        key: Some(5),
        dst_port: Some(6081),
        local_ip: None,
    };
    Tunnels::new(
        vec![
            TunnelPort::new(PortNo(10), TunnelKind::Geneve, TunnelConfig::default()),
            TunnelPort::new(PortNo(11), TunnelKind::Vxlan, TunnelConfig::default()),
            TunnelPort::new(PortNo(12), TunnelKind::Geneve, fixed),
        ],
        Some(Underlay {
            port: PortNo(1),
            host_port: Some(PortNo::LOCAL),
            local_ipv4: Some(v4),
            local_ipv6: Some(v6),
            local_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        }),
        NextHops::from_entries([
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), EthernetAddress([2, 0, 0, 0, 0, 7])),
            ("2001:db8::7".parse().unwrap(), EthernetAddress([2, 0, 0, 0, 0, 7])),
        ]),
        TlvMap::new(&[
            TlvMapping { class: 0, r#type: 0x80, len: 4, slot: 0 },
            TlvMapping { class: 0x0102, r#type: 0x05, len: 8, slot: 1 },
            TlvMapping { class: 0xff57, r#type: 0x80, len: 4, slot: 2 },
        ])
        .unwrap(),
    )
    .unwrap()
}

fuzz_target!(|frame: &[u8]| {
    if frame.len() > weft_switchd::buf::MAX_PACKET {
        return;
    }
    let t = tunnels(frame);
    let mut pkt = PacketBuf::from_slice(frame);
    let mut key = FlowKey::default();
    match t.decap(&mut pkt, &mut key) {
        Decap::Inner { dummy_eth, outer_len, .. } => {
            let inner = pkt.data();
            let body = if dummy_eth { &inner[14..] } else { inner };
            assert!(outer_len + body.len() <= frame.len());
            assert_eq!(&frame[outer_len..outer_len + body.len()], body);
            assert_eq!(key.tun_metadata_present() & !0b111, 0);
        }
        Decap::NotTunnel | Decap::Drop(_) => {
            assert_eq!(pkt.data(), frame, "unchanged unless decapsulated");
            assert_eq!(key, FlowKey::default());
        }
    }
    // Options parse within bounds wherever a Geneve header could start.
    for start in [42usize, 62] {
        if let Some(b) = frame.get(start..) {
            if let Ok(p) = geneve::Packet::new_checked(b) {
                let area = p.options();
                let mut used = 0;
                for o in p.options_iter() {
                    match o {
                        Ok(o) => {
                            used += o.encoded_len();
                            assert!(used <= area.len());
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }
    // Through the whole pipeline (decap, flows, encap, ICMP).
    let pl = PIPELINE.with_new_tunnels(Arc::new(t), 1);
    let mut ws = WorkerState::new(pl.config());
    let mut sink = CollectSink::default();
    for in_port in [PortNo(1), PortNo(2), PortNo::LOCAL] {
        let mut b = PacketBuf::from_slice(frame);
        pl.process(&mut b, in_port, 0, &mut ws, &mut sink, &mut NoTrace);
    }
    for (_, o) in &sink.outputs {
        assert!(o.len() <= weft_switchd::buf::CAPACITY);
    }
    if let (Ok(off), Some(inner)) = (Offload::parse(frame), frame.get(VNET_HDR_LEN..)) {
        let mut scratch = vec![0u8; weft_switchd::buf::MAX_PACKET];
        let mut n = 0;
        let res = segment(inner, &off, &mut scratch, |seg| {
            n += 1;
            // Headers plus at most gso_size of the payload, or the frame.
            assert!(seg.len() <= inner.len());
            if off.gso != Gso::None && n > 1 {
                assert!(seg.len() <= usize::from(off.gso_size) + 14 + 8 + 60 + 60 + 40);
            }
        });
        if let Ok(k) = res {
            assert_eq!(k, n);
        }
        let mut b = PacketBuf::from_slice(inner);
        b.set_offload(off);
        let mut sink = CollectSink::default();
        pl.process(&mut b, PortNo(12), 0, &mut ws, &mut sink, &mut NoTrace);
        for (_, o) in &sink.outputs {
            assert!(o.len() <= weft_switchd::buf::CAPACITY);
        }
    }
});
