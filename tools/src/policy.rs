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
//! - `matrix [--port P --protocol PROTO]` prints the pod-to-pod table
//!   (`.` allowed, `X` denied; rows are sources).
//!
//! `--json` everywhere. `--trace` (single check) also prints each node's
//! pipeline walk.

use std::io::{BufRead, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::json;
use weft_controller::check::{Cluster, Endpoint};
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
    /// Destination port.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// TCP, UDP or SCTP.
    #[arg(long, default_value = "TCP")]
    protocol: String,
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
    let (p, traces) = if a.trace {
        cl.trace(&f, &t, port, proto)?
    } else {
        (cl.probe(&f, &t, port, proto)?, Vec::new())
    };
    let verdict = if p.allowed { "allow" } else { "deny" };
    if a.json {
        let v = json!({
            "from": from, "to": to, "port": port, "protocol": a.protocol.to_ascii_uppercase(),
            "verdict": verdict, "decided_by": p.decided_by, "nodes": p.nodes,
            "traces": traces.iter().map(|t| json!({"node": t.node, "text": t.text})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{verdict}");
        for d in &p.decided_by {
            println!("  {d}");
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

fn matrix(a: &MatrixArgs) -> Result<ExitCode> {
    let cl = load(&a.manifests)?;
    let m = cl.matrix(a.port, protocol(&a.protocol)?)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        print!("{}", m.to_text());
    }
    Ok(ExitCode::SUCCESS)
}
