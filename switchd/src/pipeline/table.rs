//! Flow tables and their compilation: [`FlowSpec`]s are validated and
//! turned into [`Rule`]s whose actions are in an internal form (`Op`),
//! stored in one [`Classifier`] per table.
//!
//! # Validation (all errors name the flow index, its text and the field)
//!
//! * `table` at most 254; `goto_table` to a *later* table at most 254;
//!   `resubmit` tables at most 254.
//! * Instructions in OpenFlow order: apply-actions first, then at most one
//!   each of `clear_actions`, `write_actions`, `write_metadata`,
//!   `goto_table`, in that order (OVS rejects other orders too).
//! * `write_actions` holds only actions allowed in an action set (OVS
//!   `action_set_classify`): outputs, `resubmit`, VLAN push/pop, `dec_ttl`,
//!   field sets and moves; not `controller`, `goto_table`, nested
//!   instructions or `conjunction`.
//! * `conjunction` actions may not be mixed with other actions (OVS); such a
//!   rule becomes a soft rule of the classifier.
//! * `set_field`/`load`/`move`: valid, writable fields and bit ranges;
//!   values that fit.
//! * Output ports: reserved ports usable in flows (`IN_PORT`, `NORMAL`,
//!   `FLOOD`, `ALL`, `CONTROLLER`, `LOCAL`), or ordinary ports; when the
//!   configuration lists ports, ordinary ports must be among them. `TABLE`
//!   and `ANY` are rejected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::flow::{
    Action, ControllerReason, Field, FlowSpec, PortNo, SubField, TableId,
    key::{VLAN_PCP_MASK, VLAN_VID_MASK},
};
use protocol::text::format_flow;

use super::classifier::{Classifier, ConjError, Conjunction};
use super::config::SwitchConfig;

/// Packet and byte counters of one rule, shared between the snapshot and
/// the control thread (which keeps them across recompilations of an
/// unchanged rule). Updated with relaxed atomics: counts are exact, their
/// order relative to other memory is not needed.
#[derive(Debug, Default)]
pub struct RuleStats {
    /// Packets that matched.
    pub n_packets: AtomicU64,
    /// Bytes of those packets (as received).
    pub n_bytes: AtomicU64,
    /// `now_ms` of the last match (0: never).
    pub last_used_ms: AtomicU64,
}

impl RuleStats {
    /// Credits one packet of `bytes` bytes at `now_ms`.
    #[inline]
    pub fn credit(&self, bytes: usize, now_ms: u64) {
        self.n_packets.fetch_add(1, Ordering::Relaxed);
        self.n_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.last_used_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Credits `packets` packets totalling `bytes` bytes at `now_ms` (a
    /// group of exact-match-cache hits).
    #[inline]
    pub fn credit_n(&self, packets: u64, bytes: u64, now_ms: u64) {
        self.n_packets.fetch_add(packets, Ordering::Relaxed);
        self.n_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_used_ms.store(now_ms, Ordering::Relaxed);
    }

    /// (packets, bytes, last used).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.n_packets.load(Ordering::Relaxed),
            self.n_bytes.load(Ordering::Relaxed),
            self.last_used_ms.load(Ordering::Relaxed),
        )
    }
}

/// One action in the executable form. Parallel to the source action list
/// (`Rule::spec.actions`), so a trace can print the source text of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `output:N` or a reserved port (`CONTROLLER` is a packet-in).
    Output(PortNo),
    /// `controller(...)`.
    Controller {
        max_len: u16,
        reason: ControllerReason,
    },
    /// `resubmit([port],[table])`.
    Resubmit {
        port: Option<PortNo>,
        table: Option<TableId>,
    },
    /// `goto_table:N`.
    Goto(TableId),
    /// `write_metadata:value/mask`.
    WriteMetadata { value: u64, mask: u64 },
    /// Every field write: `set_field`, `load` (value and mask shifted into
    /// place), `mod_dl_*`, `mod_nw_*`, `mod_tp_*`.
    SetField {
        field: Field,
        value: u128,
        mask: u128,
    },
    /// `move:src->dst`.
    Move { src: SubField, dst: SubField },
    /// `dec_ttl`.
    DecTtl,
    /// `push_vlan:tpid`.
    PushVlan(u16),
    /// `pop_vlan` / `strip_vlan`.
    PopVlan,
    /// `mod_vlan_vid` (pushes an 802.1Q tag if none).
    SetVlanVid(u16),
    /// `mod_vlan_pcp` (pushes an 802.1Q tag if none).
    SetVlanPcp(u8),
    /// `clear_actions`.
    ClearActions,
    /// `write_actions(...)`, parallel to the source's inner list.
    WriteActions(Box<[Op]>),
}

