//! Recording one audit: the findings it moved and the outbox messages, in one transaction.
//!
//! Findings are taken one at a time, as the rules judge them, and only what changed is written:
//! a finding that is open with the same text costs a hash lookup, not a row update. This is what
//! lets a million-user tenant (half a million open findings) be recorded in seconds, in memory
//! proportional to the largest rule's open findings rather than to the whole report.
//!
//! - An open finding's **last seen** is not written on every audit: it is the time the rule was
//!   last judged (`rule_judged`), since a judged rule either saw each of its open findings or
//!   resolved it. A resolved finding keeps its last seen in its row, set when it is resolved.
//! - Each row keeps a **digest** of what a reader sees of it (user, severity, detail, excepted):
//!   a finding whose digest did not change is left alone.
//! - The remediation is the catalogue's, filled in for the user on read; a row stores it only
//!   when it came from elsewhere (older stores).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};

use rusqlite::{params, OptionalExtension, Statement, Transaction};
use sha2::{Digest, Sha256};

use super::*;
use crate::evaluate::Finding;

/// What is known of an audit before its findings are judged.
#[derive(Clone, Debug)]
pub struct RunHead<'a> {
    pub tenant: &'a str,
    pub started_at: DateTime<Utc>,
    /// Only a complete audit moves findings.
    pub complete: bool,
    pub graph_requests: u64,
}

