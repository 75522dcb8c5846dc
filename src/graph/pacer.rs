//! Client-side pacing: one token bucket per throttle class, at Graph's documented rate times a
//! headroom, so a healthy audit never sees a 429 (REFERENCE §3.6).
//!
//! Reservations are made in arrival order and may take the bucket below zero; the caller then
//! sleeps until its tokens would have refilled. That is fair (first come, first served), needs no
//! polling, and wastes no budget: back-to-back requests go out exactly at the refill rate.
//! When Graph says `Retry-After` anyway, the whole class pauses until then.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::client::Pacing;
use super::ThrottleClass;

struct Bucket {
    capacity: f64,
    /// Tokens per second.
    rate: f64,
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

impl Bucket {
    /// `per_window` × `headroom` every `window_secs`; the burst is one window's amount.
    fn new(per_window: f64, window_secs: f64, headroom: f64) -> Bucket {
        let capacity = (per_window * headroom).max(1.0);
        Bucket {
            capacity,
            rate: capacity / window_secs,
            tokens: capacity,
            last: Instant::now(),
            paused_until: None,
        }
    }

    /// Takes `cost` tokens now and returns how long the caller must wait before sending.
    fn reserve(&mut self, cost: f64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
        self.tokens -= cost.min(self.capacity);
        let mut wait = if self.tokens < 0.0 {
            Duration::from_secs_f64(-self.tokens / self.rate)
        } else {
            Duration::ZERO
        };
        if let Some(until) = self.paused_until {
            wait = wait.max(until.saturating_duration_since(now));
        }
        wait
    }
}

/// The pacers of all throttle classes.
pub struct Pacer {
    buckets: [Mutex<Bucket>; 4],
}

fn index(class: ThrottleClass) -> usize {
    match class {
        ThrottleClass::Directory => 0,
        ThrottleClass::Reports => 1,
        ThrottleClass::ConditionalAccess => 2,
        ThrottleClass::AuthMethods => 3,
    }
}

impl Pacer {
    pub fn new(p: &Pacing) -> Pacer {
        let h = p.headroom.clamp(0.01, 1.0);
        let scale = if p.time_scale.is_finite() && p.time_scale > 0.0 {
            p.time_scale
        } else {
            1.0
        };
        Pacer {
            buckets: [
                Mutex::new(Bucket::new(p.directory_ru_per_10s, 10.0 / scale, h)),
                Mutex::new(Bucket::new(p.reports_per_10s, 10.0 / scale, h)),
                Mutex::new(Bucket::new(p.conditional_access_per_s, 1.0 / scale, h)),
                Mutex::new(Bucket::new(p.auth_methods_per_10s, 10.0 / scale, h)),
            ],
        }
    }

    /// Waits until `cost` units of `class` may be spent.
    pub async fn acquire(&self, class: ThrottleClass, cost: f64) {
        // Without a deadline the wait is never refused.
        let _ = self.acquire_before(class, cost, None).await;
    }

