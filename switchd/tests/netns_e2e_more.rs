//! More end-to-end tests: the real `weft-switchd` in a namespace, veth and
//! TAP pods, driven by the real `weftctl`.
//!
//! ```text
//!  ns p1 eth0 10.244.0.1 ==veth== sw-p1 (ofport 1) ┐
//!  ns p2 eth0 10.244.0.2 ==veth== sw-p2 (ofport 2) ├ weft-switchd --netns <sw>
//!  ns p3 tap-p3 10.244.0.3 ~~fd~~ (TAP, ofport 3)  ┘   (tap_pod only)
//! ```
//!
//! * `tap_pod`: a multi-queue TAP port created by `weft-switchd --workers
//!   2`, its netdev moved into a pod (`dump-ports` still shows its MAC and
//!   MTU); ping, 200 sequenced UDP datagrams (all received) and a 1 MiB TCP
//!   transfer between a veth pod and the TAP pod through `NORMAL`; a
//!   dedicated UDP rule counts exactly the datagrams sent.
//! * `vlan_push_pop`: table 0 pushes a tag (VID 100 or 200 by direction)
//!   and resubmits to table 1, which matches the tag, pops it and outputs;
//!   ping and TCP work and the table-1 rules count the tagged packets.
//! * `replace_under_traffic`: 5,000 sequenced UDP datagrams while
//!   `replace-flows` flips between two tables that mark with different
//!   TOS values; each table's second stage drops the other table's mark, so
//!   a packet seen by a mix of old and new rules would be lost (checked
//!   first: a mixed table drops all 10 datagrams of a probe). Every
//!   datagram must arrive, carrying one of the two marks.
//! * `restart_under_traffic`: a UDP stream every 10 ms while the daemon is
//!   `kill -9`ed and restarted from the same state directory; the stream
//!   must resume and the flows come back. The gap is printed, not asserted.
//!
//! * `per_port_offloads`: `add-port --offloads off` on a veth port and a
//!   TAP, default (on) on another veth: `show`/`dump-ports` report what
//!   the kernel accepted (`vnet_hdr`), and a 1 MiB TCP transfer from a pod
//!   whose veth keeps TSO/GSO on crosses into both plain ports, segmented
//!   in software by the switch (`gso_segmented_in_software` counts it).
//!
//! UDP senders and receivers are small python3 programs run with
//! `ip netns exec` (the receiver reads the TOS of each datagram with
//! `IP_RECVTOS`); TCP uses Rust threads that enter the pod namespaces.
//!
//! Needs root, `ip`, `ping`, `python3` and `weftctl` next to
//! `weft-switchd` (`cargo build --workspace`); under `CI=true` their
//! absence is a failure, elsewhere a loud skip. Namespaces are
//! `weft-x<tag><pid>-{sw,p1,p2,p3}`, deleted by exact name on drop (after
//! the daemon is killed). The tests take a process-wide lock so that their
//! traffic does not compete for the CPUs.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::netns::*;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn tap_pod() {
    if !can_run("tap_pod") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let ns = Namespaces::create("xt", 2, 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Two workers: the TAP is multi-queue, one queue per worker.
    let daemon = Daemon::start_with(&ns.sw, dir, &["--workers", "2"]);
    add_veth_ports(dir, 2);
    let out = ctl_ok(
        dir,
        &["add-port", "tap-p3", "--type", "tap", "--ofport", "3"],
    );
    assert_eq!(out.trim(), "tap-p3: ofport 3");
    // The daemon keeps the fds; the netdev moves into the pod.
    ip(&["-n", &ns.sw, "link", "set", "tap-p3", "netns", &ns.pods[2]]).unwrap();
    // dump-ports still shows the TAP's MAC (read when it was opened).
    let ports: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["dump-ports", "--json"])).unwrap();
    let out = std::process::Command::new("ip")
        .args(["-n", &ns.pods[2], "-j", "link", "show", "tap-p3"])
        .output()
        .unwrap();
    let link: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ports[2]["name"], "tap-p3");
    assert_eq!(ports[2]["mac"], link[0]["address"], "{ports}");
    assert_eq!(ports[2]["mtu"], link[0]["mtu"], "{ports}");
    ip(&[
        "-n",
        &ns.pods[2],
        "addr",
        "add",
        "10.244.0.3/24",
        "dev",
        "tap-p3",
    ])
    .unwrap();
    ip(&["-n", &ns.pods[2], "link", "set", "tap-p3", "up"]).unwrap();

    const N: usize = 200;
    flows_cmd(
        dir,
        "add-flows",
        "flows.txt",
        "priority=0,actions=NORMAL\n\
         priority=200,udp,nw_src=10.244.0.1,nw_dst=10.244.0.3,tp_dst=5001,actions=NORMAL\n",
    );
    assert!(ping(&ns.pods[0], "10.244.0.3"), "ping p1 -> TAP pod");
    assert!(ping(&ns.pods[2], "10.244.0.2"), "ping TAP pod -> p2");
    assert!(ping(&ns.pods[1], "10.244.0.1"), "ping p2 -> p1");

    // UDP p1 -> TAP pod (ARP is resolved by the pings above).
    let rx = Receiver::start(&ns.pods[2], "10.244.0.3", 5001, N, 3.0);
    let sent = wait_sender(start_sender(&ns.pods[0], "10.244.0.3", 5001, N, 0.001));
    assert_eq!(sent, N);
    let got = rx.finish();
    assert_eq!(missing(&got, N), Vec::<u64>::new(), "UDP datagrams lost");
    assert_eq!(got.len(), N, "duplicates");

    // TCP both ways between a veth pod and the TAP pod.
    tcp_transfer(&ns.pods[0], &ns.pods[2], "10.244.0.3");
    tcp_transfer(&ns.pods[2], &ns.pods[1], "10.244.0.2");

    let flows = flows_json(dir);
    assert_eq!(
        counter(&flows, "tp_dst=5001"),
        N as u64,
        "the UDP rule counts exactly the datagrams sent: {flows:?}"
    );
    // Bytes, not packets: the TAP has IFF_VNET_HDR, so its pod's TCP sends
    // TSO super-frames (up to 64 KiB) and the frame count can be far below
    // one per MTU.
    let bytes = flow_bytes(dir, "priority=0");
    assert!(
        bytes > 2 * TRANSFER as u64,
        "the NORMAL rule carried both 1 MiB transfers: {bytes} bytes"
    );
    drop(daemon);
    eprintln!("tap_pod took {:?}", t0.elapsed());
}

