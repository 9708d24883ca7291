//! End-to-end tests of the daemon against the in-process emulator: the
//! schedule (a manual clock), paging, outputs, Retry-After, 401 handling,
//! the overlap policy and the health/metrics listener. Everything binds
//! 127.0.0.1:0; time moves only when a test moves the clock.
//!
//! Over 500 lines: one test binary, so the emulator, the manual clock and
//! the daemon-building helpers at the top are shared by every test (a build
//! of the daemon per file would cost CI more than the file's length).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apptoken::{Clock, ManualClock};
use apptoken_daemon::{Daemon, DaemonConfig, Options};
use apptoken_emulator::{Config, Emulator, Fault, RunningEmulator, Target};

struct Env {
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emulator");
    let emulator = Emulator::start(
        Config::embedded(&state).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    Env { emulator, dir }
}

impl Env {
    fn config(&self, jobs: &str, daemon: &str) -> PathBuf {
        let info = self.emulator.info();
        let text = format!(
            r#"
[identity]
authority_host = "{host}"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret_file = "emulator/client-secret"

[apis.sample]
base_url = "{api}"
scopes = ["{scope}"]
max_retries = 3

[daemon]
{daemon}

{jobs}
"#,
            host = info.authority_host,
            tenant = info.tenant_id,
            client = info.client_id,
            api = info.sample_api,
            scope = info.sample_scope,
        );
        let path = self.dir.path().join("daemon.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self, path: &Path) -> DaemonConfig {
        DaemonConfig::load(path, &|_| None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn tenants(&self) -> (String, String) {
        let info = self.emulator.info();
        (
            info.tenant_domain.clone(),
            info.other_tenants[0].domain.clone(),
        )
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until `f` holds; the work it waits for runs on other tasks. The
/// deadline is generous (a loaded machine): it only turns a hang into a
/// failure, nothing is asserted about how long the work takes.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::starting_now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_writes_every_tenants_items_across_pages() {
    let env = start().await;
    let (contoso, fabrikam) = env.tenants();
    let out = env.dir.path().join("users.jsonl");
    let path = env.config(
        &format!(
            r#"
[[jobs]]
name = "users"
api = "sample"
path = "users?$top=5"
every = "1m"
output = {{ type = "file", path = "users.jsonl" }}
tenants = ["{contoso}", "{fabrikam}"]
tenant_concurrency = 2
"#
        ),
        "grace_period = \"10s\"",
    );
    let clock = clock();
    let daemon = Daemon::new(env.load(&path), Options::default().clock(clock.clone())).unwrap();
    let handle = daemon.handle();
    let task = tokio::spawn(daemon.run());
    // Nothing before the first tick. Two sleeps: the schedule's and the
    // credential poll's (waiting for one could see only the poll's, and the
    // schedule would then start after the advance, one minute later).
    until("the scheduler to sleep", || clock.sleepers() >= 2).await;
    assert!(!out.exists());
    clock.advance(Duration::from_secs(60));
    until("the output", || out.exists()).await;
    let items = lines(&out);
    assert_eq!(items.len(), 42 + 17, "every user of both tenants");
    assert_eq!(
        items
            .iter()
            .filter(|l| l["tenant"] == contoso.as_str())
            .count(),
        42
    );
    assert_eq!(
        items
            .iter()
            .filter(|l| l["tenant"] == fabrikam.as_str())
            .count(),
        17
    );
    assert!(
        items
            .iter()
            .all(|l| l["job"] == "users" && l["item"]["userPrincipalName"].is_string())
    );
    // 9 + 4 pages of 5 users.
    assert_eq!(env.emulator.stats().sample_api_requests(200), 13);
    handle.shutdown();
    task.await.unwrap().unwrap();
    let left: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !left.iter().any(|n| n.to_string_lossy().contains(".tmp-")),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_api_is_honoured() {
    let env = start().await;
    env.emulator.add_fault(
        Fault::on(Target::SampleApi)
            .status(429)
            .retry_after("7".into())
            .times(2),
    );
    let path = env.config(
        "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users?$top=100\"\nevery = \"1h\"\noutput = { type = \"file\", path = \"out.jsonl\" }\n",
        "",
    );
    let clock = clock();
    let daemon = Daemon::new(env.load(&path), Options::default().clock(clock.clone())).unwrap();
    let run = tokio::spawn(async move { daemon.run_once().await });
    for _ in 0..2 {
        // The wait, and the client's refresher (it sleeps until the token's
        // refresh time, on the same clock).
        until("a Retry-After wait", || clock.sleepers() == 2).await;
        let wait = clock.next_deadline().unwrap() - clock.now();
        assert_eq!(
            wait,
            time::Duration::seconds(7),
            "the wait the API asked for"
        );
        clock.advance(Duration::from_secs(7));
    }
    let summary = run.await.unwrap();
    assert!(summary.all_succeeded(), "{summary:?}");
    assert_eq!(summary.jobs[0].items, 42);
    assert_eq!(env.emulator.stats().sample_api_requests(429), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_gets_one_new_token_and_one_retry_and_never_loops() {
    let env = start().await;
    let client_id = env.emulator.info().client_id.clone();
    let path = env.config(
        "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1h\"\n",
        "",
    );
    let daemon = Daemon::new(env.load(&path), Options::default().clock(clock())).unwrap();
    // Once: a fresh token, and the retry succeeds.
    let id = env
        .emulator
        .add_fault(Fault::on(Target::SampleApi).status(401).times(1));
    let s = daemon.run_once().await;
    assert!(s.all_succeeded(), "{s:?}");
    assert_eq!(
        env.emulator.stats().token_requests_for(&client_id),
        2,
        "the first token and one forced refresh"
    );
    env.emulator.remove_fault(id);
    // Always: exactly one retry, then the run fails.
    env.emulator
        .add_fault(Fault::on(Target::SampleApi).status(401));
    let before = env.emulator.stats().sample_api_requests(401);
    let s = daemon.run_once().await;
    assert!(!s.all_succeeded());
    assert!(s.jobs[0].error.as_deref().unwrap().contains("401"), "{s:?}");
    assert_eq!(env.emulator.stats().sample_api_requests(401) - before, 2);
    assert_eq!(env.emulator.stats().token_requests_for(&client_id), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claims_challenge_gets_a_token_with_those_claims_and_one_retry() {
    let env = start().await;
    let client_id = env.emulator.info().client_id.clone();
    let path = env.config(
        "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1h\"\n",
        "",
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[identity]\n",
        "[identity]\nclient_capabilities = [\"cp1\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let daemon = Daemon::new(env.load(&path), Options::default().clock(clock())).unwrap();
    assert!(daemon.run_once().await.all_succeeded());
    assert_eq!(env.emulator.stats().token_requests_for(&client_id), 1);
    env.emulator.revoke_tokens(&client_id);
    env.emulator.advance_clock(Duration::from_secs(1));
    let s = daemon.run_once().await;
    assert!(s.all_succeeded(), "{s:?}");
    assert_eq!(
        env.emulator.stats().sample_api_requests(401),
        1,
        "one challenge"
    );
    assert_eq!(
        env.emulator.stats().token_requests_for(&client_id),
        2,
        "one token request with the claims"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_at_its_next_tick_is_skipped_and_the_listener_answers() {
    let env = start().await;
    let path = env.config(
        "[[jobs]]\nname = \"slow\"\napi = \"sample\"\npath = \"users\"\nevery = \"1m\"\noutput = { type = \"file\", path = \"slow.jsonl\" }\n",
        "listen = \"127.0.0.1:0\"\ngrace_period = \"1h\"",
    );
    let clock = clock();
    let mut daemon = Daemon::new(env.load(&path), Options::default().clock(clock.clone())).unwrap();
    let addr = daemon.bind().await.unwrap().unwrap();
    let handle = daemon.handle();
    let task = tokio::spawn(daemon.run());
    let http = reqwest::Client::new();
    let get = |p: &str| {
        let http = http.clone();
        let url = format!("http://{addr}{p}");
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 200, "{body}");

    // The run is still going at the next tick: the API throttles it and
    // it waits Retry-After on the manual clock (no real delay, so nothing
    // depends on how fast this test is). Ticks at 60 s and 120 s; the wait
    // ends at 150 s.
    env.emulator.add_fault(
        Fault::on(Target::SampleApi)
            .status(429)
            .retry_after("90".into())
            .times(1),
    );
    until("the scheduler to sleep", || clock.sleepers() >= 2).await; // schedule + credential poll
    clock.advance(Duration::from_secs(60));
    until("the run waiting Retry-After", || {
        // Schedule, credential poll, the run's wait, the client's refresher.
        env.emulator.stats().sample_api_requests(429) == 1 && clock.sleepers() == 4
    })
    .await;
    let start = clock.now() - time::Duration::seconds(60);
    assert_eq!(
        clock.next_deadline(),
        Some(start + time::Duration::seconds(120)),
        "the next tick comes before the end of the wait (150 s)"
    );
    clock.advance(Duration::from_secs(60));
    // The tick at 120 s was skipped: the schedule sleeps again (and so
    // does the credential poll), the run still waits.
    until("the skipped tick", || clock.sleepers() == 4).await;
    let out = env.dir.path().join("slow.jsonl");
    assert!(!out.exists(), "the run is still waiting");
    clock.advance(Duration::from_secs(30));
    until("the output", || out.exists()).await;
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for m in [
        "apptoken_daemon_job_skipped_total{job=\"slow\"} 1",
        "apptoken_daemon_job_runs_total{job=\"slow\",outcome=\"success\"}",
        "apptoken_daemon_api_request_duration_seconds_bucket{api=\"sample\"",
        "apptoken_daemon_api_requests_total{api=\"sample\",status=\"200\"}",
        "apptoken_cache_misses_total",
    ] {
        assert!(metrics.contains(m), "{m} missing from\n{metrics}");
    }
    handle.shutdown();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_keeps_the_previous_output() {
    let env = start().await;
    let path = env.config(
        "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users?$top=10\"\nevery = \"1h\"\noutput = { type = \"file\", path = \"users.jsonl\" }\n",
        "",
    );
    let daemon = Daemon::new(env.load(&path), Options::default().clock(clock())).unwrap();
    assert!(daemon.run_once().await.all_succeeded());
    let out = env.dir.path().join("users.jsonl");
    let before = std::fs::read(&out).unwrap();
    // The third page fails.
    env.emulator
        .add_fault(Fault::on(Target::SampleApi).status(500).share(0.34));
    let s = daemon.run_once().await;
    assert!(!s.all_succeeded());
    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert_eq!(
        std::fs::read_dir(env.dir.path()).unwrap().count(),
        3,
        "no temporary file is left"
    );
}

// ---------------------------------------------------------------------------
// Tenant checks (issue #17): `apptoken_daemon::check_tenants`, a dry run of
// the token request for every tenant the jobs list. (This harness is one
// file, so the block lives here rather than in tests/it/check.rs.)
// ---------------------------------------------------------------------------

mod tenant_checks {
    use super::*;

    use apptoken_daemon::{CheckOutcome, TenantCheck, check_tenants};

    /// Job, tenant, ok, roles, codes.
    type Summary = (String, String, bool, Vec<String>, Vec<String>);

    /// What must be the same from one check to the next (not the expiry,
    /// not the trace ids).
    fn summary(checks: &[TenantCheck]) -> Vec<Summary> {
        checks
            .iter()
            .map(|c| {
                let (roles, codes) = match &c.outcome {
                    CheckOutcome::Ok { roles, .. } => (roles.clone(), Vec::new()),
                    CheckOutcome::Refused { codes, .. } => (Vec::new(), codes.clone()),
                    other => panic!("{}: {other:?}", c.tenant),
                };
                (c.job.clone(), c.tenant.clone(), c.is_ok(), roles, codes)
            })
            .collect()
    }

    fn assert_no_secret(env: &Env, checks: &[TenantCheck]) {
        let secret = env.emulator.info().client_secret.clone().unwrap();
        for c in checks {
            let text = format!("{} {:?}", c.to_json(), c);
            assert!(!text.contains(&secret), "{text}");
            // Every JWT (a token, an assertion) starts with a base64url '{"'.
            assert!(!text.contains("eyJ"), "{text}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_tenant_gets_one_fresh_token_request_and_entras_answer() {
        let env = start().await;
        let (contoso, fabrikam) = env.tenants();
        let info = env.emulator.info().clone();
        let fabrikam_id = info.other_tenants[0].tenant_id.clone();
        // Two jobs on the same API: their shared tenants are asked once. A
        // file cache that already holds both tenants' tokens.
        let path = env.config(
            &format!(
                r#"
[[jobs]]
name = "users"
api = "sample"
path = "users"
every = "1h"
tenants = ["{contoso}", "{fabrikam}", "nosuch.example"]

[[jobs]]
name = "me"
api = "sample"
path = "users?$top=1"
every = "1h"

[[jobs]]
name = "users-again"
api = "sample"
path = "users?$top=1"
every = "1h"
tenants = ["{upper}", "{contoso}"]

[cache]
file = "cache.json"
"#,
                upper = fabrikam.to_ascii_uppercase(),
            ),
            "",
        );
        let config = env.load(&path);
        let daemon = Daemon::new(config.clone(), Options::default().clock(clock())).unwrap();
        for t in [&contoso, &fabrikam] {
            daemon
                .client()
                .acquire_token_for_tenant(&[&info.sample_scope], t)
                .await
                .unwrap();
        }
        let stats = env.emulator.stats();
        assert_eq!(stats.token_requests_total(), 2);
        assert_eq!(daemon.client().cached_tokens(), 2, "the cache has both");

        // One at a time: no request can join another's flight in the
        // client, so the count below is this function's own.
        let checks = check_tenants(&config, None, 1).await.unwrap();
        let rows: Vec<(&str, &str)> = checks
            .iter()
            .map(|c| (c.job.as_str(), c.tenant.as_str()))
            .collect();
        let upper = fabrikam.to_ascii_uppercase();
        assert_eq!(
            rows,
            [
                ("users", contoso.as_str()),
                ("users", fabrikam.as_str()),
                ("users", "nosuch.example"),
                ("users-again", upper.as_str()),
                ("users-again", contoso.as_str()),
            ],
            "configuration order; a job without tenants is left out"
        );
        for c in checks.iter().filter(|c| c.tenant != "nosuch.example") {
            assert_eq!(c.api, "sample");
            let CheckOutcome::Ok { roles, expires_on } = &c.outcome else {
                panic!("{c:?}");
            };
            assert_eq!(roles, &["Users.Read.All"], "{c:?}");
            assert!(*expires_on > time::OffsetDateTime::now_utc(), "{c:?}");
            assert_eq!(c.hint(), None);
            assert_eq!(c.to_json()["ok"], true);
        }
        let unknown = &checks[2];
        let CheckOutcome::Refused {
            status,
            codes,
            message,
            trace_id,
            correlation_id,
            ..
        } = &unknown.outcome
        else {
            panic!("{unknown:?}");
        };
        assert_eq!(*status, 400);
        assert_eq!(codes, &["AADSTS90002"]);
        assert!(
            message.starts_with("AADSTS90002: Tenant 'nosuch.example' not found.")
                && !message.contains("Trace ID"),
            "the first line only: {message}"
        );
        assert!(
            trace_id.is_some() && correlation_id.is_some(),
            "{unknown:?}"
        );
        assert_eq!(unknown.hint(), Some("no such tenant: check the name"));
        let json = unknown.to_json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["codes"], serde_json::json!(["AADSTS90002"]));
        assert_eq!(json["hint"], "no such tenant: check the name");
        assert_no_secret(&env, &checks);

        // One new token request per tenant (the unknown one is refused at
        // its discovery document, before any token request), though the
        // daemon's cache and the file cache hold tokens for both.
        let after = env.emulator.stats();
        assert_eq!(after.token_requests_total(), 4, "{after:?}");
        assert_eq!(after.count(&info.client_id, &info.tenant_id, "success"), 2);
        assert_eq!(after.count(&info.client_id, &fabrikam_id, "success"), 2);

        // Eight at a time: the same answers in the same order, and again
        // one request per tenant.
        let parallel = check_tenants(&config, None, 8).await.unwrap();
        assert_eq!(summary(&parallel), summary(&checks));
        assert_eq!(env.emulator.stats().token_requests_total(), 6);

        // Only one job.
        let again = check_tenants(&config, Some("users"), 8).await.unwrap();
        assert_eq!(summary(&again), summary(&checks[..3]));
        assert_eq!(env.emulator.stats().token_requests_total(), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_that_refuses_is_reported_with_its_code_in_any_concurrency() {
        let env = start().await;
        let (contoso, fabrikam) = env.tenants();
        let info = env.emulator.info().clone();
        let fabrikam_id = info.other_tenants[0].tenant_id.clone();
        // Fabrikam's admin revoked the consent: Entra's answer, for that
        // tenant only.
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": format!(
                "AADSTS7000229: The client application {} is missing service principal in the tenant '{fabrikam_id}'.\r\nTrace ID: 7d1c9c55-1a3b-4c2d-9e8f-000000000001\r\nCorrelation ID: 00000000-0000-0000-0000-000000000002\r\nTimestamp: 2025-01-01 00:00:00Z",
                info.client_id
            ),
            "error_codes": [7000229],
            "timestamp": "2025-01-01 00:00:00Z",
            "trace_id": "7d1c9c55-1a3b-4c2d-9e8f-000000000001",
            "correlation_id": "00000000-0000-0000-0000-000000000002",
        });
        env.emulator.add_fault(
            Fault::on(Target::Token)
                .tenant(&fabrikam)
                .status(401)
                .content_type("application/json; charset=utf-8".into())
                .body(body.to_string()),
        );
        let path = env.config(
            &format!(
                r#"
[[jobs]]
name = "users"
api = "sample"
path = "users"
every = "1h"
tenants = ["{fabrikam}", "nosuch-1.example", "{contoso}", "nosuch-2.example", "{contoso_id}", "{fabrikam_id}"]
"#,
                contoso_id = info.tenant_id,
            ),
            "",
        );
        let config = env.load(&path);
        let serial = check_tenants(&config, None, 1).await.unwrap();
        let parallel = check_tenants(&config, None, 8).await.unwrap();
        assert_eq!(summary(&serial), summary(&parallel));
        let tenants: Vec<&str> = parallel.iter().map(|c| c.tenant.as_str()).collect();
        assert_eq!(
            tenants,
            [
                fabrikam.as_str(),
                "nosuch-1.example",
                contoso.as_str(),
                "nosuch-2.example",
                info.tenant_id.as_str(),
                fabrikam_id.as_str(),
            ]
        );
        let ok: Vec<bool> = parallel.iter().map(TenantCheck::is_ok).collect();
        assert_eq!(ok, [false, false, true, false, true, false]);
        for c in [&serial[0], &parallel[0], &parallel[5]] {
            let CheckOutcome::Refused {
                status,
                error,
                codes,
                message,
                trace_id,
                ..
            } = &c.outcome
            else {
                panic!("{c:?}");
            };
            assert_eq!((*status, error.as_str()), (401, "invalid_client"));
            assert_eq!(codes, &["AADSTS7000229"]);
            assert!(
                message.starts_with("AADSTS7000229: The client application")
                    && message.ends_with(&format!(
                        "is missing service principal in the tenant '{fabrikam_id}'."
                    )),
                "{message}"
            );
            assert_eq!(
                trace_id.as_deref(),
                Some("7d1c9c55-1a3b-4c2d-9e8f-000000000001")
            );
            assert!(c.hint().unwrap().starts_with("the app is not consented"));
            assert_eq!(
                c.to_json()["hint"],
                format!(
                    "the app is not consented in this tenant: send the tenant's admin the URL of `apptoken consent-url --tenant {}`",
                    c.tenant
                )
            );
        }
        assert_no_secret(&env, &parallel);
        // Fabrikam (by domain and by id) and Contoso (by domain and by
        // id): two token requests each per check.
        let stats = env.emulator.stats();
        assert_eq!(
            stats.count(&info.client_id, &fabrikam_id, "fault:401"),
            4,
            "{stats:?}"
        );
        assert_eq!(stats.count(&info.client_id, &info.tenant_id, "success"), 4);
        assert_eq!(stats.token_requests_total(), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_customer_who_revokes_is_seen_at_once_and_again_after_a_new_grant() {
        let env = start().await;
        let (contoso, fabrikam) = env.tenants();
        let client_id = env.emulator.info().client_id.clone();
        let path = env.config(
            &format!(
                "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1h\"\ntenants = [\"{contoso}\", \"{fabrikam}\"]\n"
            ),
            "",
        );
        let config = env.load(&path);
        let ok = |checks: &[TenantCheck]| checks.iter().map(TenantCheck::is_ok).collect::<Vec<_>>();
        assert_eq!(
            ok(&check_tenants(&config, None, 4).await.unwrap()),
            [true, true]
        );

        env.emulator.revoke_consent(&fabrikam, &client_id).unwrap();
        let checks = check_tenants(&config, None, 4).await.unwrap();
        assert_eq!(ok(&checks), [true, false]);
        assert!(
            matches!(&checks[1].outcome, CheckOutcome::Refused { status: 401, codes, .. } if codes == &["AADSTS7000229"]),
            "{:?}",
            checks[1]
        );
        assert!(checks[1].hint().unwrap().contains("not consented"));

        env.emulator.grant_consent(&fabrikam, &client_id).unwrap();
        let checks = check_tenants(&config, None, 4).await.unwrap();
        assert_eq!(ok(&checks), [true, true]);
        assert!(
            matches!(&checks[1].outcome, CheckOutcome::Ok { roles, .. } if roles == &["Users.Read.All"]),
            "{:?}",
            checks[1]
        );
    }
}

/// The daemon on a managed identity (issue #20): `credential =
/// "managed-identity"`, the user-assigned one by client id, IMDS where
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST` says (the emulator's) — no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_on_a_managed_identity_with_no_secret() {
    let env = start().await;
    let info = env.emulator.info().clone();
    let user = info
        .managed_identities
        .iter()
        .find(|m| m.kind == "user")
        .unwrap()
        .clone();
    let out = env.dir.path().join("mi-users.jsonl");
    let text = format!(
        r#"
[identity]
credential = "managed-identity"
managed_identity_client_id = "{mi}"

[apis.sample]
base_url = "{api}"
scopes = ["{scope}"]

[[jobs]]
name = "users"
api = "sample"
path = "users?$top=50"
every = "1m"
output = {{ type = "file", path = "mi-users.jsonl" }}
"#,
        mi = user.client_id,
        api = info.sample_api,
        scope = info.sample_scope,
    );
    let path = env.dir.path().join("mi.toml");
    std::fs::write(&path, text).unwrap();
    let imds = info.imds_base_url.clone();
    let config = DaemonConfig::load(&path, &|k| {
        (k == "AZURE_POD_IDENTITY_AUTHORITY_HOST").then(|| imds.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let clock = clock();
    let daemon = Daemon::new(config, Options::default().clock(clock.clone())).unwrap();
    let handle = daemon.handle();
    let task = tokio::spawn(daemon.run());
    until("the scheduler to sleep", || clock.sleepers() >= 2).await;
    clock.advance(Duration::from_secs(60));
    until("the output", || out.exists()).await;
    let items = lines(&out);
    assert_eq!(items.len(), 42, "every user of the identity's tenant");
    assert!(!env.emulator.stats().managed_identity_requests().is_empty());
    handle.shutdown();
    task.await.unwrap().unwrap();
}
