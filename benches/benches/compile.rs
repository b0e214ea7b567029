//! The controller on a generated cluster: 10,000 pods in 100 namespaces on
//! 50 nodes, 1,000 NetworkPolicies (each: ingress TCP 80-81 from one label
//! in any namespace and from one other namespace; every fifth also isolates
//! egress, allowing UDP 53), one tenant (`compile::fixture::Spec::generate`,
//! and the same cluster as Kubernetes YAML, `Spec::manifests_yaml`).
//!
//! Every number is the **thread CPU time** of the benchmark thread
//! (`weft_benches::thread_cpu`: the machine is shared with other builds),
//! except the full compiles (`full`, `compile_translated`): `Compiler::new`
//! fills the node tables on one thread per core, so those two report
//! **wall-clock time** (`Instant`), and `full_1thread` the thread CPU time
//! of the same compile on one thread (`Compiler::with_threads(.., 1)`: the
//! total work). Per-iteration set-up (cloning the input, the previous
//! compiler state) and dropping the result are not timed.
//!
//! The whole path from manifests to flows, one stage per bench:
//!
//! - `load`: `source::load_str` of the YAML text (11,150 documents in
//!   files of 1,000: serde-saphyr refuses more than 1,024 documents per
//!   file) into typed k8s-openapi objects.
//! - `translate`: `translate::translate` of those objects into the logical
//!   model (topology, policy, services, `validate`).
//! - `compile_translated`: `Compiler::new` on that model: every node's flow
//!   table, cookies, the per-slot unit bookkeeping for incremental updates
//!   (wall time, parallel over nodes).
//! - `pod_add_translated`: one pod more, the slow way: `translate` of the
//!   whole new object set + `Compiler::update`. The controller binary
//!   translates incrementally (`translate::incremental::Translator`, the
//!   `translate/*` rows below) and then runs `Compiler::update`; this row
//!   is the upper bound of that path.
//!
//! The compiler alone on the fixture's own model (`Spec::build`: no return
//! traffic ACLs, so fewer flows than the translated model):
//!
//! - `full`: `Compiler::new` (wall time, parallel over nodes).
//! - `full_1thread`: the same on one thread (thread CPU time).
//! - `pod_add`: `Compiler::update_with` (the path of an incremental
//!   translation: the `ModelDelta` given, computed untimed) with one more
//!   pod (label and namespace that policies select and name as peers).
//! - `pod_remove`, `pod_relabel`: the same with one pod removed, one pod's
//!   label changed.
//! - `policy_change`: the same with one policy's peers and port changed.
//! - `pod_add_update`, `policy_change_update`: `Compiler::update` (the
//!   delta computed inside by comparing the two models: O(model)), for
//!   comparison.
//!
//! Flows per node (min / median / max, total) are printed once for both
//! models.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use weft_benches::thread_cpu;
use weft_controller::compile::fixture::{PeerSpec, PodSpec, RuleSpec, Spec};
use weft_controller::compile::{CompileConfig, Compiler};
use weft_controller::model::{L4Protocol, LogicalModel, ModelDelta};
use weft_controller::source::{Manifests, load_str};
use weft_controller::translate::incremental::{Edit, Translator};
use weft_controller::translate::translate;

/// The fixture under `cargo bench`; a small cluster of the same
/// shape in criterion's test mode (`cargo test --benches`, CI's smoke run:
/// no `--bench` argument), where the full size would cost minutes of CPU
/// and gigabytes of memory in a test-profile build for numbers nobody reads.
fn spec() -> Spec {
    if std::env::args().any(|a| a == "--bench") {
        Spec::generate(1, 50, 100, 10_000, 1_000)
    } else {
        Spec::generate(1, 5, 10, 500, 50)
    }
}

/// Times `run` on a fresh `setup()` value per iteration, in thread CPU
/// time; the output is dropped outside the timed part.
fn timed<I, O>(iters: u64, mut setup: impl FnMut() -> I, mut run: impl FnMut(I) -> O) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup();
        let t0 = thread_cpu();
        let out = black_box(run(black_box(input)));
        total += thread_cpu().saturating_sub(t0);
        drop(out);
    }
    total
}

/// Times `run` like [`timed`], in wall-clock time (for work spread over
/// threads, where the bench thread's CPU time would miss the others').
fn timed_wall<I, O>(
    iters: u64,
    mut setup: impl FnMut() -> I,
    mut run: impl FnMut(I) -> O,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup();
        let t0 = Instant::now();
        let out = black_box(run(black_box(input)));
        total += t0.elapsed();
        drop(out);
    }
    total
}