#[test]
fn vlan_push_pop() {
    if !can_run("vlan_push_pop") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let ns = Namespaces::create("xv", 2, 0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let daemon = Daemon::start(&ns.sw, dir);
    add_veth_ports(dir, 2);
    flows_cmd(
        dir,
        "add-flows",
        "flows.txt",
        "table=0,in_port=1,actions=push_vlan:0x8100,mod_vlan_vid:100,resubmit(,1)\n\
         table=0,in_port=2,actions=push_vlan:0x8100,mod_vlan_vid:200,resubmit(,1)\n\
         table=1,dl_vlan=100,actions=pop_vlan,output:2\n\
         table=1,dl_vlan=200,actions=strip_vlan,output:1\n",
    );
    assert!(
        ping(&ns.pods[0], "10.244.0.2"),
        "ping through push/pop\n{}",
        log_of(dir)
    );
    tcp_transfer(&ns.pods[0], &ns.pods[1], "10.244.0.2");
    tcp_transfer(&ns.pods[1], &ns.pods[0], "10.244.0.1");
    let flows = flows_json(dir);
    let t0_1 = counter(&flows, "in_port=1");
    let t0_2 = counter(&flows, "in_port=2");
    let v100 = counter(&flows, "dl_vlan=100");
    let v200 = counter(&flows, "dl_vlan=200");
    // Every packet in from a pod was tagged and reached table 1 with its tag.
    assert_eq!(v100, t0_1, "{flows:?}");
    assert_eq!(v200, t0_2, "{flows:?}");
    // At least the 1 MiB one way in 1500-byte frames, and 3 pings.
    let min = TRANSFER as u64 / 1500 + 3;
    assert!(v100 >= min && v200 >= min, "{flows:?}");
    drop(daemon);
    eprintln!("vlan_push_pop took {:?}", t0.elapsed());
}

/// Table A or B of `replace_under_traffic`: mark with `mine`, and in table
/// 1 pass only `mine` and drop `other`.
fn marking_table(mine: u8, other: u8) -> String {
    format!(
        "table=0,priority=0,actions=NORMAL\n\
         table=0,priority=100,udp,tp_dst=5002,actions=mod_nw_tos:{mine},resubmit(,1)\n\
         table=1,priority=100,udp,nw_tos={mine},actions=NORMAL\n\
         table=1,priority=100,udp,nw_tos={other},actions=drop\n"
    )
}

#[test]
fn replace_under_traffic() {
    if !can_run("replace_under_traffic") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let ns = Namespaces::create("xr", 2, 0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let daemon = Daemon::start(&ns.sw, dir);
    add_veth_ports(dir, 2);
    let a = marking_table(32, 64);
    let b = marking_table(64, 32);
    let fa = dir.join("a.txt");
    let fb = dir.join("b.txt");
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    ctl_ok(dir, &["add-flows", fa.to_str().unwrap()]);
    assert!(ping(&ns.pods[0], "10.244.0.2"), "ping p1 -> p2");

    // The detector works: A's marking with B's second stage drops all.
    let mixed = format!(
        "{}{}",
        a.lines().take(2).collect::<Vec<_>>().join("\n") + "\n",
        b.lines().skip(2).collect::<Vec<_>>().join("\n") + "\n"
    );
    flows_cmd(dir, "replace-flows", "mixed.txt", &mixed);
    let rx = Receiver::start(&ns.pods[1], "10.244.0.2", 5002, 10, 1.0);
    assert_eq!(
        wait_sender(start_sender(&ns.pods[0], "10.244.0.2", 5002, 10, 0.001)),
        10
    );
    assert_eq!(rx.finish().len(), 0, "a mixed table must drop:\n{mixed}");
    assert_eq!(counter(&flows_json(dir), "actions=drop"), 10);
    ctl_ok(dir, &["replace-flows", fa.to_str().unwrap()]);

    const N: usize = 5000;
    let rx = Receiver::start(&ns.pods[1], "10.244.0.2", 5002, N, 3.0);
    let sender = start_sender(&ns.pods[0], "10.244.0.2", 5002, N, 0.0005);
    let mut replaces = 0u32;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let f = if replaces.is_multiple_of(2) { &fb } else { &fa };
        ctl_ok(dir, &["replace-flows", f.to_str().unwrap()]);
        replaces += 1;
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(wait_sender(sender), N);
    let got = rx.finish();
    let mut by_tos: BTreeMap<i64, usize> = BTreeMap::new();
    for d in &got {
        *by_tos.entry(d.tos).or_default() += 1;
    }
    eprintln!("replace_under_traffic: {replaces} replaces, TOS counts {by_tos:?}");
    assert!(
        by_tos.keys().all(|&t| t == 32 || t == 64),
        "a datagram without A's or B's mark: {by_tos:?}"
    );
    assert!(by_tos.len() == 2, "both tables carried traffic: {by_tos:?}");
    assert_eq!(missing(&got, N), Vec::<u64>::new(), "datagrams lost");
    assert_eq!(got.len(), N, "duplicates");
    drop(daemon);
    eprintln!("replace_under_traffic took {:?}", t0.elapsed());
}

#[test]
fn restart_under_traffic() {
    if !can_run("restart_under_traffic") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let ns = Namespaces::create("xk", 2, 0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let daemon = Daemon::start(&ns.sw, dir);
    add_veth_ports(dir, 2);
    ctl_ok(dir, &["add-flow", "priority=0,actions=NORMAL"]);
    assert!(ping(&ns.pods[0], "10.244.0.2"), "ping p1 -> p2");
    let before = ctl_ok(dir, &["dump-flows", "--no-stats"]);

    // 10 ms apart for 4 s; the kill comes after 1 s.
    const N: usize = 400;
    let rx = Receiver::start(&ns.pods[1], "10.244.0.2", 5003, N, 3.0);
    let sender = start_sender(&ns.pods[0], "10.244.0.2", 5003, N, 0.01);
    thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    daemon.kill9();
    let daemon = Daemon::start(&ns.sw, dir);
    let restart = killed.elapsed();
    assert_eq!(ctl_ok(dir, &["dump-flows", "--no-stats"]), before);
    assert_eq!(wait_sender(sender), N);
    let got = rx.finish();
    let last = got.last().map_or(0, |d| d.seq);
    let (mut gap_us, mut gap_at) = (0, 0);
    for w in got.windows(2) {
        if w[1].t_us - w[0].t_us > gap_us {
            gap_us = w[1].t_us - w[0].t_us;
            gap_at = w[0].seq;
        }
    }
    let lost = missing(&got, N).len();
    eprintln!(
        "restart_under_traffic: daemon back in {restart:?}; largest gap {} ms after seq {gap_at}, {lost} of {N} datagrams lost",
        gap_us / 1000
    );
    assert_eq!(last, N as u64 - 1, "the stream resumed to the end");
    assert!(
        got.iter().filter(|d| d.seq > gap_at).count() > 50,
        "traffic resumed after the gap"
    );
    drop(daemon);
    eprintln!("restart_under_traffic took {:?}", t0.elapsed());
}

#[test]
fn per_port_offloads() {
    if !can_run_with("per_port_offloads", &["ethtool"]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Namespaces::create("xo", 2, 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let daemon = Daemon::start(&ns.sw, dir);
    daemon.ctl_ok(&["add-port", "sw-p1", "--type", "afpacket", "--ofport", "1"]);
    let off = ["--offloads", "off"];
    daemon.ctl_ok(
        &[
            &["add-port", "sw-p2", "--type", "afpacket", "--ofport", "2"][..],
            &off,
        ]
        .concat(),
    );
    daemon.ctl_ok(
        &[
            &["add-port", "tap-p3", "--type", "tap", "--ofport", "3"][..],
            &off,
        ]
        .concat(),
    );
    ip(&["-n", &ns.sw, "link", "set", "tap-p3", "netns", &ns.pods[2]]).unwrap();
    ip(&[
        "-n",
        &ns.pods[2],
        "addr",
        "add",
        "10.244.0.3/24",
        "dev",
        "tap-p3",
    ])
    .unwrap();
    ip(&["-n", &ns.pods[2], "link", "set", "tap-p3", "up"]).unwrap();
    // p1 sends TSO super-frames and partial checksums again (Namespaces
    // turned its offloads off); p2 and the TAP pod get plain frames.
    let out = exec_in(
        &ns.pods[0],
        "ethtool",
        &[
            "-K", "eth0", "tx", "on", "sg", "on", "tso", "on", "gso", "on",
        ],
    );
    assert!(out.status.success(), "{out:?}");

    // What the kernel accepted, per port.
    let show = daemon.json(&["show"]);
    let port = |name: &str| {
        show["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no port {name}: {show:#}"))
    };
    assert_eq!(port("sw-p1")["vnet_hdr"], true, "{show:#}");
    assert_eq!(port("sw-p1")["offloads"], true, "{show:#}");
    for p in ["sw-p2", "tap-p3"] {
        assert_eq!(port(p)["vnet_hdr"], false, "{show:#}");
        assert_eq!(port(p)["offloads"], false, "{show:#}");
    }
    let text = daemon.ctl_ok(&["show"]);
    assert!(
        text.contains("(sw-p1): ") && text.contains("vnet_hdr=yes"),
        "{text}"
    );
    assert!(text.contains("vnet_hdr=no (offloads off)"), "{text}");
    let dump = daemon.json(&["dump-ports"]);
    assert_eq!(dump[1]["name"], "sw-p2", "{dump:#}");
    assert_eq!(dump[1]["vnet_hdr"], false, "{dump:#}");

    flows_cmd(dir, "add-flows", "flows.txt", "priority=0,actions=NORMAL\n");
    assert!(ping(&ns.pods[0], "10.244.0.2"), "ping p1 -> p2");
    assert!(ping(&ns.pods[0], "10.244.0.3"), "ping p1 -> TAP pod");
    let before = daemon.drops("gso_segmented_in_software");
    tcp_transfer(&ns.pods[0], &ns.pods[1], "10.244.0.2");
    tcp_transfer(&ns.pods[0], &ns.pods[2], "10.244.0.3");
    let segmented = daemon.drops("gso_segmented_in_software") - before;
    assert!(
        segmented > 0,
        "TSO frames from p1 into plain ports were segmented by the switch"
    );
    drop(daemon);
}
