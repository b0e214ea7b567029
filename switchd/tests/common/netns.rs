//! Shared set-up of the namespace tests (`netns_switchd.rs`,
//! `netns_e2e_more.rs`, `netns_workers.rs`, `netns_tunnels.rs`): commands,
//! namespaces deleted on drop ([`Netns`], and the one-switch topology
//! [`Namespaces`] on top of it), the real `weft-switchd` ([`Daemon`]) and
//! `weftctl`, UDP and TCP traffic.
//!
//! Needs root, `ip`, `ping`, `python3` (or the tools a test names, see
//! [`can_run_with`]) and `weftctl` next to `weft-switchd`
//! (`cargo build --workspace`); under `CI=true` or `WEFT_REQUIRE_NETNS=1`
//! their absence is a failure, elsewhere a loud skip. Namespaces start with
//! `weft-` and the test's pid (`weft-<tag><pid>-{sw,p1,..}` for
//! [`Namespaces`]) and are deleted by exact name, in reverse order of
//! creation, on drop, also on panic (drop the [`Daemon`] first).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use weft_switchd::port::{disable_offloads, enter_netns};

/// Bytes of [`tcp_transfer`].
pub const TRANSFER: usize = 1 << 20;

/// Runs `ip ARGS`; the error names the command and carries its output.
pub fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args).map(|_| ())
}

/// `ip ARGS`, panicking with the command on failure.
pub fn ip_ok(args: &[&str]) {
    ip(args).unwrap_or_else(|e| panic!("{e}"));
}

/// Runs `cmd ARGS`; stdout, or the error with stderr and stdout.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd} {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Runs `cmd ARGS` inside namespace `ns` (`ip netns exec`).
pub fn exec_in(ns: &str, cmd: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, cmd])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip netns exec {ns} {cmd}: {e}"))
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// True if `cmd` can be started.
pub fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn switchd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-switchd"))
}

pub fn weftctl_bin() -> PathBuf {
    switchd_bin().with_file_name("weftctl")
}

/// [`can_run_with`] the tools of the one-switch tests: `ip`, `ping`,
/// `python3`.
pub fn can_run(test: &str) -> bool {
    can_run_with(test, &["ip", "ping", "python3"])
}

