//! The switch's configuration as data: ports (name → stable OpenFlow port
//! number, kind, configuration), flows and switch-wide settings, with the
//! flow-mod semantics of OVS as pure functions and atomic persistence.
//!
//! # Flow identity and flow-mod semantics
//!
//! A flow is identified by `(table, priority, match)` ([`FlowId`]), as in
//! OpenFlow. The functions here change a [`SwitchState`] in place and
//! return counts; the control thread applies them to a *copy*, compiles the
//! copy, and only then replaces the live state, so a failed request leaves
//! nothing changed.
//!
//! | request | affects | counters |
//! |---|---|---|
//! | add | replaces a flow with the same id | **reset** (a replaced flow is a new flow: new serial, duration 0) |
//! | modify non-strict | every flow in `spec.table` whose match is at least as specific as `spec.match` and whose cookie matches under `cookie_mask` | kept; only the actions change |
//! | modify strict | the flow with exactly `spec`'s id (and cookie under mask) | kept |
//! | delete non-strict | flows in `filter.table` (all tables if `None`) whose match is at least as specific as the filter's, cookie under mask, and (if `out_port`) that output to `out_port` | gone |
//! | delete strict | as non-strict, but the match and priority must be equal | gone |
//! | replace | the whole flow table becomes the given set; flows equal to one already there keep their counters | kept for unchanged flows |
//!
//! OVS resets counters on an add that replaces a flow unless the request
//! carries `reset_counts=false` semantics through a modify; we keep the
//! simple rule above. Unlike OpenFlow 1.0, a modify that matches nothing
//! does not add a flow.
//!
//! # Ports
//!
//! A port name keeps its OpenFlow number across deletion and restarts: the
//! name → number map is persisted and numbers are never reused for another
//! name while a free one exists. Deleting a port leaves the flows that use
//! it in place (see [`SwitchState::switch_config`]).
//!
//! # Tunnels and the node table
//!
//! Tunnel ports (`geneve`, `vxlan`) are ports like any other here: a name,
//! a stable number, and their options in [`PortEntry::kind`]. The node
//! table (node name → underlay IP, [`SwitchState::nodes`]) and the
//! underlay choice ([`SwitchState::underlay`]) are persisted with them;
//! what the kernel says about the underlay (addresses, MAC, MTU, routes,
//! neighbours) is not: it is read again at start (see `crate::underlay`).
//!
//! An `internal` port (the host stack's interface, OVS `LOCAL`) gets
//! [`PortNo::LOCAL`] when no number is asked for and `LOCAL` is free.
//!
//! # Persistence
//!
//! [`SwitchState::save`] writes `<dir>/switchd-state.json` atomically (temp
//! file, `fsync`, `rename`, `fsync` of the directory). Flows are stored in
//! `ovs-ofctl` text (one string per flow) so the file is readable and
//! editable by hand.
//!
//! ## Flow-mod journal
//!
//! Rewriting the whole snapshot (and `fsync`ing it) for every flow-mod
//! costs O(table): on a 10,000-flow table that dominated a one-flow change.
//! Flow changes (add, replace, modify, delete, bundles, timeout expiry) are
//! therefore appended to `<dir>/switchd-state.journal` instead
//! ([`Journal`]). So are adding and removing a port ([`JournalOp::PortAdd`],
//! [`JournalOp::PortDel`]): the CNI plugin does one of each per pod, and a
//! snapshot (write, `fsync`, `rename`, `fsync` of the directory: two
//! file-system journal commits) was most of a pod's `ADD` and `DEL` time
//! on a busy node, where one `fdatasync` of an append is one commit. Every
//! other change (port modifications, settings, nodes, underlay, TLV map)
//! still writes a full snapshot, which also empties the journal.
//!
//! Format: one JSON object per line, `{"seq":N,"now_ms":T,"ops":[..]}\n`,
//! where `ops` are [`JournalOp`]s applied in order with `now_ms` as the
//! time of the change (so replay gives the same `created_ms`). One record
//! is one request (a bundle is one record), written with a single `write`
//! and `fdatasync`ed before the reply is sent. `seq` increases by one per
//! record; the snapshot stores the `seq` of the last record it contains
//! (`journal_seq`, 0 in files written before the journal existed).
//!
//! Restore ([`SwitchState::load`]) = snapshot (or an empty state if there
//! is none) + the journal's records with `seq` greater than the snapshot's.
//! Guarantees:
//! * a request that was answered survives a crash (`kill -9`, power loss
//!   with a file system that honours `fdatasync`);
//! * a request that was being written when the process died is either
//!   wholly applied or wholly absent: a last record that is incomplete or
//!   does not parse (a torn write, or zeros after the end) is ignored with
//!   a warning; the records before it are kept. An unparsable record
//!   *followed by* valid records is corruption, not a torn tail, and
//!   loading fails naming the file and line;
//! * compaction (a new snapshot with the journal's `seq`, atomically
//!   renamed, then the journal removed) is crash-safe at every step: a
//!   journal left next to a newer snapshot is skipped by `seq`.
//!
//! The journal is compacted when it holds more than
//! [`JOURNAL_MAX_RECORDS`] records or more bytes than the snapshot (at
//! least [`JOURNAL_MIN_COMPACT_BYTES`]), and at start when a journal was
//! replayed (so no record is ever appended after a torn tail). The old
//! single-file state (no journal) loads unchanged.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::net::IpAddr;

use protocol::ctl::{ChangeCounts, FlowFilter, FlowModify, PortKind, TlvMapping, UnderlayConfig};
use protocol::flow::{Action, Cookie, FlowSpec, Match, PortNo, Priority, TableId};
use protocol::text::{format_flow, parse_flow};
use serde::{Deserialize, Serialize};

use crate::pipeline::{FragMode, MissBehavior, PortConfig, SwitchConfig};

/// File name of the persisted state inside the state directory.
pub const STATE_FILE: &str = "switchd-state.json";

/// File name of the flow-mod journal inside the state directory.
pub const JOURNAL_FILE: &str = "switchd-state.journal";

