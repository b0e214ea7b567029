//! Differential test: our wire decoders against tshark.
//!
//! (Module documentation: see the end of this file's header, `DOC` below,
//! filled in once the field list settles.)

#![allow(clippy::unwrap_used)] // tests may unwrap (PREAMBLE)

#[path = "tshark_diff/generator.rs"]
mod generator;
#[path = "tshark_diff/ours.rs"]
mod ours;
#[path = "tshark_diff/theirs.rs"]
mod theirs;

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::pcap::{LINKTYPE_ETHERNET, PcapReader, PcapWriter};

use generator::{Generated, Generator, Malform, Variant};
use theirs::TsharkPacket;

/// Number of generated packets.
const PACKETS: usize = 2400;
/// The generator seed (fixed: the test is deterministic).
const SEED: u64 = 0x5745_4654_7473_6872;

/// Comparisons known to disagree because of a bug in a wire module, not in
/// this test: (tshark field name, reason). Each entry suppresses the
/// comparison of exactly that field; remove it once the bug is fixed.
const KNOWN_DIFFS: &[(&str, &str)] = &[];

/// Every field that must have been compared at least `MIN_PER_FIELD` times
/// over the generated set.
const REQUIRED: &[&str] = &[
    "eth.dst",
    "eth.src",
    "eth.type",
    "vlan.priority",
    "vlan.id",
    "vlan.etype",
    "arp.opcode",
    "arp.src.hw_mac",
    "arp.src.proto_ipv4",
    "arp.dst.hw_mac",
    "arp.dst.proto_ipv4",
    "ip.version",
    "ip.hdr_len",
    "ip.len",
    "ip.id",
    "ip.flags.df",
    "ip.flags.mf",
    "ip.frag_offset",
    "ip.ttl",
    "ip.proto",
    "ip.dsfield.dscp",
    "ip.dsfield.ecn",
    "ip.checksum.status",
    "ip.src",
    "ip.dst",
    "ipv6.tclass",
    "ipv6.flow",
    "ipv6.plen",
    "ipv6.nxt",
    "ipv6.hlim",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.hdr_len",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.checksum.status",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "udp.checksum.status",
    "icmp.type",
    "icmp.code",
    "icmp.checksum.status",
    "icmpv6.type",
    "icmpv6.code",
    "icmpv6.checksum.status",
    "icmpv6.nd.ns.target_address",
    "icmpv6.nd.na.target_address",
    "icmpv6.opt.linkaddr",
    "sctp.srcport",
    "sctp.dstport",
    "sctp.verification_tag",
    "sctp.checksum.status",
    "sctp.chunk_type",
    "ieee8021ad.id",
    "ieee8021ah.etype",
    "ipv6.hopopts.nxt",
    "ipv6.dstopts.nxt",
    "ipv6.routing.type",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.ident",
    "vxlan.vni",
    "geneve.version",
    "geneve.vni",
    "geneve.proto_type",
    "geneve.options_length",
    "geneve.option.class",
    "geneve.option.type",
    "geneve.option.length",
    "geneve.flags.critical",
    "geneve.flags.oam",
];
const MIN_PER_FIELD: usize = 10;
const MIN_TOTAL: usize = 30_000;

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("weft-tshark-diff-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Tally of the comparisons.
#[derive(Default)]
struct Stats {
    per_field: BTreeMap<&'static str, usize>,
    known: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
    /// (defect, rule held) -> packets.
    malformed: BTreeMap<(generator::Malform, bool), usize>,
    /// defect -> packets where tshark flags an error in a header layer.
    tshark_flagged: BTreeMap<generator::Malform, usize>,
}

impl Stats {
    fn total(&self) -> usize {
        self.per_field.values().sum()
    }
    fn fail(&mut self, msg: String) {
        if self.failures.len() < 40 {
            self.failures.push(msg);
        } else if self.failures.len() == 40 {
            self.failures.push("... (more failures cut)".into());
        }
    }
}

/// The protocol chain as tshark names it, reduced to the header layers we
/// decode: pseudo-layers (`frame`, `ethertype`, `data`), the IPv6
/// extension headers (fields of our `ipv6` layer, as they are fields of
/// tshark's `ipv6` layer in the JSON), payload dissectors the protocol
/// filter does not switch off, and the packet quoted by an ICMP error
/// (tshark nests it inside the `icmp` layer; we do not decode it).
fn tshark_chain(t: &TsharkPacket) -> Vec<String> {
    filter_chain(&t.chain)
}

fn filter_chain(chain: &[String]) -> Vec<String> {
    let mut out = vec![];
    for p in chain {
        if HEADER_LAYERS.contains(&p.as_str()) {
            out.push(p.clone());
        }
        if p == "icmp" || p == "icmpv6" {
            break;
        }
    }
    out
}

/// tshark layer names of the headers we decode.
const HEADER_LAYERS: &[&str] = &[
    "eth",
    "vlan",
    "ieee8021ad",
    "arp",
    "ip",
    "ipv6",
    "icmp",
    "icmpv6",
    "tcp",
    "udp",
    "sctp",
    "vxlan",
    "geneve",
];

/// The errors tshark reports in the header layers we decode: layers
/// holding `_ws.malformed` or an expert info of severity error, as
/// positions in [`tshark_chain`]. Errors of payload dissectors (the
/// protocol filter cannot switch off every port-registered one) are not
/// ours to judge and are left out.
fn header_error_positions(t: &TsharkPacket) -> Vec<usize> {
    let chain = tshark_chain(t);
    let mut out = vec![];
    for (name, occurrence) in &t.error_layers {
        if name == "_ws.malformed" {
            // A top-level marker: it belongs to the layer right before it
            // in frame.protocols (the one whose dissector threw).
            let upto: Vec<&String> = t
                .chain
                .iter()
                .take_while(|p| p.as_str() != "_ws.malformed")
                .collect();
            let Some(last) = upto
                .iter()
                .rev()
                .find(|p| !matches!(p.as_str(), "data" | "ethertype"))
            else {
                continue;
            };
            let is_header = HEADER_LAYERS.contains(&last.as_str()) || last.starts_with("ipv6.");
            if is_header {
                let owned: Vec<String> = upto.iter().map(|s| (*s).clone()).collect();
                out.push(filter_chain(&owned).len().saturating_sub(1));
            }
            continue;
        }
        if let Some(i) = chain
            .iter()
            .enumerate()
            .filter(|(_, p)| *p == name)
            .nth(*occurrence)
            .map(|(i, _)| i)
        {
            out.push(i);
        }
    }
    out
}

/// Where tshark's dissection goes wrong, as an index into its filtered
/// chain: the first header layer with an error; if there is none, the
/// chain length (tshark went as far as it could without complaint).
fn tshark_error_position(t: &TsharkPacket) -> usize {
    header_error_positions(t)
        .into_iter()
        .min()
        .unwrap_or(tshark_chain(t).len())
}

/// Compares one packet; `strict` is set for well-formed generated packets.
fn compare(
    what: &str,
    bytes: &[u8],
    ours: &ours::Decoded,
    theirs: &TsharkPacket,
    strict: bool,
    stats: &mut Stats,
) {
    let mut occ: BTreeMap<&str, usize> = BTreeMap::new();
    for layer in &ours.layers {
        let k = occ.entry(layer.proto).or_default();
        let index = *k;
        *k += 1;
        let Some(their_layer) = theirs.layers.get(layer.proto).and_then(|v| v.get(index)) else {
            if strict {
                stats.fail(format!(
                    "{what}: tshark has no layer {}[{index}]\n  packet {}",
                    layer.proto,
                    hex(bytes)
                ));
            }
            continue;
        };
        let mut ours_by_name: BTreeMap<&'static str, Vec<&str>> = BTreeMap::new();
        for (name, value) in &layer.fields {
            ours_by_name.entry(name).or_default().push(value);
        }
        for (name, values) in ours_by_name {
            let Some(their_values) = their_layer.get(name) else {
                if strict {
                    stats.fail(format!(
                        "{what}: tshark has no {name} in {}[{index}]\n  packet {}",
                        layer.proto,
                        hex(bytes)
                    ));
                }
                continue;
            };
            if KNOWN_DIFFS.iter().any(|(f, _)| *f == name) {
                *stats.known.entry(name).or_default() += values.len();
                continue;
            }
            if values != *their_values {
                stats.fail(format!(
                    "{what}: {}[{index}] {name}: ours {values:?} tshark {their_values:?}\n  packet {}",
                    layer.proto,
                    hex(bytes)
                ));
            }
            *stats.per_field.entry(name).or_default() += values.len();
        }
    }
}

fn write_pcap(path: &std::path::Path, packets: &[&[u8]]) {
    let mut w = PcapWriter::new(LINKTYPE_ETHERNET);
    for (i, p) in packets.iter().enumerate() {
        w.push(1_700_000_000 + i as u32, 0, p);
    }
    std::fs::write(path, w.as_bytes()).unwrap();
}

fn pcaps_dir() -> PathBuf {
    match std::env::var_os("WEFT_PCAPS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps"),
    }
}

