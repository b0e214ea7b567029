//! Namespace-test helpers of the tunnel tests (`netns_tunnels.rs`; written in parallel with [`super::netns`], to be folded into it): commands, namespaces with cleanup on drop, the
//! real `weft-switchd` daemon and `weftctl`.
//!
//! Rules (PREAMBLE): names start with `weft-` plus the test's pid; only
//! what a test created is deleted, by exact name, also on panic (guards
//! with `Drop`); under `CI=true` or `WEFT_REQUIRE_NETNS=1` a test that
//! cannot run fails instead of skipping.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use weft_switchd::port::enter_netns;

/// Runs `ip ARGS`; the error names the command and carries stderr.
pub fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args).map(|_| ())
}

/// `ip ARGS`, panicking with the command on failure.
pub fn ip_ok(args: &[&str]) {
    ip(args).unwrap_or_else(|e| panic!("{e}"));
}

/// Runs `cmd ARGS`; stdout, or the error with stderr.
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

/// True if the effective uid is 0.
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

/// The daemon under test.
pub fn switchd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-switchd"))
}

/// `weftctl`, built next to the daemon by `cargo test --workspace`.
pub fn weftctl_bin() -> PathBuf {
    switchd_bin().with_file_name("weftctl")
}

/// True if the test can run: root, the `tools`, `weftctl`. Otherwise
/// panics under `CI=true` / `WEFT_REQUIRE_NETNS=1`, or prints a loud skip.
pub fn can_run(test: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (effective uid 0)".to_owned());
    }
    for t in tools {
        if !have(t) {
            missing.push(format!("the `{t}` command"));
        }
    }
    if !weftctl_bin().exists() {
        missing.push(format!(
            "{} (built by `cargo test --workspace`)",
            weftctl_bin().display()
        ));
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("WEFT_REQUIRE_NETNS").as_deref() == Ok("1")
    {
        panic!("{test}: CI=true but missing {}", missing.join(", "));
    }
    let msg = format!(
        "\n**************** SKIP {test}: missing {} ****************\n",
        missing.join(", ")
    );
    let _ = std::io::stderr().write_all(msg.as_bytes());
    false
}

/// Namespaces this test created, deleted by exact name (reverse order) on
/// drop.
#[derive(Debug, Default)]
pub struct Netns {
    created: Vec<String>,
}

impl Netns {
    /// Creates namespace `name` (with `lo` up) and remembers it.
    pub fn add(&mut self, name: &str) -> String {
        ip_ok(&["netns", "add", name]);
        self.created.push(name.to_owned());
        ip_ok(&["-n", name, "link", "set", "lo", "up"]);
        name.to_owned()
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

/// Turns the offloads of interface `dev` in `ns` off (AF_PACKET ports
/// need complete frames; see `switchd::port::disable_offloads`).
pub fn no_offloads(ns: &str, dev: &str) {
    let d = dev.to_owned();
    in_netns(ns, move || weft_switchd::port::disable_offloads(&d))
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
            if sock.exists() && d.ctl(&["dump-tables"]).is_ok() {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "switchd did not come up: {}",
                d.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("switchd.log")).unwrap_or_default()
    }

    /// Runs `weftctl ARGS` against it: stdout, or stderr as `Err`.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(weftctl_bin())
            .arg("--socket")
            .arg(self.dir.join("s.sock"))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// [`Daemon::ctl`], panicking with the log on failure.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        self.ctl(args)
            .unwrap_or_else(|e| panic!("weftctl {args:?}: {e}\nswitchd log:\n{}", self.log()))
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

/// Pings `to` from namespace `from` (`count` echoes 0.2 s apart, deadline
/// `secs`); true if every echo was answered.
pub fn ping(from: &str, to: &str, count: u32, secs: u32) -> bool {
    exec_in(
        from,
        "ping",
        &[
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-w",
            &secs.to_string(),
            "-q",
            to,
        ],
    )
    .status
    .success()
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
