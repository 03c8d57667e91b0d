//! The sample load-balancer configuration, `deploy/nginx/duet.conf`, run as shipped in front
//! of three processes: the API and the WebSocket work through it, and requests are spread.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::support::Cluster;
use duet_tests::{TestApp, free_port};

/// nginx running `deploy/nginx/duet.conf` with the upstream servers and port replaced.
struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Nginx {
    async fn start(upstreams: &[u16]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let port = free_port();
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/duet.conf");
        let site = render(
            &std::fs::read_to_string(&sample).expect("deploy/nginx/duet.conf"),
            port,
            upstreams,
        );
        let prefix = dir.path().to_str().expect("a UTF-8 path").to_owned();
        std::fs::write(dir.path().join("duet.conf"), site).expect("writing the site");
        // The main configuration a distribution ships, minimal and rooted in the folder.
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n\
             proxy_temp_path {prefix}/proxy;\n  fastcgi_temp_path {prefix}/fastcgi;\n\
             uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
             include {prefix}/duet.conf;\n}}\n"
        );
        let main = if is_root() {
            format!("user root;\n{main}")
        } else {
            main
        };
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, main).expect("writing nginx.conf");
        let child = Command::new(nginx_binary().expect("nginx is installed"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not listen within 10 s: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The sample with `listen` moved to `port` on loopback and the example upstream servers
/// replaced by `upstreams`.
fn render(sample: &str, port: u16, upstreams: &[u16]) -> String {
    let mut out = String::new();
    let mut replaced = false;
    for line in sample.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("server 127.0.0.1:") {
            if !replaced {
                for upstream in upstreams {
                    out.push_str(&format!("    server 127.0.0.1:{upstream};\n"));
                }
                replaced = true;
            }
        } else if trimmed.starts_with("listen ") {
            out.push_str(&format!("    listen 127.0.0.1:{port};\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(replaced, "the sample lists upstream servers");
    out
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn nginx_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|path| path.is_file())
}

/// API requests (`/v1/...`) this process has answered, by its `/metrics`.
async fn requests_served(process: &TestApp) -> f64 {
    let text = process
        .client
        .get(process.url("/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("a metrics body");
    text.lines()
        .filter(|line| line.starts_with("duet_http_requests_total{") && line.contains("path=\"/v1"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_nginx_config_balances_the_api_and_upgrades_websockets() {
    if nginx_binary().is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx is not installed (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: nginx is not installed");
        return;
    }
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let ports: Vec<u16> = cluster.processes.iter().map(|p| p.port).collect();
    let nginx = Nginx::start(&ports).await;
    // A handle whose address is nginx's: every helper call goes through the balancer.
    let mut front = cluster.at(0).handle();
    front.port = nginx.port;
    front.address = format!("http://127.0.0.1:{}", nginx.port);

    let before: Vec<f64> =
        futures::future::join_all(cluster.processes.iter().map(requests_served)).await;
    let [alice, bob] = front.register_users(["alice", "bob"]).await;
    let id = front.open_conversation(&alice, &bob).await;
    let mut bob_ws = front.ws_connect(&bob, None).await;
    bob_ws.expect_type("ready").await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(front.send(&alice, &id, &format!("through nginx {i}")).await);
    }
    for message in &sent {
        let frame: Value = bob_ws.expect_type("message.created").await;
        assert_eq!(&frame["message"], message);
    }
    assert_eq!(front.all_history(&bob, &id).await.len(), sent.len());

    // least_conn spread the calls: every process answered some of them.
    let after: Vec<f64> =
        futures::future::join_all(cluster.processes.iter().map(requests_served)).await;
    for (i, (before, after)) in before.iter().zip(&after).enumerate() {
        assert!(
            after > before,
            "process {i} served nothing through nginx: {after}"
        );
    }
}
