//! Per-phase wall times of one plugin run, off unless `WEFT_CNI_TIMING` is
//! set (to anything but `0`).
//!
//! With it set, the plugin prints one line to stderr when it exits:
//!
//! ```text
//! weft-cni timing ADD: spawn->main 3.10 | config 0.05 | switchd-connect 0.31 | ... | total-in-main 9.80 ms
//! ```
//!
//! Each phase is the time since the previous mark, the first one since
//! `main` started. When `WEFT_CNI_TIMING` holds the caller's
//! `CLOCK_REALTIME` in nanoseconds (`WEFT_CNI_TIMING=$(date +%s%N)`, as
//! `scripts/bench-cni.sh` passes it) instead of `1`, `spawn->main` is
//! printed too: from that moment to `main` (the caller's fork, `ip netns
//! exec`, `execve`, dynamic loading, Rust start-up). Nothing is read or
//! printed when the variable is unset; a mark is then one relaxed atomic
//! load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static ON: AtomicBool = AtomicBool::new(false);
static MARKS: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
static SPAWN_GAP: Mutex<Option<Duration>> = Mutex::new(None);

/// Reads the environment and takes the first mark (call first in `main`).
pub fn init() {
    let Ok(v) = std::env::var("WEFT_CNI_TIMING") else {
        return;
    };
    if v.is_empty() || v == "0" {
        return;
    }
    let now = Instant::now();
    if let Ok(t0_ns) = v.parse::<u128>()
        && t0_ns > 1
        && let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH)
        && let Some(gap) = since.as_nanos().checked_sub(t0_ns)
        && let Ok(mut g) = SPAWN_GAP.lock()
    {
        *g = u64::try_from(gap).ok().map(Duration::from_nanos);
    }
    if let Ok(mut m) = MARKS.lock() {
        m.push(("main", now));
    }
    ON.store(true, Ordering::Relaxed);
}

/// Ends phase `name` (the time since the previous mark).
pub fn mark(name: &'static str) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let now = Instant::now();
    if let Ok(mut m) = MARKS.lock() {
        m.push((name, now));
    }
}

/// Prints the phases to stderr (if on).
pub fn report(command: &str) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let Ok(m) = MARKS.lock() else { return };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut line = format!("weft-cni timing {command}:");
    if let Ok(Some(gap)) = SPAWN_GAP.lock().map(|g| *g) {
        line.push_str(&format!(" spawn->main {:.2}", ms(gap)));
    }
    for w in m.windows(2) {
        if let [(_, a), (name, b)] = w {
            line.push_str(&format!(" | {name} {:.2}", ms(b.duration_since(*a))));
        }
    }
    if let (Some((_, first)), Some((_, last))) = (m.first(), m.last()) {
        line.push_str(&format!(
            " | total-in-main {:.2} ms",
            ms(last.duration_since(*first))
        ));
    }
    eprintln!("{line}");
}
