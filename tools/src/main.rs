//! `weftctl`: Weft's operator tool.
//!
//! Subcommands work offline on files today (`parse-pcap`, `trace
//! --offline`); the switchd control-socket commands (`dump-flows`,
//! `add-flow`, online `trace`, ...) arrive with switchd's control socket.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod parse_pcap;
mod trace;

/// Weft's operator tool.
#[derive(Debug, Parser)]
#[command(name = "weftctl", version, about)]
struct Cli {
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
    /// packet-in, as `ovs-appctl ofproto/trace` does. `--offline` reads the
    /// flows from a file (`ovs-ofctl add-flows` format).
    Trace(Box<trace::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ParsePcap(args) => parse_pcap::run(&args),
        Command::Trace(args) => trace::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weftctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
