//! More end-to-end tests: the real `weft-switchd` in a namespace, veth and
//! TAP pods, driven by the real `weftctl`.
//!
//! ```text
//!  ns p1 eth0 10.244.0.1 ==veth== sw-p1 (ofport 1) ┐
//!  ns p2 eth0 10.244.0.2 ==veth== sw-p2 (ofport 2) ├ weft-switchd --netns <sw>
//!  ns p3 tap-p3 10.244.0.3 ~~fd~~ (TAP, ofport 3)  ┘   (tap_pod only)
//! ```
//!
//! * `tap_pod`: a TAP port created by the daemon, its netdev moved into a
//!   pod; ping, 200 sequenced UDP datagrams (all received) and a 1 MiB TCP
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
//! UDP senders and receivers are small python3 programs run with
//! `ip netns exec` (the receiver reads the TOS of each datagram with
//! `IP_RECVTOS`); TCP uses Rust threads that enter the pod namespaces.
//!
//! Needs root, `ip`, `ping`, `python3` and `weftctl` next to
//! `weft-switchd` (`cargo build --workspace`); under `CI=true` their
//! absence is a failure, elsewhere a loud skip. Namespaces are
//! `weft-x<pid><tag>-{sw,p1,p2,p3}`, deleted by exact name on drop (after
//! the daemon is killed). The tests take a process-wide lock so that their
//! traffic does not compete for the CPUs.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use weft_switchd::port::{disable_offloads, enter_netns};

static SERIAL: Mutex<()> = Mutex::new(());

const TRANSFER: usize = 1 << 20;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).output().is_ok()
}

fn switchd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-switchd"))
}

fn weftctl_bin() -> PathBuf {
    switchd_bin().with_file_name("weftctl")
}

fn can_run(test: &str) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (effective uid 0)".to_owned());
    }
    for (cmd, arg) in [("ip", "-V"), ("ping", "-V"), ("python3", "-V")] {
        if !have(cmd, arg) {
            missing.push(format!("the `{cmd}` command"));
        }
    }
    if !weftctl_bin().exists() {
        missing.push(format!(
            "{} (built by `cargo build --workspace`)",
            weftctl_bin().display()
        ));
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but missing {}", missing.join(", "));
    }
    let msg = format!(
        "\n**************** SKIP {test}: missing {} ****************\n",
        missing.join(", ")
    );
    let _ = std::io::stderr().write_all(msg.as_bytes());
    false
}

/// The namespaces of one test, deleted by exact name on drop.
struct Namespaces {
    sw: String,
    pods: Vec<String>,
    created: Vec<String>,
}

impl Namespaces {
    /// A switch namespace and `veth_pods` pods `p1..` each with `eth0`
    /// 10.244.0.i/24 veth'd to `sw-pi`; `extra_pods` more empty pods.
    fn create(tag: &str, veth_pods: usize, extra_pods: usize) -> Namespaces {
        let base = format!("weft-x{}{tag}", std::process::id());
        let mut ns = Namespaces {
            sw: format!("{base}-sw"),
            pods: (1..=veth_pods + extra_pods)
                .map(|i| format!("{base}-p{i}"))
                .collect(),
            created: Vec::new(),
        };
        for name in std::iter::once(ns.sw.clone()).chain(ns.pods.clone()) {
            ip(&["netns", "add", &name]).unwrap();
            ns.created.push(name);
        }
        for (i, pod) in ns.pods.iter().enumerate() {
            ip(&["-n", pod, "link", "set", "lo", "up"]).unwrap();
            if i >= veth_pods {
                continue;
            }
            let sw_end = format!("sw-p{}", i + 1);
            let addr = format!("10.244.0.{}/24", i + 1);
            ip(&[
                "-n", &ns.sw, "link", "add", &sw_end, "type", "veth", "peer", "name", "eth0",
                "netns", pod,
            ])
            .unwrap();
            ip(&["-n", &ns.sw, "link", "set", &sw_end, "up"]).unwrap();
            ip(&["-n", pod, "addr", "add", &addr, "dev", "eth0"]).unwrap();
            ip(&["-n", pod, "link", "set", "eth0", "up"]).unwrap();
            // AF_PACKET ports need the peer's offloads off.
            in_netns(pod, || disable_offloads("eth0"))
                .join()
                .unwrap()
                .unwrap();
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = PathBuf::from(format!("/run/netns/{ns}"));
    thread::spawn(move || {
        enter_netns(&path).unwrap();
        f()
    })
}

/// The daemon, SIGKILLed on drop.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(netns: &str, dir: &Path) -> Daemon {
        let sock = dir.join("s.sock");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("switchd.log"))
            .unwrap();
        let child = Command::new(switchd_bin())
            .args(["--netns", netns, "--socket"])
            .arg(&sock)
            .arg("--state-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if sock.exists() && ctl(dir, &["dump-tables"]).is_ok() {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "switchd did not come up: {}",
                log_of(dir)
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("switchd.log")).unwrap_or_default()
}

