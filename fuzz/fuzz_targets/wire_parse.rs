//! Every header parser via the dissector: any bytes print without a panic,
//! and the output has at least one line per frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::wire::dissect::dissect_to_string;

fuzz_target!(|data: &[u8]| {
    let out = dissect_to_string(data);
    assert!(out.lines().count() >= 1);
    // Nesting is bounded: at most 4 frames (outer + 3 tunnels), each with a
    // bounded number of lines.
    assert!(out.lines().count() <= 4 * (3 + protocol::wire::dissect::MAX_VLAN_TAGS + 10));
});
