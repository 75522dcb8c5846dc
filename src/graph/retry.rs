//! When to retry and how long to wait: `Retry-After` (decimal seconds or an HTTP date) where
//! Graph gives one, otherwise exponential backoff with full jitter.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Statuses worth another try: throttled, or the service (or a gateway) failed transiently.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Parses a `Retry-After` value: decimal seconds (`"2.128"`, `"10"`) or an HTTP date.
/// Garbage, negative or absurd values give `None` (the caller backs off instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (0.0..=3600.0)
            .contains(&secs)
            .then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}

/// Full-jitter exponential backoff for attempt `n` (0-based): uniform in [0, min(cap, base·2ⁿ)].
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let jitter: f64 = rand::thread_rng().gen_range(0.0..=1.0);
    ceiling.mul_f64(jitter).max(base / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_decimals_integers_and_dates() {
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after(" 10 "), Some(Duration::from_secs(10)));
        let later = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).expect("a date");
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        for attempt in 0..20 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap.max(base / 10));
            assert!(d <= base.saturating_mul(1 << attempt.min(16)).max(base / 10));
        }
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable(s));
        }
        for s in [400, 401, 403, 404, 424, 501] {
            assert!(!is_retryable(s));
        }
    }
}
