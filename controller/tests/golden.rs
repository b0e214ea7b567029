//! Golden snapshot of the logical model of a small fixture (pods on a
//! declared and an implied node, a named-port policy with two peers, a
//! Service with an EndpointSlice).

#![allow(clippy::unwrap_used)]

use std::path::Path;

use weft_controller::translate::load_model;

#[test]
fn small_fixture_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small");
    let t = load_model(&dir).expect("fixture loads");
    insta::assert_json_snapshot!("small_assumptions", t.assumptions);
    insta::assert_json_snapshot!("small_model", t.model);
    // Deterministic: a second load gives an equal model.
    assert_eq!(load_model(&dir).unwrap(), t);
}

/// The demo manifests in `examples/manifests` load, and their model is
/// pinned (two tenants with the same addresses, several policies).
#[test]
fn examples_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests");
    let t = load_model(&dir).unwrap_or_else(|e| panic!("{e}"));
    let m = &t.model;
    let (r, b) = (
        m.pod_port("red-web", "frontend").unwrap(),
        m.pod_port("blue-web", "frontend").unwrap(),
    );
    assert_eq!(r.ips, b.ips);
    assert_ne!(r.switch, b.switch);
    insta::assert_json_snapshot!("examples_assumptions", t.assumptions);
    let names: Vec<String> = m
        .acls
        .values()
        .map(|a| {
            format!(
                "{} {:?} {:?} <- {}",
                a.name, a.direction, a.action, a.source
            )
        })
        .collect();
    insta::assert_json_snapshot!("examples_acls", names);
}
