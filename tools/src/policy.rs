//! `weftctl policy`: NetworkPolicy answers computed by the **real switchd
//! pipeline** (`weft_controller::check`): the manifests are loaded and
//! translated into the logical model, compiled into every node's flows,
//! loaded into switchd pipelines, and each probe is a packet walked through
//! the source node, the tunnel hop and the destination node.
//!
//! - `check --from NS/POD|IP --to NS/POD|IP --port P --protocol TCP|UDP|SCTP`
//!   prints `allow` or `deny` and the rule(s) that decided;
//! - `check --probes FILE|-` reads lines `FROM TO PORT PROTO` (blank lines
//!   and `#` comments skipped) and prints one `allow`/`deny` per line, in
//!   order;
//! - `matrix [--probe PROTO/PORT]... | [--port P --protocol PROTO]` prints
//!   one pod-to-pod table per probe (`.` allowed, `X` denied; rows are
//!   sources), each under a `PROTO/PORT` line; the model is compiled once.
//!   Without any of these flags: TCP/80.
//!
//! `--json` everywhere (matrix: `{"pods": [...], "matrices": [{"protocol",
//! "port", "cells": [[bool]]}]}`, `cells[from][to]` in `pods` order).
//! `--trace` (single check) also prints each node's pipeline walk.
//! `--src-ip`/`--src-mac` (single check) send the packet with another
//! source address than the pod's own, as a pod trying to spoof would (it
//! still enters on the pod's port): port security should drop it. A
//! single check also names the pods the packet was delivered to when that
//! is not exactly the destination (e.g. the pod of the source's tenant
//! that owns the same address as another tenant's destination).

use std::io::{BufRead, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::json;
use weft_controller::check::{Cluster, Endpoint, SourceOverride};
use weft_controller::model::L4Protocol;

/// `weftctl policy ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Is traffic from one pod (or address) to another allowed? Prints
    /// `allow` or `deny` and the rule(s) that decided.
    Check(CheckArgs),
    /// The pod-to-pod reachability table.
    Matrix(MatrixArgs),
}

