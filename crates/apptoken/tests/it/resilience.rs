//! Proactive refresh, outages, retries, Retry-After and throttling, against
//! the emulator's fault injection. Time is a ManualClock: nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use apptoken::{ClientSecret, ConfidentialClient, Credential, ManualClock, RetryPolicy};
use apptoken_emulator::{Fault, Target, TokenLifetimes};
use futures::FutureExt;

use crate::support::*;

/// Waits (bounded, in real time) until `cond` holds; the outcome, not the time, is asserted.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}

fn manual_client(
    env: &TestEnv,
    clock: &Arc<ManualClock>,
    policy: RetryPolicy,
    extended: bool,
) -> ConfidentialClient {
    ConfidentialClient::builder()
        .authority(env.authority())
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .clock(clock.clone())
        .retry_policy(policy)
        .serve_extended_lifetime(extended)
        .build()
        .unwrap()
}

fn generous() -> RetryPolicy {
    RetryPolicy::with_max_retries(3).delays(
        Duration::from_millis(500),
        Duration::from_secs(10),
        Duration::from_secs(300),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_ahead_of_expiry_and_no_caller_waits() {
    let env = start().await;
    env.emulator
        .set_token_lifetimes(TokenLifetimes::new().expires_in(3600).refresh_in(1800));
    let clock = Arc::new(ManualClock::starting_now());
    let client = manual_client(&env, &clock, generous(), false);
    let first = client.acquire_token(&[SCOPE]).await.unwrap();
    assert!(first.refresh_on().is_some());
    assert_eq!(env.requests(), 1);
    // The refresher sleeps until the (jittered) refresh time; move the clock there.
    until("the refresher waits", || clock.sleepers() > 0).await;
    clock.advance(Duration::from_secs(1800));
    until("the background refresh reached the server", || {
        env.requests() == 2
    })
    .await;
    until("the new token is cached", || {
        client
            .acquire_token(&[SCOPE])
            .now_or_never()
            .is_some_and(|t| t.is_ok_and(|t| !t.is_same_token(&first)))
    })
    .await;
    // Far past the first token's expiry, callers are still served at once.
    clock.advance(Duration::from_secs(1500));
    let t = client
        .acquire_token(&[SCOPE])
        .now_or_never()
        .expect("served without waiting")
        .unwrap();
    assert!(!t.is_same_token(&first));
    assert!(t.expires_on() > clock_now(&clock));
}

fn clock_now(c: &ManualClock) -> time::OffsetDateTime {
    use apptoken::Clock;
    c.now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_minute_outage_is_ridden_out_with_the_cached_token() {
    let env = start().await;
    env.emulator
        .set_token_lifetimes(TokenLifetimes::new().expires_in(3600).refresh_in(600));
    let clock = Arc::new(ManualClock::starting_now());
    let client = manual_client(&env, &clock, generous(), false);
    let token = client.acquire_token(&[SCOPE]).await.unwrap();
    let outage = env.emulator.add_fault(Fault::unavailable(Target::Token));
    // Ten minutes in, the refresh time passes; then five minutes of outage.
    clock.advance(Duration::from_secs(600));
    for _ in 0..10 {
        clock.advance(Duration::from_secs(30));
        let t = client
            .acquire_token(&[SCOPE])
            .now_or_never()
            .expect("never waits")
            .unwrap();
        assert!(
            t.is_same_token(&token),
            "the cached token is served during the outage"
        );
    }
    until("refreshes were tried during the outage", || {
        env.requests() >= 2
    })
    .await;
    env.emulator.remove_fault(outage);
    // Back: the next refresh attempt succeeds. The clock moves only while
    // something sleeps on it (the refresher's retry, a retry's backoff), so
    // the test does not depend on when those sleeps are registered.
    let before = env.requests();
    drive_until(
        &clock,
        Duration::from_secs(5),
        "a refresh succeeds after the outage",
        || env.emulator.stats().successes_for(CLIENT_ID) >= 2,
    )
    .await;
    assert!(env.requests() > before);
    until("the new token is served", || {
        client
            .acquire_token(&[SCOPE])
            .now_or_never()
            .is_some_and(|t| t.is_ok_and(|t| !t.is_same_token(&token)))
    })
    .await;
}

/// Advances the clock in steps, only while something sleeps on it, until
/// `cond` holds (bounded in real time; the outcome is asserted, not the time).
async fn drive_until(
    clock: &ManualClock,
    step: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        if clock.sleepers() > 0 {
            clock.advance(step);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Drives an acquisition that waits on the manual clock: advance in steps until it ends.
async fn drive<T: Send + 'static>(
    clock: &ManualClock,
    step: Duration,
    task: tokio::task::JoinHandle<T>,
) -> T {
    let mut task = task;
    for _ in 0..10_000 {
        if let Some(r) = (&mut task).now_or_never() {
            return r.unwrap();
        }
        if clock.sleepers() > 0 {
            clock.advance(step);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the acquisition never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_lifetime_is_opt_in_and_marked() {
    let env = start().await;
    env.emulator
        .set_token_lifetimes(TokenLifetimes::new().expires_in(3600).ext_expires_in(7200));
    for extended in [false, true] {
        let clock = Arc::new(ManualClock::starting_now());
        let client = manual_client(&env, &clock, generous(), extended);
        let token = client.acquire_token(&[SCOPE]).await.unwrap();
        assert!(!token.is_extended_lifetime());
        let outage = env.emulator.add_fault(Fault::unavailable(Target::Token));
        // An hour and a bit later: expired, within the extended lifetime.
        clock.advance(Duration::from_secs(3700));
        let c = client.clone();
        let r = drive(
            &clock,
            Duration::from_secs(5),
            tokio::spawn(async move { c.acquire_token(&[SCOPE]).await }),
        )
        .await;
        env.emulator.remove_fault(outage);
        if extended {
            let t = r.expect("served within ext_expires_in");
            assert!(t.is_extended_lifetime() && t.is_same_token(&token));
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.status(), Some(503), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_in_seconds_is_waited_never_less() {
    let env = start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = manual_client(&env, &clock, generous(), false);
    env.emulator.add_fault(
        Fault::on(Target::Token)
            .status(429)
            .retry_after("60".into())
            .times(1),
    );
    let c = client.clone();
    let task = tokio::spawn(async move { c.acquire_token(&[SCOPE]).await });
    until(
        "the first attempt was answered and the client waits",
        || env.requests() == 1 && clock.sleepers() == 1,
    )
    .await;
    clock.advance(Duration::from_secs(59));
    assert_eq!(clock.sleepers(), 1, "still waiting after 59 s");
    assert_eq!(env.requests(), 1);
    clock.advance(Duration::from_secs(1));
    let token = task.await.unwrap().unwrap();
    assert!(!token.secret().is_empty());
    assert_eq!(env.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_an_http_date_is_waited_never_less() {
    let env = start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = manual_client(&env, &clock, generous(), false);
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
    env.emulator.add_fault(
        Fault::on(Target::Token)
            .status(503)
            .retry_after(date)
            .times(1),
    );
    let c = client.clone();
    let task = tokio::spawn(async move { c.acquire_token(&[SCOPE]).await });
    until("the client waits", || {
        env.requests() == 1 && clock.sleepers() == 1
    })
    .await;
    clock.advance(Duration::from_secs(117));
    assert_eq!(clock.sleepers(), 1, "still waiting well before the date");
    clock.advance(Duration::from_secs(3));
    task.await.unwrap().unwrap();
    assert_eq!(env.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_with_backoff() {
    let env = start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = manual_client(&env, &clock, generous(), false);
    env.emulator
        .add_fault(Fault::on(Target::Token).status(500).times(2));
    let c = client.clone();
    let r = drive(
        &clock,
        Duration::from_secs(1),
        tokio::spawn(async move { c.acquire_token(&[SCOPE]).await }),
    )
    .await;
    r.unwrap();
    assert_eq!(env.requests(), 3, "two failures, one success");
    // A dropped connection is a transport error: retried too.
    env.emulator
        .add_fault(Fault::on(Target::Token).drop_connection().times(1));
    let c = client.clone();
    let r = drive(
        &clock,
        Duration::from_secs(1),
        tokio::spawn(async move {
            c.acquire_token_with(apptoken::TokenRequest::new([SCOPE]).force_refresh(true))
                .await
        }),
    )
    .await;
    r.unwrap();
    assert_eq!(env.requests(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_is_never_retried() {
    let env = start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = ConfidentialClient::builder()
        .authority(env.authority())
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new("not-the-secret")))
        .clock(clock.clone())
        .retry_policy(generous())
        .build()
        .unwrap();
    let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
    assert_eq!(e.aadsts_codes(), &[7000215]);
    assert_eq!(env.requests(), 1);
    assert_eq!(clock.sleepers(), 0, "no retry is waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_do_not_reach_the_server() {
    let env = start().await;
    let clock = Arc::new(ManualClock::starting_now());
    // A deadline shorter than Retry-After: the client gives up at once and remembers.
    let policy = RetryPolicy::with_max_retries(3).delays(
        Duration::from_millis(500),
        Duration::from_secs(10),
        Duration::from_secs(30),
    );
    let client = manual_client(&env, &clock, policy, false);
    env.emulator
        .add_fault(Fault::entra_throttle(Target::Token).times(1));
    let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
    assert!(e.is_throttled(), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(env.requests(), 1);
    // A fleet of callers within the window: all get the error at once, none reaches the server.
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.acquire_token(&[SCOPE]).await })
        })
        .collect();
    for c in calls {
        assert!(c.await.unwrap().unwrap_err().is_throttled());
    }
    clock.advance(Duration::from_secs(59));
    assert!(
        client
            .acquire_token(&[SCOPE])
            .await
            .unwrap_err()
            .is_throttled()
    );
    assert_eq!(env.requests(), 1);
    // The window passes: the next call goes through.
    clock.advance(Duration::from_secs(1));
    client.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(env.requests(), 2);
}
