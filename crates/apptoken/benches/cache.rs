//! Cache benchmarks: `cargo bench -p apptoken --bench cache`.
//!
//! - `hit`: one cache hit with 1, 1,000 and 100,000 cached tokens, from one
//!   thread and from two at once (divan's `threads`), each hit on the next
//!   key of a walk over all N (stride 7919). The tenant names sit in one
//!   string, as a caller's tenant id at hand.
//! - `hit_hot_key`: the same cache sizes, each thread hitting one key.
//! - `hit_names_from_a_list`: the same, with the names read from a
//!   `Vec<String>` of all N tenants (at 100,000 that adds the list's own
//!   memory misses to each call).
//! - `miss`: one cold acquisition (the full miss path: single-flight slot,
//!   task, in-process source, store).
//! - `coalesced_miss`: 64 callers on one cold key; time per caller.
//!
//! - `calibration_*`: this machine's floor for the same work without the
//!   cache (hashing; one read from memory outside the CPU caches).
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

/// All N tenant names in one string (each `tenant-{i:06}.example`, 21
/// bytes): a caller's tenant id at hand, without a pointer to follow.
struct Names(String);

impl Names {
    fn new(n: usize) -> Names {
        Names(tenants(n).concat())
    }

    fn get(&self, i: usize) -> &str {
        &self.0[i * 21..i * 21 + 21]
    }
}

/// One cache hit for `tenant`: the future completes on its first poll.
#[inline(always)]
fn hit_once(c: &ConfidentialClient, tenant: &str) {
    let token = c
        .acquire_token_for_tenant(&[SCOPE], divan::black_box(tenant))
        .now_or_never()
        .expect("a hit completes at once")
        .unwrap();
    divan::black_box(token);
}

/// A per-thread walk over `0..n` (a shared counter would make the threads
/// contend on it and measure that instead). Each thread starts at its own
/// place, so two threads do not walk the same keys in lockstep.
fn next_index(n: usize) -> usize {
    static STARTS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: std::cell::Cell<usize> = std::cell::Cell::new(STARTS.fetch_add(50_021, Ordering::Relaxed) as usize);
    }
    NEXT.with(|c| {
        let v = (c.get() + 7919) % n;
        c.set(v);
        v
    })
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

/// A cache hit on a different key each time, walking all N cached keys
/// (the future completes on its first poll). At 100,000 keys every hit
/// touches a token that is not in the CPU's caches.
#[divan::bench(args = [1, 1_000, 100_000], threads = [1, 2], sample_size = 2000, sample_count = 200)]
fn hit(bencher: divan::Bencher, n: usize) {
    let (c, ts, _rt) = filled(n);
    let names = Names::new(n);
    assert_eq!(names.get(n - 1), ts[n - 1]);
    bencher.bench(|| hit_once(&c, names.get(next_index(n))));
}

/// A cache hit on one key of N cached (each thread its own key): what the
/// number of cached tokens costs a hit, apart from memory misses.
#[divan::bench(args = [1, 1_000, 100_000], threads = [1, 2], sample_size = 2000, sample_count = 200)]
fn hit_hot_key(bencher: divan::Bencher, n: usize) {
    let (c, ts, _rt) = filled(n);
    bencher.bench(|| {
        thread_local! {
            static KEY: usize = next_index(usize::MAX);
        }
        hit_once(&c, &ts[KEY.with(|k| *k) % ts.len()]);
    });
}

/// The same hit with the tenant names read from a list of all N.
#[divan::bench(args = [1, 1_000, 100_000], threads = [1, 2], sample_size = 2000, sample_count = 200)]
fn hit_names_from_a_list(bencher: divan::Bencher, n: usize) {
    let (c, ts, _rt) = filled(n);
    bencher.bench(|| hit_once(&c, &ts[next_index(n)]));
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

/// Calibration: one dependent read from memory that is not in the CPU's
/// caches (a random cycle over 64 MiB), the floor for a hit on a token that
/// is not in the caches either.
#[divan::bench(threads = [1, 2], sample_size = 2000, sample_count = 200)]
fn calibration_memory_access(bencher: divan::Bencher) {
    static CYCLE: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    let cycle = CYCLE.get_or_init(|| {
        // Sattolo's algorithm: one cycle through all slots, 64 bytes apart.
        let n = (64 << 20) / 64;
        let mut order: Vec<usize> = (0..n).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in (1..n).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % i as u64) as usize);
        }
        let mut next = vec![0usize; n * 8];
        for w in 0..n {
            next[order[w] * 8] = order[(w + 1) % n] * 8;
        }
        next
    });
    // Each thread starts at its own place in the cycle.
    thread_local! {
        static AT: std::cell::Cell<usize> = std::cell::Cell::new(next_index(1 << 20) * 8);
    }
    bencher.bench(|| {
        AT.with(|at| {
            let i = cycle[at.get()];
            at.set(i);
            i
        })
    });
}
