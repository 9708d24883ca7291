//! Managed identity end to end against a scripted endpoint on loopback: the
//! requests each kind sends (IMDS, App Service, Azure Arc's challenge),
//! IMDS's retry rules on the manual clock, its concurrency limit, the
//! chain's probe, and the cache in front of it all. The emulator's own
//! endpoints are the fidelity witnesses (`apptoken-emulator`'s tests); this
//! endpoint answers exactly what a test tells it to, to reach every branch.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apptoken::{
    ClientConfig, ConfidentialClient, CredentialErrorKind, Error, ManagedIdentity,
    ManagedIdentityId, ManualClock,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const VAULT: &str = "https://vault.azure.net/.default";

/// One scripted answer.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into(),
    }
}

/// IMDS's success shape: every value a string, 24 hours.
fn token_answer(token: &str) -> Answer {
    let on = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400;
    answer(
        200,
        &format!(
            r#"{{"access_token":"{token}","refresh_token":"","expires_in":"86400","expires_on":"{on}","ext_expires_in":"86400","not_before":"0","resource":"https://vault.azure.net","token_type":"Bearer"}}"#
        ),
    )
}

/// What the endpoint saw of one request: the request line's target and
/// the headers (names lower-cased).
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback endpoint that answers from a script (the last answer
/// repeats), records what it saw, and can hold answers until released.
struct Endpoint {
    addr: SocketAddr,
    script: Mutex<VecDeque<Answer>>,
    last: Mutex<Option<Answer>>,
    seen: Mutex<Vec<Seen>>,
    hold: tokio::sync::Semaphore,
    holding: bool,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Endpoint {
    async fn start(script: Vec<Answer>) -> Arc<Endpoint> {
        Endpoint::start_with(script, false).await
    }

    async fn start_with(script: Vec<Answer>, holding: bool) -> Arc<Endpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Arc::new(Endpoint {
            addr: listener.local_addr().unwrap(),
            script: Mutex::new(script.into()),
            last: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
            hold: tokio::sync::Semaphore::new(0),
            holding,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        });
        let me = Arc::downgrade(&ep);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let Some(ep) = me.upgrade() else { return };
                tokio::spawn(async move { ep.serve(&mut sock).await });
            }
        });
        ep
    }

    async fn serve(&self, sock: &mut tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = head.split("\r\n");
        let target = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("")
            .to_string();
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        self.seen.lock().unwrap().push(Seen { target, headers });
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        if self.holding {
            self.hold.acquire().await.unwrap().forget();
        }
        let a = {
            let next = self.script.lock().unwrap().pop_front();
            let mut last = self.last.lock().unwrap();
            if let Some(n) = next {
                *last = Some(n);
            }
            last.clone().unwrap_or_else(|| answer(500, "{}"))
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut out = format!("HTTP/1.1 {} X\r\n", a.status);
        for (n, v) in &a.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
            a.body.len(),
            a.body
        ));
        let _ = sock.write_all(out.as_bytes()).await;
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn client(mi: ManagedIdentity, clock: &Arc<ManualClock>) -> ConfidentialClient {
    ConfidentialClient::builder()
        .managed_identity(mi)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Drives the clock through the client's waits: each time it sleeps,
/// advances by the wait it asked for; returns the waits.
async fn run_with_waits<T>(
    clock: &Arc<ManualClock>,
    fut: impl std::future::Future<Output = T>,
) -> (T, Vec<Duration>) {
    tokio::pin!(fut);
    let mut waits = Vec::new();
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return (out, waits),
            _ = tokio::task::yield_now() => {
                if let Some(deadline) = clock.next_deadline() {
                    let wait = (deadline - apptoken::Clock::now(&**clock)).unsigned_abs();
                    waits.push(wait);
                    clock.set(deadline);
                }
            }
        }
    }
}

#[tokio::test]
async fn imds_sends_what_every_client_sends_and_the_token_is_cached() {
    let ep = Endpoint::start(vec![token_answer("mi-token")]).await;
    let clock = Arc::new(ManualClock::starting_now());
    let c = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::SystemAssigned).unwrap(),
        &clock,
    );
    let t = c.acquire_token(&[VAULT]).await.unwrap();
    assert_eq!(t.secret(), "mi-token");
    let lifetime = t.expires_on() - apptoken::Clock::now(&*clock);
    assert!(lifetime > time::Duration::hours(23), "{lifetime}");
    // 24-hour tokens are refreshed half-way.
    let refresh = t.refresh_on().unwrap() - apptoken::Clock::now(&*clock);
    assert!((time::Duration::hours(11)..time::Duration::hours(13)).contains(&refresh));
    assert!(c.acquire_token(&[VAULT]).await.unwrap().is_same_token(&t));
    let seen = ep.seen();
    assert_eq!(seen.len(), 1, "the second call was a cache hit");
    assert_eq!(
        seen[0].target,
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
    );
    assert_eq!(seen[0].header("metadata"), Some("true"));
    assert_eq!(seen[0].header("authorization"), None);
}

