//! `weftctl demo bench`: policy-realization latency on a running demo
//! (issue #8: "object change -> enforced on all nodes, p50/p99 over 100
//! changes; goal p99 < 100 ms").
//!
//! # What is measured
//!
//! A NetworkPolicy `weft-bench` in `red-db` restricts `red-db/postgres`'s
//! egress to the red frontend on one TCP port, alternately `8080` (*allow*:
//! postgres -> frontend:8080 connects) and `80` (*deny*: it does not). Each
//! change is written as the controller's users write one: the new manifest
//! to a temporary file in the state directory (same file system, outside
//! the watched directory), then `rename(2)` onto
//! `manifests/zz-weft-bench.yaml` (the clock starts just before the
//! rename).
//!
//! "Enforced on node N" is read from N's switchd itself, over its control
//! socket: its flow table (as `dump-flows --no-stats` text) holds every flow
//! the target state adds and none it removes. Those two sets are learnt per
//! node in a warm-up (the full tables after the controller acknowledged
//! each state once). A change is realized when the last node is; every
//! node is polled (one flow dump each) every 2 ms. After every change one
//! real packet confirms it: a TCP connect from inside postgres' namespace
//! to frontend:8080 must succeed after *allow* and fail after *deny*; a
//! mismatch fails the run. The confirmation is not part of the time.
//!
//! The time therefore includes the controller noticing the file (its
//! directory watch), loading and compiling, the per-node diff, the bundle
//! over the control socket, switchd's validation, journal `fdatasync` and
//! publication of the new pipeline, plus up to one poll round (2 ms) of
//! this tool. It does not include the workers' next batch picking up the
//! published pipeline (one `ArcSwap` load per batch, microseconds).
//!
//! At the end the bench policy is removed and the demo is back in the state
//! `demo up` left it in.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args as ClapArgs;
use protocol::ctl::FlowFilter;
use protocol::text::format_flow;

use super::{State, StateArgs, all_acked, read_status, step};
use crate::ctl_client::Client;

/// `demo bench`.
#[derive(Debug, ClapArgs)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Number of policy changes (alternating allow/deny).
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Also write one line per change to FILE: index, wall-clock time of
    /// the rename (Unix microseconds) and the realization time per node in
    /// ms, to line up with the controller's and switchds' logs (their
    /// `model compiled`, `synced` and `published` lines) for a per-stage
    /// breakdown.
    #[arg(long, value_name = "FILE")]
    times: Option<std::path::PathBuf>,
}

const FILE: &str = "zz-weft-bench.yaml";
const PORT_ALLOW: u16 = 8080;

fn policy(allow: bool) -> String {
    let port = if allow { PORT_ALLOW } else { 80 };
    format!(
        "# weftctl demo bench: {} postgres -> red frontend:{PORT_ALLOW}\n\
         apiVersion: networking.k8s.io/v1\n\
         kind: NetworkPolicy\n\
         metadata: {{name: weft-bench, namespace: red-db}}\n\
         spec:\n  podSelector: {{matchLabels: {{app: postgres}}}}\n  policyTypes: [Egress]\n  egress:\n\
         \x20 - to: [{{namespaceSelector: {{matchLabels: {{tier: web}}}}, podSelector: {{matchLabels: {{app: frontend}}}}}}]\n\
         \x20   ports: [{{port: {port}}}]\n",
        if allow { "allow" } else { "deny" }
    )
}

/// Writes `text` as the bench manifest (temp file + rename); returns the
/// instant just before the rename.
fn write_policy(dir: &Path, text: Option<&str>) -> Result<Instant> {
    let m = dir.join("manifests");
    let target = m.join(FILE);
    match text {
        Some(t) => {
            // Written next to the manifests directory, not in it: a
            // temporary file in it would be a change of its own.
            let tmp = dir.join(".weft-bench.tmp");
            std::fs::write(&tmp, t).with_context(|| format!("writing {}", tmp.display()))?;
            let t0 = Instant::now();
            std::fs::rename(&tmp, &target)?;
            Ok(t0)
        }
        None => {
            let t0 = Instant::now();
            if target.exists() {
                std::fs::remove_file(&target)?;
            }
            Ok(t0)
        }
    }
}

