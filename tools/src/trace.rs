//! `weftctl trace`: run one packet through the real switchd pipeline and
//! print what happened, like `ovs-appctl ofproto/trace`.
//!
//! Online (the default): the running switchd traces the packet through
//! its current flows, ports and settings (a `protocol::ctl` `Trace`
//! request on `--socket`; nothing is sent and no counter changes) and
//! answers with the rendered text.
//!
//! Offline (`--offline`): the flows come from a file in `ovs-ofctl
//! add-flows` format (one flow per line, `#` comments, blank lines), the
//! ports and switch settings from flags.
//!
//! The packet is given as hex bytes (`--packet`), as a flow (`--flow
//! 'tcp,nw_src=...'`, turned into bytes by `packet_from_key`; sent online as
//! a flow key, which switchd turns into bytes the same way), or as a record
//! of a pcap file (`--pcap FILE --record N`, 1-based).
//!
//! Output: indented text. With `--json`, offline prints the trace JSON
//! documented in `weft_switchd::pipeline::trace` (`dropped`,
//! `drop_reason`, `outputs` with exact bytes in the order they leave,
//! `packet_ins`, `walk`); online prints `{"text": "..."}`, because the
//! protocol's `TraceResult` reply carries only the text.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use protocol::ctl::{Body, TraceInput};
use protocol::flow::{FlowSpec, PortNo, TableId};
use protocol::pcap::PcapReader;
use protocol::text::{parse_flow, parse_match};
use weft_switchd::buf::PacketBuf;

use crate::ctl_client::Client;
use weft_switchd::pipeline::packet::packet_from_key;
use weft_switchd::pipeline::{
    CollectSink, FragMode, MissBehavior, PortConfig, SwitchConfig, TreeTrace, WorkerState, compile,
};

/// Arguments of `trace`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Work on files only (`--flows` and the setting flags) instead of
    /// asking the running switchd.
    #[arg(long)]
    offline: bool,
    /// Flows in `ovs-ofctl add-flows` format (`--offline` only, required
    /// there).
    #[arg(long, value_name = "FILE")]
    flows: Option<PathBuf>,
    /// The ports that exist: `1-5`, `1,2,7`, `LOCAL` (comma-separated
    /// numbers, ranges and names). Without it, any port number is accepted
    /// and FLOOD/ALL/NORMAL have no port to flood to. `--offline` only.
    #[arg(long, value_name = "LIST")]
    ports: Option<String>,
    /// The input port (number or LOCAL); default: the flow's `in_port`, else 1.
    #[arg(long, value_name = "PORT")]
    in_port: Option<String>,
    /// The packet as hex bytes (spaces and colons allowed).
    #[arg(long, value_name = "HEX", group = "input")]
    packet: Option<String>,
    /// The packet as a flow (`tcp,nw_src=10.0.0.1,tp_dst=80`).
    #[arg(long, value_name = "FLOW", group = "input")]
    flow: Option<String>,
    /// Take the packet from this pcap file.
    #[arg(long, value_name = "FILE", group = "input", requires = "record")]
    pcap: Option<PathBuf>,
    /// Which record of `--pcap` (1-based).
    #[arg(long, value_name = "N")]
    record: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// VLAN tags parsed (OVS vlan-limit; default 1). `--offline` only.
    #[arg(long, value_name = "N")]
    vlan_limit: Option<u8>,
    /// Fragment handling: normal (default), drop or nx-match. `--offline`
    /// only.
    #[arg(long, value_name = "MODE")]
    frag_mode: Option<String>,
    /// Table-miss behaviour: `TABLE=drop|controller|continue` (repeatable).
    /// `--offline` only.
    #[arg(long, value_name = "T=MODE")]
    table_miss: Vec<String>,
    /// Port configuration: `PORT=no-flood[,no-forward,no-receive,no-packet-in]`
    /// (repeatable). `--offline` only.
    #[arg(long, value_name = "P=FLAGS")]
    port_config: Vec<String>,
}

fn parse_port(s: &str) -> anyhow::Result<PortNo> {
    if let Some(p) = PortNo::from_reserved_name(s) {
        return Ok(p);
    }
    let n: u32 = s.parse().with_context(|| format!("bad port {s:?}"))?;
    if n == 0 || PortNo(n) > PortNo::MAX {
        bail!("port {n} out of range");
    }
    Ok(PortNo(n))
}

fn parse_ports(s: &str) -> anyhow::Result<Vec<PortNo>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_port(a)?, parse_port(b)?);
                if a > b || b.0 - a.0 > 65_536 {
                    bail!("bad port range {item:?}");
                }
                out.extend((a.0..=b.0).map(PortNo));
            }
            None => out.push(parse_port(item)?),
        }
    }
    Ok(out)
}

fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let digits = digits.strip_prefix("0x").unwrap_or(&digits);
    if !digits.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(digits.get(i..i + 2).unwrap_or(""), 16)
                .with_context(|| format!("bad hex at {i}"))
        })
        .collect()
}

/// Reads an `add-flows` file.
pub(crate) fn read_flows(path: &PathBuf) -> anyhow::Result<Vec<FlowSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut flows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f = parse_flow(l).map_err(|e| anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        flows.push(f);
    }
    Ok(flows)
}

