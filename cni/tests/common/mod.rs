//! Shared set-up of the weft-cni integration tests: finding the binaries,
//! the "node" (a network namespace running the real `weft-switchd`), pod
//! namespaces, and running `weft-cni` exactly as a runtime does (environment
//! variables, configuration on stdin) inside the node's namespace.
//!
//! Names: `weft-c<pid>-<tag>-node` and `-p<i>`, deleted by exact name on
//! drop (after switchd is killed). Pod addresses exist only inside the pod
//! namespaces; nothing is added to the root namespace.
//!
//! The switchd tests' helpers (`switchd/tests/netns_switchd.rs`) live in
//! another crate's test target, which this crate cannot import; this file
//! follows the same pattern (can_run: fail under CI=true, skip loudly
//! otherwise).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The plugin binary.
pub fn cni_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-cni"))
}

/// Another workspace binary in the same target directory.
pub fn bin(name: &str) -> PathBuf {
    cni_bin().with_file_name(name)
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

/// True if the namespace test can run; under `CI=true` (or
/// `WEFT_REQUIRE_NETNS=1`) a missing prerequisite panics instead.
pub fn can_run(test: &str, extra: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (effective uid 0)".to_owned());
    }
    for (cmd, arg, what) in [
        ("ip", "-V", "the `ip` command (iproute2)"),
        ("ping", "-V", "the `ping` command"),
    ] {
        if !have(cmd, arg) {
            missing.push(what.to_owned());
        }
    }
    for b in ["weft-switchd", "weftctl"] {
        if !bin(b).exists() {
            missing.push(format!(
                "{} (built by `cargo test --workspace`)",
                bin(b).display()
            ));
        }
    }
    for p in extra {
        if !Path::new(p).exists() {
            missing.push((*p).to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("WEFT_REQUIRE_NETNS").as_deref() == Ok("1")
    {
        panic!("{test}: CI=true but missing {}", missing.join(", "));
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n**************** SKIP {test}: missing {} ****************\n",
        missing.join(", ")
    );
    false
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What one plugin run printed.
#[derive(Debug)]
pub struct CniOut {
    /// Exit status code.
    pub code: i32,
    /// stdout parsed as JSON (`Null` if empty).
    pub json: Value,
    /// stdout as text.
    pub stdout: String,
    /// stderr as text.
    pub stderr: String,
}

impl CniOut {
    fn from(out: Output) -> CniOut {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        CniOut {
            code: out.status.code().unwrap_or(-1),
            json: if stdout.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&stdout).unwrap_or(Value::String(stdout.clone()))
            },
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics unless the run succeeded.
    pub fn ok(self) -> CniOut {
        assert_eq!(
            self.code, 0,
            "plugin failed: {} {}",
            self.stdout, self.stderr
        );
        self
    }

    /// The error code of a failed run (exit 1 and a spec-shaped error).
    pub fn err_code(&self) -> u64 {
        assert_eq!(
            self.code, 1,
            "expected failure: {} {}",
            self.stdout, self.stderr
        );
        assert!(self.json["msg"].is_string(), "error has msg: {}", self.json);
        assert!(self.json["cniVersion"].is_string(), "error has cniVersion");
        self.json["code"].as_u64().unwrap()
    }
}

/// A plugin invocation.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub command: &'a str,
    pub container: &'a str,
    pub ifname: &'a str,
    /// `CNI_NETNS` (a path).
    pub netns: Option<String>,
    pub extra_env: Vec<(String, String)>,
}

impl<'a> Call<'a> {
    pub fn new(command: &'a str, container: &'a str, netns: Option<String>) -> Call<'a> {
        Call {
            command,
            container,
            ifname: "eth0",
            netns,
            extra_env: Vec::new(),
        }
    }

    /// Builds the command; `node_ns` = run inside that namespace.
    pub fn command(&self, plugin: &Path, node_ns: Option<&str>) -> Command {
        let mut c = match node_ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(plugin);
                c
            }
            None => Command::new(plugin),
        };
        c.env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", self.container)
            .env("CNI_IFNAME", self.ifname)
            .env("CNI_PATH", "/usr/lib/cni")
            .env("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=test")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = &self.netns {
            c.env("CNI_NETNS", n);
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Runs it with `conf` on stdin.
    pub fn run(&self, plugin: &Path, node_ns: Option<&str>, conf: &Value) -> CniOut {
        let mut child = self.command(plugin, node_ns).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(conf.to_string().as_bytes()).unwrap();
        drop(stdin);
        CniOut::from(child.wait_with_output().unwrap())
    }
}

/// A node: a namespace with `weft-switchd`, a state directory, pods.
pub struct Node {
    pub base: String,
    pub ns: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    created: Vec<String>,
}

impl Node {
    /// Creates `weft-c<pid>-<tag>-node` and starts switchd in it.
    pub fn start(tag: &str) -> Node {
        let base = format!("weft-c{}-{tag}", std::process::id());
        let ns = format!("{base}-node");
        ip(&["netns", "add", &ns]).unwrap();
        let mut n = Node {
            base,
            ns: ns.clone(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            created: vec![ns.clone()],
        };
        ip(&["-n", &ns, "link", "set", "lo", "up"]).unwrap();
        n.start_switchd();
        n
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("switchd.sock")
    }

    pub fn ipam_root(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("switchd.log")).unwrap_or_default()
    }

    pub fn start_switchd(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("switchd.log"))
            .unwrap();
        let child = Command::new(bin("weft-switchd"))
            .args(["--netns", &self.ns, "--socket"])
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.dir.path().join("switchd"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(self.socket().exists() && self.ctl(&["dump-tables"]).is_ok()) {
            assert!(
                Instant::now() < deadline,
                "switchd did not come up: {}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop_switchd(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The network configuration (one conflist entry).
    pub fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "weftnet",
            "type": "weft-cni",
            "socket": self.socket(),
            "underlayMtu": 1500,
            "ipam": {"subnet": "10.244.7.0/24", "dataDir": self.ipam_root()},
        })
    }

    /// Creates pod namespace `i`; returns (name, path).
    pub fn pod(&mut self, i: usize) -> (String, String) {
        let name = format!("{}-p{i}", self.base);
        ip(&["netns", "add", &name]).unwrap();
        self.created.push(name.clone());
        let path = format!("/run/netns/{name}");
        (name, path)
    }

    /// Deletes pod namespace `name` now.
    pub fn del_pod(&mut self, name: &str) {
        ip(&["netns", "del", name]).unwrap();
        self.created.retain(|n| n != name);
    }

    /// Runs the plugin inside the node.
    pub fn cni(&self, call: &Call<'_>, conf: &Value) -> CniOut {
        call.run(&cni_bin(), Some(&self.ns), conf)
    }

    /// weftctl against this node's switchd.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(bin("weftctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// switchd's ports: (ofport, name, link_up).
    pub fn ports(&self) -> Vec<(u64, String, bool)> {
        let v: Value = serde_json::from_str(&self.ctl(&["show", "--json"]).unwrap()).unwrap();
        v["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["ofport"].as_u64().unwrap(),
                    p["name"].as_str().unwrap().to_owned(),
                    p["link_up"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// Address files of the network.
    pub fn ipam_files(&self) -> Vec<String> {
        let dir = self.ipam_root().join("weftnet");
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// `wft*` links in the node namespace.
    pub fn host_links(&self) -> Vec<String> {
        ip(&["-n", &self.ns, "-o", "link", "show"])
            .unwrap()
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .filter(|n| n.starts_with("wft"))
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_switchd();
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Pings `to` from namespace `from` (up to 3 s).
pub fn ping(from: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", from, "ping", "-c", "1", "-W", "3", to])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The pod address (without prefix) of an ADD result.
pub fn result_ip(r: &Value) -> String {
    r["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Adds `prevResult` to a configuration.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}
