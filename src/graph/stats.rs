//! Request counters by endpoint and status, kept for the metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default, Debug, Clone)]
pub struct EndpointTiming {
    pub count: u64,
    pub total: Duration,
}

#[derive(Default, Debug)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    throttled: BTreeMap<&'static str, u64>,
    timings: BTreeMap<&'static str, EndpointTiming>,
    throttle_limit_ratio: Option<f64>,
}

/// Counters of one client. Status 0 counts requests that got no HTTP answer (transport, timeout).
#[derive(Debug)]
pub struct GraphStats {
    inner: Mutex<Inner>,
    /// Request durations by endpoint, as the Prometheus histogram the metrics publish.
    durations: prometheus::HistogramVec,
}

impl Default for GraphStats {
    fn default() -> Self {
        GraphStats::for_tenant("")
    }
}

impl GraphStats {
    /// Counters whose histogram carries `tenant` as a constant label.
    pub fn for_tenant(tenant: &str) -> GraphStats {
        let opts = prometheus::HistogramOpts::new(
            "mfa_auditor_graph_request_duration_seconds",
            "Duration of Graph requests, by endpoint.",
        )
        .const_label("tenant", tenant)
        .buckets(vec![0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let durations = prometheus::HistogramVec::new(opts, &["endpoint"])
            .unwrap_or_else(|e| unreachable!("fixed histogram options: {e}"));
        GraphStats {
            inner: Mutex::default(),
            durations,
        }
    }

    /// The request-duration histogram (shared: register a clone to publish it).
    pub fn durations(&self) -> &prometheus::HistogramVec {
        &self.durations
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn record(&self, endpoint: &'static str, status: u16) {
        let mut s = self.lock();
        *s.requests.entry((endpoint, status)).or_default() += 1;
        if status == 429 {
            *s.throttled.entry(endpoint).or_default() += 1;
        }
    }
    pub fn record_duration(&self, endpoint: &'static str, took: Duration) {
        self.durations
            .with_label_values(&[endpoint])
            .observe(took.as_secs_f64());
        let mut s = self.lock();
        let t = s.timings.entry(endpoint).or_default();
        t.count += 1;
        t.total += took;
    }
    /// `x-ms-throttle-limit-percentage` as last seen (Graph sends it above 0.8 of a limit).
    pub fn record_throttle_limit(&self, ratio: f64) {
        self.lock().throttle_limit_ratio = Some(ratio);
    }
    /// (endpoint, status) → requests.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.lock().requests.clone()
    }
    pub fn throttled(&self) -> BTreeMap<&'static str, u64> {
        self.lock().throttled.clone()
    }
    pub fn total_throttled(&self) -> u64 {
        self.lock().throttled.values().sum()
    }
    pub fn timings(&self) -> BTreeMap<&'static str, EndpointTiming> {
        self.lock().timings.clone()
    }
    pub fn throttle_limit_ratio(&self) -> Option<f64> {
        self.lock().throttle_limit_ratio
    }
    /// Requests per endpoint, all statuses together.
    pub fn requests_by_endpoint(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((e, _), n) in self.lock().requests.iter() {
            *out.entry(*e).or_default() += n;
        }
        out
    }
}
