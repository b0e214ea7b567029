//! Flow-key extraction per packet kind (`protocol::flow::extract`).
//! Goal (foundation issue): a TCP/IPv4 frame's full key in <= 30 ns.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::flow::FlowKey;
use protocol::flow::extract::{ExtractConfig, extract};
use std::hint::black_box;

fn bench_extract(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(1));
    let cfg = ExtractConfig { vlan_limit: 2 };
    for f in weft_benches::all() {
        let mut key = FlowKey::default();
        g.bench_function(f.name, |b| {
            b.iter(|| {
                let e = extract(black_box(&f.bytes), &cfg, &mut key);
                black_box((&key, e));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_extract);
criterion_main!(benches);