/// A compiled rule: the source flow, its executable actions and counters.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The flow as given (for dumps and traces).
    pub spec: FlowSpec,
    /// Executable actions, parallel to `spec.actions`.
    pub(crate) ops: Box<[Op]>,
    /// Counters.
    pub stats: Arc<RuleStats>,
}

/// One flow table.
///
/// The classifier holds indexes into `rules`, so that a rule has a small
/// stable identity within the snapshot (the exact-match cache records
/// `(table, index)` pairs, see [`super::emc`]). A rule replaced at compile
/// time (same match and priority) stays in `rules` unreferenced.
#[derive(Debug, Default)]
pub struct Table {
    /// The classifier: values are indexes into `rules`.
    pub(crate) cls: Classifier<u32>,
    /// Rules by index.
    pub(crate) rules: Vec<Rule>,
}

impl Table {
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.cls.len()
    }

    /// True if the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.cls.is_empty()
    }

    /// Every rule, in no particular order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> + '_ {
        self.cls
            .iter()
            .filter_map(|e| self.rules.get(*e.value as usize))
    }

    /// The rule with index `i` (as the classifier returns it).
    #[inline]
    pub(crate) fn rule(&self, i: u32) -> Option<&Rule> {
        self.rules.get(i as usize)
    }
}

/// Why a flow set was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flow {index} ({text}): {field}: {reason}")]
pub struct CompileError {
    /// Index of the flow in the input.
    pub index: usize,
    /// The flow in `ovs-ofctl` text.
    pub text: String,
    /// The field or action keyword at fault (`goto_table`, `output`,
    /// `set_field`, `table`, ...).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// An error without the flow context (added by the caller).
struct Bad {
    field: String,
    reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> Bad {
    Bad {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Order class of an instruction (OpenFlow instruction order).
fn instruction_rank(a: &Action) -> u8 {
    match a {
        Action::ClearActions => 1,
        Action::WriteActions(_) => 2,
        Action::WriteMetadata { .. } => 3,
        Action::GotoTable(_) => 4,
        _ => 0,
    }
}

fn check_port(port: PortNo, what: &str, cfg: &SwitchConfig) -> Result<(), Bad> {
    match port {
        PortNo::TABLE | PortNo::NONE => Err(bad(what, format!("port {port} not allowed here"))),
        p if p.reserved_name().is_some() => Ok(()),
        p if p.0 == 0 || p > PortNo::MAX => Err(bad(what, format!("invalid port {}", p.0))),
        p if !cfg.ports.is_empty() && !cfg.ports.contains_key(&p) => {
            Err(bad(what, format!("port {} does not exist", p.0)))
        }
        _ => Ok(()),
    }
}

fn check_table(t: TableId, what: &str) -> Result<(), Bad> {
    if t > TableId::MAX {
        return Err(bad(what, format!("table {t} out of range 0..=254")));
    }
    Ok(())
}

fn check_sub(sf: &SubField, what: &str, write: bool) -> Result<(), Bad> {
    if !sf.is_valid() {
        return Err(bad(
            what,
            format!(
                "bits {}..{} outside field {} ({} bits)",
                sf.ofs,
                u16::from(sf.ofs) + u16::from(sf.n_bits),
                sf.field.name(),
                sf.field.width()
            ),
        ));
    }
    if write && !sf.field.info().writable {
        return Err(bad(what, format!("field {} is read-only", sf.field.name())));
    }
    Ok(())
}

#[inline]
fn ones(bits: u8) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn full(field: Field, value: u128) -> Op {
    Op::SetField {
        field,
        value,
        mask: ones(field.width()),
    }
}

/// Compiles one action. `in_set`: inside `write_actions`.
fn compile_action(a: &Action, table: TableId, cfg: &SwitchConfig, in_set: bool) -> Result<Op, Bad> {
    if in_set {
        let allowed = matches!(
            a,
            Action::Output(_)
                | Action::Resubmit { .. }
                | Action::SetField { .. }
                | Action::Load { .. }
                | Action::Move { .. }
                | Action::ModDlSrc(_)
                | Action::ModDlDst(_)
                | Action::ModNwSrc(_)
                | Action::ModNwDst(_)
                | Action::ModNwTos(_)
                | Action::ModTpSrc(_)
                | Action::ModTpDst(_)
                | Action::DecTtl
                | Action::PushVlan(_)
                | Action::PopVlan
                | Action::StripVlan
                | Action::ModVlanVid(_)
                | Action::ModVlanPcp(_)
        );
        if !allowed {
            return Err(bad(
                "write_actions",
                format!(
                    "action {} is not allowed in an action set",
                    protocol::text::format_actions(std::slice::from_ref(a))
                ),
            ));
        }
    }
    Ok(match a {
        Action::Output(p) => {
            check_port(*p, "output", cfg)?;
            Op::Output(*p)
        }
        Action::Controller { max_len, reason } => Op::Controller {
            max_len: *max_len,
            reason: *reason,
        },
        Action::Resubmit { port, table: t } => {
            if let Some(p) = port
                && *p != PortNo::IN_PORT
            {
                check_port(*p, "resubmit", cfg)?;
            }
            if let Some(t) = t {
                check_table(*t, "resubmit")?;
            }
            Op::Resubmit {
                port: *port,
                table: *t,
            }
        }
        Action::GotoTable(t) => {
            check_table(*t, "goto_table")?;
            if *t <= table {
                return Err(bad(
                    "goto_table",
                    format!("table {t} is not after this flow's table {table}"),
                ));
            }
            Op::Goto(*t)
        }
        Action::WriteMetadata { value, mask } => Op::WriteMetadata {
            value: *value,
            mask: *mask,
        },
        Action::SetField { field, value, mask } => {
            let info = field.info();
            if !field.is_valid() || !info.writable {
                return Err(bad(
                    "set_field",
                    format!("field {} is not writable", field.name()),
                ));
            }
            let m = ones(info.slot.width);
            if value & !m != 0 || mask & !m != 0 {
                return Err(bad(
                    "set_field",
                    format!(
                        "value does not fit in {} ({} bits)",
                        field.name(),
                        info.slot.width
                    ),
                ));
            }
            Op::SetField {
                field: *field,
                value: value & mask,
                mask: *mask,
            }
        }
        Action::Load { dst, value } => {
            check_sub(dst, "load", true)?;
            if value & !ones(dst.n_bits) != 0 {
                return Err(bad(
                    "load",
                    format!("value does not fit in {} bits", dst.n_bits),
                ));
            }
            Op::SetField {
                field: dst.field,
                value: value << dst.ofs,
                mask: ones(dst.n_bits) << dst.ofs,
            }
        }
        Action::Move { src, dst } => {
            check_sub(src, "move", false)?;
            check_sub(dst, "move", true)?;
            if src.n_bits != dst.n_bits {
                return Err(bad(
                    "move",
                    format!("source has {} bits, destination {}", src.n_bits, dst.n_bits),
                ));
            }
            Op::Move {
                src: *src,
                dst: *dst,
            }
        }
        Action::ModDlSrc(m) => full(Field::DlSrc, u128::from(m.to_u64())),
        Action::ModDlDst(m) => full(Field::DlDst, u128::from(m.to_u64())),
        Action::ModNwSrc(a) => full(Field::NwSrc, u128::from(u32::from(*a))),
        Action::ModNwDst(a) => full(Field::NwDst, u128::from(u32::from(*a))),
        Action::ModNwTos(t) => Op::SetField {
            field: Field::NwTos,
            value: u128::from(t & 0xfc),
            mask: 0xfc,
        },
        Action::ModTpSrc(p) => full(Field::TpSrc, u128::from(*p)),
        Action::ModTpDst(p) => full(Field::TpDst, u128::from(*p)),
        Action::DecTtl => Op::DecTtl,
        Action::PushVlan(tpid) => {
            if !matches!(*tpid, 0x8100 | 0x88a8) {
                return Err(bad(
                    "push_vlan",
                    format!("ethertype {tpid:#06x} is not 0x8100 or 0x88a8"),
                ));
            }
            Op::PushVlan(*tpid)
        }
        Action::PopVlan | Action::StripVlan => Op::PopVlan,
        Action::ModVlanVid(v) => {
            if *v & !VLAN_VID_MASK != 0 {
                return Err(bad("mod_vlan_vid", format!("{v} is not a 12-bit VID")));
            }
            Op::SetVlanVid(*v)
        }
        Action::ModVlanPcp(p) => {
            if u16::from(*p) > (VLAN_PCP_MASK >> 13) {
                return Err(bad("mod_vlan_pcp", format!("{p} is not a 3-bit priority")));
            }
            Op::SetVlanPcp(*p)
        }
        Action::ClearActions => Op::ClearActions,
        Action::WriteActions(inner) => {
            let ops = inner
                .iter()
                .map(|a| compile_action(a, table, cfg, true))
                .collect::<Result<Vec<_>, _>>()?;
            Op::WriteActions(ops.into_boxed_slice())
        }
        Action::Conjunction { .. } => {
            return Err(bad(
                "conjunction",
                "conjunction actions may not be mixed with other actions",
            ));
        }
    })
}

/// Compiles one flow into its rule, or its conjunction clauses for a soft
/// rule.
fn compile_one(spec: &FlowSpec, cfg: &SwitchConfig) -> Result<(Rule, Vec<Conjunction>), Bad> {
    check_table(spec.table, "table")?;
    let conj: Vec<Conjunction> = spec
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Conjunction {
                id,
                clause,
                n_clauses,
            } => Some(Conjunction {
                id: *id,
                clause: *clause,
                n_clauses: *n_clauses,
            }),
            _ => None,
        })
        .collect();
    let stats = Arc::new(RuleStats::default());
    if !conj.is_empty() {
        if conj.len() != spec.actions.len() {
            return Err(bad(
                "conjunction",
                "conjunction actions may not be mixed with other actions",
            ));
        }
        return Ok((
            Rule {
                spec: spec.clone(),
                ops: Box::new([]),
                stats,
            },
            conj,
        ));
    }
    let mut last_rank = 0;
    let mut ops = Vec::with_capacity(spec.actions.len());
    for a in &spec.actions {
        let r = instruction_rank(a);
        if r != 0 && r <= last_rank || r == 0 && last_rank != 0 {
            return Err(bad(
                protocol::text::format_actions(std::slice::from_ref(a))
                    .split([':', '('])
                    .next()
                    .unwrap_or("actions")
                    .to_owned(),
                "instructions out of order (apply-actions, clear_actions, \
                 write_actions, write_metadata, goto_table; each at most once)",
            ));
        }
        last_rank = last_rank.max(r);
        ops.push(compile_action(a, spec.table, cfg, false)?);
    }
    Ok((
        Rule {
            spec: spec.clone(),
            ops: ops.into_boxed_slice(),
            stats,
        },
        Vec::new(),
    ))
}

/// Builds the tables from `flows` (later flows with an identical match and
/// priority in the same table replace earlier ones, as `ovs-ofctl
/// add-flows`). Returns the tables indexed by table id (trailing empty
/// tables cut).
pub(crate) fn build_tables(
    flows: &[FlowSpec],
    cfg: &SwitchConfig,
) -> Result<Vec<Option<Arc<Table>>>, CompileError> {
    let mut tables: Vec<Option<Table>> = Vec::new();
    for (index, spec) in flows.iter().enumerate() {
        let wrap = |b: Bad| CompileError {
            index,
            text: format_flow(spec),
            field: b.field,
            reason: b.reason,
        };
        let (rule, conj) = compile_one(spec, cfg).map_err(wrap)?;
        let t = usize::from(spec.table.0);
        if tables.len() <= t {
            tables.resize_with(t + 1, || None);
        }
        let table = tables[t].get_or_insert_with(Table::default);
        let (m, pri) = (spec.r#match, spec.priority);
        let idx =
            u32::try_from(table.rules.len()).map_err(|_| wrap(bad("table", "too many flows")))?;
        table.rules.push(rule);
        if conj.is_empty() {
            table.cls.insert(m, pri, idx);
        } else {
            table
                .cls
                .insert_soft(m, pri, idx, &conj)
                .map_err(|e: ConjError| wrap(bad("conjunction", e.to_string())))?;
        }
    }
    Ok(tables.into_iter().map(|t| t.map(Arc::new)).collect())
}