/// A stable digest of what a reader sees of a finding (not its key, not its remediation).
fn digest(f: &Finding, excepted: bool) -> i64 {
    let mut h = Sha256::new();
    for part in [
        f.user_principal_name.as_deref().unwrap_or(""),
        f.severity.as_str(),
        &f.detail,
        if excepted { "1" } else { "0" },
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    i64::from_le_bytes(first)
}

/// A subject's 128-bit hash under two independent keys: no collision in practice.
fn subject_key(keys: &(RandomState, RandomState), subject: &str) -> u128 {
    let (a, b) = keys;
    (u128::from(a.hash_one(subject)) << 64) | u128::from(b.hash_one(subject))
}

/// Writes one complete audit's findings as they come, rule by rule.
struct Writer<'t, 'a> {
    tenant: &'a str,
    audit_id: i64,
    seen: String,
    subscribers: &'a [Subscriber],
    /// Hashes of a subject (two independent keys: 128 bits, no collision in practice).
    keys: (RandomState, RandomState),
    /// The rule whose findings are coming, and its open rows: subject hash → (rowid, digest).
    current: Option<&'static str>,
    open: HashMap<u128, (i64, i64)>,
    /// Rules whose findings have all come.
    done: BTreeSet<&'static str>,
    /// Rules with a finding written (new, changed or resolved): their counts are redone.
    changed: BTreeSet<String>,
    load: Statement<'t>,
    update: Statement<'t>,
    upsert: Statement<'t>,
    enqueue: Statement<'t>,
    row: Statement<'t>,
    resolve: Statement<'t>,
    changes: Changes,
}

impl<'t, 'a> Writer<'t, 'a> {
    fn new(
        tx: &'t Transaction<'_>,
        tenant: &'a str,
        audit_id: i64,
        seen: String,
        subscribers: &'a [Subscriber],
    ) -> Result<Writer<'t, 'a>, StateError> {
        Ok(Writer {
            tenant,
            audit_id,
            seen,
            subscribers,
            keys: Default::default(),
            current: None,
            open: HashMap::new(),
            done: BTreeSet::new(),
            changed: BTreeSet::new(),
            load: tx.prepare(
                "SELECT rowid, subject, digest FROM findings
                 WHERE tenant = ?1 AND rule = ?2 AND resolved_at IS NULL",
            )?,
            update: tx.prepare(
                "UPDATE findings SET user_principal_name = ?1, severity = ?2, detail = ?3,
                    remediation = '', excepted = ?4, digest = ?5, last_audit = ?6 WHERE rowid = ?7",
            )?,
            // A finding new or back after being resolved: first seen now.
            upsert: tx.prepare(
                "INSERT INTO findings (tenant, rule, subject, user_principal_name, severity, detail, remediation, excepted, first_seen, last_seen, resolved_at, last_audit, digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7, ?8, ?8, NULL, ?9, ?10)
                 ON CONFLICT (tenant, rule, subject) DO UPDATE SET
                    user_principal_name = excluded.user_principal_name, severity = excluded.severity,
                    detail = excluded.detail, remediation = '', excepted = excluded.excepted,
                    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
                    resolved_at = NULL, last_audit = excluded.last_audit, digest = excluded.digest",
            )?,
            enqueue: tx.prepare(
                "INSERT INTO outbox (webhook, tenant, audit_id, kind, rule, subject, user_principal_name, severity, detail, remediation, first_seen, resolved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?,
            row: tx.prepare(
                "SELECT rule, subject, user_principal_name, severity, detail, remediation, excepted, first_seen
                 FROM findings WHERE rowid = ?1",
            )?,
            // Last seen: when the rule was judged before this audit (it saw the finding then).
            resolve: tx.prepare(
                "UPDATE findings SET resolved_at = ?1, last_seen = COALESCE(
                    (SELECT judged_at FROM rule_judged WHERE tenant = findings.tenant AND rule = findings.rule),
                    last_seen)
                 WHERE rowid = ?2",
            )?,
            changes: Changes {
                audit_id,
                ..Changes::default()
            },
        })
    }

    fn take(&mut self, f: &Finding, excepted: bool) -> Result<(), StateError> {
        if self.current != Some(f.rule) {
            self.close_rule()?;
            self.open_rule(f.rule)?;
        }
        let digest = digest(f, excepted);
        match self.open.remove(&subject_key(&self.keys, &f.subject)) {
            Some((_, stored)) if stored == digest => {}
            Some((rowid, _)) => {
                self.update.execute(params![
                    f.user_principal_name,
                    f.severity.as_str(),
                    f.detail,
                    excepted,
                    digest,
                    self.audit_id,
                    rowid
                ])?;
                self.changes.written += 1;
                self.changed.insert(f.rule.to_string());
            }
            None => {
                self.upsert.execute(params![
                    self.tenant,
                    f.rule,
                    f.subject,
                    f.user_principal_name,
                    f.severity.as_str(),
                    f.detail,
                    excepted,
                    self.seen,
                    self.audit_id,
                    digest
                ])?;
                self.changes.written += 1;
                self.changes.new += 1;
                self.changed.insert(f.rule.to_string());
                if !excepted {
                    for s in self.subscribers {
                        if f.severity >= s.min_severity {
                            self.enqueue.execute(params![
                                s.webhook,
                                self.tenant,
                                self.audit_id,
                                EventKind::New.as_str(),
                                f.rule,
                                f.subject,
                                f.user_principal_name,
                                f.severity.as_str(),
                                f.detail,
                                f.remediation,
                                self.seen,
                                Option::<String>::None,
                            ])?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn open_rule(&mut self, rule: &'static str) -> Result<(), StateError> {
        if self.done.contains(rule) {
            return Err(StateError::Invariant(format!(
                "the findings of rule {rule} came in two runs; an audit's findings must come grouped by rule"
            )));
        }
        let mut open = HashMap::new();
        let mut rows = self.load.query(params![self.tenant, rule])?;
        while let Some(r) = rows.next()? {
            let subject: String = r.get(1)?;
            open.insert(subject_key(&self.keys, &subject), (r.get(0)?, r.get(2)?));
        }
        drop(rows);
        self.open = open;
        self.current = Some(rule);
        Ok(())
    }

    /// Resolves what the current rule no longer finds.
    fn close_rule(&mut self) -> Result<(), StateError> {
        let Some(rule) = self.current.take() else {
            return Ok(());
        };
        let gone: Vec<i64> = std::mem::take(&mut self.open)
            .into_values()
            .map(|(rowid, _)| rowid)
            .collect();
        for rowid in gone {
            self.resolve_row(rowid)?;
        }
        self.done.insert(rule);
        Ok(())
    }

    fn resolve_row(&mut self, rowid: i64) -> Result<(), StateError> {
        let row = self
            .row
            .query_row([rowid], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .optional()?;
        let Some((rule, subject, upn, severity, detail, remediation, excepted, first_seen)) = row
        else {
            return Ok(());
        };
        let level = severity.parse::<Severity>().unwrap_or(Severity::Critical);
        if !excepted {
            let remediation = remediation_or_catalogue(&rule, upn.as_deref(), remediation);
            for s in self.subscribers.iter().filter(|s| level >= s.min_severity) {
                self.enqueue.execute(params![
                    s.webhook,
                    self.tenant,
                    self.audit_id,
                    EventKind::Resolved.as_str(),
                    rule,
                    subject,
                    upn,
                    severity,
                    detail,
                    remediation,
                    first_seen,
                    self.seen,
                ])?;
            }
        }
        self.resolve.execute(params![self.seen, rowid])?;
        self.changed.insert(rule);
        self.changes.resolved += 1;
        self.changes.written += 1;
        Ok(())
    }

    /// After the last finding: resolves the open findings of every rule that found nothing this
    /// time (a skipped rule did not look: its findings stay as they were), and notes when each
    /// rule was judged.
    fn finish(mut self, tx: &Transaction<'_>, skipped: &[String]) -> Result<Changes, StateError> {
        self.close_rule()?;
        let visited: Vec<&str> = self.done.iter().copied().collect();
        let visited_json = serde_json::to_string(&visited).unwrap_or_else(|_| "[]".into());
        let skipped_json = serde_json::to_string(skipped).unwrap_or_else(|_| "[]".into());
        let (silent_rules, silent_rows) = {
            let mut q = tx.prepare(
                "SELECT rowid, rule FROM findings WHERE tenant = ?1 AND resolved_at IS NULL
                 AND rule NOT IN (SELECT value FROM json_each(?2))
                 AND rule NOT IN (SELECT value FROM json_each(?3))",
            )?;
            let mut rules = BTreeSet::new();
            let mut rows = Vec::new();
            let mut it = q.query(params![self.tenant, visited_json, skipped_json])?;
            while let Some(r) = it.next()? {
                rows.push(r.get::<_, i64>(0)?);
                rules.insert(r.get::<_, String>(1)?);
            }
            (rules, rows)
        };
        for rowid in silent_rows {
            self.resolve_row(rowid)?;
        }
        let mut judged = tx.prepare(
            "INSERT INTO rule_judged (tenant, rule, audit_id, judged_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant, rule) DO UPDATE SET audit_id = excluded.audit_id, judged_at = excluded.judged_at",
        )?;
        for rule in visited
            .iter()
            .copied()
            .chain(silent_rules.iter().map(String::as_str))
        {
            judged.execute(params![self.tenant, rule, self.audit_id, self.seen])?;
        }
        let changed: Vec<&str> = self.changed.iter().map(String::as_str).collect();
        super::query::refresh_rule_counts_tx(tx, self.tenant, &changed)?;
        self.changes.kept = tx.query_row(
            "SELECT COUNT(*) FROM findings WHERE tenant = ?1 AND resolved_at IS NULL
             AND rule IN (SELECT value FROM json_each(?2))",
            params![self.tenant, skipped_json],
            |r| r.get::<_, i64>(0),
        )? as usize;
        Ok(self.changes)
    }
}

/// When the findings table is empty (the store's first complete audit): drops its secondary
/// indexes and returns the statements that build them again. Schema changes are transactional
/// in SQLite: a rolled-back audit keeps its indexes. Only an empty table: a rebuild sorts every
/// tenant's rows, so the first audit of the 50th tenant of a store would pay for the 49 before
/// it (measured: a round of 50 tenants spent most of its time rebuilding indexes).
fn first_audit_indexes(tx: &Transaction<'_>) -> Result<Vec<String>, StateError> {
    let any: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM findings)", [], |r| r.get(0))?;
    if any {
        return Ok(Vec::new());
    }
    let indexes: Vec<(String, String)> = {
        let mut q = tx.prepare(
            "SELECT name, sql FROM sqlite_master
             WHERE type = 'index' AND tbl_name = 'findings' AND sql IS NOT NULL",
        )?;
        let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (name, _) in &indexes {
        tx.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(indexes.into_iter().map(|(_, sql)| sql).collect())
}

/// Where an audit's findings go as they are judged: each with whether an exception accepts it.
pub type FindingSink<'a> = &'a mut dyn FnMut(&Finding, bool);

/// Judges an audit into the sink it is given and returns the report (or an error: roll back).
pub type Judge<'a> = &'a mut dyn FnMut(FindingSink<'_>) -> Result<Report, StateError>;

/// Who else writes in the audit's transaction (the users' posture), given the audit's id.
pub type AlsoInTransaction<'a> = &'a mut dyn FnMut(&Transaction<'_>, i64) -> Result<(), StateError>;

impl Store {
    /// Records one audit. A complete one updates findings and returns what changed; an
    /// incomplete one is recorded as a run only.
    pub fn record(&self, report: &Report, graph_requests: u64) -> Result<Changes, StateError> {
        self.record_with(report, graph_requests, &[])
    }

    /// [`Store::record`], queueing in the same transaction one outbox event per subscriber for
    /// each new and each resolved finding at or above its severity (excepted findings are
    /// accepted risks: they queue nothing). For a report that holds its findings (the CLI,
    /// tests); the daemon streams them with [`Store::record_audit`].
    pub fn record_with(
        &self,
        report: &Report,
        graph_requests: u64,
        subscribers: &[Subscriber],
    ) -> Result<Changes, StateError> {
        let head = RunHead {
            tenant: &report.tenant,
            started_at: report.started_at,
            complete: report.complete,
            graph_requests,
        };
        // Grouped by rule, as the rules give them (rules in the order they first appear).
        let mut all: Vec<(&Finding, bool)> = report
            .findings
            .iter()
            .map(|f| (f, false))
            .chain(report.excepted.iter().map(|e| (&e.finding, true)))
            .collect();
        let mut order: Vec<&str> = Vec::new();
        for (f, _) in &all {
            if !order.contains(&f.rule) {
                order.push(f.rule);
            }
        }
        all.sort_by_key(|(f, _)| order.iter().position(|r| *r == f.rule));
        let (_, changes) = self.record_audit(
            &head,
            subscribers,
            &mut |sink| {
                for (f, excepted) in &all {
                    sink(f, *excepted);
                }
                Ok(report.counts_only())
            },
            &mut |_, _| Ok(()),
        )?;
        Ok(changes)
    }

    /// Records one audit whose findings `judge` hands to the sink it is given (with whether an
    /// exception accepts each), grouped by rule, as they are judged; `judge` returns the audit's report (counts, skipped rules). All in
    /// one transaction, with `also` writing beside it (complete audits only): either the whole
    /// audit is recorded or none of it.
    pub fn record_audit(
        &self,
        head: &RunHead<'_>,
        subscribers: &[Subscriber],
        judge: Judge<'_>,
        also: AlsoInTransaction<'_>,
    ) -> Result<(Report, Changes), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO audits (tenant, started_at, finished_at, result, reason, users_in_scope, findings, excepted, graph_requests, skipped)
             VALUES (?1, ?2, ?2, 'incomplete', NULL, 0, 0, 0, ?3, '[]')",
            params![head.tenant, ts(head.started_at), head.graph_requests as i64],
        )?;
        let audit_id = tx.last_insert_rowid();
        let seen = ts(head.started_at);
        // A tenant's first audit inserts every finding: building the secondary indexes once
        // at the end (a sort) is several times faster than updating them row by row.
        let rebuild = if head.complete {
            first_audit_indexes(&tx)?
        } else {
            Vec::new()
        };
        let mut writer = if head.complete {
            Some(Writer::new(&tx, head.tenant, audit_id, seen, subscribers)?)
        } else {
            None
        };
        let mut failed: Option<StateError> = None;
        let report = judge(&mut |f, excepted| {
            if let (Some(w), None) = (writer.as_mut(), &failed) {
                if let Err(e) = w.take(f, excepted) {
                    failed = Some(e);
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let report = report?;
        let skipped: Vec<SkippedRule> = report
            .skipped
            .iter()
            .map(|s| SkippedRule {
                rule: s.rule.to_string(),
                reason: s.reason.clone(),
            })
            .collect();
        let skipped_rules: Vec<String> = skipped.iter().map(|s| s.rule.clone()).collect();
        let complete = head.complete;
        let changes = match writer.take() {
            Some(w) => w.finish(&tx, &skipped_rules)?,
            None => Changes {
                audit_id,
                ..Changes::default()
            },
        };
        drop(writer);
        for sql in &rebuild {
            tx.execute_batch(sql)?;
        }
        if complete {
            also(&tx, audit_id)?;
        }
        tx.execute(
            "UPDATE audits SET finished_at = ?1, result = ?2, reason = ?3, users_in_scope = ?4,
                findings = ?5, excepted = ?6, skipped = ?7, kept_open = ?8 WHERE id = ?9",
            params![
                ts(report.finished_at),
                if complete { "complete" } else { "incomplete" },
                (!complete).then(|| report.incomplete_reasons.join("; ")),
                report.users_in_scope as i64,
                report.open_count() as i64,
                report.summary.excepted as i64,
                serde_json::to_string(&skipped).unwrap_or_else(|_| "[]".into()),
                changes.kept as i64,
                audit_id
            ],
        )?;
        tx.commit()?;
        Ok((report, changes))
    }
}
