//! The whole pipeline per batch (`weft_switchd::pipeline`): receive 32
//! frames from an in-memory port, run each through `Pipeline::process`
//! (with `NoTrace`), send the outputs to the other in-memory port's tx
//! queue and flush it once per batch, as a worker does.
//!
//! Timed: `recv_batch` + 32 x `process` + `send` + `flush`. Not timed
//! (`iter_custom`): injecting the 32 frames and draining the sent frames with
//! `take_sent`. Note that `MemoryPort` copies each frame into a `Vec` on
//! receive-injection and on flush (it is a test port), so the flush cost
//! here includes 32 small allocations that a real port does not make.
//!
//! Scenarios (all forward every packet to port 2, checked before timing):
//! - `2flows`: `in_port=1 -> output:2`, `in_port=2 -> output:1`.
//! - `acl-1000r-20m`: 999 higher-priority drop rules over 19 masks
//!   (`nw_dst` prefixes /16 to /32, `tp_dst` exact, `in_port`) that the
//!   traffic never matches, plus the matching rule at the lowest priority
//!   in a 20th mask: every subtable is probed.
//! - `3tables`: port security (table 0, `goto_table:1`) -> ACL (table 1,
//!   58 rules, `resubmit(,2)` for allowed ports) -> output (table 2, per
//!   /24).
//!
//! The 32 frames are TCP SYNs to 32 different destinations (addresses in
//! 10.244.0.0/21, eight destination ports). Throughput is in packets.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::flow::{ControllerReason, Cookie, FlowSpec, PortNo, TableId};
use protocol::text::parse_flow;
use weft_benches::tcp4_to;
use weft_switchd::buf::{BATCH_MAX, PacketBuf};
use weft_switchd::pipeline::{NoTrace, OutputSink, Pipeline, SwitchConfig, WorkerState, compile};
use weft_switchd::port::{MemoryPort, MemoryPortHandle, Port};

const BATCH: usize = 32;
const PORTS: [u16; 8] = [80, 443, 8080, 8443, 22, 53, 3306, 5432];

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

fn flows(text: &str) -> Vec<FlowSpec> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_flow(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
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

fn ip_str(ip: u32) -> String {
    std::net::Ipv4Addr::from(ip).to_string()
}

/// 999 drop rules in 19 masks the traffic never matches (destinations in
/// 192.168.0.0/16 and 172.16.0.0/12, ports >= 10000), priorities 100..1000;
/// the matching rule has priority 1 and its own mask.
fn acl() -> String {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut s = String::new();
    for i in 0..999u32 {
        let m = i % 19;
        let base: u32 = if rng.next() & 1 == 0 {
            0xc0a8_0000 | (rng.next() as u32 & 0xffff)
        } else {
            0xac10_0000 | (rng.next() as u32 & 0x000f_ffff)
        };
        let port = 10_000 + (rng.next() % 50_000) as u16;
        let prio = 100 + (i * 37) % 900;
        let rule = if m < 18 {
            let plen = 16 + 2 * (m % 9);
            let net = base & (u32::MAX << (32 - plen));
            if m < 9 {
                format!(
                    "priority={prio},tcp,nw_dst={}/{plen},tp_dst={port}",
                    ip_str(net)
                )
            } else {
                format!(
                    "priority={prio},in_port=1,tcp,nw_dst={}/{plen}",
                    ip_str(net)
                )
            }
        } else {
            format!("priority={prio},in_port=1,tcp,tp_dst={port}")
        };
        s.push_str(&rule);
        s.push_str(",actions=drop\n");
    }
    s.push_str("priority=1,in_port=1,ip,nw_dst=10.244.0.0/16,actions=output:2\n");
    s
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
    fn new(flow_text: &str) -> Setup {
        let cfg = SwitchConfig::with_ports([PortNo(1), PortNo(2)]);
        let pl = compile(&flows(flow_text), cfg).unwrap_or_else(|e| panic!("compile: {e}"));
        let ws = WorkerState::new(pl.config());
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
        let start = Instant::now();
        let n = self.ports[0]
            .recv_batch(&mut self.bufs)
            .unwrap_or_else(|e| panic!("recv: {e}"));
        let mut sink = PortSink {
            ports: &mut self.ports,
            errors: 0,
        };
        for b in &mut self.bufs[..n] {
            self.pl
                .process(b, PortNo(1), 0, &mut self.ws, &mut sink, &mut NoTrace);
        }
        let errors = sink.errors;
        let sent = self.ports[1]
            .flush()
            .unwrap_or_else(|e| panic!("flush: {e}"));
        let t = start.elapsed();
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
        ("acl-1000r-20m", acl()),
        ("3tables", three_tables()),
    ] {
        let mut s = Setup::new(&text);
        let (_, sent) = s.batch();
        assert_eq!(sent, BATCH as u64, "{name}: every packet reaches port 2");
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += s.batch().0;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
