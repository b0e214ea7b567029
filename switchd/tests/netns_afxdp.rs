//! `afxdp` ports end to end through a real `weft-switchd`.
//!
//! ```text
//!  ns p1 eth0 10.244.0.1 ==veth== sw-p1 (afxdp, ofport 1) ┐
//!  ns p2 eth0 10.244.0.2 ==veth== sw-p2 (afxdp, ofport 2) ├ weft-switchd --workers 2
//!  ns p3 eth0 10.244.0.3 ==veth== sw-p3 (afxdp, ofport 3) ┘
//! ```
//!
//! * `afxdp_ports_forward_and_survive_kill`: three pods on `afxdp` ports,
//!   two workers (the XSK on the first, AF_PACKET transmit sockets on the
//!   second), forwarding by programmed L3 flows: ping, a 1 MiB TCP
//!   transfer, 1,000 UDP datagrams all delivered; the UDP flow's counter in
//!   `dump-flows` and the ports' counters in `dump-ports` match what was
//!   sent; `show` says AF_XDP (copy mode, native XDP) serves the ports and
//!   `ip link` shows the XDP program. Then `kill -9`: the kernel detaches
//!   the programs with the process (BPF links), `ip link` shows no XDP on
//!   any veth; a restart on the same state re-attaches them and forwards.
//! * `afxdp_falls_back_to_afpacket`: a veth pair with MTU 9000 (veth
//!   refuses native XDP above about 3,500 bytes, `ERANGE`): the port falls
//!   back to AF_PACKET, `show` names the failed step and errno, the log
//!   has one warning, no XDP program is left on the veth, and traffic
//!   flows (ping, TCP) between it and an AF_XDP port.
//!
//! The pods' veth offloads are off (`Namespaces::create`): AF_XDP carries
//! no checksum metadata, so the pods must complete their checksums.
//!
//! Set-up, requirements and naming: `common/netns.rs`; namespaces are
//! `weft-{x,f}<pid>-{sw,p1,..}`.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::path::Path;
use std::time::Instant;

use common::netns::*;

/// UDP datagrams sent p1 -> p3.
const N: usize = 1000;

const L3_FLOWS: &str = "\
priority=10,ip,nw_dst=10.244.0.1 actions=output:1
priority=10,ip,nw_dst=10.244.0.2 actions=output:2
priority=10,ip,nw_dst=10.244.0.3 actions=output:3
priority=5,arp actions=FLOOD
";

fn add_port(dir: &Path, name: &str, kind: &str, ofport: u32) {
    let out = ctl_ok(
        dir,
        &[
            "add-port",
            name,
            "--type",
            kind,
            "--ofport",
            &ofport.to_string(),
        ],
    );
    assert_eq!(out.trim(), format!("{name}: ofport {ofport}"));
}

/// `show --json`: the `backend` of port `name`.
fn backend(dir: &Path, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&ctl_ok(dir, &["show", "--json"])).unwrap();
    let p = v["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {v}"));
    assert_eq!(p["type"], "afxdp", "{p}");
    p["backend"].as_str().unwrap_or_default().to_owned()
}

/// `dump-ports --json`: (rx_packets, tx_packets) of ofport `n`.
fn port_packets(dir: &Path, n: u64) -> (u64, u64) {
    port_stats(dir, n, "packets")
}

/// (rx, tx) bytes of port `n`.
fn port_bytes(dir: &Path, n: u64) -> (u64, u64) {
    port_stats(dir, n, "bytes")
}

/// (`rx_<what>`, `tx_<what>`) of port `n` from `dump-ports --json`.
fn port_stats(dir: &Path, n: u64, what: &str) -> (u64, u64) {
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["dump-ports", "--json"])).unwrap();
    let p = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ofport"] == n)
        .unwrap();
    (
        p["stats"][format!("rx_{what}")].as_u64().unwrap(),
        p["stats"][format!("tx_{what}")].as_u64().unwrap(),
    )
}

