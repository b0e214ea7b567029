//! A pause point for crash tests, off unless `WEFT_CNI_TEST_PAUSE` is set.
//!
//! `WEFT_CNI_TEST_PAUSE=<point>:<file>` makes the plugin create `<file>`
//! when it reaches `<point>` and then sleep until it is killed, so a test
//! can `kill -9` it at an exact step of `ADD`. Points, in order:
//!
//! | point | state when paused |
//! |---|---|
//! | `ipam-linked` | address file linked, not yet fsynced |
//! | `allocated` | address durable, no veth yet |
//! | `veth-created` | veth pair exists, pod side not configured |
//! | `before-port-add` | pod configured, switchd port not yet added |
//!
//! The variable is read only at these points; it changes nothing else.

/// Pauses forever at `point` if the environment asks for it.
pub fn pause_at(point: &str) {
    let Ok(spec) = std::env::var("WEFT_CNI_TEST_PAUSE") else {
        return;
    };
    let Some((p, file)) = spec.split_once(':') else {
        return;
    };
    if p != point {
        return;
    }
    let _ = std::fs::write(file, point);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