fn tshark_or_skip() -> bool {
    if theirs::available() {
        return true;
    }
    if std::env::var("WEFT_REQUIRE_TSHARK").as_deref() == Ok("1") {
        panic!("tshark is not installed but WEFT_REQUIRE_TSHARK=1");
    }
    eprintln!(
        "\n!!!!!!!!!! SKIPPED: tshark_diff needs `tshark` on PATH (set WEFT_REQUIRE_TSHARK=1 to make this a failure) !!!!!!!!!!\n"
    );
    false
}

#[test]
fn generated_packets_match_tshark() {
    if !tshark_or_skip() {
        return;
    }
    let start = std::time::Instant::now();
    let packets: Vec<Generated> = Generator::new(SEED).packets(PACKETS);
    let dir = TempDir::new();
    let path = dir.0.join("generated.pcap");
    write_pcap(
        &path,
        &packets.iter().map(|p| &p.bytes[..]).collect::<Vec<_>>(),
    );
    if let Some(keep) = std::env::var_os("WEFT_TSHARK_KEEP") {
        std::fs::copy(&path, keep).unwrap();
    }
    let theirs = theirs::run(&path, &[]);
    assert_eq!(theirs.len(), packets.len(), "tshark frame count");

    let mut stats = Stats::default();
    for (i, (g, t)) in packets.iter().zip(&theirs).enumerate() {
        let ours = ours::decode(&g.bytes);
        let what = format!(
            "generated #{i} (frame {}) {:?} {}",
            i + 1,
            g.variant,
            g.desc
        );
        let good = g.variant == Variant::Good;
        let strict = matches!(g.variant, Variant::Good | Variant::BadChecksum);
        compare(&what, &g.bytes, &ours, t, strict, &mut stats);
        for msg in &ours.internal {
            stats.fail(format!("{what}: {msg}\n  packet {}", hex(&g.bytes)));
        }
        if let Variant::Malformed(kind) = g.variant {
            let e = malformed_rule(&ours, t);
            *stats.malformed.entry((kind, e.is_ok())).or_default() += 1;
            if !header_error_positions(t).is_empty() {
                *stats.tshark_flagged.entry(kind).or_default() += 1;
            }
            if let Err(msg) = e {
                stats.fail(format!("{what}: {msg}\n  packet {}", hex(&g.bytes)));
            }
        }
        if g.variant == Variant::BadChecksum {
            // (The comparison of the `*.checksum.status` fields then shows
            // that tshark agrees on which one is bad.)
            if !ours
                .layers
                .iter()
                .flat_map(|l| &l.fields)
                .any(|(n, v)| n.ends_with("checksum.status") && v == "0")
            {
                stats.fail(format!(
                    "{what}: we do not see the bad checksum\n  packet {}",
                    hex(&g.bytes)
                ));
            }
        }
        if strict {
            let our_chain: Vec<&str> = ours.layers.iter().map(|l| l.proto).collect();
            if our_chain != tshark_chain(t) {
                stats.fail(format!(
                    "{what}: layer chains differ: ours {our_chain:?} tshark {:?}\n  packet {}",
                    tshark_chain(t),
                    hex(&g.bytes)
                ));
            }
        }
        if good {
            if let Some((_, proto, e)) = ours.error {
                stats.fail(format!(
                    "{what}: we reject a well-formed packet at {proto}: {e:?}\n  packet {}",
                    hex(&g.bytes)
                ));
            }
            if !header_error_positions(t).is_empty() {
                stats.fail(format!(
                    "{what}: tshark reports errors on a well-formed packet: {:?}\n  packet {}",
                    t.error_layers,
                    hex(&g.bytes)
                ));
            }
        }
    }
    report(&stats, "generated");
    for f in REQUIRED {
        let n = stats.per_field.get(f).copied().unwrap_or(0);
        assert!(n >= MIN_PER_FIELD, "field {f} compared only {n} times");
    }
    assert!(
        stats.total() > MIN_TOTAL,
        "only {} comparisons",
        stats.total()
    );
    // The malformed rule is not vacuous: tshark itself flags these defects
    // (so "at or below tshark's error layer" is a real bound), and every
    // defect kind was generated.
    for kind in [
        Malform::IhlTooSmall,
        Malform::Ipv4TotalLenTooBig,
        Malform::TcpDataOffsetSmall,
        Malform::UdpLenSmall,
    ] {
        let n: usize = [true, false]
            .iter()
            .map(|ok| stats.malformed.get(&(kind, *ok)).copied().unwrap_or(0))
            .sum();
        let flagged = stats.tshark_flagged.get(&kind).copied().unwrap_or(0);
        assert!(n >= MIN_PER_FIELD, "only {n} packets with {kind:?}");
        assert_eq!(
            flagged, n,
            "tshark flags only {flagged} of {n} {kind:?} packets"
        );
    }
    assert!(
        stats.failures.is_empty(),
        "{} failures:\n{}",
        stats.failures.len(),
        stats.failures.join("\n")
    );
    eprintln!("generated: done in {:?}", start.elapsed());
}

