//! Two tenants with the same pod CIDR, through the real `weftctl` binary
//! (issue #6 acceptance: "pods of one tenant cannot reach or spoof the
//! other's, proven by the matrix and by trace").
//!
//! Input: `examples/manifests`, the demo set: tenants `red` (namespaces
//! red-web, red-db) and `blue` (blue-web) both on 10.10.0.0/16 with a
//! 10.10.1.0/24 subnet each; `red-web/frontend` and `blue-web/frontend`
//! both have 10.10.1.10 (and so the same MAC, `0a:58:0a:0a:01:0a`), on
//! node-a; red-web/admin, red-db/postgres and blue-web/worker on node-b,
//! so most probes cross the Geneve hop. Its policies: blue denies all
//! ingress except worker -> frontend on http (80); red-db/postgres takes
//! only red frontends on pg (5432); red-web/frontend takes http (8080) from
//! anyone and may only call tier=db on 5432; red-web/admin may only send
//! to ports 8000-8999 (and to an outside block).
//!
//! The model library is used only to read addresses and port numbers for
//! the assertions (which pod has which MAC, which ofport); every verdict
//! and every trace comes from the `weftctl` process.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use weft_controller::compile::units::ofport;
use weft_controller::model::{LogicalModel, LogicalPort};

fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests")
}

fn model() -> LogicalModel {
    weft_controller::translate::load_model(&manifests())
        .unwrap_or_else(|e| panic!("{e}"))
        .model
}

fn port<'a>(m: &'a LogicalModel, name: &str) -> &'a LogicalPort {
    let (ns, pod) = name.split_once('/').unwrap();
    m.pod_port(ns, pod)
        .unwrap_or_else(|| panic!("no pod {name}"))
}

/// Runs `weftctl policy ...` with `--manifests examples/manifests --json`.
fn weftctl(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .arg("policy")
        .args(args)
        .arg("--manifests")
        .arg(manifests())
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weftctl {args:?}: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap()
}

/// A probe (protocol, port) and the cells (from, to) it allows besides
/// the diagonal.
type Expected = (&'static str, u16, &'static [(&'static str, &'static str)]);

fn tenant(pod: &str) -> &str {
    pod.split('-').next().unwrap()
}

/// (a) The full matrix on the ports the demo's policies name, and UDP:
/// exactly the cells the policies allow, and no cell from one tenant to
/// the other in either direction.
#[test]
fn matrix_shows_no_cross_tenant_reachability() {
    let v = weftctl(&[
        "matrix", "--probe", "tcp/80", "--probe", "tcp/8080", "--probe", "tcp/5432", "--probe",
        "udp/80",
    ]);
    let pods = strings(&v["pods"]);
    assert_eq!(
        pods,
        [
            "blue-web/frontend",
            "blue-web/worker",
            "red-db/postgres",
            "red-web/admin",
            "red-web/frontend"
        ]
    );
    // Allowed cells besides the diagonal, per probe. Only blue-web/worker
    // reaches blue-web/frontend (on 80, its http). Red: postgres is not
    // egress-isolated and admin not ingress-isolated (postgres -> admin on
    // everything); red frontend's http (8080) is open to every red pod
    // allowed to send there; red frontend may call postgres on 5432.
    let allowed: [Expected; 4] = [
        (
            "TCP",
            80,
            &[
                ("blue-web/worker", "blue-web/frontend"),
                ("red-db/postgres", "red-web/admin"),
            ],
        ),
        (
            "TCP",
            8080,
            &[
                ("red-db/postgres", "red-web/admin"),
                ("red-db/postgres", "red-web/frontend"),
                ("red-web/admin", "red-web/frontend"),
            ],
        ),
        (
            "TCP",
            5432,
            &[
                ("red-db/postgres", "red-web/admin"),
                ("red-web/frontend", "red-db/postgres"),
            ],
        ),
        ("UDP", 80, &[("red-db/postgres", "red-web/admin")]),
    ];
    let matrices = v["matrices"].as_array().unwrap();
    assert_eq!(matrices.len(), allowed.len());
    let mut intra_allowed = 0;
    for (m, (proto, p, cells_ok)) in matrices.iter().zip(allowed) {
        assert_eq!(m["protocol"], proto);
        assert_eq!(m["port"], p);
        let cells: Vec<Vec<bool>> = serde_json::from_value(m["cells"].clone()).unwrap();
        let ok: BTreeSet<(&str, &str)> = cells_ok.iter().copied().collect();
        for (i, from) in pods.iter().enumerate() {
            for (j, to) in pods.iter().enumerate() {
                let cell = cells[i][j];
                if tenant(from) != tenant(to) {
                    assert!(!cell, "{proto}/{p}: {from} -> {to} crosses tenants");
                    continue;
                }
                let want = i == j || ok.contains(&(from.as_str(), to.as_str()));
                assert_eq!(cell, want, "{proto}/{p}: {from} -> {to}");
                intra_allowed += usize::from(cell && i != j);
            }
        }
    }
    assert_eq!(intra_allowed, 8, "policy-allowed intra-tenant cells pass");
}

