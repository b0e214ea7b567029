//! End to end: the real `weft-switchd` binary in a network namespace with
//! three veth "pods", driven by the real `weftctl` binary.
//!
//! ```text
//!  ns p1 eth0 10.244.0.1 ==veth== sw-p1 (ofport 1) ┐
//!  ns p2 eth0 10.244.0.2 ==veth== sw-p2 (ofport 2) ├ weft-switchd --netns <sw>
//!  ns p3 eth0 10.244.0.3 ==veth== sw-p3 (ofport 3) ┘
//! ```
//!
//! Checks, in order: L2 forwarding by `in_port` flows (ping p1 → p2);
//! `NORMAL` with learning (ping p1 → p3); an ACL that drops TCP port 81
//! while port 80 passes (Rust threads that enter the pod namespaces);
//! `dump-flows` counters (the drop rule counted at least one packet per
//! refused connection attempt); a restart after `kill -9` with the same
//! state directory: flows come back without being re-added and ping works
//! again; a failed `add-port` and a `del-port` that leaves the others
//! forwarding.
//!
//! # Finding the binaries
//!
//! `weft-switchd` is `CARGO_BIN_EXE_weft-switchd` (this crate's binary).
//! `weftctl` belongs to another package, so it is looked up next to it in
//! the same target directory: `cargo test --workspace` (what CI runs)
//! builds it there. When it is missing (`cargo test -p weft-switchd`
//! alone), the test fails under `CI=true` and otherwise skips loudly.
//!
//! Needs root, `ip`, `ping` and `python3` (see `common/netns.rs`);
//! namespaces are `weft-e<pid>-{sw,p1,p2,p3}`, deleted by exact name on
//! drop (after the daemon is killed).

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::netns::*;

#[test]
fn switchd_end_to_end() {
    if !can_run("switchd_end_to_end") {
        return;
    }
    let t0 = Instant::now();
    let ns = Namespaces::create("e", 3, 0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let daemon = Daemon::start(&ns.sw, dir);
    for i in 1..=3 {
        let out = ctl_ok(
            dir,
            &[
                "add-port",
                &format!("sw-p{i}"),
                "--type",
                "afpacket",
                "--ofport",
                &i.to_string(),
            ],
        );
        assert_eq!(out.trim(), format!("sw-p{i}: ofport {i}"));
    }
    let ports: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["dump-ports", "--json"])).unwrap();
    assert_eq!(ports.as_array().unwrap().len(), 3);

    // 1. L2 forwarding by in_port.
    ctl_ok(dir, &["add-flow", "in_port=1,actions=output:2"]);
    ctl_ok(dir, &["add-flow", "in_port=2,actions=output:1"]);
    assert!(
        ping(&ns.pods[0], "10.244.0.2"),
        "ping p1 -> p2 by in_port flows\n{}",
        log_of(dir)
    );
    let by_port = flows_json(dir);
    assert!(by_port.iter().all(|(_, n)| *n >= 3), "{by_port:?}");
    // A bad flow is refused, naming it, and changes nothing.
    let e = ctl(dir, &["add-flow", "in_port=1,actions=output:7"]).unwrap_err();
    assert!(e.contains("output"), "{e}");
    assert_eq!(flows_json(dir).len(), 2);

    // 2. NORMAL plus an ACL, replacing the table.
    let flows_file = dir.join("flows.txt");
    std::fs::write(
        &flows_file,
        "# ACL: TCP port 81 is dropped\npriority=100,tcp,tp_dst=81,actions=drop\npriority=0,actions=NORMAL\n",
    )
    .unwrap();
    ctl_ok(dir, &["replace-flows", flows_file.to_str().unwrap()]);
    assert!(
        ping(&ns.pods[0], "10.244.0.3"),
        "ping p1 -> p3 through NORMAL"
    );
    assert!(
        ping(&ns.pods[0], "10.244.0.2"),
        "ping p1 -> p2 through NORMAL"
    );

    // 3. TCP: 80 passes, 81 is dropped.
    let server = in_netns(&ns.pods[1], || {
        let l80 = TcpListener::bind("10.244.0.2:80").unwrap();
        let l81 = TcpListener::bind("10.244.0.2:81").unwrap();
        l81.set_nonblocking(true).unwrap();
        let (mut s, _) = l80.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        // Nothing may have reached port 81.
        matches!(l81.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    });
    thread::sleep(Duration::from_millis(200));
    const ATTEMPTS: u64 = 3;
    let client = in_netns(&ns.pods[0], || {
        let a80: SocketAddr = "10.244.0.2:80".parse().unwrap();
        let a81: SocketAddr = "10.244.0.2:81".parse().unwrap();
        let mut s = TcpStream::connect_timeout(&a80, Duration::from_secs(5)).unwrap();
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let mut refused = 0;
        for _ in 0..ATTEMPTS {
            if TcpStream::connect_timeout(&a81, Duration::from_millis(700)).is_err() {
                refused += 1;
            }
        }
        refused
    });
    assert_eq!(client.join().unwrap(), ATTEMPTS, "port 81 must not connect");
    assert!(server.join().unwrap(), "a SYN reached port 81");

    // 4. Counters.
    let flows = flows_json(dir);
    let acl = flows
        .iter()
        .find(|(f, _)| f.contains("tp_dst=81"))
        .unwrap_or_else(|| panic!("{flows:?}"));
    assert!(
        acl.1 >= ATTEMPTS,
        "drop rule counted {} < {ATTEMPTS} SYNs",
        acl.1
    );
    let normal = flows.iter().find(|(f, _)| f.contains("NORMAL")).unwrap();
    assert!(normal.1 >= 12, "NORMAL counted {}", normal.1);
    let text = ctl_ok(dir, &["dump-flows"]);
    assert!(text.contains(&format!("n_packets={}", acl.1)), "{text}");
    let before = ctl_ok(dir, &["dump-flows", "--no-stats"]);

    // 5. kill -9 and restart from the state directory.
    daemon.kill9();
    let daemon = Daemon::start(&ns.sw, dir);
    assert_eq!(ctl_ok(dir, &["dump-flows", "--no-stats"]), before);
    let ports: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["dump-ports", "--json"])).unwrap();
    let numbers: Vec<u64> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ofport"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(
        ping(&ns.pods[0], "10.244.0.2"),
        "ping after restart\n{}",
        log_of(dir)
    );

    // 6. Ports: a missing interface is a typed error; deleting a port keeps
    // the flows and the others forwarding.
    let e = ctl(dir, &["add-port", "nosuchdev0", "--type", "afpacket"]).unwrap_err();
    assert!(e.contains("nosuchdev0"), "{e}");
    ctl_ok(dir, &["del-port", "sw-p3"]);
    let ports: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["dump-ports", "--json"])).unwrap();
    assert_eq!(ports.as_array().unwrap().len(), 2);
    assert_eq!(ctl_ok(dir, &["dump-flows", "--no-stats"]), before);
    assert!(!ping_within(&ns.pods[0], "10.244.0.3", "2"), "p3 is gone");
    assert!(ping(&ns.pods[0], "10.244.0.2"), "p2 still reachable");
    drop(daemon);
    eprintln!("switchd_end_to_end took {:?}", t0.elapsed());
}
