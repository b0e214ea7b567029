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
