//! One-shot timings of the compiler on the issue's fixture (10,000 pods,
//! 1,000 NetworkPolicies, 100 namespaces, 50 nodes), for profiling
//! (`perf record`) and peak memory (`/usr/bin/time -v`), which criterion's
//! repeated runs do not give:
//!
//! ```text
//! cargo build --profile bench -p weft-benches --example compile_stages
//! /usr/bin/time -v target/release/examples/compile_stages fixture|translated [THREADS]
//! ```
//!
//! Prints the wall time, the process CPU time (every thread) and the
//! calling thread's CPU time of `Compiler::new` (parallel over nodes; with
//! `THREADS`, `Compiler::with_threads(.., THREADS)`: 1 gives the serial
//! cost), and the thread CPU time of `Compiler::update`
//! with one pod added, one pod removed, one pod relabelled, one policy
//! changed (the same changes as `benches/compile.rs`) and with nothing
//! changed (`noop`: the floor, comparing the two models), on the fixture's own model
//! (`fixture`) or on the model translated from its manifests
//! (`translated`, with return-traffic ACLs).

use std::time::{Duration, Instant};

use weft_benches::{process_cpu, thread_cpu};
use weft_controller::compile::fixture::{PeerSpec, PodSpec, RuleSpec, Spec};
use weft_controller::compile::{CompileConfig, Compiler};
use weft_controller::model::{L4Protocol, LogicalModel, ModelDelta};
use weft_controller::source::{Manifests, load_str};
use weft_controller::translate::translate;

fn translated(s: &Spec) -> LogicalModel {
    let yaml = s.manifests_yaml();
    let docs: Vec<&str> = yaml.split("---\n").filter(|d| !d.is_empty()).collect();
    let mut all = Manifests::default();
    for (i, c) in docs.chunks(1000).enumerate() {
        all.extend(
            load_str(&format!("f{i}.yaml"), &c.join("---\n"))
                .unwrap_or_else(|e| panic!("generated manifests: {e}")),
        );
    }
    translate(&all)
        .unwrap_or_else(|e| panic!("generated manifests: {e}"))
        .model
}

/// A `/proc/self/status` line's value in MB (`VmRSS`, `VmHWM`), 0 if
/// unreadable.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "fixture".into());
    let threads: Option<usize> = std::env::args().nth(2).and_then(|t| t.parse().ok());
    let base = Spec::generate(1, 50, 100, 10_000, 1_000);
    let mut added = base.clone();
    added.pods.push(PodSpec {
        tenant: 0,
        ns: "ns-7".into(),
        name: "pod-new".into(),
        node: 3,
        host: 254,
        labels: ["app-7".to_owned()].into_iter().collect(),
    });
    let mut changed = base.clone();
    if let Some(p) = changed.policies.get_mut(17) {
        p.ingress = vec![RuleSpec {
            peers: Some(vec![PeerSpec::Label("app-3".into())]),
            ports: vec![(L4Protocol::Tcp, 8080, 8080)],
        }];
    }
    let mut removed = base.clone();
    removed.pods.remove(1234);
    let mut relabelled = base.clone();
    if let Some(p) = relabelled.pods.get_mut(1234) {
        p.labels = ["app-3".to_owned()].into_iter().collect();
    }
    let specs = [
        ("pod_add", added),
        ("pod_remove", removed),
        ("pod_relabel", relabelled),
        ("policy_change", changed),
        ("noop", base.clone()),
    ];
    let build = |s: &Spec| match which.as_str() {
        "translated" => translated(s),
        _ => s.build(),
    };
    let m0 = build(&base);
    let cfg = CompileConfig::default();
    let rss0 = status_mb("VmRSS:");
    let w0 = Instant::now();
    let p0 = process_cpu();
    let t0 = thread_cpu();
    let c = match threads {
        Some(n) => Compiler::with_threads(m0, cfg, n),
        None => Compiler::new(m0, cfg),
    };
    let full = thread_cpu() - t0;
    let all = process_cpu() - p0;
    let wall = w0.elapsed();
    let total: usize = c.nodes().map(|n| c.flow_count(n)).sum();
    println!(
        "{which}: full {:.3} s wall, {:.3} s CPU of all threads, {:.3} s CPU of this thread (threads: {}), {total} flows; RSS {rss0:.0} MB before, {:.0} MB after, peak {:.0} MB",
        secs(wall),
        secs(all),
        secs(full),
        threads.map_or_else(|| "one per core".to_owned(), |n| n.to_string()),
        status_mb("VmRSS:"),
        status_mb("VmHWM:")
    );
    // Profiling mode: `WEFT_ONLY=pod_add WEFT_REPEAT=30` runs only that
    // change's `update_with`, that many times (each on a fresh clone), so
    // that a `perf record` of the run is not dominated by `Compiler::new`.
    let only = std::env::var("WEFT_ONLY").ok();
    let repeat: usize = std::env::var("WEFT_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    for (what, s) in &specs {
        if let Some(o) = &only {
            if o != what {
                continue;
            }
            let m = build(s);
            let delta = ModelDelta::between(c.model(), &m);
            let mut best = f64::MAX;
            for _ in 0..repeat {
                let mut c2 = c.clone();
                let m2 = m.clone();
                let t0 = thread_cpu();
                let (_, old) = c2.update_with(m2, &delta);
                best = best.min(secs(thread_cpu() - t0));
                drop(old);
            }
            println!(
                "{which}: {what} with delta, best of {repeat}: {:.3} ms",
                best * 1e3
            );
            continue;
        }
        let m = build(s);
        let delta = ModelDelta::between(c.model(), &m);
        let mut c1 = c.clone();
        let t0 = thread_cpu();
        let d = c1.update(m.clone());
        let t = thread_cpu() - t0;
        let n: usize = d.values().map(|x| x.len()).sum();
        println!(
            "{which}: {what} {:.3} ms, {n} flow changes on {} nodes, {} units recompiled",
            secs(t) * 1e3,
            d.len(),
            c1.recompiled().len()
        );
        drop(c1);
        // The same change with the delta given (what an incremental
        // translation knows), and the old model dropped outside the timing.
        let mut c2 = c.clone();
        let t0 = thread_cpu();
        let (d2, old) = c2.update_with(m, &delta);
        let t = thread_cpu() - t0;
        assert_eq!(d, d2, "update_with differs from update");
        let t0 = thread_cpu();
        drop(old);
        let t_drop = thread_cpu() - t0;
        println!(
            "{which}: {what} with delta {:.3} ms (+ {:.3} ms dropping the old model)",
            secs(t) * 1e3,
            secs(t_drop) * 1e3,
        );
    }
}
