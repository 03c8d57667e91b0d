//! Cleaning up what a test left on the shared NATS and Redis servers: its JetStream stream
//! and its Redis keys, both named after the test's database.

use std::future::Future;
use std::time::Duration;

use deadpool_redis::redis;

/// Deletes the JetStream stream `name` (and its consumers), from `Drop`. Failures are
/// reported, not raised.
pub fn delete_stream_blocking(url: &str, name: &str) {
    let (url, stream) = (url.to_owned(), name.to_owned());
    let done = block_on_own_thread(async move {
        let client = async_nats::connect(url.as_str()).await?;
        let jetstream = async_nats::jetstream::new(client);
        match jetstream.delete_stream(&stream).await {
            Ok(_) => Ok(()),
            // A test that never started a process made no stream.
            Err(err) if err.to_string().contains("not found") => Ok(()),
            Err(err) => Err(err.into()),
        }
    });
    if let Err(err) = done {
        eprintln!("note: could not delete test stream {name}: {err:#}");
    }
}

/// Deletes every Redis key under `prefix:`, from `Drop`. Failures are reported, not raised.
pub fn delete_keys_blocking(url: &str, prefix: &str) {
    let (url, pattern) = (url.to_owned(), format!("{prefix}:*"));
    let done = block_on_own_thread(async move {
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                let () = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    });
    if let Err(err) = done {
        eprintln!("note: could not delete test keys {prefix}:*: {err:#}");
    }
}

/// Runs `work` on a new thread with a runtime of its own, within 30 s: for cleanup in `Drop`.
fn block_on_own_thread<F>(work: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), work)
                .await
                .map_err(|_| anyhow::anyhow!("cleanup took over 30 s"))?
        })
    })
    .join()
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the cleanup thread panicked")))
}
