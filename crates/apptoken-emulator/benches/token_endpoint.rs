//! Throughput of the emulator's token endpoint:
//! `cargo bench -p apptoken-emulator --bench token_endpoint`.
//!
//! Starts the emulator in-process (`Config::embedded`, `127.0.0.1:0`) and
//! drives `POST /{tenant}/oauth2/v2.0/token` over loopback HTTP/1.1 from
//! `BENCH_CONNECTIONS` (default 64) keep-alive connections, each sending its
//! next request as soon as the previous answer is read, for `BENCH_SECONDS`
//! (default 10) per mode:
//!
//! - `secret`: client secret in the form body (client_secret_post);
//! - `certificate`: a client assertion (PS256, `x5t#S256`) signed once per
//!   connection with the embedded app's key and reused (the emulator accepts
//!   a reused `jti`), so the server verifies one RSA signature and signs one
//!   token per request.
//!
//! Before the modes it measures this machine's RSA-2048 signing capacity:
//! `openssl speed -multi 2 -seconds 3 rsa2048` (when `openssl` is on PATH)
//! and aws-lc-rs `RSA_PKCS1_SHA256` signing on 2 threads for 3 s; each mode's
//! tokens/s is printed as a share of both. Every answer must be a 200, else
//! the benchmark fails. The load generator runs in the same process and on
//! the same tokio runtime as the server: both share the machine's cores.
//! Every phase also prints the cores it actually obtained (CPU time / wall
//! time, from `/proc/self/stat`) and its rate per CPU-second: on a shared
//! machine, capacity and throughput are measured at different moments, and
//! the per-CPU-second share is the one other processes' load does not skew.
//!
//! Latencies go into a fixed-size log-linear histogram (buckets < 0.8 % wide,
//! the maximum exact) rather than a growing vector, so the resident memory
//! printed at the start and end of each mode is the server's, not the
//! benchmark's. With `BENCH_SECONDS` > 60 (e.g. 600, the "memory flat over
//! 10 minutes" check) it also prints the RSS and the rate every 60 s.
//!
//! Over 500 lines: one benchmark harness (load generator, histogram, RSS
//! reader, the `openssl speed` comparison) whose parts serve only it; a
//! library of its own would be a public API for one caller.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apptoken_emulator::{Config, Emulator, EmulatorInfo};
use aws_lc_rs::signature::{self, RsaEncoding};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `/proc/self/statm` counts pages; 4 KiB on the x86-64 machines this runs on.
const PAGE_SIZE: u64 = 4096;
/// Threads and seconds of the RSA capacity measurements (the command).
const RSA_THREADS: usize = 2;
const RSA_SECONDS: u64 = 3;
/// Interval of the progress lines in long runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; nothing to parse.
    let connections = env_number("BENCH_CONNECTIONS", 64).max(1) as usize;
    let seconds = env_number("BENCH_SECONDS", 10).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("token endpoint benchmark: {connections} connections, {seconds} s per mode");
    println!(
        "machine: {cores} cores, load average {} (/proc/loadavg at start)",
        load_average()
    );
    println!(
        "note: the load generator runs in this process on the same tokio runtime \
         ({cores} worker threads) as the emulator; client and server share the {cores} cores"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(connections, seconds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nBENCHMARK FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(connections: usize, seconds: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let config = Config::embedded(dir.path()).map_err(|e| format!("embedded config: {e}"))?;
    let emulator = Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("start: {e}"))?;
    let info = emulator.info().clone();
    let addr = emulator.local_addr();
    let key_der = pem_body(
        info.private_key_path
            .as_deref()
            .ok_or("no private key path")?,
    )?;
    let cert_der = pem_body(
        info.certificate_path
            .as_deref()
            .ok_or("no certificate path")?,
    )?;
    let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key_der).map_err(|e| format!("key: {e}"))?;
    println!(
        "emulator: {} (state in a temporary directory)",
        info.authority_host
    );

    // RSA-2048 signing capacity, before the server is loaded.
    println!("\nRSA-2048 signing capacity ({RSA_THREADS} threads, {RSA_SECONDS} s):");
    let openssl = tokio::task::spawn_blocking(openssl_sign_rate)
        .await
        .map_err(|e| format!("openssl: {e}"))?;
    match &openssl {
        Ok((rate, line)) => println!(
            "  openssl speed -multi 2 -seconds 3 rsa2048: {:.1} sign/s, {:.2} cores obtained, {:.1} sign per CPU-second (summary line: `{line}`)",
            rate.per_sec,
            rate.cores,
            rate.per_cpu_sec()
        ),
        Err(why) => println!("  openssl: not measured ({why})"),
    }
    let openssl = openssl.map(|(rate, _)| rate);
    let key = Arc::new(key);
    let in_process = {
        let key = Arc::clone(&key);
        tokio::task::spawn_blocking(move || aws_lc_sign_rate(&key))
            .await
            .map_err(|e| format!("signing threads: {e}"))?
    };
    println!(
        "  aws-lc-rs RsaKeyPair::sign RSA_PKCS1_SHA256, in-process: {:.1} sign/s, {:.2} cores obtained, {:.1} sign per CPU-second",
        in_process.per_sec,
        in_process.cores,
        in_process.per_cpu_sec()
    );

    let secret = info
        .client_secret
        .clone()
        .ok_or("the embedded app has no secret")?;
    let target = Target::new(addr, &info);
    let secret_body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &info.client_id),
        ("client_secret", &secret),
        ("scope", &info.sample_scope),
    ]);
    let certificate_body = |i: usize| -> Result<Bytes, String> {
        let assertion = assertion(&key, &cert_der, &info, &target.url, i, seconds)?;
        Ok(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &info.client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
            ("scope", &info.sample_scope),
        ]))
    };

    let mut results = Vec::new();
    for name in ["secret", "certificate"] {
        let before = emulator.stats().token_requests_total();
        // One body per connection; a certificate body holds that connection's
        // assertion, signed here, before the clock starts.
        let bodies = (0..connections)
            .map(|i| match name {
                "secret" => Ok(secret_body.clone()),
                _ => certificate_body(i),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let result = run_mode(name, &target, bodies, seconds).await?;
        let served = emulator.stats().token_requests_total() - before;
        // The emulator's own count: warm-up requests (one per connection) + timed ones.
        let expected = result.tokens + connections as u64;
        if served != expected {
            return Err(format!(
                "{name}: the emulator counted {served} token requests, the client {expected}"
            ));
        }
        results.push(result);
    }

    println!(
        "\nsummary ({connections} connections, {seconds} s per mode, load generator on the same cores):"
    );
    for r in &results {
        println!(
            "  {:<11} {:>8.1} tokens/s  p50 {} p90 {} p99 {} max {}  ({:.2} cores obtained, {:.1} tokens per CPU-second)",
            r.name,
            r.rate.per_sec,
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            ms(r.max),
            r.rate.cores,
            r.rate.per_cpu_sec()
        );
        let openssl_share = match &openssl {
            Ok(rate) => format!(
                "{:.0} % of openssl ({:.0} % per CPU-second)",
                r.rate.share_of(rate),
                r.rate.cpu_share_of(rate)
            ),
            Err(_) => "openssl n/a".to_string(),
        };
        println!(
            "  {:<11} {openssl_share}, {:.0} % of in-process aws-lc-rs ({:.0} % per CPU-second)",
            "",
            r.rate.share_of(&in_process),
            r.rate.cpu_share_of(&in_process)
        );
    }
    if let (Ok(rate), Some(cert)) = (&openssl, results.iter().find(|r| r.name == "certificate")) {
        let share = cert.rate.share_of(rate);
        println!(
            "  target (certificate assertions >= 60 % of openssl sign/s): {share:.0} % — {}",
            if share >= 60.0 { "met" } else { "NOT met" }
        );
    }
    let busy = openssl
        .iter()
        .map(|r| r.cores)
        .chain([in_process.cores])
        .chain(results.iter().map(|r| r.rate.cores))
        .any(|c| c < 0.9 * RSA_THREADS as f64);
    if busy {
        println!(
            "  warning: a phase got less than {:.1} cores: other processes were running, or too \
             few connections to fill the cores; compare the per-CPU-second figures, or rerun",
            0.9 * RSA_THREADS as f64
        );
    }
    emulator.shutdown().await;
    Ok(())
}

/// Where the requests go.
struct Target {
    addr: SocketAddr,
    /// `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`: the assertions' `aud`.
    url: String,
    /// `/{tenant}/oauth2/v2.0/token`.
    path: http::Uri,
    host: http::HeaderValue,
}

impl Target {
    fn new(addr: SocketAddr, info: &EmulatorInfo) -> Target {
        let path = format!("/{}/oauth2/v2.0/token", info.tenant_id);
        Target {
            addr,
            url: format!("{}{path}", info.authority_host),
            path: path.parse().expect("path"),
            host: http::HeaderValue::from_str(&addr.to_string()).expect("host"),
        }
    }
}

/// Operations per second, and how many cores the process (or openssl's
/// processes) actually got meanwhile: CPU time / wall time. On a shared
/// machine the second tells whether a figure was measured with the cores
/// it assumes.
#[derive(Clone, Copy)]
struct Rate {
    per_sec: f64,
    cores: f64,
}

impl Rate {
    fn new(operations: u64, wall: f64, cpu: f64) -> Rate {
        Rate {
            per_sec: operations as f64 / wall,
            cores: cpu / wall,
        }
    }

    fn per_cpu_sec(&self) -> f64 {
        self.per_sec / self.cores.max(1e-9)
    }

    /// This rate as a percentage of `capacity`.
    fn share_of(&self, capacity: &Rate) -> f64 {
        100.0 * self.per_sec / capacity.per_sec
    }

    /// The same per CPU-second: insensitive to other processes' load.
    fn cpu_share_of(&self, capacity: &Rate) -> f64 {
        100.0 * self.per_cpu_sec() / capacity.per_cpu_sec()
    }
}

struct ModeResult {
    name: &'static str,
    tokens: u64,
    rate: Rate,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

/// What every connection task shares.
struct Shared {
    stop: AtomicBool,
    done: AtomicU64,
    failures: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
    latencies: Histogram,
}

impl Shared {
    fn fail(&self, what: String) {
        if self.failures.fetch_add(1, Ordering::Relaxed) == 0 {
            *self.first_failure.lock().expect("lock") = Some(what);
        }
    }
}

async fn run_mode(
    name: &'static str,
    target: &Target,
    bodies: Vec<Bytes>,
    seconds: u64,
) -> Result<ModeResult, String> {
    println!("\nmode {name}: RSS at start {}", rss());
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        first_failure: std::sync::Mutex::new(None),
        latencies: Histogram::new(),
    });
    let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let conn = Connection {
            addr: target.addr,
            path: target.path.clone(),
            host: target.host.clone(),
            body,
        };
        tasks.spawn(conn.drive(Arc::clone(&shared), Arc::clone(&barrier)));
    }
    // Every connection is open and has had one (checked) answer.
    barrier.wait().await;
    let start = Instant::now();
    let cpu_start = cpu_seconds().0;
    let deadline = start + Duration::from_secs(seconds);
    let mut last = (start, 0u64);
    while Instant::now() < deadline && shared.failures.load(Ordering::Relaxed) == 0 {
        let next = (last.0 + PROGRESS_EVERY).min(deadline);
        tokio::time::sleep_until(next.into()).await;
        if seconds > PROGRESS_EVERY.as_secs() && next < deadline {
            let now = Instant::now();
            let done = shared.done.load(Ordering::Relaxed);
            println!(
                "  {:>5.0} s: {done} tokens, {:.1} tokens/s over the last interval, RSS {}",
                (now - start).as_secs_f64(),
                (done - last.1) as f64 / (now - last.0).as_secs_f64(),
                rss()
            );
            last = (now, done);
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().0 - cpu_start;
    println!("mode {name}: RSS at end {}", rss());

    let failures = shared.failures.load(Ordering::Relaxed);
    if failures > 0 {
        let first = shared.first_failure.lock().expect("lock").take();
        return Err(format!(
            "{name}: {failures} answers were not 200; first: {}",
            first.unwrap_or_default()
        ));
    }
    let tokens = shared.done.load(Ordering::Relaxed);
    let h = &shared.latencies;
    let result = ModeResult {
        name,
        tokens,
        rate: Rate::new(tokens, elapsed, cpu),
        p50: h.quantile(0.50),
        p90: h.quantile(0.90),
        p99: h.quantile(0.99),
        max: h.max.load(Ordering::Relaxed),
    };
    println!(
        "mode {name}: {tokens} tokens in {elapsed:.2} s = {:.1} tokens/s ({:.2} cores obtained); latency p50 {} p90 {} p99 {} max {}; non-200 answers: 0",
        result.rate.per_sec,
        result.rate.cores,
        ms(result.p50),
        ms(result.p90),
        ms(result.p99),
        ms(result.max)
    );
    Ok(result)
}

/// One keep-alive HTTP/1.1 connection sending the same request in a loop.
struct Connection {
    addr: SocketAddr,
    path: http::Uri,
    host: http::HeaderValue,
    body: Bytes,
}

impl Connection {
    async fn drive(self, shared: Arc<Shared>, barrier: Arc<tokio::sync::Barrier>) {
        let mut sender = match self.open().await {
            Ok(sender) => sender,
            Err(e) => {
                shared.fail(format!("connect: {e}"));
                barrier.wait().await;
                return;
            }
        };
        // Warm-up: one request, its answer checked in full, not timed.
        let ok = match self.request(&mut sender).await {
            Ok((200, body)) => {
                let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if parsed["token_type"] == "Bearer" && parsed["access_token"].is_string() {
                    true
                } else {
                    shared.fail(format!(
                        "200 without a token: {}",
                        String::from_utf8_lossy(&body)
                    ));
                    false
                }
            }
            Ok((status, body)) => {
                shared.fail(format!("{status}: {}", String::from_utf8_lossy(&body)));
                false
            }
            Err(e) => {
                shared.fail(e);
                false
            }
        };
        barrier.wait().await;
        if !ok {
            return;
        }
        while !shared.stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            match self.request(&mut sender).await {
                Ok((200, _)) => {
                    shared.latencies.record(sent.elapsed());
                    shared.done.fetch_add(1, Ordering::Relaxed);
                }
                Ok((status, body)) => {
                    shared.fail(format!("{status}: {}", String::from_utf8_lossy(&body)));
                }
                Err(e) => {
                    shared.fail(e);
                    return;
                }
            }
        }
    }

    async fn open(&self) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn request(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    ) -> Result<(u16, Bytes), String> {
        let request = http::Request::post(self.path.clone())
            .header(http::header::HOST, self.host.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())?;
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// A log-linear latency histogram in nanoseconds: values below 128 exact,
/// then 128 buckets per power of two (each < 0.8 % wide), up to 2^40 ns.
struct Histogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const MAX_EXP: u32 = 40;

impl Histogram {
    fn new() -> Histogram {
        let len = ((MAX_EXP - SUB_BITS + 2) as u64 * SUB) as usize;
        Histogram {
            buckets: (0..len).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }

    fn index(value: u64) -> usize {
        let value = value.min((1 << (MAX_EXP + 1)) - 1);
        if value < SUB {
            return value as usize;
        }
        let exp = 63 - value.leading_zeros();
        let mantissa = value >> (exp - SUB_BITS);
        ((u64::from(exp - SUB_BITS) + 1) * SUB + (mantissa - SUB)) as usize
    }

    /// The middle of a bucket.
    fn value_at(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let group = index / SUB;
        let low = (index % SUB + SUB) << (group - 1);
        low + (1 << (group - 1)) / 2
    }

    fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[Self::index(nanos)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(nanos, Ordering::Relaxed);
    }

    fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value_at(i).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// A client assertion for connection `i`: PS256, `x5t#S256`, valid for the
/// whole run, signed once.
fn assertion(
    key: &aws_lc_rs::rsa::KeyPair,
    cert_der: &[u8],
    info: &EmulatorInfo,
    aud: &str,
    i: usize,
    seconds: u64,
) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let thumbprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der);
    let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": b64url(thumbprint.as_ref())});
    let claims = json!({
        "aud": aud,
        "iss": info.client_id,
        "sub": info.client_id,
        "jti": format!("token-endpoint-bench-{i}"),
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 2 * seconds + 600,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = sign(key, &signature::RSA_PSS_SHA256, input.as_bytes())?;
    Ok(format!("{input}.{}", b64url(&signature)))
}

fn sign(
    key: &aws_lc_rs::rsa::KeyPair,
    encoding: &'static dyn RsaEncoding,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; key.public_modulus_len()];
    key.sign(
        encoding,
        &aws_lc_rs::rand::SystemRandom::new(),
        message,
        &mut out,
    )
    .map_err(|e| format!("sign: {e}"))?;
    Ok(out)
}

/// `RsaKeyPair::sign` with `RSA_PKCS1_SHA256` (what the emulator signs
/// tokens with) on `RSA_THREADS` threads for `RSA_SECONDS`: signatures/s.
fn aws_lc_sign_rate(key: &aws_lc_rs::rsa::KeyPair) -> Rate {
    let message = [0x5a_u8; 600]; // about a token's signing input
    let cpu_start = cpu_seconds().0;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(RSA_SECONDS);
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RSA_THREADS)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        sign(key, &signature::RSA_PKCS1_SHA256, &message).expect("sign");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signing thread"))
            .sum()
    });
    // The emulator is idle meanwhile: the process's CPU time is the signers'.
    Rate::new(
        total,
        start.elapsed().as_secs_f64(),
        cpu_seconds().0 - cpu_start,
    )
}

/// Runs `openssl speed -multi 2 -seconds 3 rsa2048` and reads the `sign/s`
/// column of its summary line (`rsa 2048 bits 0.000376s 0.000023s 2661.7 43359.3`).
/// Returns the rate (cores: openssl's CPU time over its whole run, sign and
/// verify phases, / wall time) and the line.
fn openssl_sign_rate() -> Result<(Rate, String), String> {
    let (wall_start, cpu_start) = (Instant::now(), cpu_seconds().1);
    let output = Command::new("openssl")
        .args(["speed", "-multi", "2", "-seconds", "3", "rsa2048"])
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !output.status.success() {
        return Err(format!("openssl speed failed: {}", output.status));
    }
    let cores = (cpu_seconds().1 - cpu_start) / wall_start.elapsed().as_secs_f64();
    let (rate, line) = parse_openssl_speed(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| "no `rsa 2048 bits` summary line with a sign/s column".to_string())?;
    Ok((
        Rate {
            per_sec: rate,
            cores,
        },
        line,
    ))
}

/// The header names the columns (`sign verify sign/s verify/s` in OpenSSL
/// 3.0; 3.2+ adds encrypt/decrypt columns); the summary line has the same
/// columns after `rsa 2048 bits`.
fn parse_openssl_speed(text: &str) -> Option<(f64, String)> {
    let header = text
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == "sign/s"))?;
    let column = header.split_whitespace().position(|w| w == "sign/s")?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().take(3).eq(["rsa", "2048", "bits"]))?;
    let rate = line.split_whitespace().nth(3 + column)?.parse().ok()?;
    Some((rate, line.trim().to_string()))
}

fn form(pairs: &[(&str, &str)]) -> Bytes {
    Bytes::from(
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish(),
    )
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pem_body(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD
        .decode(body)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// CPU seconds (user + system) of this process and of its waited-for
/// children (openssl and the processes it forks), from `/proc/self/stat`.
fn cpu_seconds() -> (f64, f64) {
    /// `USER_HZ`: 100 on Linux.
    const TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; utime, stime, cutime, cstime 14-17.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    (
        (field(14) + field(15)) / TICKS,
        (field(16) + field(17)) / TICKS,
    )
}

/// Resident memory from `/proc/self/statm` (second field, pages).
fn rss() -> String {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or_else(
            || "unknown".to_string(),
            |pages| format!("{:.1} MiB", (pages * PAGE_SIZE) as f64 / (1024.0 * 1024.0)),
        )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn ms(nanos: u64) -> String {
    format!("{:.2} ms", nanos as f64 / 1e6)
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}
