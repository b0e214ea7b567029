//! Set-up shared by the demo's namespace tests (`demo.rs`,
//! `demo_restart.rs`, `demo_portsec.rs`): whether they must run, `weftctl demo ...` as a user
//! runs it, and a guard that runs `demo down` when dropped.

#![allow(dead_code, unreachable_pub)] // Each test file uses a part.
#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Under `CI=true` or `WEFT_REQUIRE_NETNS=1` a test that cannot run fails.
pub fn required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("WEFT_REQUIRE_NETNS").as_deref() == Ok("1")
}

pub fn skip(why: &str) -> bool {
    assert!(!required(), "demo test cannot run: {why}");
    eprintln!("\n******** SKIP demo test: {why} ********\n");
    true
}

pub fn weftctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weftctl"))
}

/// Not root, or the daemons are not built next to weftctl: skips (fails
/// when required).
pub fn cannot_run() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        == Some("0");
    if !root {
        return skip("not root");
    }
    let dir = weftctl().parent().unwrap().to_path_buf();
    for b in ["weft-switchd", "weft-controller", "weft-cni"] {
        if !dir.join(b).is_file() {
            return skip(&format!(
                "{} missing (cargo build -p weft-switchd -p weft-controller -p weft-cni)",
                dir.join(b).display()
            ));
        }
    }
    false
}

/// `weftctl demo ARGS --state-dir STATE`, from the repository root.
pub fn demo(args: &[&str], state: &Path) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(weftctl())
        .current_dir(&root)
        .arg("demo")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `demo down` when dropped (also when an assertion failed).
pub struct Down(pub PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if self.0.join("state.json").exists() {
            let o = demo(&["down"], &self.0);
            eprintln!("{}", text(&o));
        }
    }
}

/// The namespaces of demo run `id` that exist.
pub fn namespaces_of(id: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{id}-")))
        .map(str::to_owned)
        .collect()
}

/// The demo's `state.json`.
pub fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap()
}
