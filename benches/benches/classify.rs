//! Classifier lookup (`weft_switchd::pipeline::classifier`): rules x
//! distinct masks, hit and miss keys. Goal (classifier issue): >= 5 Mpps
//! with 1,000 rules in 20 masks.
//!
//! Rules are spread round-robin over the masks with pseudo-random values;
//! priorities differ by mask (as in a table where each match shape has its
//! own priority band) plus a little noise. Hit keys are rule keys with
//! random bits in the wildcarded positions; miss keys match no rule (no mask
//! is the catch-all), so a miss probes every subtable: the worst case.
//! Each iteration classifies a batch of 1,024 keys; throughput is in keys
//! (packets) per second. All groups here are timed in thread CPU time
//! (see `thread_cpu`).
//!
//! Group `emc`: the per-worker exact-match cache in front of the
//! classifier, measured through `Pipeline::process_batch` on 32-frame
//! batches (including copying the frames into the buffers, as a receive
//! would, about 40 instructions per packet of the ~365 of a hit, measured
//! with callgrind; the frame index wraps by a compare, not a division;
//! outputs counted by a sink that does nothing else), so a packet's
//! cost includes extraction, cache hash and compare, and the (replayed or
//! full) translation. Timed in thread CPU time (`CLOCK_THREAD_CPUTIME_ID`)
//! so that other processes on a shared machine do not count:
//! - `hit/<table>`: 32 flows, all cached after the first batch.
//! - `miss/<table>`: every packet a flow not seen for 32,768 packets
//!   (TCP source port cycling), so it misses the 4,096-entry cache, runs
//!   the classifier and is inserted (evicting). Hit rate checked < 5%.
//! - `off/<table>`: the cache disabled (classifier on every packet).
//!
//! Tables: `2flows` (`in_port=1 -> output:2`, `in_port=2 -> output:1`)
//! and `acl-1000r-20m` (`weft_benches::acl_1000r_20m`: 1,000 rules in 20
//! masks, the matching rule in the last subtable probed).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::flow::{
    ControllerReason, Cookie, Field, FlowKey, FlowMask, Match, PortNo, Priority, TableId,
};
use std::hint::black_box;
use weft_benches::{acl_1000r_20m, fixed_batches, parse_flows, tcp4_flow, thread_cpu};
use weft_switchd::buf::{BATCH_MAX, PacketBuf};
use weft_switchd::pipeline::classifier::Classifier;
use weft_switchd::pipeline::{EMC_ENTRIES, OutputSink, SwitchConfig, WorkerState, compile};

const BATCH: usize = 1024;

/// xorshift64*: deterministic inputs without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn prefix(plen: u32) -> u128 {
    if plen == 0 {
        0
    } else {
        u128::from(u32::MAX << (32 - plen))
    }
}

/// Twenty realistic masks; the first five are a typical mix.
fn masks() -> Vec<FlowMask> {
    use Field::*;
    let all = u128::MAX;
    let sets: Vec<Vec<(Field, u128)>> = vec![
        vec![(DlType, all), (NwDst, prefix(24))],
        vec![
            (DlType, all),
            (NwSrc, all),
            (NwDst, all),
            (NwProto, all),
            (TpSrc, all),
            (TpDst, all),
        ],
        vec![(InPort, all)],
        vec![(DlType, all), (NwProto, all), (TpDst, all)],
        vec![(Reg(0), all)],
        vec![(DlType, all)],
        vec![(DlType, all), (NwDst, prefix(8))],
        vec![(DlType, all), (NwDst, prefix(16))],
        vec![(DlType, all), (NwDst, prefix(32))],
        vec![(DlType, all), (NwSrc, prefix(16))],
        vec![(DlType, all), (NwSrc, prefix(24))],
        vec![(DlType, all), (NwSrc, prefix(32))],
        vec![(DlType, all), (NwProto, all), (TpSrc, all)],
        vec![(DlType, all), (NwDst, all), (NwProto, all), (TpDst, all)],
        vec![(DlType, all), (NwSrc, all), (NwDst, all)],
        vec![(InPort, all), (DlType, all)],
        vec![(InPort, all), (DlType, all), (NwDst, prefix(24))],
        vec![(Reg(0), all), (Reg(1), all)],
        vec![(Metadata, all), (DlType, all), (NwDst, all)],
        vec![(Reg(0), all), (DlType, all), (NwProto, all), (TpDst, all)],
    ];
    sets.into_iter()
        .map(|fields| {
            let mut m = Match::default();
            for (f, mask) in fields {
                m.set_masked(f, all, mask);
            }
            m.mask
        })
        .collect()
}