/// True if the test can run: root, the commands `tools`, `weftctl`.
/// Otherwise panics under `CI=true` / `WEFT_REQUIRE_NETNS=1`, or prints a
/// loud skip and returns false.
pub fn can_run_with(test: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (effective uid 0)".to_owned());
    }
    for cmd in tools {
        if !have(cmd) {
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
    if std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("WEFT_REQUIRE_NETNS").as_deref() == Ok("1")
    {
        panic!(
            "{test}: CI=true or WEFT_REQUIRE_NETNS=1 but missing {}",
            missing.join(", ")
        );
    }
    let msg = format!(
        "\n**************** SKIP {test}: missing {} ****************\n",
        missing.join(", ")
    );
    let _ = std::io::stderr().write_all(msg.as_bytes());
    false
}

/// Namespaces a test created, deleted by exact name (reverse order) on
/// drop.
#[derive(Debug, Default)]
pub struct Netns {
    created: Vec<String>,
}

impl Netns {
    /// Creates namespace `name` (with `lo` up) and remembers it.
    pub fn add(&mut self, name: &str) -> String {
        self.add_down(name);
        ip_ok(&["-n", name, "link", "set", "lo", "up"]);
        name.to_owned()
    }

    /// Creates namespace `name` (`lo` left down) and remembers it.
    pub fn add_down(&mut self, name: &str) {
        ip_ok(&["netns", "add", name]);
        self.created.push(name.to_owned());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// The namespaces of a one-switch test, deleted by exact name on drop.
pub struct Namespaces {
    /// The switch's namespace.
    pub sw: String,
    /// The pods' namespaces, `p1..`.
    pub pods: Vec<String>,
    created: Netns,
}

impl Namespaces {
    /// A switch namespace `weft-<tag><pid>-sw` and `veth_pods` pods
    /// `...-p1..` each with `eth0` 10.244.0.i/24 veth'd to `sw-pi`;
    /// `extra_pods` more empty pods. `tag` keeps the tests of one process
    /// apart.
    pub fn create(tag: &str, veth_pods: usize, extra_pods: usize) -> Namespaces {
        let base = format!("weft-{tag}{}", std::process::id());
        let mut ns = Namespaces {
            sw: format!("{base}-sw"),
            pods: (1..=veth_pods + extra_pods)
                .map(|i| format!("{base}-p{i}"))
                .collect(),
            created: Netns::default(),
        };
        for name in std::iter::once(ns.sw.clone()).chain(ns.pods.clone()) {
            ns.created.add_down(&name);
            // IPv4 only: no IPv6 router solicitations, DAD or MLD reports
            // from interfaces coming up, so the traffic the switch sees is
            // the traffic a test sends (and its ARP).
            in_netns(&name, || {
                for conf in ["default", "all"] {
                    std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")
                        .unwrap();
                }
            })
            .join()
            .unwrap();
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

/// Runs `f` on a thread inside namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = PathBuf::from(format!("/run/netns/{ns}"));
    thread::spawn(move || {
        enter_netns(&path).unwrap();
        f()
    })
}

/// True if `dev` in `ns` has an XDP program attached (`ip -d link show`
/// prints `prog/xdp` and an `xdp`/`xdpgeneric`/`xdpdrv` attribute).
pub fn has_xdp(ns: &str, dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "link", "show", "dev", dev])
        .output()
        .unwrap();
    assert!(out.status.success(), "ip link show {dev} in {ns}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("prog/xdp") || text.split_whitespace().any(|w| w.starts_with("xdp"))
}

/// Turns the offloads of interface `dev` in `ns` off (AF_PACKET ports
/// need complete frames; see `switchd::port::disable_offloads`).
pub fn no_offloads(ns: &str, dev: &str) {
    let d = dev.to_owned();
    in_netns(ns, move || disable_offloads(&d))
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("offloads of {dev} in {ns}: {e}"));
}

/// A running `weft-switchd`, SIGKILLed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Its state directory (socket `s.sock`, log `switchd.log`).
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts the daemon in `netns` with state in `dir`; returns when it
    /// answers on its socket.
    pub fn start(netns: &str, dir: &Path) -> Daemon {
        Self::start_with(netns, dir, &[])
    }

    /// Starts `weft-switchd --netns NETNS ... EXTRA` with its socket, state
    /// and log (`switchd.log`) in `dir`; returns once it answers.
    pub fn start_with(netns: &str, dir: &Path, extra: &[&str]) -> Daemon {
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
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            dir: dir.to_path_buf(),
        };
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

    /// SIGTERM (a clean stop: the daemon logs its workers' final
    /// counters) and waits up to 10 s for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // The shell's `kill` builtin: no dependency on procps.
        let st = Command::new("sh")
            .args([
                "-c",
                "kill -TERM \"$1\"",
                "sh",
                &self.child.id().to_string(),
            ])
            .status();
        assert!(
            st.as_ref().is_ok_and(|s| s.success()),
            "kill -TERM failed: {st:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "switchd ignored SIGTERM");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, waiting for the exit.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        log_of(&self.dir)
    }

    /// Runs `weftctl ARGS` against it: stdout, or stderr as `Err`.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        ctl(&self.dir, args)
    }

    /// [`Daemon::ctl`], panicking with the log on failure.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        ctl_ok(&self.dir, args)
    }

    /// `weftctl ARGS --json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ctl_ok(&a)).unwrap()
    }

    /// The drop counter `reason` (`weftctl dump-stats`).
    pub fn drops(&self, reason: &str) -> u64 {
        self.json(&["dump-stats"])["drops"][reason]
            .as_u64()
            .unwrap_or_else(|| panic!("no drop counter {reason}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The log (`switchd.log`) of the daemon with state in `dir`.
pub fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("switchd.log")).unwrap_or_default()
}

/// Runs `weftctl ARGS` against the daemon with state in `dir`: stdout, or
/// stderr as `Err`.
pub fn ctl(dir: &Path, args: &[&str]) -> Result<String, String> {
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

/// [`ctl`], panicking with the daemon's log on failure.
pub fn ctl_ok(dir: &Path, args: &[&str]) -> String {
    ctl(dir, args)
        .unwrap_or_else(|e| panic!("weftctl {args:?}: {e}\nswitchd log:\n{}", log_of(dir)))
}

/// Adds AF_PACKET ports `sw-p1..=sw-pn` as ofports 1..=n.
pub fn add_veth_ports(dir: &Path, n: u32) {
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
pub fn flows_cmd(dir: &Path, cmd: &str, name: &str, text: &str) {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    ctl_ok(dir, &[cmd, f.to_str().unwrap()]);
}

/// Pings `to` from `from` (3 echoes, deadline 6 s); see [`ping_n`].
pub fn ping(from: &str, to: &str) -> bool {
    ping_n(from, to, 3, 6)
}

/// [`ping`] with a deadline of `secs` seconds.
pub fn ping_within(from: &str, to: &str, secs: &str) -> bool {
    ping_n(from, to, 3, secs.parse().unwrap())
}

/// Pings `to` from namespace `from` (`count` echoes 0.2 s apart, deadline
/// `secs`); true if every echo was answered before the deadline (ping's
/// exit status with `-c` and `-w`).
pub fn ping_n(from: &str, to: &str, count: u32, secs: u32) -> bool {
    Command::new("ip")
        .args(["netns", "exec", from, "ping", "-c"])
        .arg(count.to_string())
        .args(["-i", "0.2", "-w"])
        .arg(secs.to_string())
        .args(["-q", to])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `f` every 50 ms until it returns true or `secs` pass.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// JSON dump of the flows: (flow text, n_packets).
pub fn flows_json(dir: &Path) -> Vec<(String, u64)> {
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

/// `n_bytes` of the first flow whose text contains `needle`.
pub fn flow_bytes(dir: &Path, needle: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["dump-flows", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no flow with {needle}: {v}"))["n_bytes"]
        .as_u64()
        .unwrap()
}

pub fn counter(flows: &[(String, u64)], needle: &str) -> u64 {
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
pub const UDP_PY: &str = r#"
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
pub struct Datagram {
    /// Sequence number sent.
    pub seq: u64,
    /// IP TOS received (-1 if not reported).
    pub tos: i64,
    /// Microseconds since the receiver was ready.
    pub t_us: u64,
}

/// A running receiver.
pub struct Receiver {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Receiver {
    pub fn start(ns: &str, addr: &str, port: u16, n: usize, idle_s: f64) -> Receiver {
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

    pub fn finish(mut self) -> Vec<Datagram> {
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
pub fn start_sender(ns: &str, dst: &str, port: u16, n: usize, interval_s: f64) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", UDP_PY, "send", dst])
        .arg(port.to_string())
        .arg(n.to_string())
        .arg(interval_s.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn wait_sender(child: Child) -> usize {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "UDP sender failed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Sequence numbers 0..n missing from `got`.
pub fn missing(got: &[Datagram], n: usize) -> Vec<u64> {
    let seen: std::collections::BTreeSet<u64> = got.iter().map(|d| d.seq).collect();
    (0..n as u64).filter(|s| !seen.contains(s)).collect()
}

/// A 1 MiB TCP transfer from `client_ns` to `server_addr`:5201 in
/// `server_ns`; the server echoes a byte sum back.
pub fn tcp_transfer(client_ns: &str, server_ns: &str, server_addr: &str) {
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