/// The malformed rule (see the module doc): we must reject the packet, at a
/// layer no deeper than the one where tshark reports an error (or stops),
/// and the layers before ours must be the same as tshark's.
fn malformed_rule(ours: &ours::Decoded, t: &TsharkPacket) -> Result<(), String> {
    let Some((e, proto, err)) = ours.error else {
        return Err("malformed packet accepted by our decoder".into());
    };
    let tpos = tshark_error_position(t);
    let our_chain: Vec<&str> = ours.layers.iter().map(|l| l.proto).collect();
    let their_chain = tshark_chain(t);
    if e > tpos {
        return Err(format!(
            "we reject at layer {e} ({proto}: {err:?}) but tshark already fails at layer {tpos}: ours {our_chain:?} tshark {their_chain:?} errors {:?}",
            t.error_layers
        ));
    }
    if their_chain.len() < e || our_chain[..e] != their_chain[..e] {
        return Err(format!(
            "chains differ before our error layer {e}: ours {our_chain:?} tshark {their_chain:?}"
        ));
    }
    Ok(())
}

fn report(stats: &Stats, what: &str) {
    for ((kind, ok), n) in &stats.malformed {
        eprintln!(
            "  malformed {kind:?}: rule {} on {n} (tshark flags an error in {})",
            if *ok { "held" } else { "FAILED" },
            stats.tshark_flagged.get(kind).copied().unwrap_or(0)
        );
    }
    eprintln!(
        "{what}: {} comparisons over {} fields",
        stats.total(),
        stats.per_field.len()
    );
    for (f, n) in &stats.per_field {
        eprintln!("  {f:32} {n}");
    }
    for (f, n) in &stats.known {
        eprintln!("  KNOWN DIFF skipped: {f:24} {n}");
    }
}

#[test]
fn shared_captures_match_tshark() {
    if !tshark_or_skip() {
        return;
    }
    let dir = pcaps_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    let mut stats = Stats::default();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let reader = PcapReader::new(&bytes).unwrap();
        let records: Vec<Vec<u8>> = reader.records().map(|r| r.unwrap().data.to_vec()).collect();
        let theirs = theirs::run(file, &[]);
        assert_eq!(theirs.len(), records.len(), "{}", file.display());
        for (i, (rec, t)) in records.iter().zip(&theirs).enumerate() {
            let ours = ours::decode(rec);
            let what = format!(
                "{} frame {}",
                file.file_name().unwrap().to_string_lossy(),
                i + 1
            );
            compare(&what, rec, &ours, t, false, &mut stats);
        }
    }
    report(&stats, "captures");
    assert!(stats.total() > 500, "only {} comparisons", stats.total());
    assert!(
        stats.failures.is_empty(),
        "{} failures:\n{}",
        stats.failures.len(),
        stats.failures.join("\n")
    );
}
