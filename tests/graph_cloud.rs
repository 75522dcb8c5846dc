//! mfa-auditor's Graph client against a graph-sim cloud: one multi-tenant app (one client id and
//! secret) collecting two tenants served from one host at the same time, each client reaching
//! its own tenant only (the token endpoint by path tenant, Graph by the token's `tid`).

use std::collections::BTreeSet;
use std::time::Duration;

use graph_sim::{Profile, SimConfig, SimTenant, TenantSource};
use mfa_auditor::collect::{collect_with_report, CollectOptions};
use mfa_auditor::graph::{ClientConfig, Credential, GraphClient};
use mfa_auditor::secret::Secret;

const SCALE: f64 = 200.0;

fn client(base: &str, tenant: &SimTenant) -> GraphClient {
    let base = url::Url::parse(base).expect("base url");
    let mut config = ClientConfig::new(base.clone(), base, tenant.tenant_id(), tenant.client_id());
    config.pacing = config.pacing.scaled(SCALE);
    config.backoff_base = Duration::from_millis(20);
    config.backoff_cap = Duration::from_millis(500);
    GraphClient::new(
        config,
        Credential::Secret(Secret::new(tenant.client_secret())),
    )
    .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_app_collects_two_tenants_of_one_host_side_by_side() {
    let template = SimConfig {
        tenant: TenantSource::Generated {
            users: 1500,
            seed: 21,
            profile: Profile::Realistic,
        },
        time_scale: SCALE,
        ..SimConfig::default()
    };
    let mut configs = graph_sim::cloud_configs(&template, 2);
    // Tenant B is smaller, so a mix-up shows in the counts too.
    configs[1].tenant = TenantSource::Generated {
        users: 700,
        seed: 22,
        profile: Profile::Realistic,
    };
    let cloud = graph_sim::start_cloud(configs, ([127, 0, 0, 1], 0).into())
        .await
        .expect("cloud");
    let (a, b) = (cloud.tenant(0), cloud.tenant(1));
    assert_eq!(
        (a.client_id(), a.client_secret()),
        (b.client_id(), b.client_secret())
    );
    let (client_a, client_b) = (client(&cloud.base_url(), a), client(&cloud.base_url(), b));
    let now = chrono::Utc::now();
    let options = CollectOptions::default();
    let (report_a, report_b) = tokio::join!(
        collect_with_report(&client_a, &options, now, a.tenant_id()),
        collect_with_report(&client_b, &options, now, b.tenant_id()),
    );
    for (report, tenant, users) in [(&report_a, a, 1500), (&report_b, b, 700)] {
        let snap = &report.snapshot;
        assert!(snap.is_complete(), "{:?}", snap.coverage.gaps);
        let read: BTreeSet<String> = snap.users.iter().map(|u| u.upn.to_string()).collect();
        let truth: BTreeSet<String> = tenant
            .ground_truth()
            .users
            .iter()
            .map(|u| u.upn.clone())
            .collect();
        assert_eq!(read.len(), users);
        assert_eq!(read, truth, "tenant {}", tenant.tenant_id());
        let stats = tenant.stats();
        assert_eq!(stats.tokens_issued, 1, "one token per tenant");
        assert_eq!(stats.throttled(), 0);
    }
    assert_eq!(cloud.unrouted(), 0);
}
