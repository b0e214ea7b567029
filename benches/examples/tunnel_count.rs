//! Runs one tunnel bench row a fixed number of times, for instruction
//! counts where `perf stat -e instructions:u` has no hardware counter
//! (this VM): the difference of two `cachegrind` runs divided by the
//! difference of their iteration counts is the row's instructions per
//! packet, without the set-up.
//!
//! ```text
//! cargo build --profile bench -p weft-benches --example tunnel_count
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/tunnel_count encap/vxlan_ipv6 100000
//! ```
//!
//! Rows as in `benches/tunnel.rs`: `encap/<scenario>` or
//! `decap/<scenario>`, scenarios in `weft_benches::tunnel::SCENARIOS`.

use std::hint::black_box;
use std::process::ExitCode;

use protocol::flow::FlowKey;
use weft_benches::tunnel::{self, SCENARIOS};
use weft_switchd::buf::PacketBuf;
use weft_switchd::tunnel::Decap;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(row), Some(Ok(iters))) = (args.get(1), args.get(2).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: tunnel_count encap|decap/<scenario> <iterations>");
        return ExitCode::FAILURE;
    };
    let Some((op, name)) = row.split_once('/') else {
        eprintln!("row {row:?}: expected encap/<scenario> or decap/<scenario>");
        return ExitCode::FAILURE;
    };
    let Some(&(_, port, opts, v6)) = SCENARIOS.iter().find(|s| s.0 == name) else {
        eprintln!("row {row:?}: unknown scenario {name:?}");
        return ExitCode::FAILURE;
    };
    let (inner, base, layers) = tunnel::inner();
    let tx = tunnel::tx();
    let rx = tunnel::rx();
    let key = tunnel::key(&base, opts, v6);
    let tp = tx.port(port).expect("port");
    let mut pkt = PacketBuf::from_slice(&inner);
    match op {
        "encap" => {
            for _ in 0..iters {
                let n = tx
                    .encap(tp, black_box(&key), &layers, &mut pkt)
                    .expect("encap");
                black_box(pkt.data());
                pkt.pull_front(n);
            }
        }
        "decap" => {
            let n = tx.encap(tp, &key, &layers, &mut pkt).expect("encap");
            let mut buf = PacketBuf::from_slice(pkt.data());
            let mut k = FlowKey::default();
            for _ in 0..iters {
                let d = rx.decap(black_box(&mut buf), black_box(&mut k));
                let Decap::Inner { outer_len, .. } = d else {
                    panic!("{d:?}")
                };
                black_box(&k);
                buf.push_front(outer_len);
            }
            assert_eq!(buf.len(), inner.len() + n);
        }
        _ => {
            eprintln!("row {row:?}: expected encap or decap");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
