//! The exact-match cache changes nothing but speed: for random flow tables
//! and random packet sequences, `Pipeline::process_batch` with the cache
//! gives exactly what `Pipeline::process` gives packet by packet without
//! it: the same outputs (ports and bytes, in order), packet-ins, worker
//! counters (drops by reason, table lookups and matches), rule counters
//! (packets, bytes, last used) and NORMAL's learning (through the
//! outputs of later packets).

#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use protocol::flow::{PortNo, TableId};
use protocol::text::{format_flow, parse_flow};
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::{CollectSink, MissBehavior, NoTrace, Pipeline, WorkerState, compile};

const MATCHES: &[&str] = &[
    "",
    "in_port=1",
    "in_port=2",
    "ip",
    "tcp",
    "udp",
    "arp",
    "tcp,tp_dst=80",
    "udp,tp_dst=53",
    "ip,nw_dst=10.0.0.2",
    "ip,nw_dst=10.0.0.0/24",
    "ip,nw_src=10.0.0.1",
    "dl_vlan=5",
    "vlan_tci=0",
    "reg0=7",
    "reg0=0",
    "dl_dst=02:00:00:00:00:02",
    "tcp,nw_ttl=1",
    "metadata=0x1",
];

const ACTIONS: &[&str] = &[
    "output:1",
    "output:2",
    "output:3",
    "in_port",
    "NORMAL",
    "FLOOD",
    "ALL",
    "controller",
    "drop",
    "dec_ttl",
    "mod_nw_dst:10.0.0.9",
    "mod_tp_dst:8080",
    "mod_dl_src:02:00:00:00:00:09",
    "push_vlan:0x8100",
    "pop_vlan",
    "mod_vlan_vid:5",
    "mod_vlan_pcp:3",
    "load:0x7->NXM_NX_REG0[]",
    "write_metadata:0x1",
    "resubmit(,1)",
    "resubmit(,2)",
    "resubmit(,0)",
    "resubmit(2,1)",
    "write_actions(output:3)",
    // Header writes a flat action list replays (values from the key).
    "move:reg0[0..15]->tp_src[]",
    "mod_nw_src:10.0.0.7",
    "mod_nw_tos:16",
];

const PACKETS: &[&str] = &[
    "tcp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=80",
    "tcp,dl_src=02:00:00:00:00:02,dl_dst=02:00:00:00:00:01,nw_src=10.0.0.2,nw_dst=10.0.0.1,tp_src=80,tp_dst=1",
    "tcp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:03,nw_src=10.0.0.1,nw_dst=10.0.1.3,nw_ttl=1,tp_dst=80",
    "udp,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:01,nw_src=10.0.0.3,nw_dst=10.0.0.2,tp_dst=53",
    "arp,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2",
    "icmp,dl_src=02:00:00:00:00:02,dl_dst=02:00:00:00:00:01,nw_src=10.0.0.2,nw_dst=10.0.0.1,icmp_type=8",
    "tcp,dl_vlan=5,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.3,nw_dst=10.0.0.2,tp_dst=80",
    "udp,dl_vlan=7,dl_src=02:00:00:00:00:02,dl_dst=ff:ff:ff:ff:ff:ff,nw_dst=10.0.0.255,tp_dst=67",
    "tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,tp_dst=80",
];

/// One random flow: table, priority, match, actions, optional goto.
fn flow() -> impl Strategy<Value = String> {
    (
        0u8..3,
        0usize..4,
        proptest::sample::select(MATCHES),
        proptest::collection::vec(proptest::sample::select(ACTIONS), 0..4),
        any::<bool>(),
    )
        .prop_map(|(table, pri, m, mut acts, goto)| {
            // Instructions after apply-actions (OpenFlow order).
            acts.sort_by_key(|a| a.starts_with("write_actions"));
            let mut a = acts.join(",");
            if goto && table < 2 {
                if !a.is_empty() {
                    a.push(',');
                }
                a.push_str(&format!("goto_table:{}", table + 1));
            }
            if a.is_empty() {
                a.push_str("drop");
            }
            let sep = if m.is_empty() { "" } else { "," };
            format!(
                "table={table},priority={},{m}{sep}actions={a}",
                100 * pri + 1
            )
        })
}

/// Compiles the flows that are valid on their own (a random action list
/// can break an instruction-order rule); the result always compiles.
fn build(flows: &[String]) -> Option<Pipeline> {
    let mut cfg = common::ports(4);
    cfg.table_miss.insert(TableId(1), MissBehavior::Controller);
    cfg.table_miss.insert(TableId(2), MissBehavior::Continue);
    let specs: Vec<_> = flows
        .iter()
        .filter_map(|f| parse_flow(f).ok())
        .filter(|s| compile(std::slice::from_ref(s), cfg.clone()).is_ok())
        .collect();
    if specs.is_empty() {
        return None;
    }
    Some(compile(&specs, cfg).unwrap())
}

