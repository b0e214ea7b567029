//! `weftctl`: Weft's operator tool.
//!
//! Offline subcommands work on files (`parse-pcap`, `trace --offline`,
//! `policy check`, `policy matrix`);
//! the others talk to a switchd control socket (`--socket`, env
//! `WEFT_SOCKET`): `trace`, `add-flow`, `add-flows`, `del-flows`,
//! `mod-flows`, `replace-flows`, `dump-flows`, `add-port`, `del-port`,
//! `dump-ports`, `show`, `dump-tables`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ctl_client;
mod demo;
mod parse_pcap;
mod policy;
mod trace;
mod trace_cluster;

/// Weft's operator tool.
#[derive(Debug, Parser)]
#[command(name = "weftctl", version, about)]
struct Cli {
    /// switchd control socket.
    #[arg(
        long,
        global = true,
        env = "WEFT_SOCKET",
        default_value = "/run/weft/switchd.sock"
    )]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the flow key of every packet of a pcap file, in ovs-ofctl flow
    /// syntax (the `Flow:` line of OVS's ofproto/trace) or as JSON.
    ///
    /// VXLAN (UDP 4789) and Geneve (UDP 6081) packets also get the key of
    /// their inner packet, with the tunnel fields filled in, as the switch
    /// sees it after decapsulation. A malformed packet prints what could be
    /// extracted plus the parse error.
    ParsePcap(parse_pcap::Args),
    /// Run one packet through the real switchd pipeline and show every
    /// table, rule, action, field change, output (with its exact bytes) and
    /// packet-in, as `ovs-appctl ofproto/trace` does: by default in the
    /// running switchd (its current flows, ports and settings; nothing is
    /// sent); `--offline` reads the flows from a file (`ovs-ofctl add-flows`
    /// format) and the settings from flags; `--from NS/POD --to NS/POD`
    /// traces across a running cluster (source node, tunnel hop,
    /// destination node, and the NetworkPolicy rule or stage that decided).
    Trace(Box<trace::Args>),
    /// NetworkPolicy answers from Kubernetes manifests, computed by running
    /// the compiled flows through the real switchd pipeline (source node,
    /// tunnel, destination node).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The cluster in a box: three nodes in network namespaces, each with
    /// its own weft-switchd, Geneve tunnels, weft-controller reading
    /// examples/manifests, pods attached by the real weft-cni, a
    /// connectivity matrix with real packets and a live policy change
    /// (`up`, `check`, `down`; root).
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    #[command(flatten)]
    Socket(ctl_client::SocketCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ParsePcap(args) => parse_pcap::run(&args),
        Command::Trace(args) => trace::run(&cli.socket, &args),
        Command::Policy(cmd) => policy::run(&cmd),
        Command::Demo(cmd) => demo::run(&cmd),
        Command::Socket(cmd) => ctl_client::run(&cli.socket, &cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weftctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
