//! Header parsing through the wire views and Reprs, layer by layer (what a
//! tool or the slow path does; the data path uses `extract`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::wire::{
    EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket, UdpPacket,
    VxlanPacket, VxlanRepr,
};
use std::hint::black_box;

fn parse_tcp4(frame: &[u8]) -> Option<(u16, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let _ = EthernetRepr::parse(&eth).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let _ = Ipv4Repr::parse(&ip).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((tcp.src_port(), tcp.dst_port()))
}

fn parse_udp6(frame: &[u8]) -> Option<(u16, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    let _ = Ipv6Repr::parse(&ip).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    Some((udp.src_port(), udp.dst_port()))
}

fn parse_vxlan(frame: &[u8]) -> Option<(u16, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let vx = VxlanPacket::new_checked(udp.payload()).ok()?;
    let _ = VxlanRepr::parse(&vx).ok()?;
    parse_tcp4(vx.payload())
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    let tcp4 = weft_benches::tcp4().bytes;
    let udp6 = weft_benches::udp6().bytes;
    let vxlan = weft_benches::vxlan_tcp4().bytes;
    assert!(parse_tcp4(&tcp4).is_some() && parse_udp6(&udp6).is_some());
    assert!(parse_vxlan(&vxlan).is_some());
    g.bench_function("eth_ipv4_tcp", |b| {
        b.iter(|| black_box(parse_tcp4(black_box(&tcp4))))
    });
    g.bench_function("eth_ipv6_udp", |b| {
        b.iter(|| black_box(parse_udp6(black_box(&udp6))))
    });
    g.bench_function("vxlan_eth_ipv4_tcp", |b| {
        b.iter(|| black_box(parse_vxlan(black_box(&vxlan))))
    });
    g.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
