//! The per-node diff between two flow tables, as bundle changes.
//!
//! Flows are identified as OpenFlow does (and as switchd's state does):
//! `(table, priority, match)`. A flow only in the new table is an `Add`;
//! one only in the old table is a strict `Delete`; one whose spec changed
//! is a strict `Modify` when only its actions changed (counters kept, as
//! `ovs-ofctl diff-flows`/OVN's ofctrl do) and an `Add` otherwise (cookie
//! or timeouts changed: the flow is replaced). Deletes come first, so a
//! bundle never holds two flows with the same id at any step.

use std::collections::HashMap;

use protocol::ctl::{FlowChange, FlowFilter, FlowModify};
use protocol::flow::{FlowSpec, Match, Priority, TableId};

type FlowId = (TableId, Priority, Match);

fn id(f: &FlowSpec) -> FlowId {
    (f.table, f.priority, f.r#match)
}

fn normalized(f: &FlowSpec) -> FlowSpec {
    let mut f = f.clone();
    f.cookie_mask = 0;
    f
}

/// The changes that turn flow table `old` into `new` (empty if equal).
pub fn diff(old: &[FlowSpec], new: &[FlowSpec]) -> Vec<FlowChange> {
    let old_by_id: HashMap<FlowId, FlowSpec> = old.iter().map(|f| (id(f), normalized(f))).collect();
    let new_by_id: HashMap<FlowId, FlowSpec> = new.iter().map(|f| (id(f), normalized(f))).collect();
    let mut deletes = Vec::new();
    let mut rest = Vec::new();
    // Walk the inputs (not the maps) so the order is deterministic.
    for f in old {
        let k = id(f);
        if !new_by_id.contains_key(&k) {
            deletes.push(FlowChange::Delete(FlowFilter {
                table: Some(f.table),
                r#match: f.r#match,
                priority: Some(f.priority),
                ..FlowFilter::default()
            }));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in new {
        let k = id(f);
        if !seen.insert(k) {
            continue; // A later duplicate id: the map kept the last one.
        }
        let Some(nf) = new_by_id.get(&k) else {
            continue;
        };
        match old_by_id.get(&k) {
            None => rest.push(FlowChange::Add(nf.clone())),
            Some(of) if of == nf => {}
            Some(of)
                if of.cookie == nf.cookie
                    && of.idle_timeout == nf.idle_timeout
                    && of.hard_timeout == nf.hard_timeout =>
            {
                rest.push(FlowChange::Modify(FlowModify {
                    spec: nf.clone(),
                    strict: true,
                }));
            }
            Some(_) => rest.push(FlowChange::Add(nf.clone())),
        }
    }
    deletes.extend(rest);
    deletes
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use protocol::text::parse_flow;

    use super::*;

    fn flows(lines: &[&str]) -> Vec<FlowSpec> {
        lines.iter().map(|l| parse_flow(l).unwrap()).collect()
    }

    #[test]
    fn equal_tables_give_nothing() {
        let a = flows(&[
            "table=0,priority=10,ip,actions=drop",
            "priority=0,actions=NORMAL",
        ]);
        let mut b = a.clone();
        b.reverse();
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn add_delete_modify_replace() {
        let old = flows(&[
            "priority=10,ip,actions=drop",
            "priority=20,arp,actions=NORMAL",
            "cookie=0x1,priority=30,tcp,actions=drop",
            "priority=40,udp,actions=drop",
        ]);
        let new = flows(&[
            "priority=20,arp,actions=FLOOD",
            "cookie=0x2,priority=30,tcp,actions=drop",
            "priority=40,udp,actions=drop",
            "priority=50,icmp,actions=drop",
        ]);
        let d = diff(&old, &new);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(matches!(&d[0], FlowChange::Delete(f)
            if f.priority == Some(Priority(10)) && f.table == Some(TableId(0))));
        assert!(matches!(&d[1], FlowChange::Modify(m) if m.strict && m.spec == new[0]));
        assert!(matches!(&d[2], FlowChange::Add(f) if *f == new[1]));
        assert!(matches!(&d[3], FlowChange::Add(f) if *f == new[3]));
    }
}
