//! Hostile and absurd answers never panic the client nor brick a key:
//! `Retry-After` far in the future, lifetimes of 0 s or `u64::MAX`, clocks
//! at the edges of the calendar, a token source that panics. Regression
//! tests for issue #16 ("one bad answer must never brick a key").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use apptoken::{
    ClientSecret, ConfidentialClient, Credential, Error, ManualClock, RetryPolicy, ServerError,
    SourceFuture, SourceRequest, TokenResponse, TokenSource,
};
use apptoken_emulator::{Fault, Target};
use proptest::prelude::*;
use time::OffsetDateTime;

use crate::support::*;

/// The defect as found: one `429` with `Retry-After: 300000000000` panicked
/// the fetch task (`now + wait` overflowed) and left its failed future in
/// the in-flight map, so every later call for the key failed until restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_16_a_retry_after_of_300000000000_s_does_not_brick_the_key() {
    let env = start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = ConfidentialClient::builder()
        .authority(env.authority())
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::with_max_retries(3))
        .build()
        .unwrap();
    env.emulator.add_fault(
        Fault::on(Target::Token)
            .status(429)
            .retry_after("300000000000".into())
            .times(1),
    );
    let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
    // The server's own answer, typed: throttled, the wait capped at an hour.
    assert!(e.is_throttled(), "{e:?}");
    assert!(matches!(e, Error::IdentityProvider(_)), "{e:?}");
    assert_eq!(e.retry_after(), Some(apptoken::MAX_RETRY_AFTER));
    assert_eq!(env.requests(), 1);
    // Throttled: answered at once, without asking the server again.
    let again = client.acquire_token(&[SCOPE]).await.unwrap_err();
    assert!(again.is_throttled(), "{again:?}");
    assert_eq!(env.requests(), 1);
    // An hour later (the cap) the key works again: one request, a token.
    clock.advance(apptoken::MAX_RETRY_AFTER);
    let token = client.acquire_token(&[SCOPE]).await.unwrap();
    assert!(!token.secret().is_empty());
    assert_eq!(env.requests(), 2);
}

/// A source that answers what it is told to, counting requests.
struct Scripted {
    requests: AtomicU64,
    answer: Box<dyn Fn(u64) -> Result<TokenResponse, Error> + Send + Sync>,
}

impl Scripted {
    fn new(
        answer: impl Fn(u64) -> Result<TokenResponse, Error> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Scripted {
            requests: AtomicU64::new(0),
            answer: Box::new(answer),
        })
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted").finish_non_exhaustive()
    }
}

impl TokenSource for Scripted {
    fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> SourceFuture<'a> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let answer = (self.answer)(n);
        Box::pin(async move { answer })
    }
}

fn scripted_client(source: Arc<Scripted>, clock: Arc<ManualClock>) -> ConfidentialClient {
    ConfidentialClient::builder()
        .authority_url("https://login.example/t.example")
        .client_id("c")
        .token_source(source)
        .clock(clock)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn throttled(retry_after: Duration) -> Error {
    let mut e = ServerError::new(429, "throttled");
    e.retry_after = Some(retry_after);
    Error::IdentityProvider(Box::new(e))
}

#[tokio::test]
async fn a_token_source_that_panics_fails_its_waiters_as_internal_and_the_next_call_retries() {
    let source = Scripted::new(|n| {
        if n == 0 {
            panic!("a bug in a third-party token source");
        }
        Ok(TokenResponse::new("tok", Duration::from_secs(3600)))
    });
    let client = scripted_client(source.clone(), Arc::new(ManualClock::starting_now()));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.acquire_token(&["api://x/.default"]).await })
        })
        .collect();
    for w in waiters {
        let e = w.await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        assert!(!matches!(e, Error::Configuration(_)));
    }
    assert_eq!(source.requests(), 1, "one request for every waiter");
    // The key is not bricked: the next call starts a fresh request.
    let t = client.acquire_token(&["api://x/.default"]).await.unwrap();
    assert_eq!(t.secret(), "tok");
    assert_eq!(source.requests(), 2);
}

