//! UDP request/response latency for the end-to-end benchmark
//! (`benches/e2e/run.sh`), the netperf `UDP_RR` idea without netperf
//! (Debian 12 does not ship it).
//!
//! ```text
//! e2e-udprr server 10.244.0.2:7777
//! e2e-udprr client 10.244.0.2:7777 --count 10000 [--warmup 200] [--size 64]
//! ```
//!
//! The server echoes every datagram back to its sender until killed. The
//! client sends one request, waits for its echo (at most 200 ms), then
//! sends the next, so exactly one transaction is in flight: the time is the
//! round trip through the switch twice plus both UDP stacks. Each request
//! carries its sequence number; a late echo of an earlier request is
//! discarded and that request counted lost. The client prints one line of
//! `key=value` pairs: `n` (answered), `lost`, `avg_us`, `p50_us`, `p99_us`,
//! `max_us`, `tps` (transactions per second over the whole run).
//!
//! The clock is read twice per transaction here; this is a load generator,
//! not the data path.

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!(
        "usage: e2e-udprr server ADDR:PORT\n       e2e-udprr client ADDR:PORT [--count N] [--warmup N] [--size BYTES]"
    );
    ExitCode::from(2)
}

fn server(addr: SocketAddr) -> std::io::Result<()> {
    let sock = UdpSocket::bind(addr)?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        sock.send_to(&buf[..n], from)?;
    }
}

/// Latency summary of the answered transactions, in microseconds.
#[derive(Debug)]
struct Summary {
    n: usize,
    lost: u64,
    avg_us: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    tps: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = (p / 100.0 * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summarise(mut rtts_us: Vec<f64>, lost: u64, elapsed: Duration) -> Summary {
    rtts_us.sort_by(f64::total_cmp);
    let n = rtts_us.len();
    let avg_us = if n == 0 {
        f64::NAN
    } else {
        rtts_us.iter().sum::<f64>() / n as f64
    };
    Summary {
        n,
        lost,
        avg_us,
        p50_us: percentile(&rtts_us, 50.0),
        p99_us: percentile(&rtts_us, 99.0),
        max_us: rtts_us.last().copied().unwrap_or(f64::NAN),
        tps: n as f64 / elapsed.as_secs_f64(),
    }
}

fn client(addr: SocketAddr, count: u64, warmup: u64, size: usize) -> std::io::Result<Summary> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(std::io::Error::other)?;
    let sock = UdpSocket::bind(bind)?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut req = vec![0u8; size.max(8)];
    let mut resp = vec![0u8; 2048];
    let mut rtts = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut lost = 0u64;
    let mut start = Instant::now();
    for seq in 0..warmup + count {
        if seq == warmup {
            start = Instant::now();
        }
        req[..8].copy_from_slice(&seq.to_be_bytes());
        let t0 = Instant::now();
        sock.send(&req)?;
        let answered = loop {
            match sock.recv(&mut resp) {
                Ok(n) if n >= 8 && resp[..8] == seq.to_be_bytes() => break true,
                // An echo of an earlier (already counted lost) request.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break false;
                }
                // ICMP port unreachable before the server is up, etc.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break false,
                Err(e) => return Err(e),
            }
        };
        if seq < warmup {
            continue;
        }
        if answered {
            rtts.push(t0.elapsed().as_secs_f64() * 1e6);
        } else {
            lost += 1;
        }
    }
    Ok(summarise(rtts, lost, start.elapsed()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(addr)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("e2e-udprr: {addr:?} is not ADDR:PORT");
        return ExitCode::from(2);
    };
    let mut count = 10_000u64;
    let mut warmup = 200u64;
    let mut size = 64usize;
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--count", Some(v)) => count = v,
            ("--warmup", Some(v)) => warmup = v,
            ("--size", Some(v)) => size = usize::try_from(v).unwrap_or(64).min(1400),
            _ => return usage(),
        }
    }
    match mode.as_str() {
        "server" => match server(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("e2e-udprr server {addr}: {e}");
                ExitCode::FAILURE
            }
        },
        "client" => match client(addr, count, warmup, size) {
            Ok(s) => {
                println!(
                    "n={} lost={} avg_us={:.1} p50_us={:.1} p99_us={:.1} max_us={:.1} tps={:.0}",
                    s.n, s.lost, s.avg_us, s.p50_us, s.p99_us, s.max_us, s.tps
                );
                if s.n == 0 {
                    eprintln!("e2e-udprr client {addr}: no request answered");
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("e2e-udprr client {addr}: {e}");
                ExitCode::FAILURE
            }
        },
        _ => usage(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn summary_counts_and_average() {
        let s = summarise(vec![30.0, 10.0, 20.0], 2, Duration::from_secs(1));
        assert_eq!((s.n, s.lost), (3, 2));
        assert_eq!(s.avg_us, 20.0);
        assert_eq!(s.p50_us, 20.0);
        assert_eq!(s.max_us, 30.0);
        assert_eq!(s.tps, 3.0);
    }

    /// A real round trip on loopback: every request answered.
    #[test]
    fn loopback_round_trips() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = srv.recv_from(&mut buf) {
                let _ = srv.send_to(&buf[..n], from);
            }
        });
        let s = client(addr, 50, 5, 64).unwrap();
        assert_eq!((s.n, s.lost), (50, 0));
        assert!(s.p99_us >= s.p50_us && s.max_us >= s.p99_us);
    }
}