fn report(what: &str, c: &Compiler, acls: usize) {
    let mut counts: Vec<usize> = c.nodes().map(|n| c.flow_count(n)).collect();
    counts.sort_unstable();
    let total: usize = counts.iter().sum();
    eprintln!(
        "{what}: {} nodes, {acls} ACLs; flows per node min {} median {} max {}, total {total}",
        counts.len(),
        counts.first().unwrap_or(&0),
        counts.get(counts.len() / 2).unwrap_or(&0),
        counts.last().unwrap_or(&0),
    );
}

/// The YAML split into files of at most 1,000 documents (serde-saphyr's
/// default budget refuses more than 1,024 documents in one file; a real
/// manifests directory holds many files anyway).
fn files(text: &str) -> Vec<String> {
    let docs: Vec<&str> = text.split("---\n").filter(|d| !d.is_empty()).collect();
    docs.chunks(1000).map(|c| c.join("---\n")).collect()
}

fn loaded(files: &[String]) -> Manifests {
    let mut all = Manifests::default();
    for (i, f) in files.iter().enumerate() {
        all.extend(
            load_str(&format!("bench-{i}.yaml"), f)
                .unwrap_or_else(|e| panic!("generated manifests: {e}")),
        );
    }
    all
}

fn bench(c: &mut Criterion) {
    let base = spec();
    let cfg = CompileConfig::default();

    // The whole path: YAML -> objects -> model -> flows.
    let yaml = base.manifests_yaml();
    let yaml_files = files(&yaml);
    // One-shot timings of the whole path (thread CPU time, printed): the
    // translated stages take seconds, too long for criterion's 55
    // iterations on this machine; run the criterion benches of the fast
    // stages with a filter (see ARCHITECTURE.md).
    let once = |what: &str, t0: Duration| {
        eprintln!("once {what}: {:.3} s", (thread_cpu() - t0).as_secs_f64());
    };
    let t0 = thread_cpu();
    let objects = loaded(&yaml_files);
    once("load", t0);
    let t0 = thread_cpu();
    let tmodel = translate(&objects)
        .unwrap_or_else(|e| panic!("generated manifests: {e}"))
        .model;
    once("translate", t0);
    let t0 = thread_cpu();
    let w0 = Instant::now();
    let tcompiled = Compiler::new(tmodel.clone(), cfg.clone());
    once("compile_translated (this thread's CPU)", t0);
    eprintln!(
        "once compile_translated: {:.3} s wall",
        w0.elapsed().as_secs_f64()
    );
    eprintln!(
        "manifests: {} bytes, {} objects ({} pods, {} policies)",
        yaml.len(),
        objects.len(),
        objects.pods.len(),
        objects.network_policies.len()
    );
    report("translated model", &tcompiled, tmodel.acls.len());

    // The fixture's own model.
    let model = base.build();
    let compiled = Compiler::new(model.clone(), cfg.clone());
    report("fixture model", &compiled, model.acls.len());

    let new_pod = PodSpec {
        tenant: 0,
        ns: "ns-7".into(),
        name: "pod-new".into(),
        node: 3,
        host: 254,
        labels: ["app-7".to_owned()].into_iter().collect(),
    };
    let mut added_spec = base.clone();
    added_spec.pods.push(new_pod.clone());
    let added = added_spec.build();
    let mut added_objects = objects.clone();
    added_objects.extend(loaded(&files(
        &Spec {
            pods: vec![new_pod],
            ..base.clone()
        }
        .manifests_yaml()
        .split("---\n")
        .filter(|d| d.contains("kind: Pod"))
        .collect::<String>(),
    )));
    {
        let mut c = tcompiled.clone();
        let t0 = thread_cpu();
        let m = translate(&added_objects)
            .unwrap_or_else(|e| panic!("{e}"))
            .model;
        once("pod_add_translated: translate", t0);
        let t1 = thread_cpu();
        let d = c.update(m);
        once("pod_add_translated: update", t1);
        let n: usize = d.values().map(|x| x.len()).sum();
        eprintln!("pod_add_translated: {n} flow changes on {} nodes", d.len());
    }
    let mut changed = base.clone();
    if let Some(p) = changed.policies.get_mut(17) {
        p.ingress = vec![RuleSpec {
            peers: Some(vec![PeerSpec::Label("app-3".into())]),
            ports: vec![(L4Protocol::Tcp, 8080, 8080)],
        }];
    }
    let changed = changed.build();
    let mut removed = base.clone();
    removed.pods.remove(1234.min(removed.pods.len() - 1));
    let removed = removed.build();
    let mut relabelled = base.clone();
    let last = relabelled.pods.len() - 1;
    if let Some(p) = relabelled.pods.get_mut(1234.min(last)) {
        p.labels = ["app-3".to_owned()].into_iter().collect();
    }
    let relabelled = relabelled.build();
    // The deltas, computed outside the timing: what an incremental
    // translation knows of its own change (the objects it touched and the
    // pods' addresses that joined or left each address set).
    let with_delta = |m: &LogicalModel| (m.clone(), ModelDelta::between(compiled.model(), m));
    let changes = [
        ("pod_add", with_delta(&added)),
        ("pod_remove", with_delta(&removed)),
        ("pod_relabel", with_delta(&relabelled)),
        ("policy_change", with_delta(&changed)),
    ];

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("load", |b| {
        b.iter_custom(|n| timed(n, || (), |()| loaded(&yaml_files)))
    });
    g.bench_function("translate", |b| {
        b.iter_custom(|n| timed(n, || (), |()| translate(&objects)))
    });
    g.bench_function("compile_translated", |b| {
        b.iter_custom(|n| timed_wall(n, || tmodel.clone(), |m| Compiler::new(m, cfg.clone())))
    });
    g.bench_function("pod_add_translated", |b| {
        b.iter_custom(|n| {
            timed(
                n,
                || tcompiled.clone(),
                |mut c| {
                    let m = translate(&added_objects)
                        .unwrap_or_else(|e| panic!("{e}"))
                        .model;
                    let d = c.update(m);
                    (c, d)
                },
            )
        })
    });
    g.bench_function("full", |b| {
        b.iter_custom(|n| timed_wall(n, || model.clone(), |m| Compiler::new(m, cfg.clone())))
    });
    g.bench_function("full_1thread", |b| {
        b.iter_custom(|n| {
            timed(
                n,
                || model.clone(),
                |m| Compiler::with_threads(m, cfg.clone(), 1),
            )
        })
    });
    for (name, (m, delta)) in &changes {
        g.bench_function(*name, |b| {
            b.iter_custom(|n| {
                timed(
                    n,
                    || (compiled.clone(), m.clone()),
                    |(mut c, m)| {
                        // The old model is returned: dropped untimed, as
                        // the controller may after pushing the changes.
                        let (d, old) = c.update_with(m, delta);
                        (c, d, old)
                    },
                )
            })
        });
    }
    g.bench_function("pod_add_update", |b| {
        b.iter_custom(|n| {
            timed(
                n,
                || (compiled.clone(), added.clone()),
                |(mut c, m)| {
                    let d = c.update(m);
                    (c, d)
                },
            )
        })
    });
    g.bench_function("policy_change_update", |b| {
        b.iter_custom(|n| {
            timed(
                n,
                || (compiled.clone(), changed.clone()),
                |(mut c, m)| {
                    let d = c.update(m);
                    (c, d)
                },
            )
        })
    });
    g.finish();
}

