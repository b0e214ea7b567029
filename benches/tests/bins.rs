//! The end-to-end harness's two helper binaries, run as processes.
//!
//! Besides checking them as the harness uses them, this integration test
//! makes `cargo test --workspace` build `e2e-udprr` and `e2e-report`
//! (Cargo builds a package's binaries for its integration tests), with the
//! same profile and features as every other test binary. CI's `--check`
//! run of `benches/e2e/run.sh` then takes them, and `weft-switchd` and
//! `weftctl`, from that build with `--no-build` instead of compiling the
//! workspace crates a second time with a different feature set.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `e2e-udprr server` echoes, `e2e-udprr client` reports every request
/// answered, on loopback.
#[test]
fn udprr_client_and_server_on_loopback() {
    // A port that was free a moment ago; the server binds it again.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_e2e-udprr"))
            .args(["server", &addr])
            .spawn()
            .expect("start e2e-udprr server"),
    );
    // The client waits at most 200 ms per request; retry while the server
    // starts instead of sleeping a fixed time.
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new(env!("CARGO_BIN_EXE_e2e-udprr"))
            .args(["client", &addr, "--count", "100", "--warmup", "5"])
            .stderr(Stdio::inherit())
            .output()
            .expect("run e2e-udprr client");
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && last.contains("n=100 lost=0") {
            for key in ["avg_us=", "p50_us=", "p99_us=", "max_us=", "tps="] {
                assert!(last.contains(key), "{key} missing in {last:?}");
            }
            return;
        }
    }
    panic!("e2e-udprr client never got all 100 answers; last output {last:?}");
}

/// `e2e-report DIR` turns a raw.csv into the table, the CSV/JSON summaries
/// and the chart; a missing raw.csv is an error naming the file.
#[test]
fn report_builds_table_csv_json_and_chart() {
    let dir = std::env::temp_dir().join(format!("weft-e2e-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("raw.csv"),
        "scenario,rep,metric,value\n\
         bridge,1,pps,250000\novs-afpacket,1,pps,90000\nweft-afpacket,1,pps,180000\n\
         bridge,1,tcp1_gbps,16\novs-afpacket,1,tcp1_gbps,0.8\nweft-afpacket,1,tcp1_gbps,9\n",
    )
    .unwrap();
    std::fs::write(dir.join("machine.json"), r#"{"cpus": 2, "reps": 1}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-report"))
        .arg(&dir)
        .output()
        .expect("run e2e-report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "e2e-report failed: {stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("weft-afpacket"), "{table}");
    // 180 kpps / 90 kpps: the x OVS ratio of the weft row.
    assert!(table.contains("2.00"), "ratio 2.00 missing: {table}");
    for f in ["results.csv", "results.json", "table.md", "chart.png"] {
        let p: PathBuf = dir.join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} missing or empty", p.display());
    }

    std::fs::remove_file(dir.join("raw.csv")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-report"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("raw.csv"),
        "error does not name raw.csv: {stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