#[test]
fn afxdp_ports_forward_and_survive_kill() {
    if !can_run("afxdp_ports_forward_and_survive_kill") {
        return;
    }
    let t0 = Instant::now();
    let ns = Namespaces::create("x", 3, 0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = Daemon::start_with(&ns.sw, dir, &["--workers", "2"]);
    for i in 1..=3 {
        add_port(dir, &format!("sw-p{i}"), "afxdp", i);
    }
    for i in 1..=3 {
        let name = format!("sw-p{i}");
        assert_eq!(backend(dir, &name), "afxdp (copy mode, native XDP)");
        assert!(has_xdp(&ns.sw, &name), "no XDP program on {name}");
    }
    let show = ctl_ok(dir, &["show"]);
    assert!(
        show.contains("type=afxdp backend=\"afxdp (copy mode, native XDP)\""),
        "{show}"
    );
    flows_cmd(dir, "add-flows", "l3.flows", L3_FLOWS);

    assert!(ping(&ns.pods[0], "10.244.0.2"), "p1 -> p2");
    assert!(ping(&ns.pods[0], "10.244.0.3"), "p1 -> p3");
    tcp_transfer(&ns.pods[0], &ns.pods[1], "10.244.0.2");

    let before = counter(&flows_json(dir), "nw_dst=10.244.0.3");
    let (_, tx3_before) = port_packets(dir, 3);
    let rx = Receiver::start(&ns.pods[2], "10.244.0.3", 7300, N, 5.0);
    let sent = wait_sender(start_sender(&ns.pods[0], "10.244.0.3", 7300, N, 0.0005));
    let got = rx.finish();
    assert_eq!(sent, N);
    assert_eq!(missing(&got, N), Vec::<u64>::new(), "UDP datagrams lost");
    // Counters are published every few ms; the flow saw exactly the UDP
    // datagrams (the static route has no other traffic to p3 now).
    assert!(
        wait_for(5, || counter(&flows_json(dir), "nw_dst=10.244.0.3")
            - before
            == N as u64),
        "flow counter: {} new packets, want {N}",
        counter(&flows_json(dir), "nw_dst=10.244.0.3") - before
    );
    // Port counters are published by the workers every few ms too.
    assert!(
        wait_for(5, || port_packets(dir, 3).1 - tx3_before >= N as u64),
        "port 3 sent {}",
        port_packets(dir, 3).1 - tx3_before
    );
    assert!(
        wait_for(5, || port_packets(dir, 1).0 >= N as u64),
        "port 1 received {:?}",
        port_packets(dir, 1)
    );

    // kill -9: the links go with the process, and so do the programs.
    d.kill9();
    for i in 1..=3 {
        let name = format!("sw-p{i}");
        assert!(
            wait_for(5, || !has_xdp(&ns.sw, &name)),
            "XDP program left on {name} after kill -9"
        );
    }
    // A restart restores the ports from the state and attaches again.
    let d = Daemon::start_with(&ns.sw, dir, &["--workers", "2"]);
    assert!(
        wait_for(10, || (1..=3).all(|i| has_xdp(&ns.sw, &format!("sw-p{i}")))),
        "restart did not re-attach: {}",
        d.log()
    );
    assert_eq!(backend(dir, "sw-p2"), "afxdp (copy mode, native XDP)");
    assert!(ping(&ns.pods[1], "10.244.0.3"), "p2 -> p3 after restart");
    drop(d);
    eprintln!("afxdp_ports_forward_and_survive_kill: {:?}", t0.elapsed());
}

#[test]
fn afxdp_falls_back_to_afpacket() {
    if !can_run("afxdp_falls_back_to_afpacket") {
        return;
    }
    let ns = Namespaces::create("f", 2, 0);
    ip(&["-n", &ns.sw, "link", "set", "sw-p1", "mtu", "9000"]).unwrap();
    ip(&["-n", &ns.pods[0], "link", "set", "eth0", "mtu", "9000"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = Daemon::start(&ns.sw, dir);
    add_port(dir, "sw-p1", "afxdp", 1);
    add_port(dir, "sw-p2", "afxdp", 2);
    let b1 = backend(dir, "sw-p1");
    assert!(
        b1.starts_with("afpacket (fallback: BPF_LINK_CREATE(xdp): ")
            && b1.contains("(os error 34)"),
        "sw-p1 backend: {b1}"
    );
    assert_eq!(backend(dir, "sw-p2"), "afxdp (copy mode, native XDP)");
    assert!(!has_xdp(&ns.sw, "sw-p1"), "failed set-up left XDP on sw-p1");
    let warnings = d
        .log()
        .lines()
        .filter(|l| l.contains("AF_XDP set-up failed"))
        .count();
    assert_eq!(warnings, 1, "{}", d.log());
    ctl_ok(dir, &["add-flow", "actions=NORMAL"]);
    assert!(ping(&ns.pods[0], "10.244.0.2"), "p1 -> p2");
    tcp_transfer(&ns.pods[1], &ns.pods[0], "10.244.0.1");
    // The 1 MiB (p2 -> p1) left through sw-p1's AF_PACKET sockets and its
    // ACKs came in through them. Counted in bytes: with TSO on this
    // 9000-byte link a MiB can be ~16 frames (and ~10 ACKs).
    assert!(
        wait_for(5, || {
            let (rx, tx) = port_bytes(dir, 1);
            rx > 0 && tx >= 1 << 20
        }),
        "sw-p1 byte counters: {:?}",
        port_bytes(dir, 1)
    );
}
