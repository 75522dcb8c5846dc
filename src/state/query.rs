//! Reading what the store holds: findings, audit runs, the published posture.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::*;

impl Store {
    /// Findings of `tenant`: open ones only, or all.
    pub fn findings(
        &self,
        tenant: &str,
        include_resolved: bool,
    ) -> Result<Vec<StoredFinding>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM findings WHERE tenant = ?1 AND (?2 OR resolved_at IS NULL) ORDER BY rule, subject"
        ))?;
        let rows = q.query_map(params![tenant, include_resolved], stored_finding)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What Alertmanager is sent: open user findings, not excepted, at `min` or above, the
    /// most severe and then the oldest first, at most `max`; and how many there are in all.
    pub fn alertable(
        &self,
        tenant: &str,
        min: Severity,
        max: usize,
    ) -> Result<(Vec<StoredFinding>, usize), StateError> {
        let conn = self.reader()?;
        let filter = format!(
            "WHERE tenant = ?1 AND resolved_at IS NULL AND excepted = 0
             AND subject <> 'tenant' AND subject NOT LIKE 'tenant:%'
             AND {SEVERITY_RANK} >= ?2"
        );
        let rank = min as i64;
        let mut q = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM findings INDEXED BY findings_open_by_rule {filter}
             ORDER BY {SEVERITY_RANK} DESC, first_seen, rule, subject LIMIT ?3"
        ))?;
        let rows: Vec<StoredFinding> = q
            .query_map(params![tenant, rank, max as i64], stored_finding)?
            .collect::<Result<_, _>>()?;
        // Counted only when the cap was reached.
        let total = if rows.len() < max {
            rows.len()
        } else {
            conn.query_row(
                &format!("SELECT COUNT(*) FROM findings INDEXED BY findings_open_by_rule {filter}"),
                params![tenant, rank],
                |r| r.get::<_, i64>(0),
            )? as usize
        };
        Ok((rows, total))
    }

    /// When the oldest open finding (not excepted) of each rule was first seen.
    pub fn oldest_open_by_rule(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, DateTime<Utc>>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare_cached(
            "SELECT rule, MIN(first_seen) FROM findings INDEXED BY findings_open_rule
             WHERE tenant = ?1 AND resolved_at IS NULL AND excepted = 0 GROUP BY rule",
        )?;
        let rows = q.query_map([tenant], |r| Ok((r.get(0)?, parse_ts(r.get(1)?)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One page of the findings of `tenant` that `filter` selects, in (rule, subject) order,
    /// after `cursor` (from the start without one). Each filter is a range of an index: the
    /// cost of a page does not grow with its depth. `total` comes from the counts kept per
    /// audit (counted directly with a `user` filter: a user has few findings).
    pub fn findings_page(
        &self,
        tenant: &str,
        filter: &FindingFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StateError> {
        self.page(tenant, filter, cursor, 0, limit)
    }

    /// [`Store::findings_page`] by position: skips `offset` findings first. SQLite still steps
    /// over every skipped one, so deep offsets are slow; prefer a cursor.
    pub fn findings_page_at(
        &self,
        tenant: &str,
        filter: &FindingFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StateError> {
        self.page(tenant, filter, None, offset, limit)
    }

    fn page(
        &self,
        tenant: &str,
        filter: &FindingFilter,
        cursor: Option<&Cursor>,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StateError> {
        let limit = limit.max(1);
        let mut conn = self.reader()?;
        // One read transaction: the page and its total come from the same committed audit.
        let tx = conn.transaction()?;
        let mut items = match page_query(tenant, filter, cursor, offset, limit + 1) {
            None => vec![],
            Some((sql, args)) => {
                let mut q = tx.prepare_cached(&sql)?;
                let rows = q.query_map(bind(&args).as_slice(), stored_finding)?;
                rows.collect::<Result<Vec<_>, _>>()?
            }
        };
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|f| {
                Cursor {
                    rule: f.rule.clone(),
                    subject: f.subject.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        let total = {
            let (sql, args) = total_query(tenant, filter);
            let mut q = tx.prepare_cached(&sql)?;
            q.query_row(bind(&args).as_slice(), |r| r.get::<_, i64>(0))?
        };
        tx.finish()?;
        Ok(Page {
            items,
            next_cursor,
            total: total.max(0) as u64,
        })
    }

    /// Every finding, open and resolved, of one user: by user principal name (case-insensitive)
    /// or object id. One indexed query.
    pub fn user_findings(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Vec<StoredFinding>, StateError> {
        let filter = FindingFilter {
            state: StateFilter::All,
            user: Some(user.to_string()),
            ..FindingFilter::default()
        };
        let (sql, args) = select(COLUMNS, tenant, &filter, &[], vec![]);
        let conn = self.reader()?;
        let mut q = conn.prepare_cached(&format!("{sql} ORDER BY rule, subject"))?;
        let rows = q.query_map(bind(&args).as_slice(), stored_finding)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The open and resolved counts of `tenant`'s findings by (rule, severity, excepted), as
    /// the last recorded audit left them.
    pub fn finding_counts(&self, tenant: &str) -> Result<Vec<FindingCount>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare_cached(
            "SELECT rule, severity, excepted, open, resolved FROM finding_counts WHERE tenant = ?1
             ORDER BY rule, severity, excepted",
        )?;
        let rows = q.query_map([tenant], |r| {
            Ok(FindingCount {
                rule: r.get(0)?,
                severity: r.get(1)?,
                excepted: r.get(2)?,
                open: r.get(3)?,
                resolved: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recounts `tenant`'s findings into the kept counts (see [`refresh_counts_tx`]).
    pub fn refresh_counts(&self, tenant: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        refresh_counts_tx(&tx, tenant)?;
        tx.commit()?;
        Ok(())
    }

    /// The most recent audit runs, newest first.
    pub fn audits(&self, tenant: &str, limit: usize) -> Result<Vec<AuditRun>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare_cached(
            "SELECT id, tenant, started_at, finished_at, result, reason, users_in_scope, findings, excepted, graph_requests, skipped, kept_open
             FROM audits WHERE tenant = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = q.query_map(params![tenant, limit as i64], audit_run)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest complete audit run of `tenant`, if any.
    pub fn last_complete(&self, tenant: &str) -> Result<Option<AuditRun>, StateError> {
        let conn = self.reader()?;
        Ok(conn
            .query_row(
                "SELECT id, tenant, started_at, finished_at, result, reason, users_in_scope, findings, excepted, graph_requests, skipped, kept_open
                 FROM audits WHERE tenant = ?1 AND result = 'complete' ORDER BY id DESC LIMIT 1",
                [tenant],
                audit_run,
            )
            .optional()?)
    }

    /// Keeps the posture published from the complete audit `audit_id` (one per tenant).
    pub fn save_posture(
        &self,
        tenant: &str,
        audit_id: i64,
        finished_at: DateTime<Utc>,
        record: &str,
    ) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO posture (tenant, audit_id, finished_at, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO UPDATE SET audit_id = excluded.audit_id,
                finished_at = excluded.finished_at, record = excluded.record",
            params![tenant, audit_id, ts(finished_at), record],
        )?;
        Ok(())
    }

    /// The posture last published for `tenant`, if any.
    pub fn posture(&self, tenant: &str) -> Result<Option<StoredPosture>, StateError> {
        let conn = self.reader()?;
        Ok(conn
            .query_row(
                "SELECT audit_id, finished_at, record FROM posture WHERE tenant = ?1",
                [tenant],
                |r| {
                    Ok(StoredPosture {
                        audit_id: r.get(0)?,
                        finished_at: parse_ts(r.get(1)?)?,
                        record: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }
}

fn audit_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRun> {
    Ok(AuditRun {
        id: r.get(0)?,
        tenant: r.get(1)?,
        started_at: parse_ts(r.get(2)?)?,
        finished_at: parse_ts(r.get(3)?)?,
        complete: r.get::<_, String>(4)? == "complete",
        reason: r.get(5)?,
        users_in_scope: r.get(6)?,
        findings: r.get(7)?,
        excepted: r.get(8)?,
        graph_requests: r.get(9)?,
        skipped: serde_json::from_str(&r.get::<_, String>(10)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e))
        })?,
        kept_open: r.get(11)?,
    })
}

/// Recounts `tenant`'s open and resolved findings by (rule, severity, excepted) into
/// `finding_counts`, inside the transaction that recorded an audit (or pruned findings): the
/// findings API reads its totals there instead of counting on every request.
pub(crate) fn refresh_counts_tx(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
) -> Result<(), StateError> {
    tx.execute("DELETE FROM finding_counts WHERE tenant = ?1", [tenant])?;
    tx.execute(
        "INSERT INTO finding_counts (tenant, rule, severity, excepted, open, resolved)
         SELECT tenant, rule, severity, excepted, SUM(resolved_at IS NULL), SUM(resolved_at IS NOT NULL)
         FROM findings WHERE tenant = ?1 GROUP BY rule, severity, excepted",
        [tenant],
    )?;
    Ok(())
}

/// [`refresh_counts_tx`] for some rules only: those whose findings an audit changed. An audit
/// that changed little recounts little.
pub(crate) fn refresh_rule_counts_tx(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    rules: &[&str],
) -> Result<(), StateError> {
    let mut delete =
        tx.prepare_cached("DELETE FROM finding_counts WHERE tenant = ?1 AND rule = ?2")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO finding_counts (tenant, rule, severity, excepted, open, resolved)
         SELECT tenant, rule, severity, excepted, SUM(resolved_at IS NULL), SUM(resolved_at IS NOT NULL)
         FROM findings WHERE tenant = ?1 AND rule = ?2 GROUP BY severity, excepted",
    )?;
    for rule in rules {
        delete.execute(params![tenant, rule])?;
        insert.execute(params![tenant, rule])?;
    }
    Ok(())
}

const COLUMNS: &str = "tenant, rule, subject, user_principal_name, severity, detail, remediation, excepted, first_seen,
    CASE WHEN resolved_at IS NULL THEN COALESCE(
        (SELECT judged_at FROM rule_judged j WHERE j.tenant = findings.tenant AND j.rule = findings.rule),
        last_seen) ELSE last_seen END,
    resolved_at";

/// A severity's rank (`Severity as i64`), in SQL.
const SEVERITY_RANK: &str = "(CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3
    WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END)";

/// A row of [`COLUMNS`]; the remediation is the catalogue's when the row stores none.
fn stored_finding(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredFinding> {
    let rule: String = r.get(1)?;
    let upn: Option<String> = r.get(3)?;
    let remediation = remediation_or_catalogue(&rule, upn.as_deref(), r.get(6)?);
    Ok(StoredFinding {
        tenant: r.get(0)?,
        rule,
        subject: r.get(2)?,
        user_principal_name: upn,
        severity: r.get(4)?,
        detail: r.get(5)?,
        remediation,
        excepted: r.get(7)?,
        first_seen: parse_ts(r.get(8)?)?,
        last_seen: parse_ts(r.get(9)?)?,
        resolved_at: r.get::<_, Option<String>>(10)?.map(parse_ts).transpose()?,
    })
}

/// The index that holds `filter`'s findings (without a user) in (rule, subject) order: the page
/// is a range of it. Named in the query, as the planner (without statistics) would rather walk
/// the primary key for its order and filter.
fn index_for(filter: &FindingFilter) -> &'static str {
    match (filter.state, filter.severity.is_some()) {
        (StateFilter::Open, false) => "findings_open_by_rule",
        (StateFilter::Open, true) => "findings_open_by_severity",
        (StateFilter::Resolved, false) => "findings_resolved_by_rule",
        (StateFilter::Resolved, true) => "findings_resolved_by_severity",
        (StateFilter::All, false) => "sqlite_autoindex_findings_1",
        (StateFilter::All, true) => "findings_by_severity",
    }
}

type Args = Vec<(&'static str, rusqlite::types::Value)>;

/// Named arguments as rusqlite binds them.
fn bind(args: &Args) -> Vec<(&str, &dyn rusqlite::ToSql)> {
    args.iter()
        .map(|(k, v)| (*k, v as &dyn rusqlite::ToSql))
        .collect()
}

/// The terms every findings query and every count shares: the tenant, and the rule and
/// severity when the filter names them.
fn tenant_rule_severity(tenant: &str, filter: &FindingFilter) -> (Vec<&'static str>, Args) {
    use rusqlite::types::Value;
    let mut terms = vec!["tenant = :tenant"];
    let mut args = vec![(":tenant", Value::Text(tenant.into()))];
    if let Some(rule) = &filter.rule {
        terms.push("rule = :rule");
        args.push((":rule", Value::Text(rule.clone())));
    }
    if let Some(severity) = filter.severity {
        terms.push("severity = :severity");
        args.push((":severity", Value::Text(severity.as_str().into())));
    }
    (terms, args)
}

/// The WHERE terms of `filter` but its user, and their named arguments. The state is written
/// into the SQL, not bound, so the partial index it implies can be used.
fn filter_terms(tenant: &str, filter: &FindingFilter) -> (Vec<&'static str>, Args) {
    let (mut terms, args) = tenant_rule_severity(tenant, filter);
    match filter.state {
        StateFilter::Open => terms.push("resolved_at IS NULL"),
        StateFilter::Resolved => terms.push("resolved_at IS NOT NULL"),
        StateFilter::All => {}
    }
    (terms, args)
}

/// `SELECT <what> FROM findings WHERE <filter and extra terms>`: one indexed range, or with a
/// user the union of their findings by UPN (case-insensitive) and by object id (a primary-key
/// lookup under each rule the kept counts know: no index on the subject alone to write).
fn select(
    what: &str,
    tenant: &str,
    filter: &FindingFilter,
    extra: &[&'static str],
    mut args: Args,
) -> (String, Args) {
    use rusqlite::types::Value;
    let (mut terms, filter_args) = filter_terms(tenant, filter);
    terms.extend_from_slice(extra);
    args.extend(filter_args);
    let terms = terms.join(" AND ");
    let Some(user) = &filter.user else {
        let index = index_for(filter);
        return (
            format!("SELECT {what} FROM findings INDEXED BY {index} WHERE {terms}"),
            args,
        );
    };
    args.push((":user", Value::Text(user.clone())));
    args.push((":user_id", Value::Text(user.to_ascii_lowercase())));
    (
        format!(
            "SELECT {what} FROM findings INDEXED BY findings_by_upn
                WHERE user_principal_name = :user COLLATE NOCASE AND {terms}
             UNION
             SELECT {what} FROM findings INDEXED BY sqlite_autoindex_findings_1
                WHERE rule IN (SELECT rule FROM finding_counts WHERE tenant = :tenant)
                AND subject = :user_id AND {terms}"
        ),
        args,
    )
}

/// The query of one page, or `None` when the cursor is past every finding the filter selects
/// (a cursor of another rule than the filter's).
fn page_query(
    tenant: &str,
    filter: &FindingFilter,
    cursor: Option<&Cursor>,
    offset: usize,
    limit: usize,
) -> Option<(String, Args)> {
    use rusqlite::types::Value;
    let mut extra = vec![];
    let mut args = vec![
        (
            ":limit",
            Value::Integer(limit.min(i64::MAX as usize) as i64),
        ),
        (
            ":offset",
            Value::Integer(offset.min(i64::MAX as usize) as i64),
        ),
    ];
    if let Some(c) = cursor {
        match &filter.rule {
            // With the rule fixed, the range is on the subject alone (a row value after an
            // equality on its first column would not bound the index range).
            Some(rule) if *rule == c.rule => {
                extra.push("subject > :after_subject");
                args.push((":after_subject", Value::Text(c.subject.clone())));
            }
            Some(rule) if *rule < c.rule => return None,
            Some(_) => {}
            None => {
                extra.push("(rule, subject) > (:after_rule, :after_subject)");
                args.push((":after_rule", Value::Text(c.rule.clone())));
                args.push((":after_subject", Value::Text(c.subject.clone())));
            }
        }
    }
    let (sql, args) = select(COLUMNS, tenant, filter, &extra, args);
    Some((
        format!("{sql} ORDER BY rule, subject LIMIT :limit OFFSET :offset"),
        args,
    ))
}

fn total_query(tenant: &str, filter: &FindingFilter) -> (String, Args) {
    if filter.user.is_some() {
        let (sql, args) = select(COLUMNS, tenant, filter, &[], vec![]);
        return (format!("SELECT COUNT(*) FROM ({sql})"), args);
    }
    let what = match filter.state {
        StateFilter::Open => "open",
        StateFilter::Resolved => "resolved",
        StateFilter::All => "open + resolved",
    };
    let (terms, args) = tenant_rule_severity(tenant, filter);
    (
        format!(
            "SELECT COALESCE(SUM({what}), 0) FROM finding_counts WHERE {}",
            terms.join(" AND ")
        ),
        args,
    )
}

#[cfg(test)]
fn explain(store: &Store, sql: &str, args: &Args) -> Result<Vec<String>, StateError> {
    let conn = store.reader()?;
    let mut q = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = q.query_map(bind(args).as_slice(), |r| r.get::<_, String>(3))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The plan of a page's query and of its total's.
#[cfg(test)]
pub(super) fn explain_page(
    store: &Store,
    tenant: &str,
    filter: &FindingFilter,
    cursor: Option<&Cursor>,
) -> Result<(Vec<String>, Vec<String>), StateError> {
    let (sql, args) = page_query(tenant, filter, cursor, 0, 100).unwrap_or_default();
    let (total_sql, total_args) = total_query(tenant, filter);
    Ok((
        explain(store, &sql, &args)?,
        explain(store, &total_sql, &total_args)?,
    ))
}
