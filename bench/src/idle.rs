//! `duet-bench idle`: what idle WebSockets cost a server, and whether a message still reaches
//! its recipient's devices promptly while it holds them.
//!
//! Registers `--users` users, measures the server's resident memory, opens `--sockets`
//! sockets spread over those users (each authenticated, each waiting for `ready`), from
//! `--sources` loopback addresses (127.0.0.1, 127.0.0.2, …: one address has only ~28 k
//! ephemeral ports towards one server port), measures the memory again, then sends
//! `--sends` messages at `--rate` from one user to another and times each arrival on every
//! socket of the recipient. Raise the file-descriptor limit of both processes first
//! (`ulimit -n`): every socket is one on each side.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::client::{BenchUser, Client};
use crate::server;
use crate::socket::{events_request, events_url, receive, until_ready};

/// Sockets being opened at once.
const OPENING: usize = 256;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `duet-bench idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Base URL of the server under test (an IPv4 loopback address).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// WebSockets to open and hold.
    #[arg(long, default_value_t = 10_000)]
    pub sockets: u32,
    /// Users the sockets belong to (each has sockets/users devices).
    #[arg(long, default_value_t = 1_000)]
    pub users: u32,
    /// Loopback source addresses to spread the sockets over (127.0.0.1 up to 127.0.0.N).
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
    /// Messages sent while the sockets are held.
    #[arg(long, default_value_t = 500)]
    pub sends: u32,
    /// Messages per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// The server's process id, for its memory (from /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// The part of one socket that the sender's clock and the receivers share.
type Sent = Arc<Mutex<std::collections::HashMap<String, Instant>>>;

/// Runs `duet-bench idle` and prints what it found.
///
/// # Errors
/// Bad flags, a server that refuses registrations or sockets, or one that is not local when
/// `--server-pid` is given.
pub async fn run(args: &IdleArgs) -> anyhow::Result<()> {
    ensure!(args.users >= 2, "--users must be at least 2");
    ensure!(
        args.sockets >= args.users,
        "--sockets must be at least --users"
    );
    ensure!(args.sources >= 1, "--sources must be at least 1");
    ensure!(args.rate > 0.0, "--rate must be positive");
    let base = reqwest::Url::parse(&args.url).context("--url")?;
    let client = Client::new(base.clone(), Duration::from_secs(30), 64)?;
    let run = crate::setup::new_run_id(&mut rand::rng());

    let users: Vec<BenchUser> = futures::stream::iter(0..args.users)
        .map(|i| {
            let client = &client;
            let handle = format!("i{run}_{i}");
            async move { client.register(&handle, "correct horse battery").await }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("registering the users")?;
    let (sender, recipient) = (&users[0], &users[1]);
    let conversation = client.open(sender, recipient).await?;
    let before = memory(args.server_pid)?;

    let url = events_url(&base)?;
    let server = server_address(&base)?;
    let stop = CancellationToken::new();
    let sent: Sent = Arc::default();
    let arrivals: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let started = Instant::now();
    let opened: Vec<tokio::task::JoinHandle<()>> = futures::stream::iter(0..args.sockets)
        .map(|i| {
            let user = &users[(i % args.users) as usize];
            let source = Ipv4Addr::new(127, 0, 0, 1 + (i % u32::from(args.sources)) as u8);
            let watch = (user.id == recipient.id).then(|| (sent.clone(), arrivals.clone()));
            hold(&url, server, source, user, watch, stop.clone())
        })
        .buffer_unordered(OPENING)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let opening = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = memory(args.server_pid)?;

    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut failed = 0;
    for i in 0..args.sends {
        let id = format!("idle-{run}-{i}");
        let at = Instant::now();
        sent.lock().expect("not poisoned").insert(id.clone(), at);
        if client
            .send(&sender.token, &conversation, &id, "are you there?")
            .await
            .is_err()
        {
            failed += 1;
        }
        tokio::time::sleep_until((at + period).into()).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    for socket in opened {
        let _ = socket.await;
    }

    let devices = args.sockets.div_ceil(args.users);
    let mut arrivals = arrivals.lock().expect("not poisoned").clone();
    arrivals.sort_unstable();
    println!(
        "duet-bench idle: {} sockets of {} users from {} source addresses, opened in {:.1} s",
        args.sockets,
        args.users,
        args.sources,
        opening.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (before, after) {
        let per_socket = after.saturating_sub(before) as f64 / f64::from(args.sockets);
        println!(
            "server RSS            {:.1} MiB before the sockets, {:.1} MiB holding them: {per_socket:.2} KiB per socket",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }
    println!(
        "deliveries            {} of {} expected ({} sends × about {devices} devices), {failed} sends failed",
        arrivals.len(),
        u64::from(args.sends - failed) * u64::from(devices),
        args.sends
    );
    if !arrivals.is_empty() {
        println!(
            "send → each device    p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            millis(percentile(&arrivals, 0.50)),
            millis(percentile(&arrivals, 0.99)),
            millis(arrivals[arrivals.len() - 1])
        );
    }
    Ok(())
}

/// The server's resident memory in KiB, when its pid is known.
fn memory(pid: Option<u32>) -> anyhow::Result<Option<u64>> {
    pid.map(|pid| server::sample(pid).map(|sample| sample.rss_kib))
        .transpose()
}

fn server_address(base: &reqwest::Url) -> anyhow::Result<SocketAddr> {
    let host = base.host_str().context("--url has no host")?;
    let ip: IpAddr = host
        .parse()
        .with_context(|| format!("--url must name an IPv4 address, not {host}"))?;
    let port = base.port_or_known_default().context("--url has no port")?;
    if !ip.is_loopback() {
        bail!("idle sockets are opened from loopback addresses: --url must be one");
    }
    Ok(SocketAddr::new(ip, port))
}

/// Opens one socket as `user` from `source`, waits for `ready`, and holds it (answering pings)
/// until `stop`; with `watch`, times every message that arrives against when it was sent.
async fn hold(
    url: &reqwest::Url,
    server: SocketAddr,
    source: Ipv4Addr,
    user: &BenchUser,
    watch: Option<(Sent, Arc<Mutex<Vec<Duration>>>)>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let request = events_request(url, user)?;
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let stream = tokio::time::timeout(READY_TIMEOUT, async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        let tcp = socket.connect(server).await?;
        let (mut stream, _) =
            tokio_tungstenite::client_async_with_config(request, tcp, Some(config)).await?;
        until_ready(&mut stream).await?;
        anyhow::Ok(stream)
    })
    .await
    .context("no `ready` frame in time")?
    .with_context(|| format!("a WebSocket from {source} for {}", user.handle))?;
    Ok(tokio::spawn(receive(
        stream,
        user.id.clone(),
        stop,
        move |id, at| {
            let Some((sent, arrivals)) = &watch else {
                return;
            };
            let sent_at = sent.lock().expect("not poisoned").get(&id).copied();
            if let Some(sent_at) = sent_at {
                arrivals
                    .lock()
                    .expect("not poisoned")
                    .push(at.duration_since(sent_at));
            }
        },
    )))
}

/// The value below which `share` of the sorted `values` lie.
fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let rank = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_durations() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 0.99), Duration::from_millis(1));
    }

    #[test]
    fn only_loopback_ipv4_servers_are_accepted() {
        let url = |s: &str| reqwest::Url::parse(s).expect("a URL");
        assert_eq!(
            server_address(&url("http://127.0.0.1:8080")).expect("ok"),
            "127.0.0.1:8080".parse().expect("an address")
        );
        assert!(server_address(&url("http://localhost:8080")).is_err());
        assert!(server_address(&url("http://10.0.0.1:8080")).is_err());
    }
}
