//! The real daemon binary as a child process, and what tests that drive it share.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mfa-auditor");

/// A daemon config for `sim` (custom cloud, pacing scaled, an audit every 2 s, state at
/// `state`, HTTP on `port` of 127.0.0.1, 0 for any) with `extra` TOML appended.
pub fn write_config(path: &Path, sim: &graph_sim::SimHandle, state: &Path, port: u16, extra: &str) {
    let s = super::SCALE;
    let text = format!(
        "[tenant]\ntenant_id = \"{t}\"\nclient_id = \"{c}\"\ncloud = \"custom\"\ngraph_url = \"{b}\"\nlogin_url = \"{b}\"\nclient_secret_env = \"SIM_SECRET\"\n\n\
         [graph]\nmax_retries = 1\n\n[graph.pacing]\ndirectory_ru_per_10s = {d}\nreports_per_10s = {r}\nconditional_access_per_second = {ca}\nauth_methods_per_10s = {d}\n\n\
         [schedule]\ncron = \"*/2 * * * * *\"\nstale_after_seconds = 4\n\n[storage]\npath = \"{p}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n",
        t = sim.tenant_id(),
        c = sim.client_id(),
        b = sim.base_url(),
        d = 8000.0 * s,
        r = 5.0 * s,
        ca = s,
        p = state.display(),
        port = port,
        extra = extra,
    );
    std::fs::write(path, text).expect("config");
}

/// The real binary running `run`, killed on drop; `base` is its HTTP base URL.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    pub fn start(config: &Path, secret: &str) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["--log-level", "info", "run", "--config"])
            .arg(config)
            .env("SIM_SECRET", secret)
            .env_remove("NOTIFY_SOCKET")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("daemon starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&(line + "\n"));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the daemon logs its address");
        Daemon {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `url`: (status, body); status 0 when nothing answered.
pub async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `check` every 200 ms until it holds; panics naming `what` after `secs`.
pub async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The value of one exposition line that starts with `series`.
pub fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

/// A free loopback port (bound and released; the race is acceptable in a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `tool --version` runs. Under CI=true a missing tool fails the test: scripts/test
/// installs them all.
pub fn installed(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing: scripts/test installs Debian's prometheus and prometheus-alertmanager"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    ok
}

/// Debian's Prometheus on a free loopback port with `config` (YAML) and its data in `dir`:
/// the process and its base URL.
pub fn prometheus(dir: &Path, config: &str) -> (Proc, String) {
    let port = free_port();
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("prometheus config");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// The value of one instant query, as a vector of (labels, value).
pub async fn query(prom: &str, q: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
    let url = url::Url::parse_with_params(&format!("{prom}/api/v1/query"), [("query", q)])
        .map_err(|e| e.to_string())?;
    let (status, body) = get(url.as_str()).await;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status != 200 || v["status"] != "success" {
        return Err(format!("HTTP {status}: {body}"));
    }
    let result = &v["data"]["result"];
    let samples = match v["data"]["resultType"].as_str() {
        Some("vector") => result.as_array().cloned().unwrap_or_default(),
        Some("scalar") => vec![serde_json::json!({"metric": {}, "value": result})],
        other => return Err(format!("unexpected result type {other:?}")),
    };
    Ok(samples
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let value = r["value"][1]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect())
}

/// The shipped rules with every hold time (`for:`) cut to 1 s.
pub fn rules_with_short_holds(dir: &Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/alerts/mfa-auditor.rules.yml"
    ))
    .expect("rules");
    let short: String = shipped
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 1s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        short.matches("for: 1s").count() >= 5,
        "the hold times were found"
    );
    let path = dir.join("rules.yml");
    std::fs::write(&path, short).expect("rules");
    path
}

/// Debian's Alertmanager on a free loopback port, routing everything to a receiver that sends
/// nothing, its data in `dir`, once ready: the process, its base URL and its port.
pub async fn alertmanager(dir: &Path) -> (Proc, String, u16) {
    let port = free_port();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: quiet\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: quiet\n",
    )
    .expect("alertmanager config");
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager starts");
    let am = format!("http://127.0.0.1:{port}");
    wait_for("alertmanager", 30, async || {
        get(&format!("{am}/-/ready")).await.0 == 200
    })
    .await;
    (Proc(child), am, port)
}

/// Debian's Prometheus scraping the daemon on `daemon_port` every second, with the shipped rules
/// (hold times cut to 1 s) evaluated every second and sent to the Alertmanager on `am_port`.
pub fn prometheus_alerting(dir: &Path, am_port: u16, daemon_port: u16) -> (Proc, String) {
    prometheus(
        dir,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: mfa-auditor\n    static_configs:\n      - targets: ['127.0.0.1:{daemon_port}']\n",
            rules_with_short_holds(dir).display()
        ),
    )
}
