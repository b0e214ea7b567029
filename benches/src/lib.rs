//! Shared inputs for Weft's criterion benchmarks (`benches/benches/*.rs`).
//!
//! Each bench file covers one stage of the data path and reports element
//! throughput, so criterion prints packets per second. The packets are built
//! with etherparse (an independent encoder), so the inputs do not depend on
//! the code under test.

use etherparse::PacketBuilder;

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
