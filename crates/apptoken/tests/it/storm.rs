//! Single flight at scale, dropped waiters, and eviction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;

use apptoken::{
    Authority, ConfidentialClient, SourceFuture, SourceRequest, TokenResponse, TokenSource,
};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_on_a_cold_key_make_one_request() {
    let env = start().await;
    let client = env.secret_client();
    let barrier = Arc::new(tokio::sync::Barrier::new(10_000));
    let mut tasks = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let c = client.clone();
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            c.acquire_token(&[SCOPE]).await
        }));
    }
    let mut first: Option<apptoken::AccessToken> = None;
    for t in tasks {
        let token = t.await.unwrap().unwrap();
        match &first {
            None => first = Some(token),
            Some(f) => assert!(f.is_same_token(&token), "every caller gets the same token"),
        }
    }
    assert_eq!(
        env.requests(),
        1,
        "exactly one token request for 10,000 callers"
    );
}

/// A source that refuses, once the test lets it answer, and counts its calls.
#[derive(Debug)]
struct GatedRefusal {
    calls: AtomicU64,
    answers: tokio::sync::Semaphore,
}

impl TokenSource for GatedRefusal {
    fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> SourceFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answers.acquire().await.unwrap().forget();
            Err(apptoken::CredentialError::new(
                apptoken::CredentialErrorKind::Callback,
                "refused by the test",
            )
            .into())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shared_request_fails_every_waiter_and_the_next_call_tries_again() {
    let source = Arc::new(GatedRefusal {
        calls: AtomicU64::new(0),
        answers: tokio::sync::Semaphore::new(0),
    });
    let client = in_process_client(source.clone());
    // 100 callers, each polled once: a miss joins the request in flight
    // (or starts it) on its first poll, before any await. The request is
    // held until every caller has joined: no caller can come too late.
    let mut calls: Vec<_> = (0..100)
        .map(|_| Box::pin(client.acquire_token(&[SCOPE])))
        .collect();
    for c in &mut calls {
        assert!(
            c.as_mut().now_or_never().is_none(),
            "waiting on the request"
        );
    }
    source.answers.add_permits(1);
    for c in calls {
        let e = c.await.unwrap_err();
        assert!(
            matches!(&e, apptoken::Error::Credential(m) if m.message() == "refused by the test"),
            "{e}"
        );
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 1, "one shared request");
    source.answers.add_permits(1);
    let _ = client.acquire_token(&[SCOPE]).await.unwrap_err();
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        2,
        "a failure is not cached"
    );
}

/// A source that blocks until released, and counts its calls.
#[derive(Debug, Default)]
struct Gated {
    calls: AtomicU64,
    release: tokio::sync::Notify,
}

impl TokenSource for Gated {
    fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> SourceFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            Ok(TokenResponse::new(
                format!("token-{n}"),
                Duration::from_secs(3600),
            ))
        })
    }
}

fn in_process_client(source: Arc<dyn TokenSource>) -> ConfidentialClient {
    ConfidentialClient::builder()
        .authority(Authority::parse("https://login.example/home.example").unwrap())
        .client_id(CLIENT_ID)
        .token_source(source)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_waiter_does_not_cancel_the_shared_request() {
    let source = Arc::new(Gated::default());
    let client = in_process_client(source.clone());
    let c = client.clone();
    let first = tokio::spawn(async move { c.acquire_token(&[SCOPE]).await });
    // Wait until the request is in flight, then give up on it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while source.calls.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never started"
        );
        tokio::task::yield_now().await;
    }
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    // A second caller joins the same request (on its first poll, while the
    // source is still held)...
    let mut second = Box::pin(client.acquire_token(&[SCOPE]));
    assert!(second.as_mut().now_or_never().is_none());
    source.release.notify_one();
    let token = second.await.unwrap();
    assert_eq!(token.secret(), "token-0", "the first request's answer");
    assert_eq!(source.calls.load(Ordering::SeqCst), 1, "no second request");
}

/// A source that answers at once.
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

fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

// One thread: a miss hands its request to a task, and on a one-thread
// runtime that costs no cross-thread wake-up (the test runs in seconds).
#[tokio::test]
async fn eviction_keeps_memory_flat_across_a_million_tenants() {
    const BOUND: usize = 10_000;
    let source = Arc::new(Instant::default());
    let client = ConfidentialClient::builder()
        .authority(Authority::parse("https://login.example/home.example").unwrap())
        .client_id(CLIENT_ID)
        .token_source(source.clone())
        .max_cached_tokens(BOUND)
        .build()
        .unwrap();
    let mut tenant = String::new();
    let mut rss_after_warmup = 0;
    let mut max_cached = 0;
    for i in 0..1_000_000u32 {
        tenant.clear();
        use std::fmt::Write;
        write!(tenant, "tenant-{i}.example").unwrap();
        client
            .acquire_token_for_tenant(&[SCOPE], &tenant)
            .await
            .unwrap();
        max_cached = max_cached.max(client.cached_tokens());
        if i == 100_000 {
            rss_after_warmup = resident_kib();
        }
    }
    assert_eq!(source.0.load(Ordering::Relaxed), 1_000_000);
    assert!(
        max_cached <= BOUND,
        "the cache held {max_cached} tokens, more than its bound"
    );
    let growth = resident_kib().saturating_sub(rss_after_warmup);
    assert!(
        growth < 64 * 1024,
        "memory grew by {growth} KiB between 100,000 and 1,000,000 tenants"
    );
}
