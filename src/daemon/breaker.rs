//! A tenant's circuit breaker: after `[daemon] failures_before_backoff` failed audits in a row
//! the tenant is backed off (its scheduled audits are skipped) for `backoff_initial_seconds`,
//! doubling with each further failure up to `backoff_max_seconds`; one complete audit closes it.
//! Pure: the time is an argument.

use chrono::{DateTime, Utc};

use crate::config::DaemonConfig;

/// What the breaker knows of one tenant.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Breaker {
    /// Failed audits since the last complete one.
    pub consecutive_failures: u32,
    /// While set and in the future, scheduled audits of the tenant are skipped.
    pub backoff_until: Option<DateTime<Utc>>,
    /// Why the last audit failed (the incomplete audit's reasons), until one completes.
    pub last_error: Option<String>,
    /// When the last audit of the tenant finished, complete or not.
    pub last_attempt: Option<DateTime<Utc>>,
}

/// How a tenant stands, for the API, the pages and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantState {
    /// No audit has finished yet.
    Pending,
    /// The last audit completed.
    Ok,
    /// The last audit failed; not (yet) backed off.
    Failing,
    /// Failed repeatedly: scheduled audits are skipped until `backoff_until`.
    BackedOff,
}

impl TenantState {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Pending => "pending",
            TenantState::Ok => "ok",
            TenantState::Failing => "failing",
            TenantState::BackedOff => "backed-off",
        }
    }
}

impl Breaker {
    /// Whether a scheduled audit at `now` is skipped.
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        self.backoff_until.is_some_and(|until| now < until)
    }

    /// Where the tenant stands at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> TenantState {
        match (self.last_attempt, self.consecutive_failures) {
            (None, _) => TenantState::Pending,
            (Some(_), 0) => TenantState::Ok,
            _ if self.holds(now) => TenantState::BackedOff,
            _ => TenantState::Failing,
        }
    }

    /// A complete audit: the breaker closes.
    pub fn succeeded(&mut self, now: DateTime<Utc>) {
        *self = Breaker {
            last_attempt: Some(now),
            ..Breaker::default()
        };
    }

    /// A failed audit (incomplete, or not recorded); returns the back-off it starts, if any.
    pub fn failed(
        &mut self,
        now: DateTime<Utc>,
        why: String,
        config: &DaemonConfig,
    ) -> Option<std::time::Duration> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(why);
        self.last_attempt = Some(now);
        let over = self
            .consecutive_failures
            .checked_sub(config.failures_before_backoff.max(1))?;
        // initial × 2^over, capped (the shift is bounded so it cannot overflow).
        let seconds = config
            .backoff_initial_seconds
            .saturating_mul(1u64 << over.min(32))
            .min(config.backoff_max_seconds);
        let backoff = std::time::Duration::from_secs(seconds);
        self.backoff_until = Some(now + chrono::Duration::seconds(seconds as i64));
        Some(backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DaemonConfig {
        DaemonConfig {
            failures_before_backoff: 2,
            backoff_initial_seconds: 60,
            backoff_max_seconds: 200,
            ..DaemonConfig::default()
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("in range")
    }

    #[test]
    fn backs_off_after_the_threshold_doubling_to_the_cap() {
        let c = config();
        let mut b = Breaker::default();
        assert_eq!(b.state(at(0)), TenantState::Pending);
        assert_eq!(b.failed(at(0), "token refused".into(), &c), None);
        assert_eq!(b.state(at(1)), TenantState::Failing);
        assert!(!b.holds(at(1)));
        assert_eq!(
            b.failed(at(10), "token refused".into(), &c)
                .map(|d| d.as_secs()),
            Some(60)
        );
        assert!(b.holds(at(69)));
        assert!(!b.holds(at(70)));
        assert_eq!(b.state(at(30)), TenantState::BackedOff);
        assert_eq!(b.state(at(70)), TenantState::Failing);
        assert_eq!(
            b.failed(at(80), "x".into(), &c).map(|d| d.as_secs()),
            Some(120)
        );
        assert_eq!(
            b.failed(at(300), "x".into(), &c).map(|d| d.as_secs()),
            Some(200)
        );
        assert_eq!(
            b.failed(at(600), "x".into(), &c).map(|d| d.as_secs()),
            Some(200)
        );
        assert_eq!(b.consecutive_failures, 5);
        assert_eq!(b.last_error.as_deref(), Some("x"));
    }

    #[test]
    fn one_complete_audit_closes_it() {
        let c = config();
        let mut b = Breaker::default();
        for i in 0..4 {
            b.failed(at(i), "x".into(), &c);
        }
        assert!(b.holds(at(5)));
        b.succeeded(at(6));
        assert_eq!(b.state(at(6)), TenantState::Ok);
        assert!(!b.holds(at(6)));
        assert_eq!(b.consecutive_failures, 0);
        assert_eq!(b.last_error, None);
        // The count starts again from nothing.
        assert_eq!(b.failed(at(7), "x".into(), &c), None);
    }

    #[test]
    fn a_huge_failure_count_does_not_overflow() {
        let c = DaemonConfig {
            failures_before_backoff: 1,
            backoff_initial_seconds: u64::MAX / 2,
            backoff_max_seconds: 3600,
            ..DaemonConfig::default()
        };
        let mut b = Breaker {
            consecutive_failures: u32::MAX - 1,
            ..Breaker::default()
        };
        assert_eq!(
            b.failed(at(0), "x".into(), &c).map(|d| d.as_secs()),
            Some(3600)
        );
        assert_eq!(
            b.failed(at(0), "x".into(), &c).map(|d| d.as_secs()),
            Some(3600)
        );
    }
}
