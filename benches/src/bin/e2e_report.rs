//! Report of the end-to-end benchmark (`benches/e2e/run.sh`).
//!
//! `e2e-report DIR` reads `DIR/raw.csv` (`scenario,rep,metric,value`, one
//! line per measurement) and `DIR/machine.json`, and writes:
//!
//! * `results.csv`: `scenario,metric,median,min,max,n,vs_bridge,vs_ovs`;
//! * `results.json`: the machine details and the same rows;
//! * `table.md`: the absolute numbers (median, then min to max over the
//!   repetitions) and the ratios, also printed on stdout;
//! * `chart.png`: one panel per headline metric, a bar per scenario (the
//!   median) with a line over its min to max.
//!
//! Ratios divide this scenario's median by the baseline's median from the
//! same run: `vs_bridge` by the Linux bridge, `vs_ovs` by Open vSwitch with
//! the same port kind (`ovs-tap` for a `*-tap` scenario, `ovs-afpacket`
//! otherwise). Two-node rows (`2node-*`) compare with their own kind:
//! `vs_ovs` with `2node-ovs-geneve` (OVS netdev over Geneve) and
//! `vs_bridge` with `2node-kernel-vxlan` (the kernel's VXLAN device and
//! bridge, the kernel reference; the kernel here has no Geneve module).
//! For rates higher is better; for latencies (`rr_*_us`) and
//! CPU lower is better, so a latency ratio of 2 means twice as slow.
//!
//! The chart's text needs a TrueType font, read at run time (plotters'
//! `ab_glyph` backend, no fontconfig): `$WEFT_CHART_FONT`, else DejaVu Sans
//! from Debian's `fonts-dejavu-core`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::prelude::*;
use serde_json::{Value, json};

/// Headline metrics in table order: (key, column title, scale for display).
const METRICS: &[(&str, &str, f64)] = &[
    ("pps", "64 B kpps", 1e-3),
    ("pps_cpu", "switch CPU % (64 B)", 1.0),
    ("tcp1_gbps", "TCP 1 stream Gb/s", 1.0),
    ("tcp4_gbps", "TCP 4 streams Gb/s", 1.0),
    ("tcp1_cpu", "switch CPU % (TCP 1)", 1.0),
    ("rr_avg_us", "UDP RR avg µs", 1.0),
    ("rr_p99_us", "UDP RR p99 µs", 1.0),
];

/// Metrics that get ratio columns.
const RATIO_METRICS: &[(&str, &str)] = &[
    ("pps", "64 B pps"),
    ("tcp1_gbps", "TCP 1"),
    ("tcp4_gbps", "TCP 4"),
    ("rr_p99_us", "RR p99 (time)"),
];

/// Chart panels: (metric, title, scale).
const PANELS: &[(&str, &str, f64)] = &[
    ("pps", "64-byte frames, kpps (higher is better)", 1e-3),
    ("tcp1_gbps", "TCP, 1 stream, Gb/s (higher is better)", 1.0),
    ("tcp4_gbps", "TCP, 4 streams, Gb/s (higher is better)", 1.0),
    (
        "rr_p99_us",
        "UDP request/response p99, µs (lower is better)",
        1.0,
    ),
];

/// Median, min and max of one metric over the repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

impl Stat {
    fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// Scenario order of first appearance, and per scenario the stats per metric.
#[derive(Debug, Default)]
struct Results {
    order: Vec<String>,
    stats: BTreeMap<(String, String), Stat>,
}

fn parse_raw(text: &str) -> Result<Results, String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 || line.trim().is_empty() {
            continue; // header
        }
        let f: Vec<&str> = line.split(',').collect();
        let [scenario, _rep, metric, value] = f[..] else {
            return Err(format!(
                "raw.csv line {}: expected 4 fields, got {line:?}",
                i + 1
            ));
        };
        let v: f64 = value
            .parse()
            .map_err(|_| format!("raw.csv line {}: value {value:?} is not a number", i + 1))?;
        if !order.iter().any(|s| s == scenario) {
            order.push(scenario.to_owned());
        }
        values
            .entry((scenario.to_owned(), metric.to_owned()))
            .or_default()
            .push(v);
    }
    let stats = values
        .into_iter()
        .filter_map(|(k, v)| Stat::of(&v).map(|s| (k, s)))
        .collect();
    Ok(Results { order, stats })
}

impl Results {
    fn get(&self, scenario: &str, metric: &str) -> Option<Stat> {
        self.stats
            .get(&(scenario.to_owned(), metric.to_owned()))
            .copied()
    }

    fn ratio(&self, scenario: &str, baseline: &str, metric: &str) -> Option<f64> {
        let a = self.get(scenario, metric)?.median;
        let b = self.get(baseline, metric)?.median;
        (b > 0.0).then(|| a / b)
    }
}

