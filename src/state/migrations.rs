//! Schema migrations, applied in order; `PRAGMA user_version` records how many ran.

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE audits (
    id              INTEGER PRIMARY KEY,
    tenant          TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    result          TEXT NOT NULL CHECK (result IN ('complete', 'incomplete')),
    reason          TEXT,
    users_in_scope  INTEGER NOT NULL,
    findings        INTEGER NOT NULL,
    excepted        INTEGER NOT NULL,
    graph_requests  INTEGER NOT NULL
);
CREATE INDEX audits_tenant_time ON audits (tenant, started_at);
CREATE TABLE findings (
    tenant               TEXT NOT NULL,
    rule                 TEXT NOT NULL,
    subject              TEXT NOT NULL,
    user_principal_name  TEXT,
    severity             TEXT NOT NULL,
    detail               TEXT NOT NULL,
    remediation          TEXT NOT NULL,
    excepted             INTEGER NOT NULL DEFAULT 0,
    first_seen           TEXT NOT NULL,
    last_seen            TEXT NOT NULL,
    resolved_at          TEXT,
    last_audit           INTEGER NOT NULL REFERENCES audits (id),
    PRIMARY KEY (tenant, rule, subject)
);
CREATE INDEX findings_open ON findings (tenant, resolved_at);
"#,
    r#"
CREATE TABLE outbox (
    id                   INTEGER PRIMARY KEY,
    webhook              TEXT NOT NULL,
    tenant               TEXT NOT NULL,
    audit_id             INTEGER NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('new', 'resolved')),
    rule                 TEXT NOT NULL,
    subject              TEXT NOT NULL,
    user_principal_name  TEXT,
    severity             TEXT NOT NULL,
    detail               TEXT NOT NULL,
    remediation          TEXT NOT NULL,
    first_seen           TEXT NOT NULL,
    resolved_at          TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT
);
CREATE INDEX outbox_pending ON outbox (webhook, id);
CREATE INDEX outbox_group ON outbox (webhook, audit_id, kind, rule, severity);
"#,
    // Event ids are what receivers deduplicate on: a plain rowid is reused once the outbox
    // drains, so ids come from AUTOINCREMENT's sequence from now on. A store that recorded
    // audits before may have given out any id up to the number of events it ever queued: the
    // sequence then starts above any such id (the migration time in milliseconds, well below
    // 2^53, so JSON receivers keep every digit).
    r#"
CREATE TABLE outbox_v3 (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook              TEXT NOT NULL,
    tenant               TEXT NOT NULL,
    audit_id             INTEGER NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('new', 'resolved')),
    rule                 TEXT NOT NULL,
    subject              TEXT NOT NULL,
    user_principal_name  TEXT,
    severity             TEXT NOT NULL,
    detail               TEXT NOT NULL,
    remediation          TEXT NOT NULL,
    first_seen           TEXT NOT NULL,
    resolved_at          TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT
);
INSERT INTO outbox_v3 SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (webhook, id);
CREATE INDEX outbox_group ON outbox (webhook, audit_id, kind, rule, severity);
DELETE FROM sqlite_sequence WHERE name IN ('outbox', 'outbox_v3');
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'outbox', MAX(
        COALESCE((SELECT MAX(id) FROM outbox), 0),
        CASE WHEN EXISTS (SELECT 1 FROM audits) THEN CAST(strftime('%s', 'now') AS INTEGER) * 1000 ELSE 0 END);
"#,
    // Which rules an audit skipped and why (JSON), and the posture last published from a
    // complete audit, so a restart republishes it before Graph answers.
    r#"
ALTER TABLE audits ADD COLUMN skipped TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audits ADD COLUMN kept_open INTEGER NOT NULL DEFAULT 0;
CREATE TABLE posture (
    tenant       TEXT PRIMARY KEY,
    audit_id     INTEGER NOT NULL,
    finished_at  TEXT NOT NULL,
    record       TEXT NOT NULL
);
"#,
    // A tenant rule may find several things (weak-methods-enabled: Sms and Voice): each is its
    // own subject `tenant:<what>`, which the rules now give. Rows stored under the single
    // subject `tenant` get theirs from their detail text, so they keep their first_seen.
    r#"
UPDATE findings SET subject = 'tenant:' || substr(detail, 1, instr(detail, ' ') - 1)
    WHERE rule = 'weak-methods-enabled' AND subject = 'tenant' AND instr(detail, ' ') > 1;
UPDATE findings SET subject = 'tenant:default'
    WHERE rule = 'tap-policy-lifetime' AND subject = 'tenant' AND detail LIKE 'default TAP lifetime%';
