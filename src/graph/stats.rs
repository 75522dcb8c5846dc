//! Request counters by endpoint and status, kept for the metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default, Debug)]
pub struct GraphStats {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl GraphStats {
    pub fn record(&self, endpoint: &'static str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((endpoint, status)).or_default() += 1;
    }
    /// A copy of the counters: (endpoint, status) → requests.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