#[tokio::test]
async fn a_user_assigned_identity_is_named_and_keyed_apart() {
    let ep = Endpoint::start(vec![token_answer("a"), token_answer("b")]).await;
    let clock = Arc::new(ManualClock::starting_now());
    let by_client = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::ClientId("c-1".into())).unwrap(),
        &clock,
    );
    let system = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::SystemAssigned).unwrap(),
        &clock,
    );
    let a = by_client.acquire_token(&[VAULT]).await.unwrap();
    let b = system.acquire_token(&[VAULT]).await.unwrap();
    assert!(!a.is_same_token(&b));
    assert!(
        ep.seen()[0].target.ends_with("&client_id=c-1"),
        "{:?}",
        ep.seen()
    );
}

#[tokio::test]
async fn imds_410_is_retried_every_10_s_for_70_s() {
    let ep = Endpoint::start(vec![answer(410, r#"{"error":"gone"}"#)]).await;
    let clock = Arc::new(ManualClock::starting_now());
    let c = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::SystemAssigned).unwrap(),
        &clock,
    );
    let (result, waits) = run_with_waits(&clock, c.acquire_token(&[VAULT])).await;
    assert_eq!(result.unwrap_err().status(), Some(410));
    assert_eq!(waits, vec![Duration::from_secs(10); 7]);
    assert_eq!(ep.requests(), 8, "tries at 0, 10, …, 70 s");
}

#[tokio::test]
async fn imds_5xx_and_429_back_off_1_2_4_s_and_400_is_never_retried() {
    let ep = Endpoint::start(vec![answer(500, "{}")]).await;
    let clock = Arc::new(ManualClock::starting_now());
    let c = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::SystemAssigned).unwrap(),
        &clock,
    );
    let (result, waits) = run_with_waits(&clock, c.acquire_token(&[VAULT])).await;
    assert_eq!(result.unwrap_err().status(), Some(500));
    assert_eq!(
        waits,
        [1, 2, 4].map(Duration::from_secs).to_vec(),
        "IMDS's backoff"
    );
    assert_eq!(ep.requests(), 4);

    let ep = Endpoint::start(vec![answer(429, "{}"), token_answer("after-429")]).await;
    let c = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::SystemAssigned).unwrap(),
        &clock,
    );
    let (t, _) = run_with_waits(&clock, c.acquire_token(&[VAULT])).await;
    assert_eq!(t.unwrap().secret(), "after-429");

    let ep = Endpoint::start(vec![answer(
        400,
        r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
    )])
    .await;
    // A clock of its own: the client above has a refresh waiting on its clock.
    let clock = Arc::new(ManualClock::starting_now());
    let c = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::ClientId("nope".into())).unwrap(),
        &clock,
    );
    let (result, waits) = run_with_waits(&clock, c.acquire_token(&[VAULT])).await;
    let e = result.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("Identity not found"), "{e}");
    assert!(waits.is_empty());
    assert_eq!(ep.requests(), 1, "400 is never retried");
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_the_header_never_leaves() {
    let elsewhere = Endpoint::start(vec![token_answer("stolen")]).await;
    let ep = Endpoint::start(vec![Answer {
        status: 302,
        headers: vec![("Location".into(), format!("{}/msi/token", elsewhere.base()))],
        body: String::new(),
    }])
    .await;
    let clock = Arc::new(ManualClock::starting_now());
    let c = client(
        ManagedIdentity::app_service(
            &format!("{}/msi/token", ep.base()),
            "header-secret",
            ManagedIdentityId::SystemAssigned,
        )
        .unwrap(),
        &clock,
    );
    let e = c.acquire_token(&[VAULT]).await.unwrap_err();
    assert!(
        matches!(e, Error::InvalidResponse { status: 302, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("redirect"), "{e}");
    assert_eq!(elsewhere.requests(), 0, "the redirect was not followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_never_sees_more_than_five_requests_at_once() {
    let ep = Endpoint::start_with(vec![token_answer("t")], true).await;
    let clock = Arc::new(ManualClock::starting_now());
    let c = client(
        ManagedIdentity::imds(&ep.base(), ManagedIdentityId::SystemAssigned).unwrap(),
        &clock,
    );
    // Twelve resources: twelve keys, so single flight does not merge them.
    let mut calls = Vec::new();
    for i in 0..12 {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            c.acquire_token(&[format!("api://res-{i}/.default")]).await
        }));
    }
    // Wait until five are held at the endpoint, and no more arrive.
    while ep.in_flight.load(Ordering::SeqCst) < 5 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(ep.most_in_flight.load(Ordering::SeqCst), 5);
    ep.hold.add_permits(100);
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(ep.requests(), 12);
    assert_eq!(ep.most_in_flight.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn app_service_sends_its_secret_header_and_reads_its_error_shape() {
    let on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let ep = Endpoint::start(vec![
        answer(
            200,
            &format!(
                r#"{{"access_token":"as-token","expires_on":"{on}","resource":"https://vault.azure.net","token_type":"Bearer","client_id":"x"}}"#
            ),
        ),
        answer(403, r#"{"statusCode":403,"message":"Identity header mismatch"}"#),
    ])
    .await;
    let clock = Arc::new(ManualClock::starting_now());
    let c = client(
        ManagedIdentity::app_service(
            &format!("{}/msi/token", ep.base()),
            "header-secret",
            ManagedIdentityId::ObjectId("o-1".into()),
        )
        .unwrap(),
        &clock,
    );
    let t = c.acquire_token(&[VAULT]).await.unwrap();
    assert_eq!(t.secret(), "as-token");
    let seen = ep.seen();
    assert_eq!(seen[0].header("x-identity-header"), Some("header-secret"));
    assert_eq!(
        seen[0].target,
        "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net&principal_id=o-1"
    );
    let e = c
        .acquire_token(&["https://storage.azure.com/.default"])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    let shown = e.to_string();
    assert!(
        shown.contains("Identity header mismatch") && shown.contains("App Service"),
        "{shown}"
    );
    assert!(!shown.contains("header-secret") && !format!("{e:?}").contains("header-secret"));
}

#[tokio::test]
async fn azure_arc_answers_its_challenge_with_the_key_file_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("challenge.key");
    std::fs::write(&key, "arc-secret-key").unwrap();
    let challenge = Answer {
        status: 401,
        headers: vec![(
            "WWW-Authenticate".into(),
            format!("Basic realm={}", key.display()),
        )],
        body: String::new(),
    };
    let ep = Endpoint::start(vec![challenge.clone(), token_answer("arc-token")]).await;
    let clock = Arc::new(ManualClock::starting_now());
    let mi = ManagedIdentity::azure_arc(&format!("{}/metadata/identity/oauth2/token", ep.base()))
        .unwrap()
        .with_arc_key_dir(dir.path());
    let c = client(mi.clone(), &clock);
    assert_eq!(
        c.acquire_token(&[VAULT]).await.unwrap().secret(),
        "arc-token"
    );
    let seen = ep.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].target.contains("api-version=2020-06-01"));
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        seen[1].header("authorization"),
        Some("Basic arc-secret-key")
    );

    // A challenge naming a file elsewhere is refused without reading it.
    let elsewhere = tempfile::tempdir().unwrap();
    let planted = elsewhere.path().join("planted.key");
    std::fs::write(&planted, "not-for-the-agent").unwrap();
    let ep = Endpoint::start(vec![Answer {
        status: 401,
        headers: vec![(
            "WWW-Authenticate".into(),
            format!("Basic realm={}", planted.display()),
        )],
        body: String::new(),
    }])
    .await;
    let mi = ManagedIdentity::azure_arc(&format!("{}/metadata/identity/oauth2/token", ep.base()))
        .unwrap()
        .with_arc_key_dir(dir.path());
    let e = client(mi, &clock)
        .acquire_token(&[VAULT])
        .await
        .unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.contains("not in the agent's token directory"),
        "{shown}"
    );
    assert!(!shown.contains("not-for-the-agent"));
    assert_eq!(ep.requests(), 1, "no second request with a key");
}

