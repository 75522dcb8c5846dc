//! `[[exceptions]]`: an accepted finding (rule + user) with a reason and an expiry date. A live
//! exception moves its finding to the excepted list (reported, not dropped); an expired one stops
//! suppressing and says so in the finding.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Finding;

/// One exception as written in the file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExceptionConfig {
    /// The rule id.
    pub rule: String,
    /// The user's UPN or object id; `tenant` for a tenant rule.
    pub user: String,
    /// Why the finding is accepted (shown in every report).
    pub reason: String,
    /// The last day it holds (a TOML date, e.g. 2026-12-31); required, so no exception is forever.
    pub expires: toml::value::Datetime,
}

/// A validated exception.
#[derive(Clone, Debug, PartialEq)]
pub struct Exception {
    pub rule: String,
    pub subject: String,
    pub reason: String,
    pub expires: NaiveDate,
}

/// A finding an exception accepts, with the exception's reason and expiry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Excepted {
    #[serde(flatten)]
    pub finding: Finding,
    pub exception_reason: String,
    pub exception_expires: NaiveDate,
}

impl Exception {
    fn matches(&self, f: &Finding) -> bool {
        f.rule == self.rule
            && (f.subject.eq_ignore_ascii_case(&self.subject)
                // `tenant` accepts every tenant finding of the rule (`tenant:Sms` just one).
                || (self.subject.eq_ignore_ascii_case(super::TENANT_SUBJECT)
                    && super::is_tenant_subject(&f.subject))
                || f.user_principal_name
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&self.subject)))
    }

    /// Whether it still holds at `now` (through the whole of its last day, UTC).
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        now.date_naive() <= self.expires
    }
}

/// One finding after the exceptions: still open (with a note when its exception expired), or
/// accepted by a live exception.
#[derive(Clone, Debug, PartialEq)]
pub enum Judged {
    Open(Finding),
    Excepted(Excepted),
}

/// Applies the exceptions to one finding.
pub fn judge(mut f: Finding, exceptions: &[Exception], now: DateTime<Utc>) -> Judged {
    match exceptions.iter().find(|e| e.matches(&f)) {
        Some(e) if e.live(now) => Judged::Excepted(Excepted {
            finding: f,
            exception_reason: e.reason.clone(),
            exception_expires: e.expires,
        }),
        Some(e) => {
            f.detail = format!(
                "{} (exception expired on {}: {})",
                f.detail, e.expires, e.reason
            );
            Judged::Open(f)
        }
        None => Judged::Open(f),
    }
}

/// Splits findings into (open, excepted); findings under an expired exception stay open with a note.
pub fn apply(
    findings: Vec<Finding>,
    exceptions: &[Exception],
    now: DateTime<Utc>,
) -> (Vec<Finding>, Vec<Excepted>) {
    let mut open = Vec::with_capacity(findings.len());
    let mut excepted = Vec::new();
    for f in findings {
        match judge(f, exceptions, now) {
            Judged::Open(f) => open.push(f),
            Judged::Excepted(e) => excepted.push(e),
        }
    }
    (open, excepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::Severity;

    fn finding(rule: &'static str, upn: &str) -> Finding {
        Finding {
            rule,
            severity: Severity::Medium,
            subject: "86462606-fde0-4fc4-9e0c-a20eb73e54c6".into(),
            user_id: Some("86462606-fde0-4fc4-9e0c-a20eb73e54c6".into()),
            user_principal_name: Some(upn.into()),
            detail: "d".into(),
            remediation: "r".into(),
        }
    }

    fn exception(rule: &str, subject: &str, expires: &str) -> Exception {
        Exception {
            rule: rule.into(),
            subject: subject.into(),
            reason: "accepted".into(),
            expires: expires.parse().expect("date"),
        }
    }

    #[test]
    fn a_tenant_exception_covers_every_tenant_finding_of_its_rule_a_keyed_one_only_its_own() {
        let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().expect("time");
        let tenant = |key: &str| Finding {
            rule: "weak-methods-enabled",
            severity: Severity::Medium,
            subject: format!("tenant:{key}"),
            user_id: None,
            user_principal_name: None,
            detail: "d".into(),
            remediation: "r".into(),
        };
        let all = [exception("weak-methods-enabled", "tenant", "2027-01-01")];
        let (open, excepted) = apply(vec![tenant("Sms"), tenant("Voice")], &all, now);
        assert_eq!((open.len(), excepted.len()), (0, 2));
        let one = [exception(
            "weak-methods-enabled",
            "tenant:Sms",
            "2027-01-01",
        )];
        let (open, excepted) = apply(vec![tenant("Sms"), tenant("Voice")], &one, now);
        assert_eq!(open[0].subject, "tenant:Voice");
        assert_eq!(excepted[0].finding.subject, "tenant:Sms");
    }

    #[test]
    fn live_exceptions_suppress_expired_ones_say_so() {
        let now: DateTime<Utc> = "2026-11-24T23:59:00Z".parse().expect("time");
        let findings = vec![
            finding("no-backup-method", "ann@contoso.com"),
            finding("phone-only", "ann@contoso.com"),
            finding("no-backup-method", "bob@contoso.com"),
        ];
        let exceptions = vec![
            exception("no-backup-method", "ANN@contoso.com", "2026-11-24"),
            exception(
                "phone-only",
                "86462606-fde0-4fc4-9e0c-a20eb73e54c6",
                "2026-11-23",
            ),
        ];
        let (open, excepted) = apply(findings, &exceptions, now);
        assert_eq!(excepted.len(), 1);
        assert_eq!(
            excepted[0].finding.user_principal_name.as_deref(),
            Some("ann@contoso.com")
        );
        assert_eq!(open.len(), 2);
        assert!(
            open[0].detail.contains("exception expired on 2026-11-23"),
            "{}",
            open[0].detail
        );
        assert_eq!(
            open[1].user_principal_name.as_deref(),
            Some("bob@contoso.com")
        );
    }
}
