//! The ovs-ofctl flow text parser (OVS ofctl_parse_target.c, with oracles):
//! any string parses or gives an error with a message; whatever parses prints
//! to text that parses back to the same value and prints identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::text::{format_actions, format_flow, format_match, parse_actions, parse_flow, parse_match};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match parse_flow(s) {
        Ok(f) => {
            let printed = format_flow(&f);
            let back = parse_flow(&printed)
                .unwrap_or_else(|e| panic!("printed flow {printed:?} does not parse: {e}"));
            assert_eq!(back, f, "round trip of {printed:?}");
            assert_eq!(format_flow(&back), printed);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(m) = parse_match(s) {
        let printed = format_match(&m);
        let back = parse_match(&printed)
            .unwrap_or_else(|e| panic!("printed match {printed:?} does not parse: {e}"));
        assert_eq!(back, m);
    }
    if let Ok(a) = parse_actions(s) {
        let printed = format_actions(&a);
        let back = parse_actions(&printed)
            .unwrap_or_else(|e| panic!("printed actions {printed:?} do not parse: {e}"));
        assert_eq!(back, a);
    }
});