/// The OVS scenario with the same kind of port (or topology).
fn ovs_baseline(scenario: &str) -> &'static str {
    if scenario.starts_with("2node-") {
        "2node-ovs-geneve"
    } else if scenario.ends_with("tap") {
        "ovs-tap"
    } else {
        "ovs-afpacket"
    }
}

/// The kernel scenario of the same topology: the Linux bridge, or for
/// two-node rows the kernel VXLAN device with a bridge per node.
fn kernel_baseline(scenario: &str) -> &'static str {
    if scenario.starts_with("2node-") {
        "2node-kernel-vxlan"
    } else {
        "bridge"
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_stat(s: Option<Stat>, scale: f64) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.n == 1 => fmt_num(s.median * scale),
        Some(s) => format!(
            "{} ({}–{})",
            fmt_num(s.median * scale),
            fmt_num(s.min * scale),
            fmt_num(s.max * scale)
        ),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{r:.2}"))
}

fn table_md(r: &Results, machine: &Value) -> String {
    let mut t = String::new();
    let m = |k: &str| machine.get(k).and_then(Value::as_str).unwrap_or("?");
    let reps = machine.get("reps").and_then(Value::as_u64).unwrap_or(0);
    let dur = machine
        .get("duration_s")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let cpus = machine.get("cpus").and_then(Value::as_u64).unwrap_or(0);
    let _ = writeln!(
        t,
        "Machine: {cpus} CPUs ({}), kernel {}, {}; {}; commit {}; {reps} rep(s) of {dur} s per load; {}.\n\
         Load: before `{}`, after `{}`. {}.\n",
        m("cpu_model"),
        m("kernel"),
        m("os"),
        m("ovs"),
        m("git"),
        m("date_utc"),
        m("uptime_before").trim(),
        m("uptime_after").trim(),
        m("note"),
    );
    let _ = writeln!(
        t,
        "Median over the repetitions, (min–max) when there are several.\n"
    );
    let _ = write!(t, "| scenario |");
    for (_, title, _) in METRICS {
        let _ = write!(t, " {title} |");
    }
    let _ = write!(t, "\n|---|");
    for _ in METRICS {
        let _ = write!(t, "---|");
    }
    t.push('\n');
    for s in &r.order {
        let _ = write!(t, "| {s} |");
        for (key, _, scale) in METRICS {
            let _ = write!(t, " {} |", fmt_stat(r.get(s, key), *scale));
        }
        t.push('\n');
    }
    let _ = writeln!(
        t,
        "\nRatios of medians from this run: x bridge = / Linux bridge, x OVS = / OVS netdev with the same port kind (ovs-tap for TAP rows, ovs-afpacket otherwise). Two-node rows (2node-*): x bridge = / 2node-kernel-vxlan (kernel VXLAN + bridge per node; no Geneve module on this kernel), x OVS = / 2node-ovs-geneve. For RR p99 a ratio above 1 is slower.\n"
    );
    let _ = write!(t, "| scenario |");
    for (_, title) in RATIO_METRICS {
        let _ = write!(t, " {title} x bridge | {title} x OVS |");
    }
    let _ = write!(t, "\n|---|");
    for _ in RATIO_METRICS {
        let _ = write!(t, "---|---|");
    }
    t.push('\n');
    for s in &r.order {
        let _ = write!(t, "| {s} |");
        for (key, _) in RATIO_METRICS {
            let _ = write!(
                t,
                " {} | {} |",
                fmt_ratio(r.ratio(s, kernel_baseline(s), key)),
                fmt_ratio(r.ratio(s, ovs_baseline(s), key))
            );
        }
        t.push('\n');
    }
    t
}

/// One output row: scenario, metric, stats, ratio to the bridge, to OVS.
type Row = (String, String, Stat, Option<f64>, Option<f64>);

fn rows(r: &Results) -> Vec<Row> {
    let mut out = Vec::new();
    for s in &r.order {
        for ((sc, metric), st) in &r.stats {
            if sc == s {
                out.push((
                    s.clone(),
                    metric.clone(),
                    *st,
                    r.ratio(s, kernel_baseline(s), metric),
                    r.ratio(s, ovs_baseline(s), metric),
                ));
            }
        }
    }
    out
}

fn results_csv(r: &Results) -> String {
    let mut t = String::from("scenario,metric,median,min,max,n,vs_bridge,vs_ovs\n");
    let opt = |x: Option<f64>| x.map_or_else(String::new, |v| format!("{v:.4}"));
    for (s, m, st, vb, vo) in rows(r) {
        let _ = writeln!(
            t,
            "{s},{m},{},{},{},{},{},{}",
            st.median,
            st.min,
            st.max,
            st.n,
            opt(vb),
            opt(vo)
        );
    }
    t
}

