//! Tunnel encapsulation and decapsulation per packet
//! (`weft_switchd::tunnel`), sans-IO: `Tunnels::encap` on a 128-byte inner
//! TCP/IPv4 frame whose key is already extracted (the outer headers are
//! written into the headroom, then pulled off again so every iteration
//! starts from the same buffer), and `Tunnels::decap` on the encapsulated
//! frame (the outer headers are pushed back afterwards, which re-exposes
//! the unchanged bytes still in the headroom). Only encap or decap is
//! between the clock readings, besides the `PacketBuf` offset moves (two
//! integer updates): the decap key is not reset per iteration (decap
//! writes the same tunnel fields into it every time; the pipeline's
//! per-packet key reset belongs to extraction, measured in `extract`).
//! No frame copy or buffer reset is in the loop: besides encap or decap,
//! one iteration is the call, one `PacketBuf` offset move (with its
//! bounds and offload checks, as the pipeline's `emit_tunnel` does after
//! sending) and `black_box`, about 35 instructions by cachegrind
//! (`examples/tunnel_count`).
//!
//! Scenarios: Geneve with 0 and 2 options (4 and 8 data bytes, mapped to
//! `tun_metadata0/1`) and VXLAN, each over an IPv4 underlay (no UDP
//! checksum, the OVS default) and an IPv6 underlay (`_ipv6`: the UDP
//! checksum over the whole packet is computed, RFC 8200).
//!
//! Timed in thread CPU time (`weft_benches::thread_cpu`), so that other
//! processes on the shared machine do not count.
//!
//! Run alone (about 40 s for the 12 rows after the build):
//! `cargo bench -p weft-benches --bench tunnel -- --warm-up-time 1
//! --measurement-time 2`; one row: append its name as a filter, e.g.
//! `encap/geneve2_ipv6`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::flow::FlowKey;
use weft_benches::thread_cpu;
use weft_benches::tunnel::{self, SCENARIOS};
use weft_switchd::buf::PacketBuf;
use weft_switchd::tunnel::Decap;

fn bench(c: &mut Criterion) {
    let (inner, base, layers) = tunnel::inner();
    let tx = tunnel::tx();
    let rx = tunnel::rx();
    let mut g = c.benchmark_group("tunnel");
    g.throughput(Throughput::Elements(1));
    for (name, port, opts, v6) in SCENARIOS {
        let key = tunnel::key(&base, opts, v6);
        // The snapshot's own port value, as the pipeline passes it.
        let tp = tx.port(port).expect("port");
        let mut pkt = PacketBuf::from_slice(&inner);
        g.bench_function(format!("encap/{name}"), |b| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    let n = tx
                        .encap(tp, black_box(&key), &layers, &mut pkt)
                        .expect("encap");
                    black_box(pkt.data());
                    pkt.pull_front(n);
                }
                thread_cpu().saturating_sub(start)
            })
        });
        let n = tx.encap(tp, &key, &layers, &mut pkt).expect("encap");
        let wire = pkt.data().to_vec();
        pkt.pull_front(n);
        let mut buf = PacketBuf::from_slice(&wire);
        // Checked once before timing.
        let mut k0 = FlowKey::default();
        assert!(matches!(rx.decap(&mut buf, &mut k0), Decap::Inner { .. }));
        assert_eq!(buf.data(), &inner[..]);
        assert!(buf.push_front(n).is_some());
        assert_eq!(buf.data(), &wire[..]);
        let mut k = FlowKey::default();
        g.bench_function(format!("decap/{name}"), |b| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    let d = rx.decap(black_box(&mut buf), black_box(&mut k));
                    let Decap::Inner { outer_len, .. } = d else {
                        panic!("{d:?}")
                    };
                    black_box(&k);
                    buf.push_front(outer_len);
                }
                thread_cpu().saturating_sub(start)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