fn random_key(rng: &mut Rng) -> FlowKey {
    let mut k = FlowKey::default();
    k.set_in_port((rng.next() % 64) as u32);
    k.set_dl_type(0x0800);
    k.set_nw_src((rng.next() as u32).into());
    k.set_nw_dst((rng.next() as u32).into());
    k.set_nw_proto(if rng.next() & 1 == 0 { 6 } else { 17 });
    k.set_tp_src(rng.next() as u16);
    k.set_tp_dst(rng.next() as u16);
    k.set_reg(0, rng.next() as u32);
    k.set_reg(1, rng.next() as u32);
    k.set_metadata(rng.next() % 16);
    k
}

struct Setup {
    cls: Classifier<u32>,
    hits: Vec<FlowKey>,
    misses: Vec<FlowKey>,
}

fn setup(n_rules: usize, n_masks: usize) -> Setup {
    let masks = masks();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n_rules as u64) << 8 ^ n_masks as u64);
    let mut cls = Classifier::new();
    let mut rules = Vec::with_capacity(n_rules);
    for i in 0..n_rules {
        let mi = i % n_masks;
        let mask = masks[mi];
        let m = Match {
            key: random_key(&mut rng).masked(&mask),
            mask,
        };
        let band = ((mi * 7) % 20) as u16 * 100;
        let p = Priority(band + (rng.next() % 10) as u16);
        cls.insert(m, p, i as u32);
        rules.push(m);
    }
    let mut hits = Vec::with_capacity(BATCH);
    while hits.len() < BATCH {
        let m = rules[(rng.next() % rules.len() as u64) as usize];
        let r = random_key(&mut rng);
        let mut k = FlowKey::default();
        for (w, ((mk, mm), rk)) in
            k.0.iter_mut()
                .zip(m.key.0.iter().zip(m.mask.0.0.iter()).zip(r.0.iter()))
        {
            *w = mk | (rk & !mm);
        }
        hits.push(k);
    }
    let mut misses = Vec::with_capacity(BATCH);
    while misses.len() < BATCH {
        let mut k = random_key(&mut rng);
        // Off the rules' value space: not IPv4, port and registers unused.
        k.set_dl_type(0x86dd);
        k.set_in_port(1000);
        k.set_reg(0, 0);
        if cls.lookup(&k).is_none() {
            misses.push(k);
        }
    }
    assert!(hits.iter().all(|k| cls.lookup(k).is_some()));
    Setup { cls, hits, misses }
}

fn bench_classify(c: &mut Criterion) {
    if fixed_batches("").is_some() {
        return; // only the `emc` group has a fixed-count mode
    }
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n_rules in [1usize, 100, 1_000, 10_000] {
        for n_masks in [1usize, 5, 20] {
            if n_masks > n_rules {
                continue;
            }
            let s = setup(n_rules, n_masks);
            for (kind, keys) in [("hit", &s.hits), ("miss", &s.misses)] {
                let id = BenchmarkId::new(kind, format!("{n_rules}r-{n_masks}m"));
                g.bench_with_input(id, keys, |b, keys| {
                    b.iter_custom(|iters| {
                        let start = thread_cpu();
                        for _ in 0..iters {
                            let mut sum = 0u32;
                            for k in keys.iter() {
                                if let Some(h) = s.cls.lookup(black_box(k)) {
                                    sum = sum.wrapping_add(*h.value);
                                }
                            }
                            black_box(sum);
                        }
                        thread_cpu().saturating_sub(start)
                    })
                });
            }
        }
    }
    g.finish();
}

