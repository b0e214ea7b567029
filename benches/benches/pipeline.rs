//! The whole pipeline per batch (`weft_switchd::pipeline`): receive 32
//! frames from an in-memory port, run them through `Pipeline::process_batch`
//! with the exact-match cache on (`emc-on`: after the first batch every
//! packet is a cache hit, the 32 frames being 32 flows) or off (`emc-off`:
//! every packet takes the classifier path), send the outputs to the other
//! in-memory port's tx queue and flush it once per batch, as a worker does.
//!
//! Timed in thread CPU time (`weft_benches::thread_cpu`: the machine is
//! shared, wall time would count other processes; read twice per batch, a
//! system call each, included): `recv_batch` + `process_batch` + `send` +
//! `flush`. Not timed
//! (`iter_custom`): injecting the 32 frames and draining the sent frames with
//! `take_sent`. Note that `MemoryPort` copies each frame into a `Vec` on
//! receive-injection and on flush (it is a test port), so the flush cost
//! here includes 32 small allocations that a real port does not make.
//!
//! Scenarios (all forward every packet to port 2, checked before timing):
//! - `2flows`: `in_port=1 -> output:2`, `in_port=2 -> output:1`.
//! - `acl-1000r-20m` (`weft_benches::acl_1000r_20m`): 999 higher-priority
//!   drop rules over 19 masks (`nw_dst` prefixes /16 to /32, `tp_dst` exact, `in_port`) that the
//!   traffic never matches, plus the matching rule at the lowest priority
//!   in a 20th mask: every subtable is probed.
//! - `3tables`: port security (table 0, `goto_table:1`) -> ACL (table 1,
//!   58 rules, `resubmit(,2)` for allowed ports) -> output (table 2, per
//!   /24).
//!
//! The 32 frames are TCP SYNs to 32 different destinations (addresses in
//! 10.244.0.0/21, eight destination ports). Throughput is in packets.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::flow::{ControllerReason, Cookie, PortNo, TableId};
use weft_benches::{acl_1000r_20m, fixed_batches, parse_flows, tcp4_to, thread_cpu};
use weft_switchd::buf::{BATCH_MAX, PacketBuf};
use weft_switchd::pipeline::{
    EMC_ENTRIES, OutputSink, Pipeline, SwitchConfig, WorkerState, compile,
};
use weft_switchd::port::{MemoryPort, MemoryPortHandle, Port};

const BATCH: usize = 32;
const PORTS: [u16; 8] = [80, 443, 8080, 8443, 22, 53, 3306, 5432];

/// Forwards outputs into the memory ports' tx queues (port `n` is
/// `ports[n - 1]`), as the worker's per-port tx batches do.
struct PortSink<'a> {
    ports: &'a mut [MemoryPort],
    errors: u64,
}

impl OutputSink for PortSink<'_> {
    fn output(&mut self, port: PortNo, bytes: &[u8]) {
        let p = (port.0 as usize)
            .checked_sub(1)
            .and_then(|i| self.ports.get_mut(i));
        if p.is_none_or(|p| p.send(bytes).is_err()) {
            self.errors += 1;
        }
    }
    fn packet_in(&mut self, _r: ControllerReason, _t: TableId, _c: Cookie, _bytes: &[u8]) {
        self.errors += 1;
    }
}

fn frames() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let dst = [10, 244, (i % 8) as u8, (i * 7 % 250 + 1) as u8];
            tcp4_to(dst, PORTS[i / 4 % PORTS.len()]).bytes
        })
        .collect()
}

fn two_flows() -> String {
    "in_port=1,actions=output:2\nin_port=2,actions=output:1\n".into()
}

/// Port security -> ACL -> output.
fn three_tables() -> String {
    let mut s = String::from(
        "table=0,priority=100,in_port=1,dl_src=02:00:00:00:00:01,ip,nw_src=10.244.0.1,actions=goto_table:1
table=0,priority=100,in_port=1,dl_src=02:00:00:00:00:01,arp,arp_spa=10.244.0.1,actions=goto_table:1
table=0,priority=90,in_port=1,actions=drop
table=0,priority=100,in_port=2,actions=goto_table:1
table=1,priority=0,actions=drop
",
    );
    for i in 0..50u32 {
        s.push_str(&format!(
            "table=1,priority={},tcp,nw_dst=192.168.{i}.0/24,tp_dst={},actions=drop\n",
            200 + i,
            1000 + i
        ));
    }
    for p in PORTS {
        s.push_str(&format!(
            "table=1,priority=100,tcp,nw_dst=10.244.0.0/16,tp_dst={p},actions=resubmit(,2)\n"
        ));
    }
    for k in 0..8 {
        s.push_str(&format!(
            "table=2,priority=100,ip,nw_dst=10.244.{k}.0/24,actions=output:2\n"
        ));
    }
    s
}

struct Setup {
    pl: Pipeline,
    ws: WorkerState,
    ports: Vec<MemoryPort>,
    handles: Vec<MemoryPortHandle>,
    bufs: Vec<PacketBuf>,
    frames: Vec<Vec<u8>>,
}

impl Setup {
    fn new(flow_text: &str, emc_entries: usize) -> Setup {
        let cfg = SwitchConfig::with_ports([PortNo(1), PortNo(2)]);
        let pl = compile(&parse_flows(flow_text), cfg).unwrap_or_else(|e| panic!("compile: {e}"));
        let ws = WorkerState::with_emc_entries(pl.config(), emc_entries);
        let (mut ports, mut handles) = (Vec::new(), Vec::new());
        for name in ["p1", "p2"] {
            let (p, h) = MemoryPort::new(name).unwrap_or_else(|e| panic!("memory port: {e}"));
            ports.push(p);
            handles.push(h);
        }
        Setup {
            pl,
            ws,
            ports,
            handles,
            bufs: (0..BATCH_MAX).map(|_| PacketBuf::new()).collect(),
            frames: frames(),
        }
    }

    /// Injects the batch (not timed), then receives, processes, sends and
    /// flushes it (timed); returns the time taken and the packets forwarded.
    fn batch(&mut self) -> (Duration, u64) {
        for f in &self.frames {
            self.handles[0].inject(f);
        }
        let start = thread_cpu();
        let n = self.ports[0]
            .recv_batch(&mut self.bufs)
            .unwrap_or_else(|e| panic!("recv: {e}"));
        let mut sink = PortSink {
            ports: &mut self.ports,
            errors: 0,
        };
        self.pl
            .process_batch(&mut self.bufs[..n], PortNo(1), 0, &mut self.ws, &mut sink);
        let errors = sink.errors;
        let sent = self.ports[1]
            .flush()
            .unwrap_or_else(|e| panic!("flush: {e}"));
        let t = thread_cpu().saturating_sub(start);
        black_box(self.handles[1].take_sent());
        assert_eq!(errors, 0);
        (t, sent as u64)
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, text) in [
        ("2flows", two_flows()),
        ("acl-1000r-20m", acl_1000r_20m()),
        ("3tables", three_tables()),
    ] {
        for (cache, entries) in [("emc-on", EMC_ENTRIES), ("emc-off", 0)] {
            let mut s = Setup::new(&text, entries);
            let (_, sent) = s.batch();
            assert_eq!(sent, BATCH as u64, "{name}: every packet reaches port 2");
            if let Some(n) = fixed_batches(&format!("pipeline/{cache}/{name}")) {
                for _ in 0..n {
                    s.batch();
                }
                continue;
            }
            g.bench_function(BenchmarkId::new(cache, name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += s.batch().0;
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