fn ctl(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(weftctl_bin())
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn ctl_ok(dir: &Path, args: &[&str]) -> String {
    ctl(dir, args)
        .unwrap_or_else(|e| panic!("weftctl {args:?}: {e}\nswitchd log:\n{}", log_of(dir)))
}

/// Adds AF_PACKET ports `sw-p1..=sw-pn` as ofports 1..=n.
fn add_veth_ports(dir: &Path, n: u32) {
    for i in 1..=n {
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
}

/// Writes `text` to a file in `dir` and runs `weftctl <cmd> FILE`.
fn flows_cmd(dir: &Path, cmd: &str, name: &str, text: &str) {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    ctl_ok(dir, &[cmd, f.to_str().unwrap()]);
}

fn ping(from: &str, to: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", from, "ping", "-c", "3", "-i", "0.2", "-w", "6", "-q", to,
        ])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// JSON dump of the flows: (flow text, n_packets).
fn flows_json(dir: &Path) -> Vec<(String, u64)> {
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["dump-flows", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["flow"].as_str().unwrap().to_owned(),
                f["n_packets"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn counter(flows: &[(String, u64)], needle: &str) -> u64 {
    flows
        .iter()
        .find(|(f, _)| f.contains(needle))
        .unwrap_or_else(|| panic!("no flow with {needle}: {flows:?}"))
        .1
}

/// The UDP programs. `recv ADDR PORT N IDLE`: prints `ready`, then receives
/// until N datagrams came or none for IDLE seconds, then prints one line
/// `SEQ TOS T_US` per datagram (T_US: microseconds since `ready`).
/// `send DST PORT N INTERVAL`: N datagrams carrying their sequence number,
/// paced at INTERVAL seconds; prints the number sent.
const UDP_PY: &str = r#"
import socket, struct, sys, time
role = sys.argv[1]
if role == "recv":
    addr, port, n, idle = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTOS", 13), 1)
    s.bind((addr, port))
    s.settimeout(idle)
    t0 = time.monotonic()
    print("ready", flush=True)
    got = []
    while len(got) < n:
        try:
            data, anc, _f, _a = s.recvmsg(2048, 64)
        except socket.timeout:
            break
        t = int((time.monotonic() - t0) * 1e6)
        tos = -1
        for lvl, typ, d in anc:
            if lvl == socket.IPPROTO_IP and typ == getattr(socket, "IP_TOS", 1):
                tos = d[0]
        got.append((struct.unpack("!Q", data[:8])[0], tos, t))
    out = sys.stdout
    for g in got:
        out.write("%d %d %d\n" % g)
    out.flush()
else:
    dst, port, n, interval = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    sent = 0
    for i in range(n):
        due = t0 + i * interval
        while True:
            now = time.monotonic()
            if now >= due:
                break
            if due - now > 0.002:
                time.sleep(due - now - 0.001)
        s.sendto(struct.pack("!Q", i) + b"x" * 56, (dst, port))
        sent += 1
    print(sent, flush=True)
"#;

/// One received datagram.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    seq: u64,
    tos: i64,
    t_us: u64,
}

/// A running receiver.
struct Receiver {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Receiver {
    fn start(ns: &str, addr: &str, port: u16, n: usize, idle_s: f64) -> Receiver {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", UDP_PY, "recv", addr])
            .arg(port.to_string())
            .arg(n.to_string())
            .arg(idle_s.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "UDP receiver did not start");
        Receiver { child, out }
    }

    fn finish(mut self) -> Vec<Datagram> {
        let mut text = String::new();
        self.out.read_to_string(&mut text).unwrap();
        assert!(self.child.wait().unwrap().success(), "UDP receiver failed");
        text.lines()
            .map(|l| {
                let v: Vec<&str> = l.split_whitespace().collect();
                Datagram {
                    seq: v[0].parse().unwrap(),
                    tos: v[1].parse().unwrap(),
                    t_us: v[2].parse().unwrap(),
                }
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a sender (see [`UDP_PY`]); `wait_sender` returns the count sent.
fn start_sender(ns: &str, dst: &str, port: u16, n: usize, interval_s: f64) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", UDP_PY, "send", dst])
        .arg(port.to_string())
        .arg(n.to_string())
        .arg(interval_s.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_sender(child: Child) -> usize {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "UDP sender failed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Sequence numbers 0..n missing from `got`.
fn missing(got: &[Datagram], n: usize) -> Vec<u64> {
    let seen: std::collections::BTreeSet<u64> = got.iter().map(|d| d.seq).collect();
    (0..n as u64).filter(|s| !seen.contains(s)).collect()
}

/// A 1 MiB TCP transfer from `client_ns` to `server_addr`:5201 in
/// `server_ns`; the server echoes a byte sum back.
fn tcp_transfer(client_ns: &str, server_ns: &str, server_addr: &str) {
    let bind: SocketAddr = format!("{server_addr}:5201").parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_netns(server_ns, move || {
        let l = TcpListener::bind(bind).unwrap();
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; TRANSFER];
        s.read_exact(&mut buf).unwrap();
        let sum: u64 = buf.iter().map(|&b| u64::from(b)).sum();
        s.write_all(&sum.to_be_bytes()).unwrap();
        sum
    });
    rx.recv().unwrap();
    let client = in_netns(client_ns, move || {
        let mut s = TcpStream::connect_timeout(&bind, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let data: Vec<u8> = (0..TRANSFER).map(|i| (i * 7 % 251) as u8).collect();
        s.write_all(&data).unwrap();
        let mut sum = [0u8; 8];
        s.read_exact(&mut sum).unwrap();
        let want: u64 = data.iter().map(|&b| u64::from(b)).sum();
        (u64::from_be_bytes(sum), want)
    });
    let (echoed, want) = client.join().unwrap();
    assert_eq!(server.join().unwrap(), want, "server got the bytes sent");
    assert_eq!(echoed, want);
}

#[test]
fn tap_pod() {
    if !can_run("tap_pod") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let ns = Namespaces::create("t", 2, 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let daemon = Daemon::start(&ns.sw, dir);
    add_veth_ports(dir, 2);
    let out = ctl_ok(
        dir,
        &["add-port", "tap-p3", "--type", "tap", "--ofport", "3"],
    );
    assert_eq!(out.trim(), "tap-p3: ofport 3");
    // The daemon keeps the fd; the netdev moves into the pod.
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
    assert!(counter(&flows, "priority=0") > 2 * (TRANSFER as u64 / 1500));
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
    let ns = Namespaces::create("v", 2, 0);
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
    let ns = Namespaces::create("r", 2, 0);
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
    let ns = Namespaces::create("k", 2, 0);
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
