//! Next-hop learning from received tunnel packets: the pipeline reports
//! `TunnelEvent::Learned` when a decapsulated packet's outer source MAC is
//! not the published next hop for its outer source IP, and stays silent
//! when it is (the daemon side is `switchd::underlay`).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use protocol::ctl::TunnelConfig;
use protocol::flow::PortNo;
use protocol::wire::EthernetAddress;
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::{CollectSink, NoTrace, Pipeline, SwitchConfig, WorkerState, compile};
use weft_switchd::tunnel::{
    NextHops, TlvMap, TunnelEvent, TunnelKind, TunnelPort, Tunnels, Underlay,
};

const UNDERLAY: PortNo = PortNo(1);
const POD: PortNo = PortNo(2);
const VXLAN: PortNo = PortNo(11);
const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);

fn node(
    ip: [u8; 4],
    mac: EthernetAddress,
    hops: &[(IpAddr, EthernetAddress)],
    flows: &str,
) -> Pipeline {
    let t = Tunnels::new(
        vec![TunnelPort::new(
            VXLAN,
            TunnelKind::Vxlan,
            TunnelConfig::default(),
        )],
        Some(Underlay {
            port: UNDERLAY,
            host_port: Some(PortNo::LOCAL),
            local_ipv4: Some(Ipv4Addr::from(ip)),
            local_ipv6: None,
            local_mac: mac,
            mtu: 1500,
        }),
        NextHops::from_entries(hops.iter().copied()),
        TlvMap::default(),
    )
    .unwrap();
    compile(
        &common::flows(flows),
        SwitchConfig::with_ports([UNDERLAY, POD, VXLAN, PortNo::LOCAL]),
    )
    .unwrap()
    .with_tunnels(Arc::new(t))
}

fn run(p: &Pipeline, in_port: PortNo, frame: &[u8]) -> CollectSink {
    let mut ws = WorkerState::new(p.config());
    let mut sink = CollectSink::default();
    p.process(
        &mut PacketBuf::from_slice(frame),
        in_port,
        0,
        &mut ws,
        &mut sink,
        &mut NoTrace,
    );
    sink
}

#[test]
fn decap_reports_a_sender_mac_that_is_not_the_published_next_hop() {
    let ip_a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let ip_b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let a = node(
        [192, 0, 2, 1],
        MAC_A,
        &[(ip_b, MAC_B)],
        "in_port=2,actions=set_field:192.0.2.2->tun_dst,set_field:42->tun_id,output:11",
    );
    let inner = common::pkt(
        "icmp,dl_src=02:00:00:00:01:01,nw_src=10.244.0.11,nw_dst=10.244.0.21,icmp_type=8",
    );
    let sent = run(&a, POD, &inner);
    assert_eq!(sent.outputs.len(), 1, "{sent:?}");
    let (port, wire) = &sent.outputs[0];
    assert_eq!(*port, UNDERLAY);
    assert_eq!(&wire[6..12], MAC_A.as_bytes());

    // B has no next hop for A: the decap reports what it saw.
    let b = node([192, 0, 2, 2], MAC_B, &[], "in_port=11,actions=output:2");
    let got = run(&b, UNDERLAY, wire);
    assert_eq!(got.outputs.len(), 1, "delivered to the pod");
    assert_eq!(got.outputs[0].1, inner);
    assert_eq!(
        got.events,
        vec![TunnelEvent::Learned {
            remote: ip_a,
            mac: MAC_A
        }]
    );
    // A stale next hop is reported too; the published one is silent.
    let stale = node(
        [192, 0, 2, 2],
        MAC_B,
        &[(ip_a, EthernetAddress([2, 0, 0, 0, 0, 0xee]))],
        "in_port=11,actions=output:2",
    );
    assert_eq!(run(&stale, UNDERLAY, wire).events.len(), 1);
    let known = node(
        [192, 0, 2, 2],
        MAC_B,
        &[(ip_a, MAC_A)],
        "in_port=11,actions=output:2",
    );
    assert!(run(&known, UNDERLAY, wire).events.is_empty());
}
