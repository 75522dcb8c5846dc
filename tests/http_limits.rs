//! The daemon's HTTP listener under slow and abusive clients (the real binary against graph-sim):
//! half-sent requests are closed after the header timeout; with more connections held than the
//! cap, `/healthz` still answers; SIGTERM returns within seconds while connections are held,
//! over plain HTTP and over TLS; running out of file descriptors backs off instead of spinning;
//! an unknown user and a wrong password are both refused.
//!
//! Bounds are generous (a loaded 2-core machine): a 2 s header timeout must close within 10 s.

use std::time::{Duration, Instant};

use graph_sim::Profile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::daemon::{get, value, wait_for, write_config, Daemon};

/// A daemon with `extra` lines in `[http]`, and its directory.
async fn daemon(extra: &str) -> (graph_sim::SimHandle, tempfile::TempDir, Daemon) {
    let sim = common::sim(200, 47, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    write_config(&config, &sim, &dir.path().join("state.db"), 0, extra);
    let daemon = Daemon::start(&config, sim.client_secret());
    (sim, dir, daemon)
}

fn addr(daemon: &Daemon) -> String {
    daemon
        .base
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_string()
}

/// A connection that sent the start of a request and no more.
async fn half_sent(addr: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    tcp
}

/// Whether the server closes `tcp` within `secs` (EOF or reset, having sent nothing more than
/// an error response).
async fn closed_within(tcp: &mut TcpStream, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // hyper may answer 408 before closing
        }
    }
}