fn config(args: &Args) -> anyhow::Result<SwitchConfig> {
    let mut cfg = match &args.ports {
        Some(p) => SwitchConfig::with_ports(parse_ports(p)?),
        None => SwitchConfig::default(),
    };
    cfg.vlan_limit = args.vlan_limit.unwrap_or(1);
    let frag_mode = args.frag_mode.as_deref().unwrap_or("normal");
    cfg.frag_mode = FragMode::from_name(frag_mode)
        .ok_or_else(|| anyhow!("bad --frag-mode {frag_mode:?} (normal, drop, nx-match)"))?;
    for tm in &args.table_miss {
        let (t, m) = tm
            .split_once('=')
            .ok_or_else(|| anyhow!("bad --table-miss {tm:?} (want TABLE=MODE)"))?;
        let t: u8 = t.parse().with_context(|| format!("bad table in {tm:?}"))?;
        if TableId(t) > TableId::MAX {
            bail!("table {t} out of range 0..=254");
        }
        let m = MissBehavior::from_name(m)
            .ok_or_else(|| anyhow!("bad mode in {tm:?} (drop, controller, continue)"))?;
        cfg.table_miss.insert(TableId(t), m);
    }
    for pc in &args.port_config {
        let (p, words) = pc
            .split_once('=')
            .ok_or_else(|| anyhow!("bad --port-config {pc:?} (want PORT=FLAGS)"))?;
        let p = parse_port(p)?;
        let entry = cfg.ports.entry(p).or_insert_with(PortConfig::default);
        for w in words.split(',') {
            if !entry.apply(w.trim()) {
                bail!("unknown port flag {w:?} (no-flood, no-forward, no-receive, no-packet-in)");
            }
        }
    }
    Ok(cfg)
}

/// The packet to trace (a flow stays a key, for the server) and the flow's
/// `in_port`, if it has one.
fn input(args: &Args) -> anyhow::Result<(TraceInput, Option<PortNo>)> {
    if let Some(h) = &args.packet {
        return Ok((TraceInput::Packet(parse_hex(h)?), None));
    }
    if let Some(f) = &args.flow {
        let m = parse_match(f).map_err(|e| anyhow!("--flow: {e}"))?;
        let (port, mask) = m.get(protocol::flow::Field::InPort);
        let in_port = (mask != 0).then_some(PortNo(port as u32));
        return Ok((TraceInput::Key(Box::new(m.key)), in_port));
    }
    if let Some(path) = &args.pcap {
        let n = args.record.unwrap_or(1);
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let reader = PcapReader::new(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if n == 0 {
            bail!("--record is 1-based");
        }
        let rec = reader
            .records()
            .nth(n - 1)
            .ok_or_else(|| anyhow!("{}: no record {n}", path.display()))?
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        return Ok((TraceInput::Packet(rec.data.to_vec()), None));
    }
    bail!("give the packet with --packet, --flow or --pcap")
}

/// Runs `trace`: against switchd at `socket`, or offline.
pub(crate) fn run(socket: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let (input, flow_port) = input(args)?;
    let in_port = match &args.in_port {
        Some(p) => parse_port(p)?,
        None => flow_port.unwrap_or(PortNo(1)),
    };
    if !args.offline {
        let offline_only = [
            ("--flows", args.flows.is_some()),
            ("--ports", args.ports.is_some()),
            ("--vlan-limit", args.vlan_limit.is_some()),
            ("--frag-mode", args.frag_mode.is_some()),
            ("--table-miss", !args.table_miss.is_empty()),
            ("--port-config", !args.port_config.is_empty()),
        ];
        if let Some((flag, _)) = offline_only.iter().find(|(_, given)| *given) {
            bail!("{flag} needs --offline (online, switchd's own flows and settings apply)");
        }
        return online(socket, args, in_port, input);
    }
    let Some(path) = &args.flows else {
        bail!("--offline needs --flows FILE");
    };
    let flows = read_flows(path)?;
    let cfg = config(args)?;
    let pl = compile(&flows, cfg).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let bytes = match input {
        TraceInput::Packet(b) => b,
        TraceInput::Key(k) => packet_from_key(&k),
    };
    let mut ws = WorkerState::new(pl.config());
    let mut buf = PacketBuf::from_slice(&bytes);
    let mut trace = TreeTrace::new();
    let mut sink = CollectSink::default();
    let verdict = pl.process(&mut buf, in_port, 0, &mut ws, &mut sink, &mut trace);
    if args.json {
        let s = serde_json::to_string_pretty(&trace.to_json(&verdict))?;
        println!("{s}");
    } else {
        print!("{}", trace.to_text(&verdict));
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks switchd to trace the packet through its current pipeline.
fn online(
    socket: &Path,
    args: &Args,
    in_port: PortNo,
    input: TraceInput,
) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(socket)?;
    let reply = c.request(Body::Trace { in_port, input });
    let _ = c.request(Body::Goodbye);
    let text = match reply? {
        Body::TraceResult { text } => text,
        b => bail!("unexpected reply to Trace: {b}"),
    };
    if args.json {
        let s = serde_json::to_string_pretty(&serde_json::json!({ "text": text }))?;
        println!("{s}");
    } else {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