/// Counts outputs (the sink of the EMC benches: no port work).
#[derive(Default)]
struct Count(u64);

impl OutputSink for Count {
    fn output(&mut self, _port: PortNo, bytes: &[u8]) {
        black_box(bytes);
        self.0 += 1;
    }
    fn packet_in(&mut self, _r: ControllerReason, _t: TableId, _c: Cookie, _b: &[u8]) {}
}

/// `n` distinct TCP flows to 10.244.x.y:80 from source ports 1024...
fn emc_frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let dst = [10, 244, (i % 8) as u8, (i * 7 % 250 + 1) as u8];
            tcp4_flow(1024 + (i / 8) as u16, dst, 80).bytes
        })
        .collect()
}

fn bench_emc(c: &mut Criterion) {
    let mut g = c.benchmark_group("emc");
    g.throughput(Throughput::Elements(BATCH_MAX as u64));
    let hit_frames = emc_frames(BATCH_MAX);
    let miss_frames = emc_frames(32_768);
    for (table, text) in [
        (
            "2flows",
            "in_port=1,actions=output:2\nin_port=2,actions=output:1".to_owned(),
        ),
        ("acl-1000r-20m", acl_1000r_20m()),
    ] {
        let cfg = SwitchConfig::with_ports([PortNo(1), PortNo(2)]);
        let pl = compile(&parse_flows(&text), cfg).unwrap_or_else(|e| panic!("{e}"));
        for (kind, frames, entries) in [
            ("hit", &hit_frames, EMC_ENTRIES),
            ("miss", &miss_frames, EMC_ENTRIES),
            ("off", &hit_frames, 0),
        ] {
            let mut ws = WorkerState::with_emc_entries(pl.config(), entries);
            let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| PacketBuf::new()).collect();
            let mut sink = Count::default();
            let mut next = 0usize;
            // One batch: copy 32 frames in (as a receive would), process.
            // The frame index wraps by compare, not `%` (a division per
            // packet was harness time, not the switch's).
            let mut run = |ws: &mut WorkerState, sink: &mut Count| {
                for b in &mut bufs {
                    b.set_from_slice(&frames[next]);
                    next += 1;
                    if next == frames.len() {
                        next = 0;
                    }
                }
                pl.process_batch(black_box(&mut bufs), PortNo(1), 0, ws, sink);
            };
            // Warm up (fills the cache for `hit`), then check the kind.
            for _ in 0..2048 {
                run(&mut ws, &mut sink);
            }
            let (h0, m0) = (ws.counters.emc_hits, ws.counters.emc_misses);
            for _ in 0..64 {
                run(&mut ws, &mut sink);
            }
            let (h, m) = (ws.counters.emc_hits - h0, ws.counters.emc_misses - m0);
            match kind {
                "hit" => assert_eq!((h, m), (64 * BATCH_MAX as u64, 0), "{table}: all hits"),
                "miss" => assert!(h * 20 < h + m, "{table}: {h} hits in {} packets", h + m),
                _ => assert_eq!((h, m), (0, 0)),
            }
            assert_eq!(
                ws.counters.outputs, ws.counters.packets,
                "{table}: all forwarded"
            );
            if let Some(n) = fixed_batches(&format!("emc/{kind}/{table}")) {
                for _ in 0..n {
                    run(&mut ws, &mut sink);
                }
                continue;
            }
            g.bench_function(BenchmarkId::new(kind, table), |b| {
                b.iter_custom(|iters| {
                    let start = thread_cpu();
                    for _ in 0..iters {
                        run(&mut ws, &mut sink);
                    }
                    thread_cpu().saturating_sub(start)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_classify, bench_emc);
criterion_main!(benches);
