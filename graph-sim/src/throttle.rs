//! Graph's throttle buckets (REFERENCE §3.6), at the documented numbers times a time scale:
//! directory resource units, the reports service (5 requests / 10 s per tenant), Conditional
//! Access (1 request / s per tenant, no Retry-After), and per-user authentication methods.

use std::time::{Duration, Instant};

/// The buckets Graph meters a request against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Directory,
    Reports,
    ConditionalAccess,
    AuthMethods,
}

pub struct Bucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// `per_window` units every `window` seconds, `scale` times faster.
    pub fn new(per_window: f64, window: f64, scale: f64) -> Bucket {
        Bucket {
            capacity: per_window,
            rate: per_window / window * scale,
            tokens: per_window,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.capacity);
        self.last = now;
    }

    /// Spends `cost`, or says how long until it could be spent.
    pub fn take(&mut self, cost: f64) -> Result<(), Duration> {
        self.refill();
        let cost = cost.min(self.capacity);
        if self.tokens + 1e-9 >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - self.tokens) / self.rate))
        }
    }

    /// How full the window is: 1.0 = at the limit (`x-ms-throttle-limit-percentage`).
    pub fn used_ratio(&mut self) -> f64 {
        self.refill();
        1.0 - self.tokens / self.capacity
    }
}

pub struct Buckets {
    pub directory: Bucket,
    pub reports: Bucket,
    pub conditional_access: Bucket,
    pub auth_methods: Bucket,
}

impl Buckets {
    pub fn new(directory_ru_per_10s: f64, auth_methods_per_10s: f64, scale: f64) -> Buckets {
        Buckets {
            directory: Bucket::new(directory_ru_per_10s, 10.0, scale),
            reports: Bucket::new(5.0, 10.0, scale),
            conditional_access: Bucket::new(1.0, 1.0, scale),
            auth_methods: Bucket::new(auth_methods_per_10s, 10.0, scale),
        }
    }
    pub fn get(&mut self, class: Class) -> &mut Bucket {
        match class {
            Class::Directory => &mut self.directory,
            Class::Reports => &mut self.reports,
            Class::ConditionalAccess => &mut self.conditional_access,
            Class::AuthMethods => &mut self.auth_methods,
        }
    }
}

/// Resource units of a directory GET (REFERENCE §3.6).
pub fn resource_units(path: &str, query: &[(String, String)]) -> f64 {
    let mut cost: i32 = if path.contains("/transitiveMembers") {
        5
    } else if path.ends_with("/users") {
        2
    } else {
        1
    };
    for (k, v) in query {
        match k.as_str() {
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

    #[test]
    fn reports_bucket_refuses_the_sixth_request_with_the_wait() {
        let mut b = Bucket::new(5.0, 10.0, 1.0);
        for _ in 0..5 {
            assert!(b.take(1.0).is_ok());
        }
        let wait = b.take(1.0).expect_err("throttled");
        assert!(
            wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
    }

    #[test]
    fn time_scale_shortens_the_wait() {
        let mut b = Bucket::new(5.0, 10.0, 100.0);
        for _ in 0..5 {
            assert!(b.take(1.0).is_ok());
        }
        let wait = b.take(1.0).expect_err("throttled");
        assert!(wait <= Duration::from_millis(20), "{wait:?}");
    }
}
