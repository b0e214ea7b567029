//! A deliberately naive reference classifier: a list of rules scanned
//! linearly, written straight from the semantics in the
//! [classifier module doc](super), sharing none of the real classifier's
//! data structures. Tests and fuzz targets compare [`Classifier`](super::Classifier)
//! against it (OVS `tests/test-classifier.c` `tcls`).
//!
//! `O(rules)` per operation; never use it on the data path.

use std::collections::BTreeSet;

use protocol::flow::{FlowKey, Match, Priority};

use super::Hit;
use super::conj::{self, ConjError, Conjunction};

/// One rule in the reference list.
#[derive(Debug, Clone)]
struct RefRule<T> {
    m: Match,
    priority: Priority,
    seq: u64,
    conj: Option<Vec<Conjunction>>,
    value: T,
}

/// The linear-scan reference classifier (same API subset and semantics as
/// [`Classifier`](super::Classifier)).
#[derive(Debug, Clone)]
pub struct Reference<T> {
    rules: Vec<RefRule<T>>,
    next_seq: u64,
}

impl<T> Default for Reference<T> {
    fn default() -> Self {
        Reference {
            rules: Vec::new(),
            next_seq: 0,
        }
    }
}

impl<T> Reference<T> {
    /// An empty reference classifier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn put(
        &mut self,
        m: Match,
        priority: Priority,
        value: T,
        conj: Option<Vec<Conjunction>>,
    ) -> Option<T> {
        let mut m = m;
        m.normalize();
        if let Some(r) = self
            .rules
            .iter_mut()
            .find(|r| r.m == m && r.priority == priority)
        {
            r.conj = conj;
            return Some(core::mem::replace(&mut r.value, value));
        }
        self.rules.push(RefRule {
            m,
            priority,
            seq: self.next_seq,
            conj,
            value,
        });
        self.next_seq += 1;
        None
    }

    /// Inserts a hard rule; replaces (and returns) an identical one.
    pub fn insert(&mut self, m: Match, priority: Priority, value: T) -> Option<T> {
        self.put(m, priority, value, None)
    }

    /// Inserts a soft rule; replaces (and returns) an identical one.
    ///
    /// # Errors
    /// As [`Classifier::insert_soft`](super::Classifier::insert_soft).
    pub fn insert_soft(
        &mut self,
        m: Match,
        priority: Priority,
        value: T,
        conj: &[Conjunction],
    ) -> Result<Option<T>, ConjError> {
        conj::validate(conj)?;
        Ok(self.put(m, priority, value, Some(conj.to_vec())))
    }

    /// Removes the rule with match `m` and `priority`.
    pub fn remove(&mut self, m: &Match, priority: Priority) -> Option<T> {
        let mut m = *m;
        m.normalize();
        let i = self
            .rules
            .iter()
            .position(|r| r.m == m && r.priority == priority)?;
        Some(self.rules.remove(i).value)
    }

    /// The value of the rule with match `m` and `priority`.
    pub fn get(&self, m: &Match, priority: Priority) -> Option<&T> {
        let mut m = *m;
        m.normalize();
        self.rules
            .iter()
            .find(|r| r.m == m && r.priority == priority)
            .map(|r| &r.value)
    }

    /// The best hard rule matching `key`: highest priority, then first
    /// inserted.
    fn best_hard(&self, key: &FlowKey) -> Option<&RefRule<T>> {
        let mut best: Option<&RefRule<T>> = None;
        for r in &self.rules {
            if r.conj.is_some() || !r.m.matches(key) {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => r.priority > b.priority || (r.priority == b.priority && r.seq < b.seq),
            };
            if better {
                best = Some(r);
            }
        }
        best
    }

    /// The lookup, spelled out step by step as in the module doc.
    pub fn lookup(&self, key: &FlowKey) -> Option<Hit<'_, T>> {
        // 1. The best hard match.
        let hard = self.best_hard(key);
        let hard_pri = hard.map(|r| i32::from(r.priority.0)).unwrap_or(-1);
        // 2. Priority levels of matching soft rules strictly above it.
        let levels: BTreeSet<u16> = self
            .rules
            .iter()
            .filter(|r| r.conj.is_some() && r.m.matches(key))
            .map(|r| r.priority.0)
            .filter(|p| i32::from(*p) > hard_pri)
            .collect();
        // 3. Highest level first.
        for p in levels.iter().rev() {
            let level: Vec<&RefRule<T>> = self
                .rules
                .iter()
                .filter(|r| r.conj.is_some() && r.priority.0 == *p && r.m.matches(key))
                .collect();
            let has = |id: u32, k: u8, n: u8| {
                level.iter().any(|r| {
                    r.conj.iter().flatten().any(|c| {
                        *c == Conjunction {
                            id,
                            clause: k,
                            n_clauses: n,
                        }
                    })
                })
            };
            // Every (id, n) mentioned at this level whose clauses are all
            // present; ids ascending.
            let complete: BTreeSet<u32> = level
                .iter()
                .flat_map(|r| r.conj.iter().flatten())
                .filter(|c| (1..=c.n_clauses).all(|k| has(c.id, k, c.n_clauses)))
                .map(|c| c.id)
                .collect();
            // 4. Re-lookup with conj_id set, hard rules only.
            for id in complete {
                let mut k = *key;
                k.set_conj_id(id);
                if let Some(r) = self.best_hard(&k) {
                    return Some(Hit {
                        value: &r.value,
                        priority: r.priority,
                        conj_id: Some(id),
                    });
                }
            }
        }
        hard.map(|r| Hit {
            value: &r.value,
            priority: r.priority,
            conj_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Classifier;
    use super::*;
    use proptest::prelude::*;
    use protocol::flow::{Field, FlowMask};

    /// Realistic masks, chosen so rules overlap a lot.
    fn masks() -> Vec<FlowMask> {
        let mut out = Vec::new();
        let mk = |fields: &[(Field, u128)]| {
            let mut m = Match::default();
            for (f, mask) in fields {
                m.set_masked(*f, u128::MAX, *mask);
            }
            m.mask
        };
        for plen in [8u32, 16, 24, 32] {
            let nw = u128::from(u32::MAX << (32 - plen));
            out.push(mk(&[(Field::DlType, 0xffff), (Field::NwDst, nw)]));
        }
        out.push(mk(&[
            (Field::DlType, 0xffff),
            (Field::NwProto, 0xff),
            (Field::TpDst, 0xffff),
        ]));
        out.push(mk(&[(Field::InPort, 0xffff_ffff)]));
        out.push(mk(&[(Field::DlType, 0xffff)]));
        out.push(mk(&[(Field::Reg(0), 0xffff_ffff)]));
        out.push(mk(&[(Field::Reg(0), 0xff00)]));
        out.push(FlowMask::CATCHALL);
        out.push(mk(&[(Field::ConjId, 0xffff_ffff)]));
        out.push(mk(&[
            (Field::ConjId, 0xffff_ffff),
            (Field::InPort, 0xffff_ffff),
        ]));
        out
    }

    /// A key from small value sets, so that rules built from such keys and
    /// the packets looked up collide often.
    fn arb_key() -> impl Strategy<Value = FlowKey> {
        (
            prop::sample::select(vec![
                [10, 0, 0, 1],
                [10, 0, 1, 1],
                [10, 1, 0, 1],
                [11, 0, 0, 1],
            ]),
            prop::sample::select(vec![80u16, 443]),
            1u32..=2,
            prop::sample::select(vec![0x0800u16, 0x86dd]),
            prop::sample::select(vec![0u32, 0x100, 0x1ff]),
            prop::sample::select(vec![0u32, 0, 1, 2, 3]),
        )
            .prop_map(|(dst, tp, port, dl, reg, conj)| {
                let mut k = FlowKey::default();
                k.set_nw_dst(dst.into());
                k.set_tp_dst(tp);
                k.set_nw_proto(6);
                k.set_in_port(port);
                k.set_dl_type(dl);
                k.set_reg(0, reg);
                k.set_conj_id(conj);
                k
            })
    }

    #[derive(Debug, Clone)]
    #[allow(clippy::large_enum_variant)] // test input, never stored in bulk
    enum Op {
        Insert(FlowKey, usize, u16),
        InsertSoft(FlowKey, usize, u16, Vec<Conjunction>),
        Remove(usize),
        Lookup(FlowKey, FlowKey),
    }

    fn arb_conj() -> impl Strategy<Value = Vec<Conjunction>> {
        prop::collection::vec(
            (1u32..=3, prop::sample::select(vec![2u8, 2, 2, 3]), 1u8..=3),
            1..3,
        )
        .prop_map(|v| {
            let mut out: Vec<Conjunction> = Vec::new();
            for (id, n, k) in v {
                if out.iter().all(|c| c.id != id) {
                    out.push(Conjunction {
                        id,
                        clause: k.min(n),
                        n_clauses: n,
                    });
                }
            }
            out
        })
    }

    fn arb_op(n_masks: usize) -> impl Strategy<Value = Op> {
        let prio = prop::sample::select(vec![0u16, 1, 2, 5, 10]);
        prop_oneof![
            3 => (arb_key(), 0..n_masks, prio.clone()).prop_map(|(k, m, p)| Op::Insert(k, m, p)),
            // Soft rules at two priorities only, so that levels fill up.
            3 => (arb_key(), 0..n_masks, prop::sample::select(vec![5u16, 10]), arb_conj())
                .prop_map(|(k, m, p, c)| Op::InsertSoft(k, m, p, c)),
            1 => any::<usize>().prop_map(Op::Remove),
            4 => (arb_key(), arb_key()).prop_map(|(a, b)| Op::Lookup(a, b)),
        ]
    }

    fn flat<T: Copy>(h: Option<Hit<'_, T>>) -> Option<(T, u16, Option<u32>)> {
        h.map(|h| (*h.value, h.priority.0, h.conj_id))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random insert/remove/lookup sequences: the classifier agrees with
        /// the reference on every result, keeps its invariants, and its
        /// `lookup_wc` mask is sound.
        #[test]
        fn classifier_matches_reference(ops in prop::collection::vec(arb_op(12), 1..80)) {
            let masks = masks();
            let mut cls: Classifier<u32> = Classifier::new();
            let mut reference: Reference<u32> = Reference::new();
            let mut inserted: Vec<(Match, Priority)> = Vec::new();
            for (value, op) in ops.into_iter().enumerate() {
                let value = value as u32;
                match op {
                    Op::Insert(k, mi, p) => {
                        let mask = masks[mi % masks.len()];
                        let m = Match { key: k.masked(&mask), mask };
                        let p = Priority(p);
                        prop_assert_eq!(cls.insert(m, p, value), reference.insert(m, p, value));
                        inserted.push((m, p));
                    }
                    Op::InsertSoft(k, mi, p, conj) => {
                        let mask = masks[mi % masks.len()];
                        let m = Match { key: k.masked(&mask), mask };
                        let p = Priority(p);
                        prop_assert_eq!(
                            cls.insert_soft(m, p, value, &conj),
                            reference.insert_soft(m, p, value, &conj)
                        );
                        inserted.push((m, p));
                    }
                    Op::Remove(i) => {
                        if !inserted.is_empty() {
                            let (m, p) = inserted[i % inserted.len()];
                            prop_assert_eq!(cls.get(&m, p), reference.get(&m, p));
                            prop_assert_eq!(cls.remove(&m, p), reference.remove(&m, p));
                            prop_assert_eq!(cls.get(&m, p), None);
                        }
                    }
                    Op::Lookup(k, other) => {
                        let want = flat(reference.lookup(&k));
                        prop_assert_eq!(flat(cls.lookup(&k)), want);
                        let mut wc = FlowMask::default();
                        prop_assert_eq!(flat(cls.lookup_wc(&k, &mut wc)), want);
                        // Any key equal to `k` on the bits of `wc` gets the
                        // same answer.
                        let mut k2 = FlowKey::default();
                        for i in 0..k2.0.len() {
                            k2.0[i] = (k.0[i] & wc.0.0[i]) | (other.0[i] & !wc.0.0[i]);
                        }
                        prop_assert_eq!(flat(reference.lookup(&k2)), want);
                    }
                }
                prop_assert_eq!(cls.len(), reference.len());
                if let Err(e) = cls.check_invariants() {
                    return Err(TestCaseError::fail(e));
                }
            }
        }
    }
}