/// Compact the journal once it holds this many records.
pub const JOURNAL_MAX_RECORDS: u64 = 10_000;

/// The journal is not compacted for size below this many bytes.
pub const JOURNAL_MIN_COMPACT_BYTES: u64 = 1 << 20;

/// Version of the on-disk format.
pub const STATE_VERSION: u32 = 1;

/// The identity of a flow: table, priority and match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId {
    /// Table.
    pub table: TableId,
    /// Priority.
    pub priority: Priority,
    /// Match.
    pub r#match: Match,
}

impl FlowId {
    /// The id of `spec`.
    pub fn of(spec: &FlowSpec) -> FlowId {
        FlowId {
            table: spec.table,
            priority: spec.priority,
            r#match: spec.r#match,
        }
    }
}

/// One installed flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEntry {
    /// The flow (its `cookie_mask` is always 0).
    pub spec: FlowSpec,
    /// When it was added (Unix time, milliseconds).
    pub created_ms: u64,
    /// Identifies this incarnation of the flow for counter bookkeeping: a
    /// new serial means the counters start again at zero. Not persisted.
    pub serial: u64,
}

/// One configured port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortEntry {
    /// Interface name.
    pub name: String,
    /// Its OpenFlow number.
    pub ofport: PortNo,
    /// What backs it.
    pub kind: PortKind,
    /// OpenFlow port configuration.
    pub config: PortConfig,
    /// Options given when it was added (`PortAddWith`); a state written
    /// before they existed has the defaults (offloads on).
    #[serde(default)]
    pub options: protocol::ctl::PortOptions,
}

/// Switch-wide settings (persisted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// VLAN tags parsed into the key.
    pub vlan_limit: u8,
    /// Fragment handling.
    pub frag_mode: FragMode,
    /// Table-miss behaviour by table (tables not listed drop).
    pub table_miss: Vec<(TableId, MissBehavior)>,
    /// MAC-learning entries per worker.
    pub mac_table_size: usize,
    /// MAC aging, milliseconds.
    pub mac_aging_ms: u64,
    /// Geneve option -> `tun_metadataN` map (`SetTlvMap`), in slot order.
    #[serde(default)]
    pub tlv_map: Vec<TlvMapping>,
}

impl Default for Settings {
    fn default() -> Settings {
        let d = SwitchConfig::default();
        Settings {
            vlan_limit: d.vlan_limit,
            frag_mode: d.frag_mode,
            table_miss: Vec::new(),
            mac_table_size: d.mac_table_size,
            mac_aging_ms: d.mac_aging_ms,
            tlv_map: Vec::new(),
        }
    }
}

/// Why a state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid state JSON.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The whole configuration of the switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchState {
    /// Settings.
    pub settings: Settings,
    /// Configured ports by name.
    pub ports: BTreeMap<String, PortEntry>,
    /// Every name ever given a number (stable numbering).
    pub ofports: BTreeMap<String, PortNo>,
    /// Flows by id.
    pub flows: HashMap<FlowId, FlowEntry>,
    /// The node table: node name → underlay IP.
    pub nodes: BTreeMap<String, IpAddr>,
    /// Which ports face the underlay and the host stack.
    pub underlay: Option<UnderlayConfig>,
    next_serial: u64,
    /// `seq` of the last journal record applied (see the module doc).
    journal_seq: u64,
}