UPDATE findings SET subject = 'tenant:maximum'
    WHERE rule = 'tap-policy-lifetime' AND subject = 'tenant' AND detail LIKE 'maximum TAP lifetime%';
UPDATE findings SET subject = 'tenant:' || lower(substr(detail, 26, instr(detail, ' does not exist') - 26))
    WHERE rule = 'break-glass-weak' AND subject = 'tenant'
      AND detail LIKE 'emergency-access account % does not exist';
"#,
    // Recording writes only what changed (issue: a million users): each row's digest of what a
    // reader sees, and when each rule was last judged (an open finding's last seen). Open rows
    // of older stores get their rule's time from their own last seen; digest 0 rewrites them once.
    r#"
ALTER TABLE findings ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
CREATE TABLE rule_judged (
    tenant     TEXT NOT NULL,
    rule       TEXT NOT NULL,
    audit_id   INTEGER NOT NULL,
    judged_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, rule)
) WITHOUT ROWID;
INSERT INTO rule_judged (tenant, rule, audit_id, judged_at)
    SELECT tenant, rule, MAX(last_audit), MAX(last_seen) FROM findings
    WHERE resolved_at IS NULL GROUP BY tenant, rule;
CREATE INDEX findings_open_rule ON findings (tenant, rule, excepted, first_seen) WHERE resolved_at IS NULL;
"#,
    // Keyset paging of the findings API: every filter (state, rule, severity, user) is a range
    // of an index in (rule, subject) order, not a scan of the tenant's findings. The open and
    // the resolved findings each get partial indexes; `findings_open (tenant, resolved_at)` is
    // replaced by the open one (same range for `resolved_at IS NULL`, one index less to write).
    // Open and resolved counts by (rule, severity, excepted) are kept per audit
    // (`refresh_counts_tx`), so a page never counts the whole tenant.
    r#"
DROP INDEX IF EXISTS findings_open;
CREATE INDEX findings_open_by_rule ON findings (tenant, rule, subject) WHERE resolved_at IS NULL;
CREATE INDEX findings_open_by_severity ON findings (tenant, severity, rule, subject) WHERE resolved_at IS NULL;
CREATE INDEX findings_resolved_by_rule ON findings (tenant, rule, subject) WHERE resolved_at IS NOT NULL;
CREATE INDEX findings_resolved_by_severity ON findings (tenant, severity, rule, subject) WHERE resolved_at IS NOT NULL;
CREATE INDEX findings_by_severity ON findings (tenant, severity, rule, subject);
CREATE INDEX findings_by_upn ON findings (tenant, user_principal_name COLLATE NOCASE);
CREATE TABLE finding_counts (
    tenant    TEXT NOT NULL,
    rule      TEXT NOT NULL,
    severity  TEXT NOT NULL,
    excepted  INTEGER NOT NULL,
    open      INTEGER NOT NULL,
    resolved  INTEGER NOT NULL,
    PRIMARY KEY (tenant, rule, severity, excepted)
);
INSERT INTO finding_counts (tenant, rule, severity, excepted, open, resolved)
    SELECT tenant, rule, severity, excepted, SUM(resolved_at IS NULL), SUM(resolved_at IS NOT NULL)
    FROM findings GROUP BY tenant, rule, severity, excepted;
"#,
    // Each user's compact posture (written only when its digest changes) and the per-user
    // drift between audits (methods or roles changed). Tenants are a small integer here: a
    // tenant id repeated in a million rows and in each index would cost ~100 MB. Ids are the
    // 16 big-endian bytes of the object id (their order is the snapshot's); bit sets are
    // `MethodSet` / `RoleSet` bits; times are Unix seconds. See `users.rs`.
    r#"
