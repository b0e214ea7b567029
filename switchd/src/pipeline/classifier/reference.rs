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