/// The translation alone, in criterion (thread CPU time):
///
/// - `translate/full`: `translate::translate` of the fixture's objects;
/// - `translate/pod_add`: `Translator::apply` of one new pod (label
///   `app-7`, which policies select and name as peers) to a translator
///   holding the fixture;
/// - `translate/pod_relabel`: one existing pod's labels changed;
/// - `translate/policy_change`: one policy's peers and port changed.
///
/// Each incremental row yields the whole new model, equal to a full
/// translation (`controller/tests/translate_incremental.rs`).
fn translation(c: &mut Criterion) {
    let yaml = spec().manifests_yaml();
    let objects = loaded(&files(&yaml));
    let tr = Translator::new(objects.clone()).unwrap_or_else(|e| panic!("{e}"));
    let one = |y: &str| load_str("edit.yaml", y).unwrap_or_else(|e| panic!("{e}"));
    let pod = |name: &str, label: &str| {
        let m = one(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: ns-7, labels: {{{label}: \"1\"}}}}\nspec: {{nodeName: node-3, containers: [{{name: c, image: pause}}]}}\n"
        ));
        m.pods
            .into_iter()
            .next()
            .map(|p| Edit::UpsertPod(Box::new(p)))
    };
    let add = pod("pod-new", "app-7").unwrap_or_else(|| panic!("pod"));
    let relabel = pod("pod-7", "app-3").unwrap_or_else(|| panic!("pod"));
    let policy = one(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: pol-17, namespace: ns-17}\nspec:\n  podSelector: {matchLabels: {app-7: \"1\"}}\n  policyTypes: [Ingress]\n  ingress:\n  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app-3: \"1\"}}}]\n    ports: [{protocol: TCP, port: 8080}]\n",
    )
    .network_policies
    .into_iter()
    .next()
    .map(|p| Edit::UpsertPolicy(Box::new(p)))
    .unwrap_or_else(|| panic!("policy"));

    let mut g = c.benchmark_group("translate");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("full", |b| {
        b.iter_custom(|n| timed(n, || (), |()| translate(&objects)))
    });
    for (name, edit) in [
        ("pod_add", &add),
        ("pod_relabel", &relabel),
        ("policy_change", &policy),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                timed(
                    n,
                    || (tr.clone(), edit.clone()),
                    |(mut t, e)| {
                        t.apply(e).unwrap_or_else(|e| panic!("{e}"));
                        t
                    },
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, translation, bench);
criterion_main!(benches);
