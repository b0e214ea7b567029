//! `weftctl policy`: NetworkPolicy answers computed by the **real switchd
//! pipeline** (`weft_controller::check`): the manifests are loaded and
//! translated into the logical model, compiled into every node's flows,
//! loaded into switchd pipelines, and each probe is a packet walked through
//! the source node, the tunnel hop and the destination node.
//!
//! - `check --from NS/POD|IP --to NS/POD|IP --port P --protocol TCP|UDP|SCTP`
//!   (or `--protocol ICMP` without a port: an echo request, ping)
//!   prints `allow` or `deny` and the rule(s) that decided;
//! - `check --probes FILE|-` reads lines `FROM TO PORT PROTO` (blank lines
//!   and `#` comments skipped; PORT `-` for ICMP) and prints one
//!   `allow`/`deny` per line, in order;
//! - `matrix [--probe PROTO/PORT|icmp]... | [--port P --protocol PROTO]`
//!   prints one pod-to-pod table per probe (`.` allowed, `X` denied; rows
//!   are sources), each under a `PROTO/PORT` (or `ICMP`) line; the model is
//!   compiled once. Without any of these flags: TCP/80.
//!
//! By default a probe is the first packet of a connection (what Kubernetes
//! NetworkPolicy decides on). `--round-trip` (check, batch and matrix)
//! also sends the destination's reply (TCP SYN+ACK, UDP/SCTP from the
//! served port, ICMP echo reply) back through the pipelines and answers
//! `allow` only when both directions pass: what Weft's stateless
//! return-traffic ACLs really do (`weft_controller::check`, "Round
//! trips"), which differs from Kubernetes for some UDP/SCTP replies. A
//! single check then prints the rules of each direction.
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
use weft_controller::check::{Cluster, Endpoint, NodeTrace, Probe, Service, SourceOverride};
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
    /// Destination port (not with ICMP).
    #[arg(long)]
    port: Option<u16>,
    /// TCP, UDP, SCTP or ICMP (an echo request: ping).
    #[arg(long, default_value = "TCP")]
    protocol: String,
    /// Also send the destination's reply; allowed only if both directions
    /// pass (what Weft does without conntrack).
    #[arg(long)]
    round_trip: bool,
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
    /// A probe `PROTO/PORT` (`tcp/80`, `UDP/81`, `sctp/80`) or `icmp`
    /// (ping); repeatable, one matrix each.
    #[arg(long, value_name = "PROTO/PORT", conflicts_with_all = ["port", "protocol"])]
    probe: Vec<String>,
    /// Destination port (a single probe; default 80).
    #[arg(long)]
    port: Option<u16>,
    /// TCP, UDP, SCTP (with --port; default TCP) or ICMP.
    #[arg(long)]
    protocol: Option<String>,
    /// Round trips: a cell is allowed only if the reply passes too.
    #[arg(long)]
    round_trip: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// `--protocol` and `--port` as a service: a port for TCP/UDP/SCTP, none
/// for ICMP.
fn service(proto: &str, port: Option<u16>) -> Result<Service> {
    let p = match proto.to_ascii_uppercase().as_str() {
        "ICMP" => {
            if let Some(port) = port {
                bail!("--port {port}: ICMP (ping) has no port");
            }
            return Ok(Service::Ping);
        }
        "TCP" => L4Protocol::Tcp,
        "UDP" => L4Protocol::Udp,
        "SCTP" => L4Protocol::Sctp,
        _ => bail!("protocol {proto:?}: expected TCP, UDP, SCTP or ICMP"),
    };
    let Some(port) = port else {
        bail!("--port is required for {}", proto.to_ascii_uppercase());
    };
    Ok(Service::L4(p, port))
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
        return batch(&cl, src, a.json, a.round_trip);
    }
    let (Some(from), Some(to)) = (&a.from, &a.to) else {
        bail!("--from and --to are required without --probes");
    };
    let svc = service(&a.protocol, a.port)?;
    let (f, t) = (Endpoint::parse(from)?, Endpoint::parse(to)?);
    if a.round_trip {
        if a.src_ip.is_some() || a.src_mac.is_some() {
            bail!("--round-trip: a spoofed source gets no reply; drop --src-ip/--src-mac");
        }
        return round_trip(&cl, from, to, &f, &t, svc, a);
    }
    let Service::L4(proto, port) = svc else {
        let p = cl.probe_service(&f, &t, svc)?;
        return print_one(from, to, svc, None, &p, &[], a.json);
    };
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
    print_one(from, to, svc, Some(a), &p, &traces, a.json)
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

/// `"TCP"`, ..., `"ICMP"` and the port (`null` for ICMP), as the JSON says.
fn proto_port(s: Service) -> (&'static str, Option<u16>) {
    match s {
        Service::L4(p, port) => (proto_name(p), Some(port)),
        Service::Ping => ("ICMP", None),
    }
}

