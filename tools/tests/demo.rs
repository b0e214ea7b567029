//! `weftctl demo up`, `check` and `down` as a user runs them (root, real
//! namespaces, the real weft-switchd, weft-controller and weft-cni found
//! next to weftctl). Fails under `CI=true` or `WEFT_REQUIRE_NETNS=1` when
//! it cannot run (not root, binaries missing); otherwise skips loudly.
//! Nothing is timed: the demo prints its own timings.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use common::{Down, cannot_run, demo, namespaces_of, text};

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
