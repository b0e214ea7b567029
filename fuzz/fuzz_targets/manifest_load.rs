//! Manifest loader + translation: random YAML, and random mutations of a
//! real manifest set (the first byte picks the mode; libFuzzer mutates the
//! committed seeds in fuzz/seeds/manifest_load/, which are the controller's
//! fixtures). Oracles: no panic; every error has a message; no error is a
//! broken model invariant (that would be a translation bug, not bad input);
//! a model that translates is deterministic (a second run gives an equal one).
#![no_main]
use libfuzzer_sys::fuzz_target;
use weft_controller::source::load_str;
use weft_controller::translate::translate;

const BASE: &str = include_str!("../../controller/tests/fixtures/small/pods.yml");

fn check(text: &str) {
    let Ok(m) = load_str("fuzz.yaml", text) else { return };
    match translate(&m) {
        Ok(t) => {
            let again = translate(&m).expect("second translation");
            assert_eq!(again, t, "translation is not deterministic");
        }
        Err(e) => {
            let s = e.to_string();
            assert!(!s.is_empty());
            assert!(!s.contains("invariant broken"), "translation bug: {s}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(s) = std::str::from_utf8(rest) else { return };
    if mode & 1 == 0 {
        check(s);
    } else {
        // Replace line number `mode / 2` of the base manifest by the input.
        let k = usize::from(mode / 2);
        let mut lines: Vec<&str> = BASE.lines().collect();
        if k < lines.len() {
            lines[k] = s;
        } else {
            lines.push(s);
        }
        check(&lines.join("\n"));
    }
});
