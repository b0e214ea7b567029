//! `weftctl demo up`, `check` and `down` as a user runs them (root, real
//! namespaces, the real weft-switchd, weft-controller and weft-cni found
//! next to weftctl). Fails under `CI=true` or `WEFT_REQUIRE_NETNS=1` when
//! it cannot run (not root, binaries missing); otherwise skips loudly.
//! Nothing is timed: the demo prints its own timings.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Down, cannot_run, demo, namespaces_of, text, weftctl};

#[test]
fn demo_up_check_down() {
    if cannot_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("demo");
    let guard = Down(state.clone());
    let up = demo(&["up"], &state);
    let out = text(&up);
    eprintln!("{out}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("state.json")).unwrap()).unwrap();
    let id = st["id"].as_str().unwrap().to_owned();
    assert!(up.status.success(), "demo up failed:\n{out}");
    // Three nodes, five pods attached by weft-cni, every probe as expected
    // before and after the live change, which every node enforced.
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(st["pods"].as_array().unwrap().len(), 5);
    assert_eq!(
        out.matches("matrix: 60 of 60 TCP probes as expected")
            .count(),
        2,
        "{out}"
    );
    assert!(out.contains("policy enforced on every node"), "{out}");
    // The live change is visible in the observed matrix: postgres lost
    // its access to admin (allowed before, refused after).
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("red-db/postgres") && l.contains("red-web/admin"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].contains("ok"), "{}", rows[0]);
    assert!(!rows[1].contains("ok"), "{}", rows[1]);
    assert_eq!(namespaces_of(&id).len(), 9);

    // A second `up` on the same state directory refuses to start.
    let again = demo(&["up"], &state);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("run `weftctl demo down"),
        "{}",
        text(&again)
    );

    let check = demo(&["check"], &state);
    assert!(check.status.success(), "{}", text(&check));

    cross_node_traces(&state, &st);

    let down = demo(&["down"], &state);
    assert!(down.status.success(), "{}", text(&down));
    drop(guard);
    assert!(namespaces_of(&id).is_empty(), "{:?}", namespaces_of(&id));
    assert!(!state.exists());
    for pid in st["pids"].as_array().unwrap() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "process {pid} still runs: {stat}"
        );
    }
}

/// `weftctl trace --from --to --json` against the running demo.
fn trace(state: &Path, args: &[&str]) -> serde_json::Value {
    let o = Command::new(weftctl())
        .args(["trace", "--json", "--cluster"])
        .arg(state)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "weftctl trace {args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn walks(t: &serde_json::Value) -> Vec<&serde_json::Value> {
    let hops = t["hops"].as_array().unwrap();
    hops.iter().filter_map(|h| h.get("node")).collect()
}

fn tunnels(t: &serde_json::Value) -> Vec<&serde_json::Value> {
    let hops = t["hops"].as_array().unwrap();
    hops.iter().filter_map(|h| h.get("tunnel")).collect()
}

/// Issue #8 scope 5: traces across nodes through the live switchds.
fn cross_node_traces(state: &Path, st: &serde_json::Value) {
    let underlay = |node: &str| {
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .unwrap()["underlay"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("controller.json")).unwrap()).unwrap();
    let pods = &status["pods"];

    // Allowed, node-a -> node-c: both walks, the Geneve hop between the
    // nodes' underlay addresses with the switch's datapath as VNI, and
    // the allow rules of both policies.
    let t = trace(
        state,
        &[
            "--from",
            "red-web/frontend",
            "--to",
            "red-db/postgres",
            "--port",
            "5432",
        ],
    );
    let dump = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t["allowed"], true, "{dump}");
    let w = walks(&t);
    assert_eq!(w.len(), 2, "{dump}");
    assert_eq!(
        (w[0]["node"].as_str(), w[1]["node"].as_str()),
        (Some("node-a"), Some("node-c"))
    );
    assert_eq!(w[1]["from"], "underlay", "{dump}");
    assert!(
        w[1]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["to"] == "pod red-db/postgres"),
        "{dump}"
    );
    let tun = tunnels(&t);
    assert_eq!(tun.len(), 1, "{dump}");
    assert_eq!(tun[0]["kind"], "geneve");
    assert_eq!(tun[0]["outer_src"], underlay("node-a").as_str(), "{dump}");
    assert_eq!(tun[0]["outer_dst"], underlay("node-c").as_str(), "{dump}");
    assert_eq!(tun[0]["vni"], pods["red-db/postgres"]["datapath"], "{dump}");
    assert_eq!(tun[0]["options"][0]["class"], 0xff57, "{dump}");
    let decided = t["decided_by"].to_string();
    assert!(
        decided.contains("allowed by NetworkPolicy red-web/frontend egress[0]"),
        "{dump}"
    );
    assert!(
        decided.contains("allowed by NetworkPolicy red-db/db-from-frontend ingress[0]"),
        "{dump}"
    );

    // Denied, node-a -> node-c: blue-web's default-deny isolates the
    // worker for ingress; nothing reaches it.
    let t = trace(
        state,
        &[
            "--from",
            "blue-web/frontend",
            "--to",
            "blue-web/worker",
            "--port",
            "80",
        ],
    );
    let dump = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t["allowed"], false, "{dump}");
    assert!(
        t["decided_by"].to_string().contains(
            "ingress isolation of namespace blue-web by NetworkPolicy blue-web/default-deny"
        ),
        "{dump}"
    );
    assert!(
        !t["delivered_to"].to_string().contains("blue-web/worker"),
        "{dump}"
    );

    // Same node (node-a), other tenant: red-web/frontend may only send to
    // tier=db on 5432 (its egress isolation), so the packet stops in the
    // ingress ACL of node-a: one walk, no tunnel, nothing delivered.
    let t = trace(
        state,
        &["--from", "red-web/frontend", "--to", "blue-web/frontend"],
    );
    let dump = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t["allowed"], false, "{dump}");
    let w = walks(&t);
    assert_eq!(w.len(), 1, "{dump}");
    assert_eq!(w[0]["node"], "node-a", "{dump}");
    assert!(tunnels(&t).is_empty(), "{dump}");
    assert_eq!(t["delivered_to"], serde_json::json!([]), "{dump}");
    assert!(
        t["decided_by"]
            .to_string()
            .contains("egress isolation of namespace red-web by NetworkPolicy red-web/frontend"),
        "{dump}"
    );

    // Text output: the example of README's section.
    let o = Command::new(weftctl())
        .args(["trace", "--cluster"])
        .arg(state)
        .args([
            "--from",
            "red-web/frontend",
            "--to",
            "red-db/postgres",
            "--port",
            "5432",
        ])
        .output()
        .unwrap();
    let out = text(&o);
    eprintln!("{out}");
    assert!(out.contains("== tunnel node-a -> node-c: geneve"), "{out}");
    assert!(
        out.contains("Verdict: ALLOWED (delivered to red-db/postgres)"),
        "{out}"
    );
}
