//! L2 hit latency: `acquire_token` on fresh clients (empty in-memory cache)
//! while Redis holds the token. Starts its own `redis-server` (unix socket
//! in a temporary directory) and an in-process emulator.
//!
//! `cargo run --release -p apptoken-redis --example l2_bench [iterations]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use apptoken::{Authority, ClientSecret, ConfidentialClient, Credential, StoreKey};
use apptoken_emulator::{Config, Emulator};
use apptoken_redis::RedisStore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("redis.sock");
    let mut redis = std::process::Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&socket)
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server ({e}): run scripts/test.sh"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let emulator = Emulator::start(
        Config::embedded(&dir.path().join("emu"))?,
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let info = emulator.info();
    let store = RedisStore::new(&format!("redis+unix://{}", socket.display()))?;
    let key = StoreKey::from_bytes(b"0123456789abcdef0123456789abcdef")?;
    let client = || {
        ConfidentialClient::builder()
            .authority(Authority::from_host(&info.authority_host, &info.tenant_id)?)
            .client_id(&info.client_id)
            .credential(Credential::secret(ClientSecret::new(
                info.client_secret.clone().unwrap_or_default(),
            )))
            .shared_store(Arc::new(store.clone()), key.clone())
            .build()
    };
    let scope = info.sample_scope.clone();
    client()?.acquire_token(&[&scope]).await?; // Redis now holds the token
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let c = client()?;
        let t = Instant::now();
        c.acquire_token(&[&scope]).await?;
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "L2 hit (fresh client, token in Redis over a unix socket), {n} iterations: median {:?}, p90 {:?}, p99 {:?}; token requests: {}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        emulator.stats().token_requests_for(&info.client_id)
    );
    let _ = redis.kill();
    let _ = redis.wait();
    Ok(())
}
