//! The cache's counters reach whatever `metrics` recorder the application
//! installs. A test binary of its own: the recorder is process-global.

#[path = "it/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use apptoken::{
    ClientSecret, ConfidentialClient, Credential, RetryPolicy, SourceFuture, SourceRequest,
    TokenRequest, TokenResponse, TokenSource,
};
use apptoken_emulator::{Fault, Target};
use futures::FutureExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::*;

/// Counter totals: the debugging recorder's snapshots reset counters, so
/// they are added up here.
#[derive(Default)]
struct Totals(std::collections::HashMap<(String, Vec<(String, String)>), u64>);

impl Totals {
    fn get(&mut self, snap: &Snapshotter, name: &str, label: Option<(&str, &str)>) -> u64 {
        for (k, _, _, v) in snap.snapshot().into_vec() {
            if let DebugValue::Counter(c) = v {
                let key = k.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                *self.0.entry((key.name().to_string(), labels)).or_default() += c;
            }
        }
        self.0
            .iter()
            .filter(|((n, labels), _)| {
                n == name
                    && label.is_none_or(|(lk, lv)| labels.iter().any(|(k, v)| k == lk && v == lv))
            })
            .map(|(_, v)| *v)
            .sum()
    }
}

/// A token source that answers once the test adds a permit.
#[derive(Debug)]
struct Held(tokio::sync::Semaphore);

impl TokenSource for Held {
    fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> SourceFuture<'a> {
        Box::pin(async move {
            self.0.acquire().await.unwrap().forget();
            Ok(TokenResponse::new("held-token", Duration::from_secs(3600)))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_counters_are_exported() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let mut totals = Totals::default();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let env = start().await;
    let client = ConfidentialClient::builder()
        .authority(env.authority())
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .retry_policy(RetryPolicy::with_max_retries(2).delays(
            Duration::from_millis(1),
            Duration::from_millis(5),
            Duration::from_secs(30),
        ))
        .build()
        .unwrap();

    // Callers of a cold key join one request: a source held until all of
    // them are waiting on it (each joins on its first poll), so none can
    // come too late, however slow the machine.
    let source = Arc::new(Held(tokio::sync::Semaphore::new(0)));
    let held = ConfidentialClient::builder()
        .authority(env.authority())
        .client_id(CLIENT_ID)
        .token_source(source.clone())
        .build()
        .unwrap();
    let mut calls: Vec<_> = (0..20)
        .map(|_| Box::pin(held.acquire_token(&[SCOPE])))
        .collect();
    for c in &mut calls {
        assert!(c.as_mut().now_or_never().is_none());
    }
    source.0.add_permits(1);
    for c in calls {
        c.await.unwrap();
    }
    held.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(
        totals.get(
            &snap,
            "apptoken_token_requests_total",
            Some(("outcome", "success"))
        ),
        1
    );
    assert_eq!(totals.get(&snap, "apptoken_cache_misses_total", None), 20);
    assert_eq!(
        totals.get(&snap, "apptoken_cache_coalesced_total", None),
        19
    );
    assert!(totals.get(&snap, "apptoken_cache_hits_total", None) >= 1);

    // One transient failure: one retry.
    env.emulator
        .add_fault(Fault::on(Target::Token).status(500).times(1));
    client
        .acquire_token_with(TokenRequest::new([SCOPE]).force_refresh(true))
        .await
        .unwrap();
    assert_eq!(totals.get(&snap, "apptoken_token_retries_total", None), 1);

    // A throttle longer than the deadline: remembered, the next call is answered locally.
    env.emulator
        .add_fault(Fault::entra_throttle(Target::Token).times(1));
    let other = TokenRequest::new([SCOPE]).tenant(OTHER_TENANT);
    assert!(
        client
            .acquire_token_with(other.clone())
            .await
            .unwrap_err()
            .is_throttled()
    );
    assert!(
        client
            .acquire_token_with(other)
            .await
            .unwrap_err()
            .is_throttled()
    );
    assert_eq!(totals.get(&snap, "apptoken_throttled_calls_total", None), 1);
    assert!(
        totals.get(
            &snap,
            "apptoken_token_requests_total",
            Some(("outcome", "error"))
        ) >= 1
    );
}
