//! `weftctl` flow commands against the real `weft-switchd` binary, without
//! ports (no root, no namespaces): a temporary socket and state directory.
//!
//! `weftctl` is found next to `weft-switchd` in the target directory (see
//! `netns_switchd.rs`); without it the test fails under `CI=true` and
//! otherwise skips loudly.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn switchd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-switchd"))
}

fn weftctl_bin() -> PathBuf {
    switchd_bin().with_file_name("weftctl")
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path) -> Daemon {
    let d = Daemon(
        Command::new(switchd_bin())
            .arg("--socket")
            .arg(dir.join("s.sock"))
            .arg("--state-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl(dir, &["dump-tables"]).is_err() {
        assert!(Instant::now() < deadline, "switchd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
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

fn ok(dir: &Path, args: &[&str]) -> String {
    ctl(dir, args).unwrap_or_else(|e| panic!("weftctl {args:?}: {e}"))
}

#[test]
fn flow_commands() {
    if !weftctl_bin().exists() {
        let msg = format!(
            "{} missing (built by `cargo test --workspace`)",
            weftctl_bin().display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        let _ = std::io::stderr()
            .write_all(format!("\n******** SKIP flow_commands: {msg} ********\n").as_bytes());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _d = start(dir);

    // add-flows: all or nothing; a parse error names the line.
    let file = dir.join("flows.txt");
    std::fs::write(
        &file,
        "# pods\ntable=0,priority=100,ip,nw_dst=10.244.0.0/16,actions=resubmit(,10)\n\ncookie=0x7,table=10,priority=50,tcp,tp_dst=81,actions=drop\ntable=10,priority=0,actions=NORMAL\n",
    )
    .unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "actions=drop\nin_port=1,nosuch=3,actions=drop\n").unwrap();
    let e = ctl(dir, &["add-flows", bad.to_str().unwrap()]).unwrap_err();
    assert!(e.contains("bad.txt:2"), "{e}");
    assert_eq!(ok(dir, &["dump-flows", "--no-stats"]), "");
    let changed = ok(dir, &["add-flows", file.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&changed).unwrap();
    assert_eq!(v["added"], 3);

    // dump-flows --no-stats is add-flows input: replace-flows with it changes
    // nothing.
    let dump = ok(dir, &["dump-flows", "--no-stats"]);
    assert_eq!(
        dump,
        "priority=100,ip,nw_dst=10.244.0.0/16 actions=resubmit(,10)\n\
         cookie=0x7, table=10, priority=50,tcp,tp_dst=81 actions=drop\n\
         table=10, priority=0 actions=NORMAL\n"
    );
    let again = dir.join("again.txt");
    std::fs::write(&again, &dump).unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &["replace-flows", again.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    assert_eq!(
        (
            v["added"].as_u64(),
            v["modified"].as_u64(),
            v["removed"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );

    // With statistics, in ovs-ofctl's shape.
    let stats = ok(dir, &["dump-flows", "table=10"]);
    assert_eq!(stats.lines().count(), 2, "{stats}");
    assert!(
        stats
            .lines()
            .all(|l| l.starts_with(" cookie=") && l.contains("n_packets=0, n_bytes=0")),
        "{stats}"
    );

    // mod-flows, strict del-flows, cookie filters.
    ok(dir, &["mod-flows", "table=10,tcp,actions=output:NORMAL"]);
    assert!(
        ok(dir, &["dump-flows", "--no-stats", "table=10,tcp"]).contains("tp_dst=81 actions=NORMAL")
    );
    let v: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &[
            "del-flows",
            "--strict",
            "table=10,priority=51,tcp,tp_dst=81",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(v["removed"], 0);
    let v: serde_json::Value =
        serde_json::from_str(&ok(dir, &["del-flows", "cookie=0x7/0xff", "--json"])).unwrap();
    assert_eq!(v["removed"], 1);

    // A flow the pipeline rejects: error names the field; exit status 1.
    let e = ctl(dir, &["add-flow", "table=3,actions=goto_table:2"]).unwrap_err();
    assert!(e.contains("goto_table"), "{e}");
    let tables: serde_json::Value =
        serde_json::from_str(&ok(dir, &["dump-tables", "--json"])).unwrap();
    assert_eq!(tables[0]["table"], 0);
    assert_eq!(tables[1]["active"], 1);
    assert!(ok(dir, &["show"]).starts_with("weft-switchd"));
    let e = ctl(dir, &["del-port", "nosuch"]).unwrap_err();
    assert!(e.contains("no such port"), "{e}");
}

/// `weftctl trace` without `--offline` asks the running switchd: the walk
/// through its current flows, the same as tracing those flows offline.
#[test]
fn online_trace() {
    if !weftctl_bin().exists() {
        let msg = format!(
            "{} missing (built by `cargo test --workspace`)",
            weftctl_bin().display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        let _ = std::io::stderr()
            .write_all(format!("\n******** SKIP online_trace: {msg} ********\n").as_bytes());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _d = start(dir);

    // No ports exist, so the pipeline accepts any output port number.
    let file = dir.join("flows.txt");
    std::fs::write(
        &file,
        "cookie=0x5,table=0,priority=100,in_port=1,tcp,tp_dst=80,actions=goto_table:1\n\
         table=0,priority=0,actions=drop\n\
         table=1,priority=10,ip,nw_dst=10.0.0.2,actions=mod_nw_tos:32,output:2\n",
    )
    .unwrap();
    ok(dir, &["add-flows", file.to_str().unwrap()]);

    let flow = "tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=40000,tp_dst=80";
    let text = ok(dir, &["trace", "--in-port", "1", "--flow", flow]);
    for want in [
        " 0. tcp,in_port=1,tp_dst=80, priority 100, cookie 0x5\n    goto_table:1\n",
        " 1. ip,nw_dst=10.0.0.2, priority 10\n",
        "-> nw_tos: 0 -> 32\n",
        "output:2\n",
        "-> output to 2 (54 bytes)\n",
        "Final: 1 output(s), 0 packet-in(s)\n",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }

    // Exactly what an offline trace of the same flows says.
    let offline = ok(
        dir,
        &[
            "trace",
            "--offline",
            "--flows",
            file.to_str().unwrap(),
            "--in-port",
            "1",
            "--flow",
            flow,
        ],
    );
    assert_eq!(text, offline);

    // --json: the server's text.
    let v: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &["trace", "--in-port", "1", "--flow", flow, "--json"],
    ))
    .unwrap();
    assert_eq!(v["text"].as_str(), Some(text.as_str()));

    // Another port misses table 0's rule: the catch-all drops it.
    let dropped = ok(dir, &["trace", "--in-port", "3", "--flow", flow]);
    assert!(dropped.contains(" 0. priority 0\n"), "{dropped}");
    assert!(
        dropped.contains("Final: dropped (reason: no_output)"),
        "{dropped}"
    );
    assert!(!dropped.contains("output to 2"), "{dropped}");

    // Offline-only flags are refused without --offline.
    let e = ctl(dir, &["trace", "--ports", "1-3", "--flow", flow]).unwrap_err();
    assert!(e.contains("--offline"), "{e}");
}

#[test]
fn tlv_map_commands() {
    if !weftctl_bin().exists() {
        let msg = format!(
            "{} missing (built by `cargo test --workspace`)",
            weftctl_bin().display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        let _ = std::io::stderr()
            .write_all(format!("\n******** SKIP tlv_map_commands: {msg} ********\n").as_bytes());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = start(dir);
    ok(
        dir,
        &[
            "add-tlv-map",
            "{class=0xff57,type=0x80,len=4}->tun_metadata0",
        ],
    );
    ok(
        dir,
        &["add-tlv-map", "{class=0x102,type=5,len=8}->tun_metadata3"],
    );
    let text = ok(dir, &["dump-tlv-map"]);
    assert!(
        text.contains("0xff57  0x80  4       tun_metadata0"),
        "{text}"
    );
    assert!(
        text.contains("0x0102  0x5  8       tun_metadata3"),
        "{text}"
    );
    // Conflicts and bad entries are refused; the map stays as it was.
    let e = ctl(
        dir,
        &["add-tlv-map", "{class=1,type=1,len=4}->tun_metadata0"],
    )
    .unwrap_err();
    assert!(e.contains("conflicts"), "{e}");
    let e = ctl(
        dir,
        &["add-tlv-map", "{class=1,type=1,len=12}->tun_metadata1"],
    )
    .unwrap_err();
    assert!(
        e.contains("SetTlvMap.mappings") && e.contains("len must be 4 or 8"),
        "{e}"
    );
    let e = ctl(
        dir,
        &["add-tlv-map", "{class=1,type=1,len=4}->tun_metadata9"],
    )
    .unwrap_err();
    assert!(e.contains("tun_metadata9"), "{e}");
    assert_eq!(ok(dir, &["dump-tlv-map"]), text);
    // Flows match on a mapped option.
    ok(
        dir,
        &[
            "add-flow",
            "in_port=10,tun_metadata0=0x10002,actions=output:2",
        ],
    );
    // Persisted across a restart.
    drop(d);
    let d = start(dir);
    assert_eq!(ok(dir, &["dump-tlv-map"]), text);
    ok(
        dir,
        &["del-tlv-map", "{class=0x102,type=5,len=8}->tun_metadata3"],
    );
    let after = ok(dir, &["dump-tlv-map", "--json"]);
    assert!(
        after.contains("tun_metadata0") && !after.contains("tun_metadata3"),
        "{after}"
    );
    ok(dir, &["del-tlv-map"]);
    assert!(!ok(dir, &["dump-tlv-map"]).contains("tun_metadata"));
    drop(d);
}
