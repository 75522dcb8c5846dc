//! Fault injection: what a test asks the simulator to do wrong, per endpoint label (or `*`).
//!
//! CLI syntax (`--fault`, repeatable):
//! - `status:ENDPOINT:CODE[:COUNT]` — answer HTTP CODE with Graph's error body (COUNT times, else always)
//! - `throttle:ENDPOINT[:COUNT]` — a 429 with `Retry-After` (inside `$batch` too)
//! - `malformed:ENDPOINT[:COUNT]` / `truncated:ENDPOINT[:COUNT]` — a 200 whose body is not JSON / is cut in half
//! - `slow:ENDPOINT:MILLISECONDS` — delay every answer
//! - `nextlink-loop:ENDPOINT:PAGE` — the nextLink after page PAGE (1-based) points back at page 1
//! - `token-expiry:SECONDS` — tokens are issued for SECONDS only
//! - `licence:ENDPOINT` — a 403 `Authentication_RequestFromNonPremiumTenantOrB2CTenant`
//! - `licence-intermittent:ENDPOINT:COUNT` — the same 403 for the first COUNT requests only, as
//!   real Graph answers a licensed tenant when the app lacks Directory.Read.All and the tenant's
//!   licence is not cached (SupportArticles-docs `b2c-or-tenant-premium-license-sign-in-activities.md`)
//! - `revoke:PERMISSION` — an admin removed the application permission: tokens issued from now
//!   on lack it in their `roles` claim (a token issued before keeps it until it expires, as in
//!   Entra ID), so Graph answers 403 `Authorization_RequestDenied`
//!
//! The `$batch` envelope and the `token` endpoint are endpoints too, named explicitly (`*` does
//! not reach them): `status`, `throttle`, `malformed`, `truncated` and `slow` fire there (the
//! token endpoint answers in Entra ID's `AADSTS` error shape); `nextlink-loop` and `licence`
//! cannot happen there and are refused.
//! - `licence-random:ENDPOINT:PERCENT:SEED` — the same 403 for PERCENT % of requests, drawn from a
//!   seeded generator (deterministic for a given request order)

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    Status {
        endpoint: String,
        status: u16,
        count: Option<u32>,
        retry_after: Option<f64>,
    },
    Throttle {
        endpoint: String,
        count: Option<u32>,
        retry_after: Option<f64>,
    },
    Malformed {
        endpoint: String,
        count: Option<u32>,
    },
    Truncated {
        endpoint: String,
        count: Option<u32>,
    },
    Slow {
        endpoint: String,
        delay_ms: u64,
    },
    NextlinkLoop {
        endpoint: String,
        after_page: u32,
    },
    TokenExpiry {
        seconds: u64,
    },
    Licence {
        endpoint: String,
    },
    LicenceIntermittent {
        endpoint: String,
        count: Option<u32>,
    },
    Revoke {
        permission: String,
    },
    LicenceRandom {
        endpoint: String,
        percent: u8,
        seed: u64,
    },
}

/// Endpoints outside Graph's resource routes: reached only by faults that name them.
pub const ENVELOPES: [&str; 2] = ["$batch", "token"];

impl Fault {
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Fault::Status { endpoint, .. }
            | Fault::Throttle { endpoint, .. }
            | Fault::Malformed { endpoint, .. }
            | Fault::Truncated { endpoint, .. }
            | Fault::Slow { endpoint, .. }
            | Fault::NextlinkLoop { endpoint, .. }
            | Fault::Licence { endpoint }
            | Fault::LicenceIntermittent { endpoint, .. }
            | Fault::LicenceRandom { endpoint, .. } => Some(endpoint),
            Fault::TokenExpiry { .. } | Fault::Revoke { .. } => None,
        }
    }

    pub fn applies_to(&self, label: &str) -> bool {
        let envelope = ENVELOPES.iter().any(|e| e.eq_ignore_ascii_case(label));
        self.endpoint()
            .is_some_and(|e| (e == "*" && !envelope) || e.eq_ignore_ascii_case(label))
    }

    /// Refuses a fault that could never fire where it is aimed.
    pub fn check(&self) -> Result<(), String> {
        let Some(endpoint) = self.endpoint() else {
            return Ok(());
        };
        let Some(envelope) = ENVELOPES.iter().find(|e| e.eq_ignore_ascii_case(endpoint)) else {
            return Ok(());
        };
        match self {
            Fault::NextlinkLoop { .. } => Err(format!(
                "fault nextlink-loop on {envelope}: {envelope} has no pages, so it would never fire"
            )),
            Fault::Licence { .. } | Fault::LicenceIntermittent { .. } => Err(format!(
                "fault licence on {envelope}: Graph refuses an unlicensed tenant per resource, never on {envelope}; aim it at the resource (e.g. userRegistrationDetails)"
            )),
            _ => Ok(()),
        }
    }

    /// Parses the CLI syntax above.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let num = |i: usize, what: &str| -> Result<Option<u64>, String> {
            parts
                .get(i)
                .map(|s| {
                    s.parse::<u64>()
                        .map_err(|_| format!("fault {spec:?}: {what} {s:?} is not a number"))
                })
                .transpose()
        };
        let endpoint = || {
            parts
                .get(1)
                .map(|s| s.to_string())
                .ok_or_else(|| format!("fault {spec:?}: needs an endpoint"))
        };
        let count = |i| num(i, "count").map(|c| c.map(|c| c as u32));
        let fault = match parts[0] {
            "status" => Fault::Status {
                endpoint: endpoint()?,
                status: num(2, "status")?
                    .ok_or_else(|| format!("fault {spec:?}: needs a status"))?
                    as u16,
                count: count(3)?,
                retry_after: None,
            },
            "throttle" => Fault::Throttle {
                endpoint: endpoint()?,
                count: count(2)?,
                retry_after: None,
            },
            "malformed" => Fault::Malformed {
                endpoint: endpoint()?,
                count: count(2)?,
            },
            "truncated" => Fault::Truncated {
                endpoint: endpoint()?,
                count: count(2)?,
            },
            "slow" => Fault::Slow {
                endpoint: endpoint()?,
                delay_ms: num(2, "delay")?.unwrap_or(1000),
            },
            "nextlink-loop" => Fault::NextlinkLoop {
                endpoint: endpoint()?,
                after_page: count(2)?.unwrap_or(1),
            },
            "token-expiry" => Fault::TokenExpiry {
                seconds: num(1, "seconds")?.unwrap_or(5),
            },
            "licence" => Fault::Licence {
                endpoint: endpoint()?,
            },
            "licence-intermittent" => Fault::LicenceIntermittent {
                endpoint: endpoint()?,
                count: Some(count(2)?.unwrap_or(1)),
            },
            "revoke" => Fault::Revoke {
                permission: parts
                    .get(1)
                    .filter(|p| !p.is_empty())
                    .map(|s| s.to_string())
                    .ok_or_else(|| format!("fault {spec:?}: needs a permission"))?,
            },
            "licence-random" => Fault::LicenceRandom {
                endpoint: endpoint()?,
                percent: num(2, "percent")?.unwrap_or(30).min(100) as u8,
                seed: num(3, "seed")?.unwrap_or(1),
            },
            other => return Err(format!("fault {spec:?}: unknown kind {other:?}")),
        };
        fault.check().map_err(|e| format!("fault {spec:?}: {e}"))?;
        Ok(fault)
    }
}