CREATE TABLE user_tenants (
    tk      INTEGER PRIMARY KEY,
    tenant  TEXT NOT NULL UNIQUE
);
CREATE TABLE users (
    tk                INTEGER NOT NULL,
    id                BLOB NOT NULL,
    upn               TEXT NOT NULL COLLATE NOCASE,
    display_name      TEXT NOT NULL COLLATE NOCASE,
    user_type         INTEGER NOT NULL,
    enabled           INTEGER NOT NULL,
    on_premises_sync  INTEGER NOT NULL,
    is_admin          INTEGER NOT NULL,
    methods           INTEGER,
    unknown_methods   INTEGER NOT NULL,
    default_method    INTEGER,
    system_preferred  INTEGER,
    mfa_capable       INTEGER,
    roles             INTEGER NOT NULL,
    eligible_roles    INTEGER NOT NULL,
    tap_lifetime      INTEGER,
    tap_start         INTEGER,
    tap_flags         INTEGER,
    tap_reason        TEXT,
    per_user_mfa      INTEGER,
    mfa_failures      INTEGER,
    digest            INTEGER NOT NULL,
    first_seen        INTEGER NOT NULL,
    changed_at        INTEGER NOT NULL,
    audit_id          INTEGER NOT NULL,
    deleted_at        INTEGER,
    PRIMARY KEY (tk, id)
) WITHOUT ROWID;
CREATE INDEX users_upn ON users (tk, upn);
CREATE INDEX users_name ON users (tk, display_name);
CREATE TABLE user_changes (
    id               INTEGER PRIMARY KEY,
    tk               INTEGER NOT NULL,
    user_id          BLOB NOT NULL,
    audit_id         INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    methods_before   INTEGER,
    methods_after    INTEGER,
    families_lost    INTEGER NOT NULL,
    families_gained  INTEGER NOT NULL,
    roles_before     INTEGER NOT NULL,
    roles_after      INTEGER NOT NULL,
    eligible_before  INTEGER NOT NULL,
    eligible_after   INTEGER NOT NULL
);
CREATE INDEX user_changes_user ON user_changes (tk, user_id, audit_id);
CREATE INDEX user_changes_audit ON user_changes (tk, audit_id);
"#,
    // The sign-in watcher (issue 12): each stream's watermark (JSON: the newest event time and
    // the ids of the overlap window), the watch runs (their negated ids group the watcher's
    // outbox messages), lockout detections (one open row per tenant, user and state) and the
    // security-info events (unique per tenant by Graph's event id). See `watch.rs`.
    r#"
CREATE TABLE watch_watermarks (
    tenant    TEXT NOT NULL,
    stream    TEXT NOT NULL CHECK (stream IN ('sign-ins', 'directory-audits')),
    record    TEXT NOT NULL,
    saved_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, stream)
);
CREATE TABLE watch_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL,
    at               TEXT NOT NULL,
    opened           INTEGER NOT NULL DEFAULT 0,
    updated          INTEGER NOT NULL DEFAULT 0,
    resolved         INTEGER NOT NULL DEFAULT 0,
    security_events  INTEGER NOT NULL DEFAULT 0,
    queued           INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE detections (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    upn          TEXT NOT NULL,
    state        TEXT NOT NULL,
    codes        TEXT NOT NULL,
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    resolved_at  TEXT,
    detail       TEXT NOT NULL
);
CREATE UNIQUE INDEX detections_one_open ON detections (tenant, user_id, state) WHERE resolved_at IS NULL;
CREATE INDEX detections_by_user ON detections (tenant, user_id);
CREATE INDEX detections_by_upn ON detections (tenant, upn COLLATE NOCASE);
CREATE TABLE security_events (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    created        TEXT NOT NULL,
    activity       TEXT NOT NULL,
    activity_name  TEXT NOT NULL,
    by_admin       INTEGER NOT NULL,
    initiated_by   TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    upn            TEXT NOT NULL,
    method         TEXT,
    detail         TEXT NOT NULL,
    notable        TEXT,
    UNIQUE (tenant, event_id)
);
CREATE INDEX security_events_by_user ON security_events (tenant, user_id, created);
CREATE INDEX security_events_by_upn ON security_events (tenant, upn COLLATE NOCASE);
"#,
    // The watcher in the daemon (issue 12): a detection's way back in (its recovery's first step:
    // title, exact command, the warning of a destructive one), read for alerts and messages; and
    // the classifier's own state, kept with the watermarks in the same transaction.
    r#"
ALTER TABLE detections ADD COLUMN remediation TEXT NOT NULL DEFAULT '';
CREATE TABLE watch_classifier (
    tenant    TEXT PRIMARY KEY,
    record    TEXT NOT NULL,
    saved_at  TEXT NOT NULL
);
"#,
    // The helpdesk's user page (issue 13) lists the admins who can help: the few users holding a
    // tracked role, in UPN order, without reading a million rows (`Store::users_with_active_roles`).
    // `roles` and `enabled` are in the index so that holders of other roles are passed over
    // without reading their rows.
    r#"
CREATE INDEX users_admins ON users (tk, upn, roles, enabled) WHERE roles != 0 AND deleted_at IS NULL;
"#,
    // Many tenants in one store (issue 14): each tenant's webhook worker reads, groups and
    // forgets only its own outbox rows, so the outbox indexes lead with the tenant and each of
    // those queries is a range.
    r#"
DROP INDEX outbox_pending;
DROP INDEX outbox_group;
CREATE INDEX outbox_pending ON outbox (tenant, webhook, id);
CREATE INDEX outbox_group ON outbox (tenant, webhook, audit_id, kind, rule, severity);
"#,
];