/// Waits until the controller has a generation newer than `after` that
/// every node acknowledged.
fn settle(dir: &Path, after: u64) -> Result<u64> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Some(v) = read_status(dir) {
            let g = v["generation"].as_u64().unwrap_or(0);
            if g > after && all_acked(&v) {
                return Ok(g);
            }
            if let Some(e) = v["last_error"].as_str() {
                bail!("the controller rejected the bench policy: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("the controller did not settle within 30 s")
}

fn generation(dir: &Path) -> u64 {
    read_status(dir)
        .and_then(|v| v["generation"].as_u64())
        .unwrap_or(0)
}

fn flows(c: &mut Client) -> Result<BTreeSet<String>> {
    Ok(c.dump_flows(FlowFilter::default())?
        .iter()
        .map(|e| format_flow(&e.spec))
        .collect())
}

/// Per node: the flows the target state adds and removes.
struct Delta {
    add: Vec<String>,
    remove: Vec<String>,
}

impl Delta {
    fn holds(&self, t: &BTreeSet<String>) -> bool {
        self.add.iter().all(|f| t.contains(f)) && !self.remove.iter().any(|f| t.contains(f))
    }
}

/// Nearest-rank percentile of sorted `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[i.clamp(1, v.len()) - 1]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A TCP prober inside a pod: reads `IP PORT` lines, answers `1`/`0`
/// (connected and got the server's greeting within 0.5 s, three tries).
const PROBE: &str = r#"
import socket, sys
for l in sys.stdin:
    ip, port = l.split()
    ok = 0
    for _ in range(3):
        try:
            s = socket.create_connection((ip, int(port)), timeout=0.5)
            s.settimeout(0.5)
            ok = 1 if s.recv(16) == b"weft\n" else 0
            s.close()
        except OSError:
            ok = 0
        if ok: break
    print(ok, flush=True)
"#;

pub(super) fn bench(a: &BenchArgs) -> Result<ExitCode> {
    let dir = &a.state.state_dir;
    let st = State::load(dir)?;
    let pod = |ns: &str, name: &str| {
        st.pods
            .iter()
            .find(|p| p.namespace == ns && p.name == name)
            .ok_or_else(|| {
                anyhow!("demo bench needs pod {ns}/{name} of examples/manifests in the demo")
            })
    };
    let src = pod("red-db", "postgres")?;
    let dst_ip = pod("red-web", "frontend")?
        .ip
        .clone()
        .ok_or_else(|| anyhow!("red-web/frontend has no address"))?;
    if !read_status(dir).is_some_and(|v| all_acked(&v)) {
        bail!("the demo's controller is not settled (every node acknowledged); is the demo up?");
    }
    let mut nodes = st
        .nodes
        .iter()
        .map(|n| Ok((n.name.clone(), Client::connect(&n.socket)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut prober = Command::new("ip")
        .args(["netns", "exec", &src.netns, "python3", "-u", "-c", PROBE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the prober")?;
    let mut pin = prober.stdin.take().ok_or_else(|| anyhow!("prober stdin"))?;
    let mut pout = BufReader::new(
        prober
            .stdout
            .take()
            .ok_or_else(|| anyhow!("prober stdout"))?,
    );
    let mut probe = || -> Result<bool> {
        writeln!(pin, "{dst_ip} {PORT_ALLOW}")?;
        let mut l = String::new();
        pout.read_line(&mut l)?;
        Ok(l.trim() == "1")
    };

    let load_before = loadavg();
    step(&format!(
        "policy-realization bench: {} changes of NetworkPolicy red-db/weft-bench (postgres -> frontend:{PORT_ALLOW} allow/deny), {} nodes polled over their control sockets",
        a.changes,
        nodes.len()
    ));
    // Warm-up: each state once, to learn the flows that tell them apart.
    let mut refs = Vec::new();
    for allow in [true, false] {
        let g = generation(dir);
        write_policy(dir, Some(&policy(allow)))?;
        settle(dir, g)?;
        let mut per_node = Vec::new();
        for (_, c) in &mut nodes {
            per_node.push(flows(c)?);
        }
        if probe()? != allow {
            bail!(
                "warm-up: postgres -> frontend:{PORT_ALLOW} {} after the {} policy was acknowledged",
                if allow { "refused" } else { "connected" },
                if allow { "allow" } else { "deny" }
            );
        }
        refs.push(per_node);
    }
    let delta = |to_allow: bool| -> Vec<Delta> {
        let (from, to) = if to_allow {
            (&refs[1], &refs[0])
        } else {
            (&refs[0], &refs[1])
        };
        from.iter()
            .zip(to)
            .map(|(f, t)| Delta {
                add: t.difference(f).cloned().collect(),
                remove: f.difference(t).cloned().collect(),
            })
            .collect()
    };
    let to_allow = delta(true);
    let to_deny = delta(false);
    let changed: Vec<String> = nodes
        .iter()
        .zip(&to_allow)
        .filter(|(_, d)| !d.add.is_empty() || !d.remove.is_empty())
        .map(|((n, _), d)| format!("{n} (+{} -{})", d.add.len(), d.remove.len()))
        .collect();
    if changed.is_empty() {
        bail!("the bench policy's two states compile to the same flows on every node");
    }
    println!(
        "    flows that differ between allow and deny: {}",
        changed.join(", ")
    );

    let mut times = Vec::with_capacity(a.changes);
    let mut per_node_max = vec![0.0f64; nodes.len()];
    let mut wrong = 0;
    let mut lines = Vec::new();
    for i in 0..a.changes {
        let allow = i % 2 == 0;
        let want = if allow { &to_allow } else { &to_deny };
        let g = generation(dir);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let t0 = write_policy(dir, Some(&policy(allow)))?;
        let mut done: Vec<Option<f64>> = vec![None; nodes.len()];
        while done.iter().any(Option::is_none) {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("change {i}: not enforced on every node within 10 s");
            }
            for (k, (_, c)) in nodes.iter_mut().enumerate() {
                if done[k].is_none() && want[k].holds(&flows(c)?) {
                    done[k] = Some(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            if done.iter().any(Option::is_none) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let ms = done.iter().flatten().fold(0.0f64, |m, &x| m.max(x));
        for (k, d) in done.iter().enumerate() {
            per_node_max[k] = per_node_max[k].max(d.unwrap_or(0.0));
        }
        times.push(ms);
        if a.times.is_some() {
            let per: Vec<String> = done
                .iter()
                .map(|d| format!("{:.3}", d.unwrap_or(0.0)))
                .collect();
            lines.push(format!("{i} {wall} {}", per.join(" ")));
        }
        // The controller's acknowledgement, then a real packet.
        settle(dir, g)?;
        if probe()? != allow {
            wrong += 1;
            println!(
                "    change {i}: MISMATCH: postgres -> frontend:{PORT_ALLOW} {} after {}",
                if allow { "refused" } else { "connected" },
                if allow { "allow" } else { "deny" }
            );
        }
        if (i + 1) % 10 == 0 {
            println!("    {} changes, last {ms:.1} ms", i + 1);
        }
    }
    let g = generation(dir);
    write_policy(dir, None)?;
    settle(dir, g)?;
    drop(pin);
    let _ = prober.wait();
    if let Some(f) = &a.times {
        let names: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
        let text = format!(
            "# change rename_unix_us {}\n{}\n",
            names.join(" "),
            lines.join("\n")
        );
        std::fs::write(f, text).with_context(|| format!("writing {}", f.display()))?;
    }

    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
    println!(
        "policy realization (file renamed -> flows in every node's switchd), {} changes:",
        sorted.len()
    );
    println!(
        "    p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms, mean {mean:.1} ms",
        pct(&sorted, 50.0),
        pct(&sorted, 90.0),
        pct(&sorted, 99.0),
        sorted.last().copied().unwrap_or(f64::NAN),
        sorted.first().copied().unwrap_or(f64::NAN),
    );
    for ((n, _), m) in nodes.iter().zip(&per_node_max) {
        println!("    {n}: slowest {m:.1} ms");
    }
    println!(
        "    packet check after every change: {} of {} as expected",
        sorted.len() - wrong,
        sorted.len()
    );
    println!(
        "    load average before {load_before}, after {} ({} CPUs)",
        loadavg(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let p99 = pct(&sorted, 99.0);
    println!(
        "goal p99 < 100 ms: {}",
        if p99 < 100.0 { "met" } else { "missed" }
    );
    Ok(if wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