/// `policy check`.
#[derive(Debug, ClapArgs)]
pub(crate) struct CheckArgs {
    /// A YAML file or a directory of `*.yaml`/`*.yml` (as `kubectl apply -f`).
    #[arg(long)]
    manifests: PathBuf,
    /// Source: `NAMESPACE/POD` or an IP address.
    #[arg(long, required_unless_present = "probes")]
    from: Option<String>,
    /// Destination: `NAMESPACE/POD` or an IP address.
    #[arg(long, required_unless_present = "probes")]
    to: Option<String>,
    /// Destination port.
    #[arg(long, required_unless_present = "probes")]
    port: Option<u16>,
    /// TCP, UDP or SCTP.
    #[arg(long, default_value = "TCP")]
    protocol: String,
    /// Batch: a file (or `-` for stdin) of lines `FROM TO PORT PROTO`.
    #[arg(long, conflicts_with_all = ["from", "to", "port"])]
    probes: Option<String>,
    /// Also print each node's pipeline walk.
    #[arg(long, conflicts_with = "probes")]
    trace: bool,
    /// Send from this IPv4 address instead of the source pod's own
    /// (spoofing; port security should drop it).
    #[arg(long, value_name = "IPV4", conflicts_with = "probes")]
    src_ip: Option<std::net::Ipv4Addr>,
    /// Send from this MAC instead of the source pod's own.
    #[arg(long, value_name = "MAC", conflicts_with = "probes")]
    src_mac: Option<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// `policy matrix`.
#[derive(Debug, ClapArgs)]
pub(crate) struct MatrixArgs {
    /// A YAML file or a directory of `*.yaml`/`*.yml`.
    #[arg(long)]
    manifests: PathBuf,
    /// A probe `PROTO/PORT` (`tcp/80`, `UDP/81`, `sctp/80`); repeatable,
    /// one matrix each.
    #[arg(long, value_name = "PROTO/PORT", conflicts_with_all = ["port", "protocol"])]
    probe: Vec<String>,
    /// Destination port (a single probe; default 80).
    #[arg(long)]
    port: Option<u16>,
    /// TCP, UDP or SCTP (with --port; default TCP).
    #[arg(long)]
    protocol: Option<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

fn protocol(s: &str) -> Result<L4Protocol> {
    Ok(match s.to_ascii_uppercase().as_str() {
        "TCP" => L4Protocol::Tcp,
        "UDP" => L4Protocol::Udp,
        "SCTP" => L4Protocol::Sctp,
        _ => bail!("protocol {s:?}: expected TCP, UDP or SCTP"),
    })
}

fn load(path: &std::path::Path) -> Result<Cluster> {
    let t = weft_controller::translate::load_model(path)
        .with_context(|| format!("loading {}", path.display()))?;
    for a in &t.assumptions {
        eprintln!("weftctl: {a}");
    }
    Cluster::new(t.model).context("compiling the flows")
}

pub(crate) fn run(cmd: &PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Check(a) => check(a),
        PolicyCommand::Matrix(a) => matrix(a),
    }
}

fn check(a: &CheckArgs) -> Result<ExitCode> {
    let cl = load(&a.manifests)?;
    if let Some(src) = &a.probes {
        return batch(&cl, src, a.json);
    }
    let (Some(from), Some(to), Some(port)) = (&a.from, &a.to, a.port) else {
        bail!("--from, --to and --port are required without --probes");
    };
    let proto = protocol(&a.protocol)?;
    let (f, t) = (Endpoint::parse(from)?, Endpoint::parse(to)?);
    let spoof = SourceOverride {
        ip: a.src_ip,
        mac: match &a.src_mac {
            Some(m) => Some(
                crate::trace::parse_mac(m)
                    .with_context(|| format!("--src-mac {m:?}: expected xx:xx:xx:xx:xx:xx"))?,
            ),
            None => None,
        },
    };
    let (p, traces) = cl.probe_as(&f, &t, port, proto, spoof, a.trace)?;
    let verdict = if p.allowed { "allow" } else { "deny" };
    if a.json {
        let v = json!({
            "from": from, "to": to, "port": port, "protocol": a.protocol.to_ascii_uppercase(),
            "src_ip": a.src_ip, "src_mac": a.src_mac,
            "verdict": verdict, "decided_by": p.decided_by, "nodes": p.nodes,
            "delivered_to": p.delivered_to,
            "traces": traces.iter().map(|t| json!({"node": t.node, "text": t.text})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{verdict}");
        for d in &p.decided_by {
            println!("  {d}");
        }
        if !p.delivered_to.is_empty() && p.delivered_to != [to.as_str()] {
            println!("  delivered to {}", p.delivered_to.join(", "));
        }
        for t in &traces {
            println!("\n== node {}\n{}", t.node, t.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn batch(cl: &Cluster, src: &str, json: bool) -> Result<ExitCode> {
    let reader: Box<dyn BufRead> = if src == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(src).with_context(|| format!("opening {src}"))?,
        ))
    };
    let mut out = std::io::stdout().lock();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {src}"))?;
        let t = line.split('#').next().unwrap_or("").trim();
        if t.is_empty() {
            continue;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        let [from, to, port, proto] = w.as_slice() else {
            bail!("{src}:{}: expected `FROM TO PORT PROTO`, got {t:?}", i + 1);
        };
        let port: u16 = port
            .parse()
            .with_context(|| format!("{src}:{}: port {port:?}", i + 1))?;
        let proto_v = protocol(proto).with_context(|| format!("{src}:{}", i + 1))?;
        let p = cl
            .probe(
                &Endpoint::parse(from)?,
                &Endpoint::parse(to)?,
                port,
                proto_v,
            )
            .with_context(|| format!("{src}:{}", i + 1))?;
        let verdict = if p.allowed { "allow" } else { "deny" };
        if json {
            let v = json!({"from": from, "to": to, "port": port, "protocol": proto.to_ascii_uppercase(),
                "verdict": verdict, "decided_by": p.decided_by});
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{verdict}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `PROTO/PORT` (`tcp/80`).
fn parse_probe(s: &str) -> Result<(L4Protocol, u16)> {
    let (proto, port) = s
        .split_once('/')
        .with_context(|| format!("--probe {s:?}: expected PROTO/PORT, e.g. tcp/80"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .with_context(|| format!("--probe {s:?}: {port:?} is not a port (1..65535)"))?;
    Ok((
        protocol(proto).with_context(|| format!("--probe {s:?}"))?,
        port,
    ))
}

fn proto_name(p: L4Protocol) -> &'static str {
    match p {
        L4Protocol::Tcp => "TCP",
        L4Protocol::Udp => "UDP",
        L4Protocol::Sctp => "SCTP",
    }
}

fn matrix(a: &MatrixArgs) -> Result<ExitCode> {
    let mut probes = a
        .probe
        .iter()
        .map(|s| parse_probe(s))
        .collect::<Result<Vec<_>>>()?;
    if probes.is_empty() {
        probes.push((
            protocol(a.protocol.as_deref().unwrap_or("TCP"))?,
            a.port.unwrap_or(80),
        ));
    }
    let cl = load(&a.manifests)?;
    let mut pods = Vec::new();
    let mut matrices = Vec::new();
    for &(proto, port) in &probes {
        let m = cl.matrix(port, proto)?;
        pods.clone_from(&m.pods);
        matrices.push((proto, port, m));
    }
    if a.json {
        let v = json!({
            "pods": pods,
            "matrices": matrices.iter().map(|(proto, port, m)| json!({
                "protocol": proto_name(*proto), "port": port, "cells": m.cells,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (i, (proto, port, m)) in matrices.iter().enumerate() {
            if i > 0 {
                println!();
            }
            println!("{}/{port}", proto_name(*proto));
            print!("{}", m.to_text());
        }
    }
    Ok(ExitCode::SUCCESS)
}
