//! mfa-auditor: audits a Microsoft Entra ID tenant's MFA posture so nobody is locked out.
//!
//! The pipeline (DESIGN §1): `config` → `collect` (the only code that knows Graph) → `snapshot`
//! → evaluate → report → publish. See ARCHITECTURE.md.

pub mod alerting;
pub mod audit;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod evaluate;
pub mod graph;
pub mod http;
pub mod metrics;
pub mod report;
pub mod secret;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod watch;
pub mod web;
pub mod web_config;
pub mod whatif;
