//! `weft-switchd`: the per-node switch daemon.
//!
//! Start-up order: enter the network namespace (`--netns`), load the
//! persisted state, start the `--workers` datapath threads on an empty
//! snapshot, compile and publish the restored flows, open the restored
//! ports (only now can a worker forward), then serve the control socket
//! until SIGTERM/SIGINT, while the underlay loop keeps the tunnel next hops
//! current (rtnetlink, in the namespace entered first).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Parser;
use weft_switchd::control::{self, Controller};
use weft_switchd::pipeline::FragMode;
use weft_switchd::port::enter_netns;
use weft_switchd::state::{Settings, SwitchState};
use weft_switchd::worker::{Workers, default_workers};

/// Weft's per-node userspace packet switch.
#[derive(Debug, Parser)]
#[command(name = "weft-switchd", version)]
struct Args {
    /// Control socket path (created with mode 0600).
    #[arg(long, env = "WEFT_SOCKET", default_value = "/run/weft/switchd.sock")]
    socket: PathBuf,
    /// Directory for the persisted state (switchd-state.json).
    #[arg(long, env = "WEFT_STATE_DIR", default_value = "/var/lib/weft/switchd")]
    state_dir: PathBuf,
    /// Enter the network namespace /run/netns/NAME before opening ports.
    #[arg(long)]
    netns: Option<String>,
    /// VLAN tags parsed into the flow key (overrides the persisted value).
    #[arg(long)]
    vlan_limit: Option<u8>,
    /// Fragment handling: normal, drop or nx-match (overrides the persisted
    /// value).
    #[arg(long)]
    frag_mode: Option<String>,
    /// Datapath worker threads (1 to 64). Each port gets one receive and
    /// transmit queue per worker (AF_PACKET fanout, multi-queue TAP).
    /// Default: the CPUs available, at most 4.
    #[arg(long, env = "WEFT_WORKERS")]
    workers: Option<usize>,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if let Some(ns) = &args.netns {
        let path = PathBuf::from("/run/netns").join(ns);
        enter_netns(&path).with_context(|| format!("entering {}", path.display()))?;
    }
    let mut state = SwitchState::load(&args.state_dir)?
        .unwrap_or_else(|| SwitchState::new(Settings::default()));
    if let Some(v) = args.vlan_limit {
        state.settings.vlan_limit = v;
    }
    if let Some(m) = &args.frag_mode {
        state.settings.frag_mode = FragMode::from_name(m)
            .with_context(|| format!("--frag-mode {m}: expected normal, drop or nx-match"))?;
    }
    tracing::info!(
        flows = state.flows.len(),
        ports = state.ports.len(),
        dir = %args.state_dir.display(),
        "state loaded"
    );
    // The control thread is this thread (a current-thread runtime), so the
    // ports it opens belong to the namespace entered above.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let pipeline = Controller::empty_pipeline()?;
        let n = args.workers.unwrap_or_else(default_workers);
        let mut workers = Workers::spawn(&pipeline, n).context("spawning workers")?;
        tracing::info!(workers = n, "datapath started");
        let (events, _) = tokio::sync::broadcast::channel(control::EVENT_QUEUE);
        if let Some(rx) = workers.take_packet_in() {
            control::spawn_packet_in_bridge(rx, events.clone(), state.settings.vlan_limit)
                .context("spawning packet-in thread")?;
        }
        let tunnel_events = workers.take_tunnel_events();
        let ctl = Controller::start(state, args.state_dir.clone(), pipeline, Box::new(workers))
            .context("restoring flows")?;
        let ctl = Arc::new(Mutex::new(ctl));
        if let Some(rx) = tunnel_events {
            control::spawn_tunnel_event_bridge(rx, &ctl).context("spawning tunnel event thread")?;
        }
        let listener = control::bind(&args.socket)
            .with_context(|| format!("binding {}", args.socket.display()))?;
        tracing::info!(socket = %args.socket.display(), "listening");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            () = control::serve(listener, Arc::clone(&ctl), events.clone()) => {}
            () = control::expiry_loop(Arc::clone(&ctl), events) => {}
            () = control::underlay_loop(Arc::clone(&ctl)) => {}
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
        let _ = std::fs::remove_file(&args.socket);
        // Dropping the controller stops the workers (Workers' Drop).
        drop(ctl);
        Ok::<(), anyhow::Error>(())
    })?;
    tracing::info!("stopped");
    Ok(())
}