#[tokio::test]
async fn a_retry_after_of_u64_max_from_a_source_is_capped() {
    let source = Scripted::new(|n| match n {
        0 => Err(throttled(Duration::MAX)),
        _ => Ok(TokenResponse::new("tok", Duration::from_secs(3600))),
    });
    let clock = Arc::new(ManualClock::starting_now());
    let client = ConfidentialClient::builder()
        .authority_url("https://login.example/t.example")
        .client_id("c")
        .token_source(source.clone())
        .clock(clock.clone())
        // Would wait for ever if the wait were not capped and checked.
        .retry_policy(RetryPolicy::with_max_retries(3))
        .build()
        .unwrap();
    let e = client
        .acquire_token(&["api://x/.default"])
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(apptoken::MAX_RETRY_AFTER));
    clock.advance(apptoken::MAX_RETRY_AFTER);
    client.acquire_token(&["api://x/.default"]).await.unwrap();
    assert_eq!(source.requests(), 2);
}

#[tokio::test]
async fn lifetimes_of_zero_or_one_second_do_not_make_every_call_a_request() {
    for expires_in in [0, 1] {
        let source =
            Scripted::new(move |_| Ok(TokenResponse::new("tok", Duration::from_secs(expires_in))));
        let clock = Arc::new(ManualClock::starting_now());
        let client = scripted_client(source.clone(), clock.clone());
        for _ in 0..1_000 {
            client.acquire_token(&["api://x/.default"]).await.unwrap();
        }
        assert_eq!(source.requests(), 1, "expires_in {expires_in}");
        // The floor (60 s) is served for half its length, then renewed.
        clock.advance(Duration::from_secs(29));
        client.acquire_token(&["api://x/.default"]).await.unwrap();
        assert_eq!(source.requests(), 1);
        clock.advance(Duration::from_secs(1));
        client.acquire_token(&["api://x/.default"]).await.unwrap();
        assert_eq!(source.requests(), 2);
    }
}

#[tokio::test]
async fn a_lifetime_of_u64_max_is_capped_at_seven_days() {
    let source = Scripted::new(|_| {
        Ok(TokenResponse::new("tok", Duration::MAX)
            .with_ext_expires_in(Duration::MAX)
            .with_refresh_in(Duration::MAX))
    });
    let clock = Arc::new(ManualClock::starting_now());
    let client = scripted_client(source, clock.clone());
    let t = client.acquire_token(&["api://x/.default"]).await.unwrap();
    let now = apptoken::Clock::now(&*clock);
    assert!(t.expires_on() <= now + apptoken::MAX_LIFETIME);
    assert!(t.expires_on() > now + time::Duration::days(6));
    assert!(t.refresh_on().is_some_and(|r| r < t.expires_on()));
}

/// Edges of the calendar for the client's clock.
fn clock_at(t: OffsetDateTime) -> Arc<ManualClock> {
    let c = Arc::new(ManualClock::starting_now());
    c.set(t);
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a source answers and wherever the clock stands (year -9999
    /// to 9999), an acquisition returns a token or a typed error — never a
    /// panic, never an internal error — and a second one does too.
    #[test]
    fn extreme_numbers_never_panic(
        expires_in in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(i64::MAX as u64), any::<u64>(), 0u64..100_000],
        ext in proptest::option::of(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
        refresh in proptest::option::of(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
        retry_after in proptest::option::of(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
        clock_secs in prop_oneof![
            Just(-377_705_116_800i64),   // -9999-01-01
            Just(253_402_300_799i64),    // 9999-12-31T23:59:59
            Just(-1i64),                 // just before 1970
            -377_705_116_800i64..253_402_300_799,
        ],
    ) {
        let source = Scripted::new(move |n| {
            if n == 0 && let Some(r) = retry_after {
                return Err(throttled(Duration::from_secs(r)));
            }
            let mut t = TokenResponse::new("tok", Duration::from_secs(expires_in));
            if let Some(e) = ext { t = t.with_ext_expires_in(Duration::from_secs(e)); }
            if let Some(r) = refresh { t = t.with_refresh_in(Duration::from_secs(r)); }
            Ok(t)
        });
        let clock = clock_at(OffsetDateTime::from_unix_timestamp(clock_secs).unwrap());
        let client = ConfidentialClient::builder()
            .authority_url("https://login.example/t.example")
            .client_id("c")
            .token_source(source)
            .clock(clock.clone())
            .retry_policy(RetryPolicy::with_max_retries(2))
            .build()
            .unwrap();
        runtime().block_on(async {
            for _ in 0..2 {
                match client.acquire_token(&["api://x/.default"]).await {
                    Ok(t) => prop_assert_eq!(t.secret(), "tok"),
                    Err(e) => prop_assert!(e.is_throttled(), "{:?}", e),
                }
                clock.advance(apptoken::MAX_RETRY_AFTER);
            }
            Ok(())
        })?;
    }
}