fn print_one(
    from: &str,
    to: &str,
    svc: Service,
    spoof: Option<&CheckArgs>,
    p: &Probe,
    traces: &[NodeTrace],
    json: bool,
) -> Result<ExitCode> {
    let (proto, port) = proto_port(svc);
    if json {
        let v = json!({
            "from": from, "to": to, "port": port, "protocol": proto,
            "src_ip": spoof.and_then(|a| a.src_ip), "src_mac": spoof.and_then(|a| a.src_mac.clone()),
            "verdict": verdict(p.allowed), "decided_by": p.decided_by, "nodes": p.nodes,
            "delivered_to": p.delivered_to,
            "traces": traces.iter().map(|t| json!({"node": t.node, "text": t.text})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", verdict(p.allowed));
        for d in &p.decided_by {
            println!("  {d}");
        }
        if !p.delivered_to.is_empty() && p.delivered_to != [to] {
            println!("  delivered to {}", p.delivered_to.join(", "));
        }
        for t in traces {
            println!("\n== node {}\n{}", t.node, t.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `check --round-trip`: the verdict, then each direction's rules.
fn round_trip(
    cl: &Cluster,
    from: &str,
    to: &str,
    f: &Endpoint,
    t: &Endpoint,
    svc: Service,
    a: &CheckArgs,
) -> Result<ExitCode> {
    let r = cl.round_trip(f, t, svc, a.trace)?;
    let rt = &r.round_trip;
    let (proto, port) = proto_port(svc);
    let dir = |p: &Probe, traces: &[NodeTrace]| {
        json!({
            "verdict": verdict(p.allowed), "decided_by": p.decided_by, "nodes": p.nodes,
            "delivered_to": p.delivered_to,
            "traces": traces.iter().map(|t| json!({"node": t.node, "text": t.text})).collect::<Vec<_>>(),
        })
    };
    if a.json {
        let v = json!({
            "from": from, "to": to, "port": port, "protocol": proto, "round_trip": true,
            "verdict": verdict(rt.allowed),
            "forward": dir(&rt.forward, &r.forward),
            "reply": rt.reply.as_ref().map(|p| dir(p, &r.reply)),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", verdict(rt.allowed));
    println!("  forward ({svc}): {}", verdict(rt.forward.allowed));
    for d in &rt.forward.decided_by {
        println!("    {d}");
    }
    match &rt.reply {
        Some(p) => {
            println!("  reply: {}", verdict(p.allowed));
            for d in &p.decided_by {
                println!("    {d}");
            }
            if rt.forward.allowed && !p.allowed {
                println!(
                    "  note: Kubernetes allows the replies of an allowed connection; Weft (no conntrack yet) drops this one"
                );
            }
        }
        None if rt.forward.nodes.is_empty() => {}
        None => println!("  reply: not sent (the forward probe did not arrive)"),
    }
    for (what, traces) in [("forward", &r.forward), ("reply", &r.reply)] {
        for t in traces.iter() {
            println!("\n== {what}, node {}\n{}", t.node, t.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn batch(cl: &Cluster, src: &str, json: bool, round: bool) -> Result<ExitCode> {
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
        let port: Option<u16> = if *port == "-" {
            None
        } else {
            Some(
                port.parse()
                    .with_context(|| format!("{src}:{}: port {port:?}", i + 1))?,
            )
        };
        let svc = service(proto, port).with_context(|| format!("{src}:{}", i + 1))?;
        let (f, t) = (Endpoint::parse(from)?, Endpoint::parse(to)?);
        let (allowed, decided_by) = if round {
            let r = cl
                .round_trip(&f, &t, svc, false)
                .with_context(|| format!("{src}:{}", i + 1))?
                .round_trip;
            let mut d = r.forward.decided_by;
            if let Some(p) = r.reply {
                d.extend(p.decided_by.into_iter().map(|x| format!("reply: {x}")));
            }
            (r.allowed, d)
        } else {
            let p = cl
                .probe_service(&f, &t, svc)
                .with_context(|| format!("{src}:{}", i + 1))?;
            (p.allowed, p.decided_by)
        };
        if json {
            let (proto, port) = proto_port(svc);
            let v = json!({"from": from, "to": to, "port": port, "protocol": proto,
                "verdict": verdict(allowed), "decided_by": decided_by});
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{}", verdict(allowed))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `PROTO/PORT` (`tcp/80`) or `icmp`.
fn parse_probe(s: &str) -> Result<Service> {
    let svc = Service::parse(s).map_err(|e| anyhow::anyhow!("--probe {e}"))?;
    if matches!(svc, Service::L4(_, 0)) {
        bail!("--probe {s:?}: 0 is not a port (1..65535)");
    }
    Ok(svc)
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
        let proto = a.protocol.as_deref().unwrap_or("TCP");
        let port = if proto.eq_ignore_ascii_case("icmp") {
            a.port
        } else {
            Some(a.port.unwrap_or(80))
        };
        probes.push(service(proto, port)?);
    }
    let cl = load(&a.manifests)?;
    let mut pods = Vec::new();
    let mut matrices = Vec::new();
    for &svc in &probes {
        let m = cl.matrix_of(svc, a.round_trip)?;
        pods.clone_from(&m.pods);
        matrices.push((svc, m));
    }
    if a.json {
        let v = json!({
            "pods": pods,
            "round_trip": a.round_trip,
            "matrices": matrices.iter().map(|(svc, m)| {
                let (proto, port) = proto_port(*svc);
                json!({"protocol": proto, "port": port, "cells": m.cells})
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (i, (svc, m)) in matrices.iter().enumerate() {
            if i > 0 {
                println!();
            }
            let (proto, port) = proto_port(*svc);
            match port {
                Some(port) => print!("{proto}/{port}"),
                None => print!("{proto}"),
            }
            println!("{}", if a.round_trip { " (round trip)" } else { "" });
            print!("{}", m.to_text());
        }
    }
    Ok(ExitCode::SUCCESS)
}