/// Everything a run leaves behind.
fn rule_stats(pl: &Pipeline) -> Vec<(String, (u64, u64, u64))> {
    let mut v: Vec<_> = pl
        .rules()
        .map(|r| (format_flow(&r.spec), r.stats.get()))
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn cache_changes_nothing(
        flows in proptest::collection::vec(flow(), 1..12),
        packets in proptest::collection::vec((0usize..PACKETS.len(), 1u32..4), 1..80),
        cuts in proptest::collection::vec(1usize..33, 1..8),
        tiny in any::<bool>(),
    ) {
        let Some(pl_plain) = build(&flows) else { return Ok(()) };
        let pl_cached = build(&flows).unwrap();
        let frames: Vec<(Vec<u8>, u32)> = packets
            .iter()
            .map(|&(i, port)| (common::pkt(PACKETS[i]), port))
            .collect();
        // Plain: one packet at a time, no cache.
        let mut ws_plain = WorkerState::with_emc_entries(pl_plain.config(), 0);
        let mut out_plain = CollectSink::default();
        // Cached: batches (all of one in_port, cut at random sizes), with a
        // full or a tiny (evicting) cache.
        let mut ws_cached =
            WorkerState::with_emc_entries(pl_cached.config(), if tiny { 2 } else { 4096 });
        let mut out_cached = CollectSink::default();
        let mut i = 0usize;
        let mut now = 1000u64;
        let mut cut = cuts.iter().cycle();
        while i < frames.len() {
            let port = frames[i].1;
            let mut n = *cut.next().unwrap();
            n = n.min(frames.len() - i);
            // A batch comes from one port.
            n = frames[i..i + n].iter().take_while(|f| f.1 == port).count();
            let mut bufs: Vec<PacketBuf> =
                frames[i..i + n].iter().map(|f| PacketBuf::from_slice(&f.0)).collect();
            pl_cached.process_batch(&mut bufs, PortNo(port), now, &mut ws_cached, &mut out_cached);
            for f in &frames[i..i + n] {
                let mut b = PacketBuf::from_slice(&f.0);
                pl_plain.process(&mut b, PortNo(port), now, &mut ws_plain, &mut out_plain, &mut NoTrace);
            }
            i += n;
            now += 7;
        }
        prop_assert_eq!(&out_cached.outputs, &out_plain.outputs);
        prop_assert_eq!(&out_cached.packet_ins, &out_plain.packet_ins);
        let (mut c, p) = (ws_cached.counters.clone(), ws_plain.counters.clone());
        prop_assert_eq!(c.emc_hits + c.emc_misses + c.drops_for(weft_switchd::pipeline::DropReason::Malformed), c.packets);
        c.emc_hits = 0;
        c.emc_misses = 0;
        prop_assert_eq!(c, p);
        prop_assert_eq!(rule_stats(&pl_cached), rule_stats(&pl_plain));
    }
}

/// The cache is really used by the property above's kind of traffic (so
/// the property is not vacuous), and a new snapshot empties it.
#[test]
fn hits_happen_and_a_new_snapshot_invalidates() {
    let flows = [
        "table=0,priority=10,in_port=1,actions=resubmit(,1),output:2".to_owned(),
        "table=1,tcp,tp_dst=80,actions=mod_tp_dst:8080".to_owned(),
    ];
    let pl = build(&flows).unwrap();
    let mut ws = WorkerState::new(pl.config());
    let mut out = CollectSink::default();
    let frame = common::pkt(PACKETS[0]);
    let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::from_slice(&frame)).collect();
    pl.process_batch(&mut bufs, PortNo(1), 5, &mut ws, &mut out);
    assert_eq!((ws.counters.emc_misses, ws.counters.emc_hits), (1, 31));
    assert_eq!(ws.emc.used(), 1);
    // Rule counters: all 32, credited once for the group of 31 hits.
    for r in pl.rules() {
        assert_eq!(r.stats.get().0, 32, "{}", format_flow(&r.spec));
        assert_eq!(r.stats.get().2, 5);
    }
    assert_eq!(ws.counters.table(TableId(0)).lookups, 32);
    assert_eq!(ws.counters.table(TableId(1)).matched, 32);
    assert_eq!(out.outputs.len(), 32);
    assert!(
        out.outputs
            .iter()
            .all(|(p, b)| *p == PortNo(2) && b == &out.outputs[0].1)
    );
    // Same flows, new snapshot: the first packet misses again.
    let pl2 = build(&flows).unwrap();
    let mut bufs: Vec<PacketBuf> = (0..2).map(|_| PacketBuf::from_slice(&frame)).collect();
    pl2.process_batch(&mut bufs, PortNo(1), 6, &mut ws, &mut out);
    assert_eq!((ws.counters.emc_misses, ws.counters.emc_hits), (2, 32));
    for r in pl2.rules() {
        assert_eq!(r.stats.get().0, 2);
    }
}
