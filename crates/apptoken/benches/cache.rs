//! Cache benchmarks: `cargo bench -p apptoken --bench cache`.
//!
//! - `hit`: one cache hit with 1, 1,000 and 100,000 cached tokens, from one
//!   thread and from two at once (divan's `threads`), keys spread over the
//!   cached set.
//! - `miss`: one cold acquisition (the full miss path: single-flight slot,
//!   task, in-process source, store).
//! - `coalesced_miss`: 64 callers on one cold key; time per caller.
//!
//! The token source is in-process, so these measure the cache, not HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use apptoken::{
    Authority, ConfidentialClient, SourceFuture, SourceRequest, TokenRequest, TokenResponse,
    TokenSource,
};
use futures::FutureExt;

fn main() {
    divan::main();
}

#[derive(Debug, Default)]
struct Instant(AtomicU64);

impl TokenSource for Instant {
    fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> SourceFuture<'a> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            Ok(TokenResponse::new(
                format!("token-{n}"),
                Duration::from_secs(3600),
            ))
        })
    }
}

const SCOPE: &str = "api://bench-api/.default";

fn client() -> ConfidentialClient {
    ConfidentialClient::builder()
        .authority(Authority::parse("https://login.example/home.example").unwrap())
        .client_id("00000000-0000-0000-0000-0000000000b1")
        .token_source(Arc::new(Instant::default()))
        .build()
        .unwrap()
}

fn tenants(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant-{i:06}.example")).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn filled(n: usize) -> (ConfidentialClient, Vec<String>, tokio::runtime::Runtime) {
    let rt = runtime();
    let c = client();
    let ts = tenants(n);
    rt.block_on(async {
        for t in &ts {
            c.acquire_token_with(TokenRequest::new([SCOPE]).tenant(t))
                .await
                .unwrap();
        }
    });
    assert_eq!(c.cached_tokens(), n);
    (c, ts, rt)
}

/// A cache hit; the future completes on its first poll.
#[divan::bench(args = [1, 1_000, 100_000], threads = [1, 2], sample_size = 2000, sample_count = 200)]
fn hit(bencher: divan::Bencher, n: usize) {
    let (c, ts, _rt) = filled(n);
    // Each thread starts at its own place, so two threads do not walk the
    // same keys in lockstep.
    static STARTS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: std::cell::Cell<usize> = std::cell::Cell::new(STARTS.fetch_add(50_021, Ordering::Relaxed) as usize);
    }
    bencher.bench(|| {
        // A per-thread walk over the keys (a shared counter would make the
        // threads contend on it and measure that instead).
        let k = NEXT.with(|c| {
            let v = (c.get() + 7919) % ts.len();
            c.set(v);
            v
        });
        let token = c
            .acquire_token_for_tenant(&[SCOPE], &ts[k])
            .now_or_never()
            .expect("a hit completes at once")
            .unwrap();
        divan::black_box(token);
    });
}

/// A cold acquisition through the whole miss path.
#[divan::bench(sample_count = 20, sample_size = 200)]
fn miss(bencher: divan::Bencher) {
    let rt = runtime();
    let c = client();
    let i = AtomicU64::new(0);
    bencher.bench_local(|| {
        let t = format!("cold-{}.example", i.fetch_add(1, Ordering::Relaxed));
        rt.block_on(c.acquire_token_with(TokenRequest::new([SCOPE]).tenant(t)))
            .unwrap()
    });
}

/// 64 callers on one cold key share one request; the time is for all 64.
#[divan::bench(sample_count = 20, sample_size = 20)]
fn coalesced_miss_64_callers(bencher: divan::Bencher) {
    let rt = runtime();
    let c = client();
    let i = AtomicU64::new(0);
    bencher.bench_local(|| {
        let t = format!("cold-{}.example", i.fetch_add(1, Ordering::Relaxed));
        rt.block_on(async {
            let calls =
                (0..64).map(|_| c.acquire_token_with(TokenRequest::new([SCOPE]).tenant(t.clone())));
            futures::future::join_all(calls).await
        })
    });
}

/// Calibration: pure computation (hashing 80 bytes), to show how this
/// machine's cores scale when nothing is shared.
#[divan::bench(threads = [1, 2], sample_size = 2000, sample_count = 200)]
fn calibration_hash_80_bytes(bencher: divan::Bencher) {
    use std::hash::BuildHasher;
    let s = foldhash::fast::FixedState::with_seed(7);
    let data = [7u8; 80];
    bencher.bench(|| s.hash_one(divan::black_box(&data[..])));
}