/// (b) `policy check --trace` to the other tenant's pod whose address a
/// pod of the source's tenant also has: the walk crosses the tunnel, is
/// routed inside the source's tenant, and never reaches the other
/// tenant's pod; it reaches the same-address pod of its own tenant only
/// where that tenant's policy allows it.
#[test]
fn trace_to_the_other_tenants_twin_address_never_leaves_the_tenant() {
    let m = model();
    let (red_fe, blue_fe) = (port(&m, "red-web/frontend"), port(&m, "blue-web/frontend"));
    assert_eq!(red_fe.ips, blue_fe.ips, "the fixture's point: same address");
    assert_eq!(red_fe.mac, blue_fe.mac);
    let out_red = format!("output:{}\n", ofport(red_fe.id).0);
    let out_blue = format!("output:{}\n", ofport(blue_fe.id).0);
    let traces = |v: &Value| -> Vec<(String, String)> {
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["node"].as_str().unwrap().to_owned(),
                    t["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let check = |from: &str, to: &str, p: &str| {
        weftctl(&["check", "--from", from, "--to", to, "--port", p, "--trace"])
    };

    // Red admin -> blue frontend on 8080: red routes 10.10.1.10 to red's
    // frontend (its http, open to admin), over the tunnel; blue's never.
    let v = check("red-web/admin", "blue-web/frontend", "8080");
    assert_eq!(v["verdict"], "deny", "{v:#}");
    assert_eq!(strings(&v["delivered_to"]), ["red-web/frontend"], "{v:#}");
    assert_eq!(strings(&v["nodes"]), ["node-b", "node-a"]);
    let t = traces(&v);
    assert_eq!(t.len(), 2, "{v:#}");
    assert!(t[0].1.contains("geneve port"), "encapsulated:\n{}", t[0].1);
    assert!(t[1].1.contains("decapsulated"), "decapsulated:\n{}", t[1].1);
    assert!(
        t[1].1.contains(&out_red) && !t[1].1.contains(&out_blue),
        "delivered to red's frontend port only:\n{}",
        t[1].1
    );
    let why = strings(&v["decided_by"]).join("\n");
    assert!(why.contains("not blue-web/frontend (tenant blue)"), "{why}");

    // Red admin -> blue frontend on 80: red admin may not send to 80, so
    // the packet reaches neither frontend (stopped on the source node).
    let v = check("red-web/admin", "blue-web/frontend", "80");
    assert_eq!(v["verdict"], "deny");
    assert!(strings(&v["delivered_to"]).is_empty(), "{v:#}");
    assert_eq!(strings(&v["nodes"]), ["node-b"]);
    let all: String = traces(&v).into_iter().map(|(_, t)| t).collect();
    assert!(!all.contains(&out_red) && !all.contains(&out_blue), "{all}");
    let why = strings(&v["decided_by"]).join("\n");
    assert!(why.contains("red-web/isolation-egress"), "{why}");

    // Blue worker -> red frontend on 80: blue routes 10.10.1.10 to blue's
    // frontend (allowed by blue's policy), never to red's.
    let v = check("blue-web/worker", "red-web/frontend", "80");
    assert_eq!(v["verdict"], "deny");
    assert_eq!(strings(&v["delivered_to"]), ["blue-web/frontend"], "{v:#}");
    let t = traces(&v);
    assert!(
        t[1].1.contains(&out_blue) && !t[1].1.contains(&out_red),
        "{}",
        t[1].1
    );

    // Blue worker -> red frontend on 8080 (red's http, blue's frontend
    // serves 80 only and blue denies it): reaches nobody.
    let v = check("blue-web/worker", "red-web/frontend", "8080");
    assert_eq!(v["verdict"], "deny");
    assert!(strings(&v["delivered_to"]).is_empty(), "{v:#}");
    let why = strings(&v["decided_by"]).join("\n");
    assert!(why.contains("blue-web/isolation-ingress"), "{why}");

    // Control: inside a tenant the same trace is allowed and delivered.
    let v = check("blue-web/worker", "blue-web/frontend", "80");
    assert_eq!(v["verdict"], "allow");
    assert_eq!(strings(&v["delivered_to"]), ["blue-web/frontend"]);
}

/// (c) A pod sending with the other tenant's source address (IP, MAC, or
/// both) is dropped by port security on its own node, shown by the trace;
/// the same probe with its own addresses passes.
#[test]
fn spoofing_the_other_tenant_is_dropped_by_port_security() {
    let m = model();
    let blue_worker = port(&m, "blue-web/worker");
    let red_admin = port(&m, "red-web/admin");
    let ip = |p: &LogicalPort| p.ips[0].to_string();
    let mac = |p: &LogicalPort| p.mac.to_string();
    let cases: [(&str, &str, &str, &LogicalPort); 2] = [
        ("red-web/admin", "red-web/frontend", "8080", blue_worker),
        ("blue-web/worker", "blue-web/frontend", "80", red_admin),
    ];
    for (from, to, p, victim) in cases {
        let base = ["check", "--from", from, "--to", to, "--port", p, "--trace"];
        let honest = weftctl(&base);
        assert_eq!(honest["verdict"], "allow", "control {from} -> {to}");
        let (vip, vmac) = (ip(victim), mac(victim));
        for spoof in [
            vec!["--src-ip", vip.as_str()],
            vec!["--src-mac", vmac.as_str()],
            vec!["--src-ip", vip.as_str(), "--src-mac", vmac.as_str()],
            // The address both frontends have (one of them in the own
            // tenant): not the sender's either.
            vec!["--src-ip", "10.10.1.10"],
        ] {
            let args: Vec<&str> = base.iter().copied().chain(spoof.clone()).collect();
            let v = weftctl(&args);
            let what = format!("{from} -> {to} with {spoof:?}");
            assert_eq!(v["verdict"], "deny", "{what}: {v:#}");
            assert!(strings(&v["delivered_to"]).is_empty(), "{what}");
            let nodes = strings(&v["nodes"]);
            assert_eq!(nodes.len(), 1, "{what}: stopped on its own node");
            let why = strings(&v["decided_by"]).join("\n");
            assert!(why.contains("port security"), "{what}: {why}");
            let text = v["traces"][0]["text"].as_str().unwrap();
            let flow = text.lines().next().unwrap();
            if spoof.contains(&"--src-ip") {
                assert!(flow.contains(&format!("nw_src={}", spoof[1])), "{flow}");
            }
            if spoof.contains(&"--src-mac") {
                assert!(flow.contains(&format!("dl_src={vmac}")), "{flow}");
            }
            assert!(
                text.contains("drop") && text.contains("Final: dropped"),
                "{what}:\n{text}"
            );
        }
    }
}
