//! Helpers shared by the integration tests: pipeline runs here, the
//! namespace set-up in [`netns`].
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod netns;
pub mod nodes;

use protocol::flow::{ExtractConfig, FlowKey, FlowSpec, PortNo, extract};
use protocol::text::{parse_flow, parse_match};
use protocol::wire::{Icmpv6Packet, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::packet::packet_from_key;
use weft_switchd::pipeline::{
    NoTrace, Pipeline, SwitchConfig, TreeTrace, Verdict, WorkerState, compile,
};

/// Parses an `add-flows` text (one flow per line, `#` comments).
pub fn flows(text: &str) -> Vec<FlowSpec> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_flow(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Ports 1..=n.
pub fn ports(n: u32) -> SwitchConfig {
    SwitchConfig::with_ports((1..=n).map(PortNo))
}

/// A packet built from a flow match text.
pub fn pkt(m: &str) -> Vec<u8> {
    packet_from_key(&parse_match(m).unwrap().key)
}

/// One traced run.
pub struct Run {
    pub trace: TreeTrace,
    pub verdict: Verdict,
    pub ws: WorkerState,
}

impl Run {
    /// Output ports in order.
    pub fn ports(&self) -> Vec<PortNo> {
        self.trace.outputs.iter().map(|o| o.port).collect()
    }
    /// The bytes of output `i`.
    pub fn out(&self, i: usize) -> &[u8] {
        &self.trace.outputs[i].bytes
    }
    /// Text rendering.
    pub fn text(&self) -> String {
        self.trace.to_text(&self.verdict)
    }
}

/// Compiles and runs `packet` in on `in_port`.
pub fn run(flow_text: &str, cfg: SwitchConfig, in_port: u32, packet: &[u8]) -> Run {
    let pl = compile(&flows(flow_text), cfg).unwrap();
    let mut ws = WorkerState::new(pl.config());
    run_on(&pl, &mut ws, in_port, packet, 0)
}

/// Runs on an existing pipeline and worker state.
pub fn run_on(pl: &Pipeline, ws: &mut WorkerState, in_port: u32, packet: &[u8], now: u64) -> Run {
    let mut buf = PacketBuf::from_slice(packet);
    let mut trace = TreeTrace::new();
    let mut sink = weft_switchd::pipeline::CollectSink::default();
    let verdict = pl.process(&mut buf, PortNo(in_port), now, ws, &mut sink, &mut trace);
    // The same packet through NoTrace gives the same outputs.
    let mut ws2 = ws.clone();
    let mut buf2 = PacketBuf::from_slice(packet);
    let mut sink2 = weft_switchd::pipeline::CollectSink::default();
    let v2 = pl.process(
        &mut buf2,
        PortNo(in_port),
        now,
        &mut ws2,
        &mut sink2,
        &mut NoTrace,
    );
    let traced: Vec<_> = trace
        .outputs
        .iter()
        .map(|o| (o.port, o.bytes.clone()))
        .collect();
    assert_eq!(traced, sink.outputs, "trace outputs == sink outputs");
    assert_eq!(v2.outputs, verdict.outputs);
    Run {
        trace,
        verdict,
        ws: ws.clone(),
    }
}

/// Re-parses a frame with the wire views and verifies every checksum it
/// carries (IPv4 header; TCP, UDP unless zero, ICMPv6). Returns the key.
pub fn verify_checksums(frame: &[u8]) -> FlowKey {
    let mut k = FlowKey::default();
    let ex = extract(frame, &ExtractConfig { vlan_limit: 2 }, &mut k);
    assert_eq!(ex.error, None, "output re-parses");
    let l3 = ex.layers.l3().unwrap();
    match k.dl_type() {
        0x0800 => {
            let ip = Ipv4Packet::new_checked(&frame[l3..]).unwrap();
            assert!(ip.verify_checksum(), "IPv4 header checksum");
            let end = l3 + usize::from(ip.total_len());
            let Some(l4) = ex.layers.l4() else { return k };
            let seg = &frame[l4..end];
            match k.nw_proto() {
                6 => assert!(
                    TcpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
                    "TCP checksum"
                ),
                17 => {
                    let u = UdpPacket::new_checked(seg).unwrap();
                    if u.checksum() != 0 {
                        assert!(
                            u.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
                            "UDP checksum"
                        );
                    }
                }
                _ => {}
            }
        }
        0x86dd => {
            let ip = Ipv6Packet::new_checked(&frame[l3..]).unwrap();
            let l4 = ex.layers.l4().unwrap();
            let seg = &frame[l4..];
            match k.nw_proto() {
                6 => assert!(
                    TcpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum_v6(ip.src_addr(), ip.dst_addr()),
                    "TCP checksum"
                ),
                17 => assert!(
                    UdpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum_v6(ip.src_addr(), ip.dst_addr()),
                    "UDP checksum"
                ),
                58 => assert!(
                    Icmpv6Packet::new_checked(seg)
                        .unwrap()
                        .verify_checksum(ip.src_addr(), ip.dst_addr()),
                    "ICMPv6 checksum"
                ),
                _ => {}
            }
        }
        _ => {}
    }
    k
}