/// A fault with how many more times it fires (and, for a random one, its generator).
pub struct Armed {
    pub fault: Fault,
    remaining: Option<u32>,
    rng: Option<rand::rngs::SmallRng>,
}

impl Armed {
    pub fn new(fault: Fault) -> Armed {
        let remaining = match &fault {
            Fault::Status { count, .. }
            | Fault::Throttle { count, .. }
            | Fault::Malformed { count, .. }
            | Fault::Truncated { count, .. }
            | Fault::LicenceIntermittent { count, .. } => *count,
            _ => None,
        };
        let rng = match &fault {
            Fault::LicenceRandom { seed, .. } => Some(
                <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(*seed),
            ),
            _ => None,
        };
        Armed {
            fault,
            remaining,
            rng,
        }
    }

    /// Whether it fires now (and spends one shot if counted).
    pub fn fire(&mut self) -> bool {
        if let (Fault::LicenceRandom { percent, .. }, Some(rng)) = (&self.fault, &mut self.rng) {
            return rand::Rng::gen_range(rng, 0u8..100) < *percent;
        }
        match &mut self.remaining {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_specs_parse() {
        assert_eq!(
            Fault::parse("status:users:503:2"),
            Ok(Fault::Status {
                endpoint: "users".into(),
                status: 503,
                count: Some(2),
                retry_after: None
            })
        );
        assert_eq!(
            Fault::parse("token-expiry:3"),
            Ok(Fault::TokenExpiry { seconds: 3 })
        );
        assert_eq!(
            Fault::parse("licence-intermittent:signIns:3"),
            Ok(Fault::LicenceIntermittent {
                endpoint: "signIns".into(),
                count: Some(3)
            })
        );
        assert!(Fault::parse("status:users").is_err());
        assert!(Fault::parse("explode:users").is_err());
        assert!(Fault::parse("status:users:abc").is_err());
        assert_eq!(
            Fault::parse("revoke:AuditLog.Read.All"),
            Ok(Fault::Revoke {
                permission: "AuditLog.Read.All".into()
            })
        );
    }

    #[test]
    fn faults_that_could_never_fire_on_batch_or_token_are_refused() {
        for spec in ["nextlink-loop:$batch:1", "licence:token", "licence:$batch"] {
            let e = Fault::parse(spec).err().unwrap_or_default();
            assert!(
                e.contains("would never fire") || e.contains("never on"),
                "{spec}: {e}"
            );
        }
        assert!(Fault::parse("status:$batch:503:1").is_ok());
        assert!(Fault::parse("throttle:token:1").is_ok());
        let all = Fault::parse("status:*:500").expect("parses");
        assert!(all.applies_to("users") && !all.applies_to("$batch") && !all.applies_to("token"));
    }

    #[test]
    fn random_licence_faults_fire_at_their_rate_and_repeat_for_a_seed() {
        let fault = Fault::parse("licence-random:signIns:25:9").expect("parses");
        assert_eq!(
            fault,
            Fault::LicenceRandom {
                endpoint: "signIns".into(),
                percent: 25,
                seed: 9
            }
        );
        let draws = |f: &Fault| -> Vec<bool> {
            let mut a = Armed::new(f.clone());
            (0..2000).map(|_| a.fire()).collect()
        };
        let first = draws(&fault);
        assert_eq!(first, draws(&fault), "deterministic for a seed");
        let fired = first.iter().filter(|f| **f).count();
        assert!((400..600).contains(&fired), "{fired} of 2000 at 25 %");
    }

    #[test]
    fn counted_faults_run_out() {
        let mut a = Armed::new(Fault::Malformed {
            endpoint: "*".into(),
            count: Some(2),
        });
        assert!(a.fire() && a.fire() && !a.fire());
        assert!(a.fault.applies_to("users"));
    }
}
