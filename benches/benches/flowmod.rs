//! Flow-mod latency on a 10,000-flow table (`weft_switchd::control`): one
//! request through `Controller::handle` in-process (no socket), from the
//! request to the published snapshot and the persisted change, as the
//! control socket would acknowledge it.
//!
//! The table: 10,000 flows in 4 tables and 12 masks (`flowmod_table`):
//! table 0 dispatch by `nw_src` /24 (`goto_table`), table 1 ACL-style
//! `nw_dst` /16../32 + `tp_dst` (as `acl_1000r_20m`), table 2 exact
//! `nw_dst` + `tp_dst`, table 3 by `dl_vlan`. Every action is `drop` or a
//! goto, so no port is needed.
//!
//! Cases (the table stays at 10,000 or 10,001 flows):
//! - `add`: add of one flow in table 1 (new the first time, then an add of
//!   an existing id, which replaces it: the same path as a new flow).
//! - `delete`: strict delete of one flow (re-added untimed before each
//!   iteration, `iter_custom`).
//! - `modify`: strict modify of one flow's actions.
//! - `bundle10`: a 10-change bundle (5 adds, 5 strict deletes of flows
//!   re-added untimed).
//!
//! Persistence goes to a temporary state directory on `/dev/shm` when it
//! exists (tmpfs: `fsync` is nearly free, so this is the CPU cost; on a
//! disk add its sync latency once per request). The mean includes the
//! periodic journal compaction (a full snapshot every few thousand
//! requests) where the journal exists.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use protocol::ctl::Body;
use protocol::ctl::{BundleId, FlowChange, FlowFilter, FlowModify};
use protocol::flow::FlowSpec;
use protocol::text::parse_flow;
use weft_benches::Rng;
use weft_switchd::control::{Controller, NullDatapath};
use weft_switchd::state::{Settings, SwitchState};

/// 10,000 flows in 4 tables and 12 masks (see the module doc).
fn flowmod_table() -> Vec<FlowSpec> {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut v = Vec::new();
    for i in 0..1000u32 {
        v.push(format!(
            "table=0,priority=100,ip,nw_src=10.{}.{}.0/24,actions=goto_table:1",
            i >> 8,
            i & 255
        ));
    }
    for i in 0..5000u32 {
        let plen = 16 + 4 * (i % 5);
        let addr = (0xc0a8_0000 | (rng.next_u64() as u32 & 0xffff)) & (u32::MAX << (32 - plen));
        let port = 10_000 + (rng.next_u64() % 50_000) as u16;
        v.push(format!(
            "table=1,priority={},tcp,nw_dst={}/{plen},tp_dst={port},actions=drop",
            100 + i % 900,
            std::net::Ipv4Addr::from(addr)
        ));
    }
    for i in 0..3000u32 {
        v.push(format!(
            "table=2,priority=50,tcp,nw_dst=10.244.{}.{},tp_dst={},actions=drop",
            (i >> 8) & 255,
            i & 255,
            80 + i % 7
        ));
    }
    for i in 0..1000u32 {
        v.push(format!(
            "table=3,priority=10,dl_vlan={},actions=drop",
            1 + i
        ));
    }
    v.iter()
        .map(|l| parse_flow(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn state_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap_or_else(|e| panic!("tempdir: {e}"))
    } else {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }
}

fn controller(dir: &std::path::Path) -> Controller {
    let pipeline = Controller::empty_pipeline().unwrap_or_else(|e| panic!("{e}"));
    let mut c = Controller::start(
        SwitchState::new(Settings::default()),
        dir.to_path_buf(),
        pipeline,
        Box::new(NullDatapath::default()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ok(c.handle(&Body::AddFlows {
        flows: flowmod_table(),
    }));
    assert_eq!(c.state().flows.len(), 10_000);
    c
}

fn ok(b: Body) {
    assert!(matches!(b, Body::FlowsChanged(_)), "{b:?}");
}

fn flow(s: &str) -> FlowSpec {
    parse_flow(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn strict_delete(spec: &FlowSpec) -> FlowFilter {
    FlowFilter {
        table: Some(spec.table),
        r#match: spec.r#match,
        priority: Some(spec.priority),
        ..FlowFilter::default()
    }
}

fn bench(c: &mut Criterion) {
    let dir = state_dir();
    let mut ctl = controller(dir.path());
    let mut g = c.benchmark_group("flowmod-10k");
    g.sample_size(20).measurement_time(Duration::from_secs(10));

    let add = flow("table=1,priority=777,tcp,nw_dst=198.51.100.0/24,tp_dst=443,actions=drop");
    g.bench_function("add", |b| {
        b.iter(|| {
            ok(black_box(ctl.handle(&Body::AddFlows {
                flows: vec![add.clone()],
            })))
        });
    });

    let victim = flow("table=2,priority=50,tcp,nw_dst=10.244.1.1,tp_dst=85,actions=drop");
    let del = Body::DeleteFlows(strict_delete(&victim));
    g.bench_function("delete", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                ok(ctl.handle(&Body::AddFlows {
                    flows: vec![victim.clone()],
                }));
                let s = Instant::now();
                ok(black_box(ctl.handle(&del)));
                t += s.elapsed();
            }
            t
        });
    });

    let mut flip = false;
    let m = |actions: &str| FlowModify {
        spec: flow(&format!(
            "table=0,priority=100,ip,nw_src=10.1.2.0/24,actions={actions}"
        )),
        strict: true,
    };
    let (m1, m2) = (m("goto_table:2"), m("goto_table:1"));
    g.bench_function("modify", |b| {
        b.iter(|| {
            flip = !flip;
            let body = Body::ModifyFlows(if flip { m1.clone() } else { m2.clone() });
            ok(black_box(ctl.handle(&body)));
        });
    });

    let adds: Vec<FlowSpec> = (0..5)
        .map(|i| {
            flow(&format!(
                "table=2,priority=60,tcp,nw_dst=203.0.113.{i},tp_dst=8080,actions=drop"
            ))
        })
        .collect();
    let gone: Vec<FlowSpec> = (0..5)
        .map(|i| {
            flow(&format!(
                "table=2,priority=50,tcp,nw_dst=10.244.2.{i},tp_dst={},actions=drop",
                80 + (512 + i) % 7
            ))
        })
        .collect();
    let mut changes: Vec<FlowChange> = adds.iter().cloned().map(FlowChange::Add).collect();
    changes.extend(gone.iter().map(|s| FlowChange::Delete(strict_delete(s))));
    let mut bundle_id = 0u32;
    g.bench_function("bundle10", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                ok(ctl.handle(&Body::AddFlows {
                    flows: gone.clone(),
                }));
                bundle_id += 1;
                let s = Instant::now();
                let r = ctl.commit_bundle(BundleId(bundle_id), &changes);
                t += s.elapsed();
                let r = r.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(r.removed, 5);
            }
            t
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