/// Waits for the daemon to exit; its exit status when it did within `secs`.
fn exits_within(daemon: &mut Daemon, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_connections_are_closed_after_the_header_timeout() {
    let (_sim, _dir, daemon) = daemon("header_read_timeout_seconds = 2\n").await;
    let addr = addr(&daemon);
    let mut half = half_sent(&addr).await;
    let mut silent = TcpStream::connect(&addr).await.expect("connects");
    let mut kept = TcpStream::connect(&addr).await.expect("connects");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut answer = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), kept.read(&mut answer))
        .await
        .expect("answered")
        .expect("reads");
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "a whole request is answered: {:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert!(closed_within(&mut half, 10).await, "a half-sent request");
    assert!(
        closed_within(&mut silent, 10).await,
        "a connection that sent nothing"
    );
    assert!(
        closed_within(&mut kept, 10).await,
        "a kept-alive connection with no next request"
    );
    assert_eq!(get(&format!("{}/healthz", daemon.base)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_more_connections_held_than_the_cap_healthz_still_answers() {
    // The header timeout is long: the held connections would stay; the cap must make room.
    let (_sim, _dir, daemon) = daemon(
        "header_read_timeout_seconds = 120\nidle_timeout_seconds = 180\nmax_connections = 8\n",
    )
    .await;
    let addr = addr(&daemon);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(half_sent(&addr).await);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for _ in 0..3 {
        let healthz = client
            .get(format!("{}/healthz", daemon.base))
            .send()
            .await
            .expect("/healthz answers with 20 half-sent requests held and a cap of 8");
        assert_eq!(healthz.status(), 200);
    }
    let metrics = client
        .get(format!("{}/metrics", daemon.base))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("body");
    let evicted = value(
        &metrics,
        "mfa_auditor_http_connections_shed_total{action=\"evicted\"",
    )
    .or_else(|| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("mfa_auditor_http_connections_shed_total")
                    && l.contains("action=\"evicted\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    })
    .expect("the shed counter is published");
    assert!(
        evicted >= 12.0,
        "20 held + 4 requests over a cap of 8 evict at least 12 idle connections: {evicted}"
    );
    let open = metrics
        .lines()
        .find(|l| l.starts_with("mfa_auditor_http_connections{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the open connections gauge");
    assert!(open <= 8.0, "never more than the cap open: {open}");
    assert!(
        daemon.log().contains("at the connection cap"),
        "the cap is logged"
    );
    // The evicted ones are closed by the daemon; the last ones are still held.
    let mut closed = 0;
    for tcp in &mut held {
        if closed_within(tcp, 1).await {
            closed += 1;
        }
    }
    assert!(closed >= 12, "the evicted connections are closed: {closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_returns_within_seconds_while_plain_connections_are_held() {
    let (_sim, _dir, mut daemon) =
        daemon("header_read_timeout_seconds = 120\nidle_timeout_seconds = 180\n").await;
    let addr = addr(&daemon);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(half_sent(&addr).await);
        held.push(TcpStream::connect(&addr).await.expect("connects"));
    }
    assert_eq!(get(&format!("{}/healthz", daemon.base)).await.0, 200);
    daemon.signal("TERM");
    let status = exits_within(&mut daemon, 10)
        .expect("the daemon exits within 10 s of SIGTERM with 20 connections held");
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    for tcp in &mut held {
        assert!(
            closed_within(tcp, 5).await,
            "every held connection is closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_returns_within_seconds_while_tls_connections_are_held() {
    // openssl (the certificate, s_client) is installed by scripts/test, as for the other TLS tests.
    let sim = common::sim(200, 48, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    common::self_signed(dir.path());
    std::fs::write(
        dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .expect("web.yml");
    let config = dir.path().join("config.toml");
    let extra = format!(
        "header_read_timeout_seconds = 120\nidle_timeout_seconds = 180\nweb_config_file = \"{}\"\n",
        dir.path().join("web.yml").display()
    );
    write_config(&config, &sim, &dir.path().join("state.db"), 0, &extra);
    let mut daemon = Daemon::start(&config, sim.client_secret());
    let addr = addr(&daemon);
    // Connections in the TLS handshake (nothing sent) ...
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(&addr).await.expect("connects"));
    }
    // ... and TLS connections that had one answer and sent half of the next request.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut child = tokio::process::Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &addr])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("openssl s_client starts");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n",
            )
            .await
            .expect("writes");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut seen = Vec::new();
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 512];
            while !String::from_utf8_lossy(&seen).contains("ok\n") {
                match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(
            answered.is_ok() && String::from_utf8_lossy(&seen).contains("200 OK"),
            "the first request over TLS is answered: {:?}",
            String::from_utf8_lossy(&seen)
        );
        clients.push((child, stdin, stdout));
    }
    daemon.signal("TERM");
    let status = exits_within(&mut daemon, 10)
        .expect("the daemon exits within 10 s of SIGTERM with TLS connections held");
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    for tcp in &mut held {
        assert!(
            closed_within(tcp, 5).await,
            "every held connection is closed"
        );
    }
    for (child, _, _) in &mut clients {
        let exited = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        assert!(exited.is_ok(), "s_client sees its connection closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_listener_backs_off_and_recovers() {
    let prlimit_works = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !prlimit_works {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is missing"
        );
        return eprintln!("skipping: prlimit is not installed");
    }
    let (_sim, _dir, daemon) = daemon(
        "header_read_timeout_seconds = 120\nidle_timeout_seconds = 180\nmax_connections = 1000\n",
    )
    .await;
    assert_eq!(get(&format!("{}/healthz", daemon.base)).await.0, 200);
    let pid = daemon.child.id().to_string();
    // Only the soft limit moves (raising a hard limit needs privileges).
    let limit = |n: usize| {
        let ok = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={n}:")])
            .status()
            .expect("prlimit runs");
        assert!(ok.success(), "prlimit --nofile={n}");
    };
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let soft: usize = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("the soft file limit");
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's fds")
        .count();
    limit(open_fds + 8);
    let addr = addr(&daemon);
    let mut held = Vec::new();
    for _ in 0..40 {
        // The kernel completes the handshake; the daemon cannot accept past its limit.
        held.push(TcpStream::connect(&addr).await.expect("connects"));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(held);
    limit(soft);
    let base = daemon.base.clone();
    wait_for("/healthz to answer again", 20, async || {
        get(&format!("{base}/healthz")).await.0 == 200
    })
    .await;
    let metrics = get(&format!("{base}/metrics")).await.1;
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("mfa_auditor_http_accept_errors_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the accept error counter");
    assert!(errors >= 1.0, "the accept errors are counted: {errors}");
    assert!(
        errors < 200.0,
        "about 3 s without descriptors is a few backed-off retries, not a spin: {errors}"
    );
    let logged = daemon
        .log()
        .matches("accepting a connection failed")
        .count();
    assert!(
        (1..=2).contains(&logged),
        "logged at most once per 10 s: {logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_and_a_wrong_password_are_both_refused() {
    let sim = common::sim(200, 49, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = bcrypt::hash("scrape-me", 4).expect("hash");
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  prometheus: {hash}\n"),
    )
    .expect("web.yml");
    let config = dir.path().join("config.toml");
    let extra = format!(
        "web_config_file = \"{}\"\n",
        dir.path().join("web.yml").display()
    );
    write_config(&config, &sim, &dir.path().join("state.db"), 0, &extra);
    let daemon = Daemon::start(&config, sim.client_secret());
    let client = reqwest::Client::new();
    let status = |user: &'static str, password: &'static str| {
        let request = client
            .get(format!("{}/healthz", daemon.base))
            .basic_auth(user, Some(password));
        async move { request.send().await.expect("answers").status().as_u16() }
    };
    assert_eq!(status("mallory", "scrape-me").await, 401, "unknown user");
    assert_eq!(status("prometheus", "nope").await, 401, "wrong password");
    assert_eq!(status("prometheus", "scrape-me").await, 200);
    assert_eq!(status("prometheus", "scrape-me").await, 200, "cached");
    assert_eq!(status("prometheus", "nope").await, 401, "still refused");
}