fn results_json(r: &Results, machine: &Value) -> Value {
    let rows: Vec<Value> = rows(r)
        .into_iter()
        .map(|(s, m, st, vb, vo)| {
            json!({"scenario": s, "metric": m, "median": st.median, "min": st.min,
                   "max": st.max, "n": st.n, "vs_bridge": vb, "vs_ovs": vo})
        })
        .collect();
    json!({"machine": machine, "scenarios": r.order, "rows": rows})
}

fn load_font() -> Result<(), String> {
    let path = std::env::var_os("WEFT_CHART_FONT").map_or_else(
        || PathBuf::from("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
        PathBuf::from,
    );
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "chart font {}: {e} (install fonts-dejavu-core or set WEFT_CHART_FONT)",
            path.display()
        )
    })?;
    // Registered once per process; plotters keeps a 'static reference.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("chart font {}: not a TrueType font", path.display()))
}

fn bar_colour(scenario: &str) -> RGBColor {
    if scenario == "bridge" || scenario.contains("kernel") {
        RGBColor(120, 120, 120)
    } else if scenario.starts_with("ovs") || scenario.contains("-ovs-") {
        RGBColor(70, 110, 190)
    } else {
        RGBColor(220, 120, 40)
    }
}

fn chart(r: &Results, path: &Path, title: &str) -> Result<(), Box<dyn std::error::Error>> {
    load_font()?;
    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(40);
    top.draw_text(
        title,
        &("sans-serif", 20).into_font().color(&BLACK),
        (20, 10),
    )?;
    let n = r.order.len();
    for (area, (metric, label, scale)) in body.split_evenly((2, 2)).iter().zip(PANELS) {
        let max = r
            .order
            .iter()
            .filter_map(|s| r.get(s, metric))
            .map(|s| s.max * scale)
            .fold(0.0f64, f64::max);
        let xmax = if max > 0.0 { max * 1.15 } else { 1.0 };
        let mut c = ChartBuilder::on(area)
            .caption(*label, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..xmax, 0f64..n as f64)?;
        let names = r.order.clone();
        c.configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(n * 2 + 1)
            .y_label_formatter(&move |y: &f64| {
                // Label only the bar centres (k + 0.5); bar k from the
                // bottom is scenario n - 1 - k.
                let k = (y - 0.5).round();
                if (y - 0.5 - k).abs() < 0.05 && k >= 0.0 && (k as usize) < n {
                    names.get(n - 1 - k as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 14))
            .draw()?;
        for (i, s) in r.order.iter().enumerate() {
            let Some(st) = r.get(s, metric) else { continue };
            // Top of the chart = first scenario.
            let y0 = (n - 1 - i) as f64;
            c.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0 + 0.15), (st.median * scale, y0 + 0.85)],
                bar_colour(s).filled(),
            )))?;
            if st.n > 1 {
                c.draw_series(std::iter::once(PathElement::new(
                    vec![(st.min * scale, y0 + 0.5), (st.max * scale, y0 + 0.5)],
                    BLACK.stroke_width(2),
                )))?;
            }
            c.draw_series(std::iter::once(Text::new(
                fmt_num(st.median * scale),
                (st.max.max(st.median) * scale + xmax * 0.01, y0 + 0.35),
                ("sans-serif", 13).into_font(),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

fn run(dir: &Path) -> Result<(), String> {
    let raw_path = dir.join("raw.csv");
    let raw =
        std::fs::read_to_string(&raw_path).map_err(|e| format!("{}: {e}", raw_path.display()))?;
    let r = parse_raw(&raw)?;
    if r.order.is_empty() {
        return Err(format!("{}: no measurements", raw_path.display()));
    }
    let machine: Value = match std::fs::read_to_string(dir.join("machine.json")) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| format!("machine.json: {e}"))?,
        Err(_) => json!({}),
    };
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    let table = table_md(&r, &machine);
    write("table.md", &table)?;
    write("results.csv", &results_csv(&r))?;
    let js = serde_json::to_string_pretty(&results_json(&r, &machine))
        .map_err(|e| format!("results.json: {e}"))?;
    write("results.json", &js)?;
    let title = format!(
        "Weft end-to-end forwarding, {} CPUs, {}, {} ({} rep(s); bar = median, line = min–max)",
        machine.get("cpus").and_then(Value::as_u64).unwrap_or(0),
        machine.get("kernel").and_then(Value::as_str).unwrap_or("?"),
        machine
            .get("date_utc")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        machine.get("reps").and_then(Value::as_u64).unwrap_or(0),
    );
    chart(&r, &dir.join("chart.png"), &title).map_err(|e| format!("chart.png: {e}"))?;
    print!("{table}");
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: e2e-report RESULTS_DIR   (reads raw.csv and machine.json)");
        return ExitCode::from(2);
    };
    match run(Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e-report: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "scenario,rep,metric,value\n\
        bridge,1,pps,200000\nbridge,2,pps,300000\nbridge,3,pps,250000\n\
        ovs-afpacket,1,pps,100000\n\
        weft-afpacket,1,pps,150000\nweft-afpacket,2,pps,170000\n\
        weft-tap,1,pps,60000\novs-tap,1,pps,120000\n\
        weft-afpacket,1,rr_p99_us,80\nbridge,1,rr_p99_us,40\n";

    #[test]
    fn medians_spread_and_ratios() {
        let r = parse_raw(RAW).unwrap();
        assert_eq!(
            r.order,
            [
                "bridge",
                "ovs-afpacket",
                "weft-afpacket",
                "weft-tap",
                "ovs-tap"
            ]
        );
        let b = r.get("bridge", "pps").unwrap();
        assert_eq!(
            (b.median, b.min, b.max, b.n),
            (250_000.0, 200_000.0, 300_000.0, 3)
        );
        // Even count: mean of the middle two.
        assert_eq!(r.get("weft-afpacket", "pps").unwrap().median, 160_000.0);
        assert_eq!(r.ratio("weft-afpacket", "bridge", "pps"), Some(0.64));
        assert_eq!(
            r.ratio("weft-afpacket", ovs_baseline("weft-afpacket"), "pps"),
            Some(1.6)
        );
        // TAP rows compare with OVS TAP.
        assert_eq!(
            r.ratio("weft-tap", ovs_baseline("weft-tap"), "pps"),
            Some(0.5)
        );
        assert_eq!(r.ratio("weft-afpacket", "bridge", "rr_p99_us"), Some(2.0));
        // No baseline measurement: no ratio.
        assert_eq!(r.ratio("weft-tap", "bridge", "tcp1_gbps"), None);
    }

    /// Two-node rows are compared with the two-node OVS and kernel rows of
    /// the same run, never with the single-switch baselines.
    #[test]
    fn two_node_rows_have_their_own_baselines() {
        let raw = format!(
            "{RAW}2node-kernel-vxlan,1,pps,150000\n2node-ovs-geneve,1,pps,40000\n\
             2node-weft-geneve,1,pps,120000\n2node-weft-geneve,1,tcp1_gbps,3\n\
             2node-ovs-geneve,1,tcp1_gbps,1.5\n"
        );
        let r = parse_raw(&raw).unwrap();
        let t = table_md(&r, &json!({}));
        // pps: 120/150 of the kernel, 3x OVS; TCP: no kernel number, 2x OVS.
        assert!(
            t.contains("| 2node-weft-geneve | 0.80 | 3.00 | – | 2.00 |"),
            "{t}"
        );
        assert!(t.contains("| 2node-ovs-geneve | 0.27 | 1.00 |"), "{t}");
        let csv = results_csv(&r);
        assert!(
            csv.contains("2node-weft-geneve,pps,120000,120000,120000,1,0.8000,3.0000"),
            "{csv}"
        );
        // Single-switch rows keep theirs.
        assert!(csv.contains("weft-afpacket,pps,160000,150000,170000,2,0.6400,1.6000"));
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse_raw("h\nbridge,1,pps\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse_raw("h\nbridge,1,pps,fast\n").unwrap_err();
        assert!(e.contains("\"fast\""), "{e}");
    }

    #[test]
    fn table_has_every_scenario_and_ratio_columns() {
        let r = parse_raw(RAW).unwrap();
        let t = table_md(&r, &json!({"cpus": 2, "reps": 3}));
        for s in &r.order {
            assert!(t.contains(&format!("| {s} |")), "{s} missing:\n{t}");
        }
        // bridge pps: median 250 kpps, 200 to 300.
        assert!(t.contains("| bridge | 250 (200–300) |"), "{t}");
        // weft-afpacket pps: 0.64 of the bridge, 1.60 of OVS.
        assert!(t.contains("| weft-afpacket | 0.64 | 1.60 |"), "{t}");
        let csv = results_csv(&r);
        assert!(csv.contains("weft-afpacket,pps,160000,150000,170000,2,0.6400,1.6000"));
    }

    /// The chart renders (needs the DejaVu font that run.sh installs).
    #[test]
    fn chart_renders_png() {
        if load_font().is_err() && std::env::var_os("CI").is_none() {
            eprintln!("skipping: no chart font");
            return;
        }
        let dir = std::env::temp_dir().join(format!("weft-e2e-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("chart.png");
        chart(&parse_raw(RAW).unwrap(), &p, "test").unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