fn chain_config(pairs: &[(&str, String)]) -> ClientConfig {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    ClientConfig::from_env_vars(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap()
}

#[tokio::test]
async fn the_chain_probes_imds_and_explains_every_step_when_there_is_none() {
    // Nothing answers: one quick refusal, every step named.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let cfg = chain_config(&[(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://{dead_addr}"),
    )]);
    let c = cfg.build_client().unwrap();
    let e = c.acquire_token(&[VAULT]).await.unwrap_err();
    let Error::Credential(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(d.kind(), CredentialErrorKind::Unavailable);
    let shown = e.to_string();
    for part in ["IMDS", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"] {
        assert!(shown.contains(part), "{part}: {shown}");
    }

    // Another cloud's metadata service: a 404 in HTML is not Azure's.
    let ep = Endpoint::start(vec![Answer {
        status: 404,
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: "<html>Not Found</html>".into(),
    }])
    .await;
    let c = chain_config(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", ep.base())])
        .build_client()
        .unwrap();
    let e = c.acquire_token(&[VAULT]).await.unwrap_err();
    assert!(
        matches!(&e, Error::Credential(d) if d.kind() == CredentialErrorKind::Unavailable),
        "{e}"
    );
    assert!(e.to_string().contains("never uses"), "{e}");
    assert_eq!(ep.requests(), 1, "a probe is never retried");

    // Azure's IMDS refusing (identity not assigned) is its own error, not "unavailable".
    let ep = Endpoint::start(vec![answer(
        400,
        r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
    )])
    .await;
    let c = chain_config(&[
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", ep.base()),
        ("AZURE_CLIENT_ID", "uami".into()),
    ])
    .build_client()
    .unwrap();
    let e = c.acquire_token(&[VAULT]).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(ep.seen()[0].target.ends_with("client_id=uami"));

    // A probe that succeeds confirms IMDS: the token, then ordinary requests.
    let ep = Endpoint::start(vec![token_answer("probed")]).await;
    let c = chain_config(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", ep.base())])
        .build_client()
        .unwrap();
    assert_eq!(c.acquire_token(&[VAULT]).await.unwrap().secret(), "probed");
}