    /// Waits until `cost` units of `class` may be spent, unless that wait would end after
    /// `deadline`: then nothing is spent and the wait is returned at once as the error.
    pub async fn acquire_before(
        &self,
        class: ThrottleClass,
        cost: f64,
        deadline: Option<Instant>,
    ) -> Result<(), Duration> {
        let wait = {
            let mut b = self.buckets[index(class)]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let wait = b.reserve(cost, now);
            if deadline.is_some_and(|d| now + wait > d) {
                // Give the reservation back: this request is not sent.
                b.tokens += cost.min(b.capacity);
                return Err(wait);
            }
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// The most `class` may spend at once (its bucket's capacity): a `$batch` of more items than
    /// this is throttled item by item whatever the pacing.
    pub fn burst(&self, class: ThrottleClass) -> f64 {
        self.buckets[index(class)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .capacity
    }

    /// Graph throttled `class`: nobody of that class sends before `delay` has passed, and the
    /// bucket restarts empty.
    pub fn pause(&self, class: ThrottleClass, delay: Duration) {
        let mut b = self.buckets[index(class)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + delay;
        b.paused_until = Some(b.paused_until.map_or(until, |u| u.max(until)));
        b.tokens = b.tokens.min(0.0);
    }
}

/// Graph's resource-unit cost of a directory GET (REFERENCE §3.6): `GET users` costs 2, group
/// `members` 3, `transitiveMembers` 5, anything else 1; `$select` −1, `$expand` +1, `$top` < 20 −1; at least 1.
pub fn resource_units(url: &url::Url) -> f64 {
    let path = url.path();
    let mut cost: i32 = if path.contains("/transitiveMembers") {
        5
    } else if path.contains("/members") {
        3
    } else if path.ends_with("/users") {
        2
    } else {
        1
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "$select" => cost -= 1,
            "$expand" => cost += 1,
            "$top" if v.parse::<u32>().is_ok_and(|t| t < 20) => cost -= 1,
            _ => {}
        }
    }
    f64::from(cost.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reports_class_goes_out_at_exactly_its_rate() {
        let pacer = Pacer::new(&Pacing {
            reports_per_10s: 5.0,
            headroom: 1.0,
            ..Pacing::default()
        });
        let start = Instant::now();
        for _ in 0..25 {
            pacer.acquire(ThrottleClass::Reports, 1.0).await;
        }
        // 5 from the burst, then 20 more at 0.5/s: 40 s, not a moment more.
        let took = start.elapsed().as_secs_f64();
        assert!((39.9..=40.1).contains(&took), "took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn scaling_speeds_the_refill_but_keeps_the_burst() {
        let pacer = Pacer::new(
            &Pacing {
                reports_per_10s: 5.0,
                headroom: 1.0,
                ..Pacing::default()
            }
            .scaled(100.0),
        );
        let start = Instant::now();
        for _ in 0..5 {
            pacer.acquire(ThrottleClass::Reports, 1.0).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "the burst is still 5"
        );
        pacer.acquire(ThrottleClass::Reports, 1.0).await;
        let took = start.elapsed().as_secs_f64();
        assert!(
            (0.0199..=0.0201).contains(&took),
            "the 6th waits 2 s / 100, took {took}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_the_whole_class_back() {
        let pacer = Pacer::new(&Pacing {
            conditional_access_per_s: 1.0,
            headroom: 1.0,
            ..Pacing::default()
        });
        pacer.pause(ThrottleClass::ConditionalAccess, Duration::from_secs(7));
        let start = Instant::now();
        pacer.acquire(ThrottleClass::ConditionalAccess, 1.0).await;
        assert!(start.elapsed() >= Duration::from_secs(7));
        // Other classes are not held back.
        let start = Instant::now();
        pacer.acquire(ThrottleClass::Directory, 1.0).await;
        assert!(start.elapsed() < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_refused_at_once_and_spends_nothing() {
        let pacer = Pacer::new(&Pacing {
            reports_per_10s: 5.0,
            headroom: 1.0,
            ..Pacing::default()
        });
        // Graph said Retry-After: 3600 for the reports class.
        pacer.pause(ThrottleClass::Reports, Duration::from_secs(3600));
        let start = Instant::now();
        let deadline = Some(start + Duration::from_secs(60));
        let refused = pacer
            .acquire_before(ThrottleClass::Reports, 1.0, deadline)
            .await;
        let wait = refused.expect_err("an hour's wait passes a one-minute deadline");
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        assert_eq!(start.elapsed(), Duration::ZERO);
        // A wait that ends before the deadline is taken.
        let pacer = Pacer::new(&Pacing {
            reports_per_10s: 5.0,
            headroom: 1.0,
            ..Pacing::default()
        });
        for _ in 0..5 {
            pacer.acquire(ThrottleClass::Reports, 1.0).await;
        }
        assert!(pacer
            .acquire_before(ThrottleClass::Reports, 1.0, deadline)
            .await
            .is_ok());
        assert!(start.elapsed() >= Duration::from_secs(2));
        // Refused reservations are given back: after a refusal the next request waits no longer.
        let tight = Some(Instant::now() + Duration::from_millis(500));
        assert!(pacer
            .acquire_before(ThrottleClass::Reports, 1.0, tight)
            .await
            .is_err());
        let before = Instant::now();
        pacer.acquire(ThrottleClass::Reports, 1.0).await;
        assert!(
            before.elapsed() <= Duration::from_secs(2),
            "{:?}",
            before.elapsed()
        );
    }

    #[test]
    fn resource_units_follow_the_documented_modifiers() {
        let u = |s: &str| url::Url::parse(s).expect("url");
        assert_eq!(
            resource_units(&u("https://g/v1.0/users?$select=id&$top=999")),
            1.0
        );
        assert_eq!(resource_units(&u("https://g/v1.0/users")), 2.0);
        assert_eq!(resource_units(&u("https://g/v1.0/groups/x/transitiveMembers/microsoft.graph.user?$select=id&$top=999")), 4.0);
        assert_eq!(
            resource_units(&u(
                "https://g/v1.0/roleManagement/directory/roleAssignments?$expand=principal"
            )),
            2.0
        );
        assert_eq!(
            resource_units(&u("https://g/v1.0/policies/x?$select=a&$top=5")),
            1.0
        );
    }
}
