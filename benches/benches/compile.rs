//! The controller's compiler (`weft_controller::compile`) on a generated
//! cluster: 10,000 pods in 100 namespaces on 50 nodes, 1,000
//! NetworkPolicies (each: ingress TCP 80-81 from one label and from one
//! other namespace; every fifth also isolates egress, allowing UDP 53),
//! one tenant (`compile::fixture::Spec::generate`).
//!
//! - `full`: `Compiler::new` from the logical model (model construction,
//!   the translation's job, not timed).
//! - `pod_add`: `Compiler::update` with one more pod (label and namespace
//!   that policies select and name as peers).
//! - `policy_change`: `Compiler::update` with one policy's peers and port
//!   changed.
//!
//! Flows per node are printed once (min / mean / max).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use weft_controller::compile::fixture::{PeerSpec, PodSpec, RuleSpec, Spec};
use weft_controller::compile::{CompileConfig, Compiler};
use weft_controller::model::L4Protocol;

fn spec() -> Spec {
    Spec::generate(1, 50, 100, 10_000, 1_000)
}

fn bench(c: &mut Criterion) {
    let base = spec();
    let model = base.build();
    let cfg = CompileConfig::default();
    let compiled = Compiler::new(model.clone(), cfg.clone());
    let counts: Vec<usize> = compiled.nodes().map(|n| compiled.flow_count(n)).collect();
    let total: usize = counts.iter().sum();
    eprintln!(
        "compile fixture: {} pods, {} policies, {} nodes, {} ACLs; flows per node min {} mean {} max {}, total {}",
        base.pods.len(),
        base.policies.len(),
        counts.len(),
        model.acls.len(),
        counts.iter().min().unwrap_or(&0),
        total / counts.len().max(1),
        counts.iter().max().unwrap_or(&0),
        total
    );

    let mut added = base.clone();
    added.pods.push(PodSpec {
        tenant: 0,
        ns: "ns-7".into(),
        name: "pod-new".into(),
        node: 3,
        host: 254,
        labels: ["app-7".to_owned()].into_iter().collect(),
    });
    let added = added.build();
    let mut changed = base.clone();
    if let Some(p) = changed.policies.get_mut(17) {
        p.ingress = vec![RuleSpec {
            peers: Some(vec![PeerSpec::Label("app-3".into())]),
            ports: vec![(L4Protocol::Tcp, 8080, 8080)],
        }];
    }
    let changed = changed.build();

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("full", |b| {
        b.iter_batched(
            || model.clone(),
            |m| black_box(Compiler::new(m, cfg.clone())),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("pod_add", |b| {
        b.iter_batched(
            || (compiled.clone(), added.clone()),
            |(mut c, m)| {
                let d = c.update(m);
                black_box((c, d))
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("policy_change", |b| {
        b.iter_batched(
            || (compiled.clone(), changed.clone()),
            |(mut c, m)| {
                let d = c.update(m);
                black_box((c, d))
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