/// One flow change as journalled (see the module doc). Live requests and
/// journal replay both go through [`SwitchState::apply_op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalOp {
    /// [`SwitchState::add_flows`].
    Add(Vec<FlowSpec>),
    /// [`SwitchState::replace_flows`].
    Replace(Vec<FlowSpec>),
    /// [`SwitchState::modify_flows`].
    Modify(FlowModify),
    /// [`SwitchState::delete_flows`].
    Delete(FlowFilter),
    /// Removes the flows with these ids (timeout expiry).
    Remove(Vec<FlowSpec>),
    /// [`SwitchState::insert_port`] (a port added).
    PortAdd(PortEntry),
    /// Removes the port of this name (its number stays reserved for it in
    /// [`SwitchState::ofports`]).
    PortDel(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalRecord {
    seq: u64,
    now_ms: u64,
    ops: Vec<JournalOp>,
}

/// The on-disk form.
#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    version: u32,
    settings: Settings,
    ports: Vec<PortEntry>,
    ofports: BTreeMap<String, PortNo>,
    flows: Vec<PersistedFlow>,
    /// Absent in files written before tunnels existed.
    #[serde(default)]
    nodes: BTreeMap<String, IpAddr>,
    #[serde(default)]
    underlay: Option<UnderlayConfig>,
    /// Last journal record contained (absent before the journal existed).
    #[serde(default)]
    journal_seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedFlow {
    flow: String,
    created_ms: u64,
}

/// Now as Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// True if a flow with match `flow` is selected by the non-strict pattern
/// `pattern`: every bit the pattern matches, the flow matches too, with
/// the same value (the flow is at least as specific).
pub fn match_covers(pattern: &Match, flow: &Match) -> bool {
    pattern
        .mask
        .0
        .0
        .iter()
        .zip(flow.mask.0.0.iter())
        .zip(pattern.key.0.iter().zip(flow.key.0.iter()))
        .all(|((pm, fm), (pk, fk))| pm & !fm == 0 && (fk & pm) == *pk)
}

fn cookie_ok(flow: Cookie, cookie: Cookie, mask: u64) -> bool {
    (flow.0 ^ cookie.0) & mask == 0
}

/// True if `actions` (including `write_actions`) send to `port`
/// (`controller(...)` counts as `CONTROLLER`).
pub fn outputs_to(actions: &[Action], port: PortNo) -> bool {
    actions.iter().any(|a| match a {
        Action::Output(p) => *p == port,
        Action::Controller { .. } => port == PortNo::CONTROLLER,
        Action::WriteActions(inner) => outputs_to(inner, port),
        _ => false,
    })
}

impl SwitchState {
    /// An empty state with `settings`.
    pub fn new(settings: Settings) -> SwitchState {
        SwitchState {
            settings,
            ..SwitchState::default()
        }
    }

    fn serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    /// The pipeline configuration for this state.
    ///
    /// Ports that were deleted (their number is still in
    /// [`SwitchState::ofports`] and not reused) stay in the pipeline's port
    /// map with every `no-*` bit set: flows that output to them remain
    /// valid (as in OVS, where flows may name absent ports) and such output
    /// is dropped; they are never flooded to. Numbers never given to any
    /// port are still rejected in flows (typos stay errors).
    pub fn switch_config(&self) -> SwitchConfig {
        let mut ports: BTreeMap<PortNo, PortConfig> =
            self.ports.values().map(|p| (p.ofport, p.config)).collect();
        for (name, p) in &self.ofports {
            if !self.ports.contains_key(name) {
                ports.entry(*p).or_insert(PortConfig {
                    no_flood: true,
                    no_forward: true,
                    no_receive: true,
                    no_packet_in: true,
                });
            }
        }
        SwitchConfig {
            vlan_limit: self.settings.vlan_limit,
            frag_mode: self.settings.frag_mode,
            ports,
            table_miss: self.settings.table_miss.iter().copied().collect(),
            mac_table_size: self.settings.mac_table_size,
            mac_aging_ms: self.settings.mac_aging_ms,
        }
    }

    /// The configured tunnel ports (Geneve and VXLAN kinds), for
    /// [`crate::tunnel::Tunnels::new`].
    pub fn tunnel_ports(&self) -> Vec<crate::tunnel::TunnelPort> {
        self.ports
            .values()
            .filter_map(|p| crate::tunnel::TunnelPort::from_port_kind(p.ofport, &p.kind))
            .collect()
    }

    /// Flows sorted for display and compilation: table ascending, priority
    /// descending, then by text (deterministic).
    pub fn sorted_flows(&self) -> Vec<&FlowEntry> {
        let mut v: Vec<(&FlowEntry, String)> = self
            .flows
            .values()
            .map(|e| (e, format_flow(&e.spec)))
            .collect();
        v.sort_by(|a, b| {
            (a.0.spec.table, std::cmp::Reverse(a.0.spec.priority), &a.1).cmp(&(
                b.0.spec.table,
                std::cmp::Reverse(b.0.spec.priority),
                &b.1,
            ))
        });
        v.into_iter().map(|(e, _)| e).collect()
    }

    /// Adds `flows` in order; a flow with the id of an existing one
    /// replaces it (counters reset). Returns the counts (a replacement is
    /// counted as modified).
    pub fn add_flows(&mut self, flows: &[FlowSpec], now_ms: u64) -> ChangeCounts {
        let mut c = ChangeCounts::default();
        for f in flows {
            let mut spec = f.clone();
            spec.cookie_mask = 0;
            let serial = self.serial();
            let old = self.flows.insert(
                FlowId::of(&spec),
                FlowEntry {
                    spec,
                    created_ms: now_ms,
                    serial,
                },
            );
            if old.is_some() {
                c.modified += 1;
            } else {
                c.added += 1;
            }
        }
        c
    }

    /// Applies one journalled change at `now_ms` (Unix ms).
    pub fn apply_op(&mut self, op: &JournalOp, now_ms: u64) -> ChangeCounts {
        match op {
            JournalOp::Add(f) => self.add_flows(f, now_ms),
            JournalOp::Replace(f) => self.replace_flows(f, now_ms),
            JournalOp::Modify(m) => self.modify_flows(m),
            JournalOp::Delete(f) => self.delete_flows(f),
            JournalOp::Remove(f) => {
                let mut c = ChangeCounts::default();
                for spec in f {
                    if self.flows.remove(&FlowId::of(spec)).is_some() {
                        c.removed += 1;
                    }
                }
                c
            }
            JournalOp::PortAdd(p) => {
                self.insert_port(p.clone());
                ChangeCounts::default()
            }
            JournalOp::PortDel(name) => {
                self.ports.remove(name);
                ChangeCounts::default()
            }
        }
    }

    /// The `seq` of the last journal record this state contains.
    pub fn journal_seq(&self) -> u64 {
        self.journal_seq
    }

    /// Modifies the actions of the flows `m` selects (see the module
    /// table). Counters and durations are kept.
    pub fn modify_flows(&mut self, m: &FlowModify) -> ChangeCounts {
        let mut c = ChangeCounts::default();
        let s = &m.spec;
        for (id, e) in &mut self.flows {
            if id.table != s.table || !cookie_ok(e.spec.cookie, s.cookie, s.cookie_mask) {
                continue;
            }
            let hit = if m.strict {
                id.priority == s.priority && id.r#match == s.r#match
            } else {
                match_covers(&s.r#match, &id.r#match)
            };
            if hit {
                e.spec.actions.clone_from(&s.actions);
                c.modified += 1;
            }
        }
        c
    }

    /// The ids of the flows `filter` selects (strict: equal match and, if
    /// given, priority).
    pub fn select(&self, filter: &FlowFilter, strict: bool) -> Vec<FlowId> {
        self.flows
            .iter()
            .filter(|(id, e)| {
                filter
                    .table
                    .is_none_or(|t| t == TableId::ALL || t == id.table)
                    && cookie_ok(e.spec.cookie, filter.cookie, filter.cookie_mask)
                    && filter
                        .out_port
                        .is_none_or(|p| outputs_to(&e.spec.actions, p))
                    && if strict {
                        id.r#match == filter.r#match
                            && filter.priority.is_none_or(|p| p == id.priority)
                    } else {
                        match_covers(&filter.r#match, &id.r#match)
                    }
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Deletes the flows `filter` selects. Strict when `filter.priority` is
    /// set (the wire form has no separate flag; `ovs-ofctl --strict`
    /// always sends a priority).
    pub fn delete_flows(&mut self, filter: &FlowFilter) -> ChangeCounts {
        let ids = self.select(filter, filter.priority.is_some());
        for id in &ids {
            self.flows.remove(id);
        }
        ChangeCounts {
            removed: ids.len() as u64,
            ..ChangeCounts::default()
        }
    }

    /// Makes the flow table exactly `flows` (later duplicates win). Flows
    /// already present with an identical spec are kept with their counters;
    /// others are added, changed or removed.
    pub fn replace_flows(&mut self, flows: &[FlowSpec], now_ms: u64) -> ChangeCounts {
        let mut c = ChangeCounts::default();
        let mut new: HashMap<FlowId, FlowEntry> = HashMap::with_capacity(flows.len());
        for f in flows {
            let mut spec = f.clone();
            spec.cookie_mask = 0;
            let id = FlowId::of(&spec);
            let entry = match self.flows.get(&id) {
                Some(old) if old.spec == spec => old.clone(),
                _ => {
                    let serial = self.serial();
                    FlowEntry {
                        spec,
                        created_ms: now_ms,
                        serial,
                    }
                }
            };
            new.insert(id, entry);
        }
        for (id, e) in &new {
            match self.flows.get(id) {
                None => c.added += 1,
                Some(old) if old.serial != e.serial => c.modified += 1,
                Some(_) => {}
            }
        }
        c.removed = self.flows.keys().filter(|id| !new.contains_key(id)).count() as u64;
        self.flows = new;
        c
    }

    /// Chooses the OpenFlow number for a new port `name`: `requested` if
    /// free, else the number this name had before, else the lowest number
    /// never given to another name (else the lowest unused one).
    ///
    /// # Errors
    /// A reason string if `requested` is invalid or taken.
    pub fn allocate_ofport(&self, name: &str, requested: Option<PortNo>) -> Result<PortNo, String> {
        let in_use = |p: PortNo| self.ports.values().any(|e| e.ofport == p);
        if let Some(p) = requested {
            if p == PortNo::LOCAL {
                if in_use(p) {
                    return Err("ofport LOCAL is in use".into());
                }
                return Ok(p);
            }
            if p.0 == 0 || p > PortNo::MAX {
                return Err(format!("ofport {} is not a valid port number", p.0));
            }
            if in_use(p) {
                return Err(format!("ofport {} is in use", p.0));
            }
            return Ok(p);
        }
        if let Some(&p) = self.ofports.get(name)
            && !in_use(p)
        {
            return Ok(p);
        }
        let reserved = |p: PortNo| self.ofports.iter().any(|(n, q)| *q == p && n != name);
        let mut fallback = None;
        for n in 1..=PortNo::MAX.0 {
            let p = PortNo(n);
            if in_use(p) {
                continue;
            }
            if !reserved(p) {
                return Ok(p);
            }
            fallback.get_or_insert(p);
        }
        fallback.ok_or_else(|| "no free port number".to_owned())
    }

    /// Records a port (the caller allocated `entry.ofport`).
    pub fn insert_port(&mut self, entry: PortEntry) {
        self.ofports.insert(entry.name.clone(), entry.ofport);
        self.ports.insert(entry.name.clone(), entry);
    }

    /// The port with OpenFlow number `p`.
    pub fn port_by_number(&self, p: PortNo) -> Option<&PortEntry> {
        self.ports.values().find(|e| e.ofport == p)
    }

    /// Path of the state file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Serialises to the on-disk JSON.
    ///
    /// # Errors
    /// Never in practice (serde_json on plain data).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let p = Persisted {
            version: STATE_VERSION,
            settings: self.settings.clone(),
            ports: self.ports.values().cloned().collect(),
            ofports: self.ofports.clone(),
            flows: self
                .sorted_flows()
                .into_iter()
                .map(|e| PersistedFlow {
                    flow: format_flow(&e.spec),
                    created_ms: e.created_ms,
                })
                .collect(),
            nodes: self.nodes.clone(),
            underlay: self.underlay.clone(),
            journal_seq: self.journal_seq,
        };
        serde_json::to_string_pretty(&p)
    }

    /// Parses the on-disk JSON.
    ///
    /// # Errors
    /// A reason if it is not valid state (bad JSON, unknown version, a flow
    /// that does not parse).
    pub fn from_json(s: &str) -> Result<SwitchState, String> {
        let p: Persisted = serde_json::from_str(s).map_err(|e| e.to_string())?;
        if p.version != STATE_VERSION {
            return Err(format!("unsupported state version {}", p.version));
        }
        let mut st = SwitchState::new(p.settings);
        st.ofports = p.ofports;
        st.nodes = p.nodes;
        st.underlay = p.underlay;
        st.journal_seq = p.journal_seq;
        for port in p.ports {
            st.insert_port(port);
        }
        for (i, f) in p.flows.iter().enumerate() {
            let spec = parse_flow(&f.flow).map_err(|e| format!("flow {i} ({}): {e}", f.flow))?;
            let serial = st.serial();
            st.flows.insert(
                FlowId::of(&spec),
                FlowEntry {
                    spec,
                    created_ms: f.created_ms,
                    serial,
                },
            );
        }
        Ok(st)
    }

    /// Loads `<dir>/switchd-state.json` and replays `<dir>/switchd-state.journal`
    /// over it (see the module doc); `Ok(None)` if neither exists.
    ///
    /// # Errors
    /// I/O errors other than not-found, and invalid contents (a torn last
    /// journal record is not an error).
    pub fn load(dir: &Path) -> Result<Option<SwitchState>, StateError> {
        let path = Self::path(dir);
        let snapshot = match fs::read_to_string(&path) {
            Ok(t) => Some(
                SwitchState::from_json(&t).map_err(|reason| StateError::Format { path, reason })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let jpath = dir.join(JOURNAL_FILE);
        let bytes = match fs::read(&jpath) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(snapshot),
            Err(source) => {
                return Err(StateError::Io {
                    path: jpath,
                    source,
                });
            }
        };
        let mut st = snapshot.unwrap_or_default();
        st.replay(&bytes).map_err(|reason| StateError::Format {
            path: jpath,
            reason,
        })?;
        Ok(Some(st))
    }

    /// Applies the journal `bytes` (records with `seq` beyond this state's).
    /// Returns how many records were applied.
    ///
    /// # Errors
    /// An unparsable record followed by a valid one, or a gap in `seq`.
    pub fn replay(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let mut applied = 0;
        for (i, line) in lines.iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let rec: JournalRecord = match serde_json::from_slice(line) {
                Ok(r) => r,
                Err(e) => {
                    let later_valid = lines[i + 1..]
                        .iter()
                        .any(|l| serde_json::from_slice::<JournalRecord>(l).is_ok());
                    if later_valid {
                        return Err(format!("line {}: {e} (followed by valid records)", i + 1));
                    }
                    tracing::warn!(line = i + 1, error = %e, "ignoring torn journal tail");
                    break;
                }
            };
            if rec.seq <= self.journal_seq {
                continue;
            }
            if rec.seq != self.journal_seq + 1 {
                return Err(format!(
                    "line {}: seq {} after {} (records missing)",
                    i + 1,
                    rec.seq,
                    self.journal_seq
                ));
            }
            for op in &rec.ops {
                self.apply_op(op, rec.now_ms);
            }
            self.journal_seq = rec.seq;
            applied += 1;
        }
        Ok(applied)
    }

    /// Writes `<dir>/switchd-state.json` atomically: a temporary file in
    /// the same directory, `fsync`, `rename` over the old file, `fsync` of
    /// the directory. Creates `dir` if needed.
    ///
    /// # Errors
    /// Any I/O error (the old file is then unchanged).
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let json = self.to_json().map_err(|e| StateError::Format {
            path: Self::path(dir),
            reason: e.to_string(),
        })?;
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        {
            let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(json.as_bytes()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        let path = Self::path(dir);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        // The snapshot contains every journal record (by `journal_seq`).
        let jpath = dir.join(JOURNAL_FILE);
        match fs::remove_file(&jpath) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::Io {
                    path: jpath,
                    source,
                });
            }
        }
        Ok(())
    }
}

/// The append side of the flow-mod journal (see the module doc).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: Option<fs::File>,
    records: u64,
    bytes: u64,
    snapshot_bytes: u64,
    max_records: u64,
    min_compact_bytes: u64,
}

impl Journal {
    /// The journal of `dir`. If a journal file is already there (it was
    /// replayed by [`SwitchState::load`]), the first change is written as a
    /// snapshot (compaction), so records are never appended after a torn
    /// tail.
    pub fn open(dir: &Path) -> Journal {
        let existing = dir.join(JOURNAL_FILE).exists();
        Journal {
            dir: dir.to_path_buf(),
            file: None,
            records: if existing { u64::MAX } else { 0 },
            bytes: 0,
            snapshot_bytes: fs::metadata(SwitchState::path(dir)).map_or(0, |m| m.len()),
            max_records: JOURNAL_MAX_RECORDS,
            min_compact_bytes: JOURNAL_MIN_COMPACT_BYTES,
        }
    }

    /// The same journal with other compaction limits (records, and the
    /// size below which size does not count) instead of
    /// [`JOURNAL_MAX_RECORDS`] and [`JOURNAL_MIN_COMPACT_BYTES`].
    pub fn with_limits(mut self, max_records: u64, min_compact_bytes: u64) -> Journal {
        self.max_records = max_records;
        self.min_compact_bytes = min_compact_bytes;
        self
    }

    /// True if the journal holds records not yet in the snapshot (or may).
    pub fn is_dirty(&self) -> bool {
        self.records > 0
    }

    /// True if the next change should be written as a snapshot instead.
    pub fn wants_compaction(&self) -> bool {
        self.records >= self.max_records
            || self.bytes > self.snapshot_bytes.max(self.min_compact_bytes)
    }

    /// Writes `state` as the snapshot and empties the journal.
    ///
    /// # Errors
    /// I/O errors (the previous snapshot and journal are then intact).
    pub fn compact(&mut self, state: &SwitchState) -> Result<(), StateError> {
        self.file = None;
        state.save(&self.dir)?;
        self.records = 0;
        self.bytes = 0;
        self.snapshot_bytes = fs::metadata(SwitchState::path(&self.dir)).map_or(0, |m| m.len());
        Ok(())
    }

    /// Appends one record (`ops` at `now_ms`) with the next `seq` after
    /// `state`'s and `fdatasync`s it; on success `state` records the new
    /// `seq`. `state` must already contain the ops' effect.
    ///
    /// # Errors
    /// I/O errors. The journal is then closed and the next change writes a
    /// snapshot (a partial record is only ever a tail).
    pub fn append(
        &mut self,
        state: &mut SwitchState,
        now_ms: u64,
        ops: Vec<JournalOp>,
    ) -> Result<(), StateError> {
        let path = self.dir.join(JOURNAL_FILE);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let rec = JournalRecord {
            seq: state.journal_seq + 1,
            now_ms,
            ops,
        };
        let mut line = serde_json::to_vec(&rec).map_err(|e| StateError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        if self.file.is_none() {
            fs::create_dir_all(&self.dir).map_err(io)?;
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            // The file's directory entry must be durable too.
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            self.file = Some(f);
        }
        let res = match &mut self.file {
            Some(f) => f.write_all(&line).and_then(|()| f.sync_data()),
            None => Ok(()),
        };
        if let Err(e) = res {
            self.file = None;
            // Force a snapshot next time.
            self.records = u64::MAX;
            return Err(io(e));
        }
        self.records = self.records.saturating_add(1);
        self.bytes += line.len() as u64;
        state.journal_seq = rec.seq;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;
    use protocol::text::parse_match;

    fn flow(s: &str) -> FlowSpec {
        parse_flow(s).unwrap()
    }

    fn texts(st: &SwitchState) -> Vec<String> {
        st.sorted_flows()
            .iter()
            .map(|e| format_flow(&e.spec))
            .collect()
    }

    #[test]
    fn add_replaces_identical_and_resets_serial() {
        let mut st = SwitchState::default();
        let c = st.add_flows(
            &[
                flow("priority=10,in_port=1,actions=output:2"),
                flow("priority=20,in_port=1,actions=drop"),
            ],
            5,
        );
        assert_eq!((c.added, c.modified), (2, 0));
        let id = FlowId::of(&flow("priority=10,in_port=1,actions=drop"));
        let s1 = st.flows[&id].serial;
        let c = st.add_flows(&[flow("priority=10,in_port=1,actions=output:3")], 9);
        assert_eq!((c.added, c.modified), (0, 1));
        assert_ne!(st.flows[&id].serial, s1);
        assert_eq!(st.flows[&id].created_ms, 9);
        assert_eq!(
            texts(&st),
            [
                "priority=20,in_port=1 actions=drop",
                "priority=10,in_port=1 actions=output:3"
            ]
        );
    }

    #[test]
    fn modify_strict_and_non_strict() {
        let mut st = SwitchState::default();
        st.add_flows(
            &[
                flow("priority=10,tcp,tp_dst=80,actions=drop"),
                flow("priority=20,tcp,tp_dst=81,actions=drop"),
                flow("priority=30,udp,actions=drop"),
                flow("table=1,priority=30,tcp,actions=drop"),
            ],
            0,
        );
        let before = st.flows[&FlowId::of(&flow("priority=10,tcp,tp_dst=80,actions=drop"))].serial;
        let c = st.modify_flows(&FlowModify {
            spec: flow("tcp,actions=output:1"),
            strict: false,
        });
        assert_eq!(c.modified, 2);
        let e = &st.flows[&FlowId::of(&flow("priority=10,tcp,tp_dst=80,actions=drop"))];
        assert_eq!(e.serial, before, "modify keeps counters");
        assert_eq!(e.spec.actions, vec![Action::Output(PortNo(1))]);
        // Strict: priority must match too.
        let c = st.modify_flows(&FlowModify {
            spec: flow("priority=21,tcp,tp_dst=81,actions=output:2"),
            strict: true,
        });
        assert_eq!(c.modified, 0);
        let c = st.modify_flows(&FlowModify {
            spec: flow("priority=20,tcp,tp_dst=81,actions=output:2"),
            strict: true,
        });
        assert_eq!(c.modified, 1);
    }

    #[test]
    fn delete_filters() {
        let mut st = SwitchState::default();
        st.add_flows(
            &[
                flow("cookie=0x11,priority=10,tcp,tp_dst=80,actions=output:1"),
                flow("cookie=0x12,priority=20,tcp,tp_dst=81,actions=output:2"),
                flow("cookie=0x21,priority=30,ip,actions=write_actions(output:2)"),
                flow("table=1,priority=30,tcp,actions=controller"),
            ],
            0,
        );
        let mut f = FlowFilter {
            out_port: Some(PortNo(2)),
            ..FlowFilter::default()
        };
        assert_eq!(st.select(&f, false).len(), 2);
        f.out_port = Some(PortNo::CONTROLLER);
        assert_eq!(st.select(&f, false).len(), 1);
        let f = FlowFilter {
            cookie: Cookie(0x10),
            cookie_mask: 0xf0,
            ..FlowFilter::default()
        };
        assert_eq!(st.select(&f, false).len(), 2);
        let f = FlowFilter {
            table: Some(TableId(0)),
            r#match: parse_match("tcp").unwrap(),
            ..FlowFilter::default()
        };
        assert_eq!(st.select(&f, false).len(), 2, "ip flow is less specific");
        // Strict needs the exact match and priority.
        let f = FlowFilter {
            r#match: parse_match("tcp,tp_dst=80").unwrap(),
            priority: Some(Priority(11)),
            ..FlowFilter::default()
        };
        assert_eq!(st.delete_flows(&f).removed, 0);
        let f = FlowFilter {
            priority: Some(Priority(10)),
            ..f
        };
        assert_eq!(st.delete_flows(&f).removed, 1);
        assert_eq!(st.delete_flows(&FlowFilter::default()).removed, 3);
        assert!(st.flows.is_empty());
    }

    #[test]
    fn replace_diffs() {
        let mut st = SwitchState::default();
        st.add_flows(
            &[
                flow("priority=1,actions=drop"),
                flow("priority=2,in_port=1,actions=output:2"),
                flow("priority=3,in_port=2,actions=output:1"),
            ],
            0,
        );
        let keep = st.flows[&FlowId::of(&flow("priority=1,actions=drop"))].serial;
        let c = st.replace_flows(
            &[
                flow("priority=1,actions=drop"),
                flow("priority=2,in_port=1,actions=output:3"),
                flow("priority=4,actions=NORMAL"),
            ],
            7,
        );
        assert_eq!((c.added, c.modified, c.removed), (1, 1, 1));
        assert_eq!(
            st.flows[&FlowId::of(&flow("priority=1,actions=drop"))].serial,
            keep
        );
        assert_eq!(st.flows.len(), 3);
    }

    #[test]
    fn match_covers_is_subset() {
        let tcp = parse_match("tcp").unwrap();
        let tcp80 = parse_match("tcp,tp_dst=80").unwrap();
        let any = Match::CATCHALL;
        assert!(match_covers(&any, &tcp));
        assert!(match_covers(&tcp, &tcp80));
        assert!(!match_covers(&tcp80, &tcp));
        assert!(!match_covers(&parse_match("udp").unwrap(), &tcp80));
        let net = parse_match("ip,nw_dst=10.0.0.0/8").unwrap();
        assert!(match_covers(
            &net,
            &parse_match("ip,nw_dst=10.1.0.0/16").unwrap()
        ));
        assert!(!match_covers(
            &net,
            &parse_match("ip,nw_dst=11.1.0.0/16").unwrap()
        ));
    }

    #[test]
    fn ofports_are_stable() {
        let mut st = SwitchState::default();
        let add = |st: &mut SwitchState, n: &str, req| {
            let p = st.allocate_ofport(n, req).unwrap();
            st.insert_port(PortEntry {
                name: n.into(),
                ofport: p,
                kind: PortKind::AfPacket,
                config: PortConfig::default(),
                options: protocol::ctl::PortOptions::default(),
            });
            p
        };
        assert_eq!(add(&mut st, "a", None), PortNo(1));
        assert_eq!(add(&mut st, "b", None), PortNo(2));
        assert_eq!(add(&mut st, "c", Some(PortNo(7))), PortNo(7));
        assert!(st.allocate_ofport("d", Some(PortNo(7))).is_err());
        assert!(st.allocate_ofport("d", Some(PortNo(0))).is_err());
        st.ports.remove("a");
        // "a"'s number is not given to a new name while another is free.
        assert_eq!(add(&mut st, "d", None), PortNo(3));
        assert_eq!(add(&mut st, "a", None), PortNo(1));
    }

    #[test]
    fn old_state_files_load_without_tunnel_fields() {
        let mut st = SwitchState::default();
        st.nodes.insert("n".into(), "192.0.2.9".parse().unwrap());
        let mut v: serde_json::Value = serde_json::from_str(&st.to_json().unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("nodes");
        o.remove("underlay");
        let back = SwitchState::from_json(&v.to_string()).unwrap();
        assert!(back.nodes.is_empty() && back.underlay.is_none());
    }

    #[test]
    fn local_is_only_given_when_asked() {
        let st = SwitchState::default();
        assert_eq!(
            st.allocate_ofport("weft0", Some(PortNo::LOCAL)),
            Ok(PortNo::LOCAL)
        );
        assert_eq!(st.allocate_ofport("x", None), Ok(PortNo(1)));
    }

    #[test]
    fn deleted_ports_keep_flows_valid() {
        let mut st = SwitchState::default();
        for (n, p) in [("a", 1), ("b", 2)] {
            st.insert_port(PortEntry {
                name: n.into(),
                ofport: PortNo(p),
                kind: PortKind::AfPacket,
                config: PortConfig::default(),
                options: protocol::ctl::PortOptions::default(),
            });
        }
        st.ports.remove("b");
        let cfg = st.switch_config();
        assert!(cfg.ports[&PortNo(2)].no_forward && cfg.ports[&PortNo(2)].no_flood);
        assert_eq!(cfg.ports[&PortNo(1)], PortConfig::default());
        let ok = [flow("in_port=1,actions=output:2")];
        assert!(crate::pipeline::compile(&ok, cfg.clone()).is_ok());
        let typo = [flow("in_port=1,actions=output:3")];
        let e = crate::pipeline::compile(&typo, cfg).unwrap_err();
        assert_eq!(e.field, "output");
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SwitchState::load(dir.path()).unwrap().is_none());
        let mut st = SwitchState::new(Settings {
            vlan_limit: 2,
            frag_mode: FragMode::Drop,
            table_miss: vec![(TableId(3), MissBehavior::Controller)],
            ..Settings::default()
        });
        let p = st.allocate_ofport("veth0", Some(PortNo(5))).unwrap();
        st.insert_port(PortEntry {
            name: "veth0".into(),
            ofport: p,
            kind: PortKind::Tap,
            config: PortConfig {
                no_flood: true,
                ..PortConfig::default()
            },
            options: protocol::ctl::PortOptions::default(),
        });
        st.ofports.insert("gone".into(), PortNo(9));
        st.nodes
            .insert("node-b".into(), "192.0.2.2".parse().unwrap());
        st.underlay = Some(UnderlayConfig {
            port: "eth0".into(),
            host_port: "weft0".into(),
            local_ip: None,
        });
        st.insert_port(PortEntry {
            name: "geneve0".into(),
            ofport: PortNo(10),
            kind: PortKind::Geneve(protocol::ctl::TunnelConfig::default()),
            config: PortConfig::default(),
            options: protocol::ctl::PortOptions::default(),
        });
        st.add_flows(
            &[
                flow(
                    "cookie=0x5,table=1,priority=100,tcp,nw_dst=10.0.0.0/24,tp_dst=81,actions=drop",
                ),
                flow("in_port=5,actions=NORMAL"),
            ],
            1234,
        );
        st.save(dir.path()).unwrap();
        let back = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.settings, st.settings);
        assert_eq!(back.ports, st.ports);
        assert_eq!(back.ofports, st.ofports);
        assert_eq!(back.nodes, st.nodes);
        assert_eq!(back.underlay, st.underlay);
        assert_eq!(texts(&back), texts(&st));
        assert!(back.flows.values().all(|e| e.created_ms == 1234));
        // Overwrite works and leaves no temp file.
        st.flows.clear();
        st.save(dir.path()).unwrap();
        assert!(
            SwitchState::load(dir.path())
                .unwrap()
                .unwrap()
                .flows
                .is_empty()
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STATE_FILE]);
        // Garbage is an error, not a panic.
        fs::write(SwitchState::path(dir.path()), "{nope").unwrap();
        assert!(matches!(
            SwitchState::load(dir.path()),
            Err(StateError::Format { .. })
        ));
    }

    fn ops_state(dir: &Path, steps: &[(u64, Vec<JournalOp>)]) -> (SwitchState, Journal) {
        let mut st = SwitchState::new(Settings::default());
        let mut j = Journal::open(dir);
        for (now, ops) in steps {
            for op in ops {
                st.apply_op(op, *now);
            }
            j.append(&mut st, *now, ops.clone()).unwrap();
        }
        (st, j)
    }

    fn sample_steps() -> Vec<(u64, Vec<JournalOp>)> {
        let m = FlowModify {
            spec: flow("table=1,priority=5,ip,actions=drop"),
            strict: false,
        };
        vec![
            (
                1000,
                vec![JournalOp::Add(vec![
                    flow("table=1,priority=5,ip,nw_dst=10.0.0.1,actions=output:1"),
                    flow("table=1,priority=5,ip,nw_dst=10.0.0.2,actions=output:2"),
                ])],
            ),
            (
                2000,
                vec![JournalOp::Add(vec![flow(
                    "priority=1,actions=goto_table:1",
                )])],
            ),
            (3000, vec![JournalOp::Modify(m)]),
            (
                4000,
                vec![
                    JournalOp::Delete(FlowFilter {
                        table: Some(TableId(1)),
                        r#match: parse_match("ip,nw_dst=10.0.0.2").unwrap(),
                        ..FlowFilter::default()
                    }),
                    JournalOp::Add(vec![flow("table=2,priority=9,arp,actions=normal")]),
                ],
            ),
        ]
    }

    #[test]
    fn journal_replays_over_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let steps = sample_steps();
        let (st, _) = ops_state(dir.path(), &steps);
        // Journal only (no snapshot yet).
        assert!(!SwitchState::path(dir.path()).exists());
        let back = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(texts(&back), texts(&st));
        assert_eq!(back.journal_seq(), 4);
        let created: Vec<u64> = back.sorted_flows().iter().map(|e| e.created_ms).collect();
        let want: Vec<u64> = st.sorted_flows().iter().map(|e| e.created_ms).collect();
        assert_eq!(created, want);
        assert!(texts(&back).iter().any(|t| t.contains("actions=drop")));
    }

    #[test]
    fn journal_torn_tail_is_ignored_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let steps = sample_steps();
        let (_, _) = ops_state(dir.path(), &steps);
        let jpath = dir.path().join(JOURNAL_FILE);
        let full = fs::read(&jpath).unwrap();
        // The state after the first three records.
        let (three, _) = ops_state(tempfile::tempdir().unwrap().path(), &steps[..3]);
        // Cut inside the last record (every possible cut point), and a
        // zero-filled tail as some file systems leave after a crash.
        let last_start = full[..full.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        for cut in last_start..full.len() - 1 {
            fs::write(&jpath, &full[..cut]).unwrap();
            let back = SwitchState::load(dir.path()).unwrap().unwrap();
            assert_eq!(texts(&back), texts(&three), "cut at {cut}");
            assert_eq!(back.journal_seq(), 3);
        }
        let mut zeros = full[..last_start].to_vec();
        zeros.extend([0u8; 64]);
        fs::write(&jpath, &zeros).unwrap();
        assert_eq!(
            texts(&SwitchState::load(dir.path()).unwrap().unwrap()),
            texts(&three)
        );
        // Garbage in the middle followed by valid records is corruption.
        let mut bad = full[..last_start].to_vec();
        bad.splice(0..0, b"{\"seq\":\n".iter().copied());
        fs::write(&jpath, &bad).unwrap();
        assert!(matches!(
            SwitchState::load(dir.path()),
            Err(StateError::Format { .. })
        ));
    }

    #[test]
    fn journal_compaction_and_stale_journal() {
        let dir = tempfile::tempdir().unwrap();
        let steps = sample_steps();
        let (st, mut j) = ops_state(dir.path(), &steps);
        let jpath = dir.path().join(JOURNAL_FILE);
        let old_journal = fs::read(&jpath).unwrap();
        assert!(j.is_dirty());
        j.compact(&st).unwrap();
        assert!(!jpath.exists());
        assert!(!j.is_dirty());
        let back = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(texts(&back), texts(&st));
        assert_eq!(back.journal_seq(), 4);
        // A crash between the snapshot's rename and the journal's removal
        // leaves the old journal: its records are already in the snapshot.
        fs::write(&jpath, &old_journal).unwrap();
        let back = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(texts(&back), texts(&st));
        // A journal found at start is compacted before anything is appended.
        let mut st2 = back;
        let mut j2 = Journal::open(dir.path());
        assert!(j2.wants_compaction());
        j2.compact(&st2).unwrap();
        assert!(!jpath.exists());
        let op = JournalOp::Remove(vec![flow("table=2,priority=9,arp,actions=normal")]);
        assert_eq!(st2.apply_op(&op, 5000).removed, 1);
        j2.append(&mut st2, 5000, vec![op]).unwrap();
        let back = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(texts(&back), texts(&st2));
        assert_eq!(back.journal_seq(), 5);
        // A gap in seq is an error, not silently skipped.
        let text = fs::read_to_string(&jpath)
            .unwrap()
            .replace("\"seq\":5", "\"seq\":7");
        fs::write(&jpath, text).unwrap();
        assert!(matches!(
            SwitchState::load(dir.path()),
            Err(StateError::Format { .. })
        ));
    }

    #[test]
    fn journal_compacts_when_it_outgrows_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = SwitchState::new(Settings::default());
        st.save(dir.path()).unwrap();
        // Size rule: the snapshot (small here) or 512 bytes, whichever is
        // larger; the record rule is out of the way.
        let mut j = Journal::open(dir.path()).with_limits(1000, 512);
        assert!(!j.wants_compaction());
        let mut n = 0u64;
        let mut prev = 0;
        while !j.wants_compaction() {
            n += 1;
            let op = JournalOp::Add(vec![flow(&format!(
                "table=3,priority=7,ip,nw_src=10.{}.{}.{},actions=drop",
                n >> 16,
                (n >> 8) & 255,
                n & 255
            ))]);
            prev = fs::metadata(dir.path().join(JOURNAL_FILE)).map_or(0, |m| m.len());
            st.apply_op(&op, n);
            j.append(&mut st, n, vec![op]).unwrap();
            assert!(n < 100);
        }
        let jlen = fs::metadata(dir.path().join(JOURNAL_FILE)).unwrap().len();
        let slen = fs::metadata(SwitchState::path(dir.path())).unwrap().len();
        assert!(jlen > slen.max(512));
        assert!(prev <= slen.max(512), "compaction wanted as soon as due");
        j.compact(&st).unwrap();
        assert!(!j.wants_compaction());
        let back = SwitchState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.flows.len() as u64, n);
        // Record rule.
        let mut j = Journal::open(dir.path()).with_limits(3, u64::MAX);
        for k in 0..3 {
            assert!(!j.wants_compaction());
            j.append(&mut st, k, vec![]).unwrap();
        }
        assert!(j.wants_compaction());
    }
}
