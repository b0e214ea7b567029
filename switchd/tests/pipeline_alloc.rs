//! The pipeline's per-packet path does not allocate after warm-up:
//! `Pipeline::process` with `NoTrace` over outputs, FLOOD, NORMAL,
//! resubmits, gotos, header rewrites, VLAN push/pop, dec_ttl, the action
//! set, conjunctions, packet-ins, misses and malformed packets, counted by
//! a global allocator wrapper.

#![allow(unsafe_code, clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use protocol::flow::{ControllerReason, Cookie, PortNo, TableId};
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::{MissBehavior, NoTrace, OutputSink, WorkerState, compile};

/// Counts allocations made by the current thread, then defers to `System`.
struct Counting;

thread_local! {
    // `const` initialisation: touching it never allocates.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the only extra work is a
// thread-local counter increment, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above; `ptr` came from this allocator, i.e. `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

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
