//! The ISV case end to end (issue #17): one multi-tenant app, a generated
//! emulator of many customer tenants, one per-tenant job over all of them.
//! A customer who never consented, or who removes the app, holds back no
//! other customer; its refusal is remembered (backoff on the daemon's
//! manual clock) and it recovers on its own after a grant. Everything binds
//! 127.0.0.1:0; time moves only when a test moves the clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apptoken::ManualClock;
use apptoken_daemon::{Daemon, DaemonConfig, Options, RunOutcome, TenantOutcome};
use apptoken_emulator::generate::{IsvFiles, IsvOptions, write_isv};
use apptoken_emulator::{Config, Emulator, Fault, RunningEmulator, Target};
use serde_json::Value;

struct Isv {
    emulator: RunningEmulator,
    files: IsvFiles,
    dir: tempfile::TempDir,
}

async fn isv(options: IsvOptions) -> Isv {
    isv_edited(options, |t, _| t).await
}

/// With the generated emulator configuration changed by `edit` first.
async fn isv_edited(
    options: IsvOptions,
    edit: impl FnOnce(String, &apptoken_emulator::generate::IsvConfig) -> String,
) -> Isv {
    let dir = tempfile::tempdir().unwrap();
    let files = write_isv(&dir.path().join("emulator"), &options).unwrap();
    let toml = std::fs::read_to_string(&files.config_path).unwrap();
    std::fs::write(&files.config_path, edit(toml, &files.config)).unwrap();
    let emulator = Emulator::start(
        Config::from_file(&files.config_path).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    Isv {
        emulator,
        files,
        dir,
    }
}

impl Isv {
    /// A daemon configuration with one job `users` over the tenants file.
    fn config(&self, output: &str, job: &str, daemon: &str) -> DaemonConfig {
        self.config_named("users", output, job, daemon)
    }

    fn config_named(&self, name: &str, output: &str, job: &str, daemon: &str) -> DaemonConfig {
        let text = format!(
            r#"
[identity]
authority_host = "{host}"
tenant_id = "{home}"
client_id = "{client}"
client_secret_file = "{secret}"

[apis.sample]
base_url = "{api}"
scopes = ["{scope}"]

[daemon]
{daemon}

[[jobs]]
name = "{name}"
api = "sample"
path = "users"
every = "15m"
tenants_file = "{tenants}"
output = {{ type = "file", path = "out/{output}" }}
tenant_concurrency = 8
{job}
"#,
            host = self.emulator.base_url(),
            home = self.files.config.home_tenant,
            client = self.files.config.client_id,
            secret = self.files.secret_path.display(),
            api = self.emulator.info().sample_api,
            scope = self.files.config.scope,
            tenants = self.files.tenants_path.display(),
        );
        let path = self.dir.path().join("daemon.toml");
        std::fs::write(&path, text).unwrap();
        DaemonConfig::load(&path, &|_| None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    fn refusals(&self, i: usize) -> u64 {
        self.emulator.stats().count(
            &self.files.config.client_id,
            &self.files.config.tenant_ids[i],
            "AADSTS7000229",
        )
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn status(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The issue's case: 1,000 customers, one never consented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refusing_customer_of_a_thousand_holds_back_no_other_and_recovers_after_a_grant() {
    const BAD: usize = 500;
    let env = isv(IsvOptions::new(1000)
        .users_per_tenant(3)
        .without_consent([BAD])
        .token_lifetime_secs(86400))
    .await;
    let tenants = env.files.config.tenants.clone();
    let config = env.config(
        "users-{tenant}.jsonl",
        "tenant_backoff = \"1h\"\ntenant_backoff_max = \"4h\"",
        "",
    );
    let clock = Arc::new(ManualClock::starting_now());
    let daemon = Daemon::new(config, Options::default().clock(clock.clone())).unwrap();

    // 1. 999 customers' outputs written; one failure, with Entra's code.
    let s = daemon.run_once().await;
    let job = &s.jobs[0];
    assert_eq!(job.outcome, RunOutcome::Partial, "{:?}", job.error);
    assert_eq!(s.outcome(), RunOutcome::Partial);
    assert_eq!(job.items, 999 * 3);
    for (i, t) in tenants.iter().enumerate() {
        let path = env.out(&format!("users-{t}.jsonl"));
        if i == BAD {
            assert!(!path.exists());
        } else {
            let l = lines(&path);
            assert_eq!(l.len(), 3, "{t}");
            assert!(l.iter().all(|l| l["tenant"] == t.as_str()));
        }
    }
    let bad = &job.tenants[BAD];
    assert_eq!(bad.tenant.as_deref(), Some(tenants[BAD].as_str()));
    assert_eq!(bad.outcome, TenantOutcome::Failed);
    assert_eq!(bad.code.as_deref(), Some("AADSTS7000229"));
    let first_retry = bad.retry_at.unwrap();
    assert_eq!(
        first_retry,
        apptoken::Clock::now(clock.as_ref()) + time::Duration::hours(1)
    );
    let st = status(&env.out("users.status.json"));
    assert_eq!(st["outcome"], "partial");
    assert_eq!(st["counts"]["succeeded"], 999);
    assert_eq!(st["counts"]["failed"], 1);
    assert_eq!(st["tenants"][BAD]["code"], "AADSTS7000229");
    assert_eq!(st["tenants"][BAD]["outcome"], "failed");
    assert!(st["tenants"][BAD]["trace_id"].is_string());
    assert_eq!(env.refusals(BAD), 1);
    let requests = env.emulator.stats().token_requests_total();
    assert_eq!(requests, 1000, "one token request per tenant");

    // 2. Not asked again before its backoff passes; the others are served
    //    from the cache.
    clock.advance(Duration::from_secs(30 * 60));
    let s = daemon.run_once().await;
    assert_eq!(s.jobs[0].tenants[BAD].outcome, TenantOutcome::Skipped);
    assert_eq!(s.jobs[0].outcome, RunOutcome::Partial);
    assert_eq!(env.refusals(BAD), 1, "a backing-off tenant is not asked");
    assert_eq!(env.emulator.stats().token_requests_total(), requests);
    let st = status(&env.out("users.status.json"));
    assert_eq!(st["tenants"][BAD]["outcome"], "skipped");
    assert_eq!(st["tenants"][BAD]["code"], "AADSTS7000229");
    assert_eq!(st["counts"]["skipped"], 1);

    // 3. After it, asked once more: refused again, the backoff doubles.
    clock.advance(Duration::from_secs(31 * 60));
    let s = daemon.run_once().await;
    let bad = &s.jobs[0].tenants[BAD];
    assert_eq!(bad.outcome, TenantOutcome::Failed);
    assert_eq!(env.refusals(BAD), 2);
    assert_eq!(
        bad.retry_at.unwrap(),
        apptoken::Clock::now(clock.as_ref()) + time::Duration::hours(2)
    );

    // 4. The customer's admin consents; the tenant recovers at its next try
    //    on its own, without a restart.
    env.emulator
        .grant_consent(&tenants[BAD], &env.files.config.client_id)
        .unwrap();
    clock.advance(Duration::from_secs(60 * 60));
    let s = daemon.run_once().await;
    assert_eq!(s.jobs[0].tenants[BAD].outcome, TenantOutcome::Skipped);
    clock.advance(Duration::from_secs(61 * 60));
    let s = daemon.run_once().await;
    assert_eq!(
        s.jobs[0].outcome,
        RunOutcome::Success,
        "{:?}",
        s.jobs[0].error
    );
    assert!(s.all_succeeded());
    assert_eq!(
        lines(&env.out(&format!("users-{}.jsonl", tenants[BAD]))).len(),
        3
    );
    assert_eq!(env.refusals(BAD), 2);
    let st = status(&env.out("users.status.json"));
    assert_eq!(st["outcome"], "success");
    assert_eq!(st["counts"]["succeeded"], 1000);
    let left: Vec<String> = std::fs::read_dir(env.dir.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// One output for every tenant: the tenants that succeeded are written, a
/// customer who removed the app keeps its previous lines (byte for byte),
/// and an API's 403 (insufficient roles) backs off like a token refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_output_keeps_a_failed_tenants_previous_lines() {
    // The fourth customer's admin granted too little: no role, so the API answers
    // 403 (Authorization_RequestDenied) to its tokens.
    let env = isv_edited(IsvOptions::new(5).users_per_tenant(3), |toml, c| {
        let fourth = format!("tenant = \"{}\"", c.tenant_ids[3]);
        let blocks: Vec<String> = toml
            .split("\n[[grants]]")
            .map(|b| {
                if b.starts_with(&format!("\n{fourth}")) {
                    b.replace("roles = [\"Users.Read.All\"]", "roles = []")
                } else {
                    b.to_string()
                }
            })
            .collect();
        blocks.join("\n[[grants]]")
    })
    .await;
    let tenants = env.files.config.tenants.clone();
    assert!(tenants[3].starts_with("customer4."), "{tenants:?}");
    let config = env.config("users.jsonl", "", "");
    let clock = Arc::new(ManualClock::starting_now());
    let daemon = Daemon::new(config, Options::default().clock(clock.clone())).unwrap();
    let s = daemon.run_once().await;
    assert_eq!(
        s.jobs[0].outcome,
        RunOutcome::Partial,
        "{:?}",
        s.jobs[0].tenants
    );
    assert_eq!(
        s.jobs[0].tenants[3].code.as_deref(),
        Some("HTTP 403 Authorization_RequestDenied")
    );
    assert!(
        s.jobs[0].tenants[3].retry_at.is_some(),
        "the API's 403 backs off like a token refusal"
    );
    let out = env.out("users.jsonl");
    let before = lines(&out);
    assert_eq!(before.len(), 12, "customer 3 never had lines");
    let of = |l: &[Value], t: &str| -> Vec<Value> {
        l.iter().filter(|l| l["tenant"] == t).cloned().collect()
    };

    // Customer 1 removes the app. Past the cached tokens' lifetime (the
    // emulator's default hour) and customer 3's backoff (5 min).
    env.emulator
        .revoke_consent(&tenants[1], &env.files.config.client_id)
        .unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    let s = daemon.run_once().await;
    let job = &s.jobs[0];
    assert_eq!(job.outcome, RunOutcome::Partial, "{:?}", job.error);
    assert_eq!(
        job.tenants[1].code.as_deref(),
        Some("AADSTS7000229"),
        "{:#?}",
        job.tenants
    );
    assert_eq!(job.tenants[3].outcome, TenantOutcome::Failed);
    assert!(job.tenants[1].kept, "its previous lines are kept");
    assert!(!job.tenants[3].kept, "it never had lines to keep");
    let after = lines(&out);
    assert_eq!(after.len(), 12, "every tenant's lines are there");
    assert_eq!(of(&after, &tenants[1]), of(&before, &tenants[1]), "kept");
    assert!(!job.tenants[0].kept && job.tenants[0].outcome == TenantOutcome::Succeeded);
    // Configuration order, each tenant's lines together.
    let order: Vec<&str> = after
        .iter()
        .map(|l| l["tenant"].as_str().unwrap())
        .collect();
    let mut expected = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        if i != 3 {
            expected.extend([t.as_str(); 3]);
        }
    }
    assert_eq!(order, expected);

    // Both back off: the next run asks neither, and keeps their lines again.
    let api_403 = env.emulator.stats().sample_api_requests(403);
    let s = daemon.run_once().await;
    assert_eq!(s.jobs[0].tenants[1].outcome, TenantOutcome::Skipped);
    assert_eq!(s.jobs[0].tenants[3].outcome, TenantOutcome::Skipped);
    assert_eq!(env.emulator.stats().sample_api_requests(403), api_403);
    assert_eq!(lines(&out).len(), 12);

    // Nothing succeeded at all: the previous file stays untouched (400:
    // not retried, not a refusal).
    env.emulator
        .add_fault(Fault::on(Target::SampleApi).status(400));
    let bytes = std::fs::read(&out).unwrap();
    let s = daemon.run_once().await;
    assert_eq!(s.jobs[0].outcome, RunOutcome::Failure);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

/// Waits until `f` holds; the work runs on other tasks. The deadline only
/// turns a hang into a failure.
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The running daemon: `/readyz` names the failing tenant with its code,
/// `/metrics` counts the partial run, the tenants' outcomes and the
/// tenants in backoff; the tenants file is re-read when it changes (a list
/// with a problem is not used) without a restart or a new client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_shows_failing_tenants_and_rereads_its_tenant_list() {
    let env = isv(IsvOptions::new(3).without_consent([1])).await;
    let tenants = env.files.config.tenants.clone();
    let config = env.config_named(
        "scheduled",
        "users-{tenant}.jsonl",
        "run_at_start = true",
        "listen = \"127.0.0.1:0\"\ncredential_poll = \"10s\"",
    );
    let clock = Arc::new(ManualClock::starting_now());
    let mut daemon = Daemon::new(config, Options::default().clock(clock.clone())).unwrap();
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
    let status_file = env.out("scheduled.status.json");
    until("the first run's status", async || status_file.exists()).await;
    let st = status(&status_file);
    assert_eq!(st["outcome"], "partial");
    assert_eq!(st["tenants"][1]["code"], "AADSTS7000229");

    let (code, body) = get("/readyz").await;
    assert_eq!(
        code, 200,
        "failing tenants never make the daemon unready: {body}"
    );
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["tenants_failing"], 1, "{body}");
    assert_eq!(ready["tenants"][0]["tenant"], tenants[1].as_str());
    assert_eq!(ready["tenants"][0]["code"], "AADSTS7000229");
    assert_eq!(ready["tenants"][0]["refused"], true);
    assert!(ready["tenants"][0]["retry_at"].is_string());
    let (_, metrics) = get("/metrics").await;
    for m in [
        "apptoken_daemon_job_runs_total{job=\"scheduled\",outcome=\"partial\"} 1",
        "apptoken_daemon_tenant_runs_total{job=\"scheduled\",outcome=\"succeeded\"} 2",
        "apptoken_daemon_tenant_runs_total{job=\"scheduled\",outcome=\"failed\"} 1",
        "apptoken_daemon_tenants_backoff{job=\"scheduled\"} 1",
    ] {
        assert!(metrics.contains(m), "{m} missing from\n{metrics}");
    }

    // A list with a problem is not used: the failing tenant stays listed.
    std::fs::write(
        &env.files.tenants_path,
        format!("{}\nnot/a/tenant\n", tenants[0]),
    )
    .unwrap();
    clock.advance(Duration::from_secs(10));
    until("the bad list to be refused", async || {
        get("/metrics")
            .await
            .1
            .contains("apptoken_daemon_tenant_list_reloads_total{outcome=\"failure\"} 1")
    })
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&get("/readyz").await.1).unwrap()["tenants_failing"],
        1
    );

    // The customer is offboarded: removed from the list. It leaves
    // /readyz at the next poll, and the next run has two tenants.
    let kept = format!(
        "# customers\n{}\n{}  # since 2026\n",
        tenants[0], tenants[2]
    );
    std::fs::write(&env.files.tenants_path, kept).unwrap();
    clock.advance(Duration::from_secs(10));
    until("the new list", async || {
        let r: Value = serde_json::from_str(&get("/readyz").await.1).unwrap();
        r.get("tenants_failing").is_none()
    })
    .await;
    let tokens = env.emulator.stats().token_requests_total();
    clock.advance(Duration::from_secs(15 * 60));
    until("the next run", async || {
        status(&status_file)["tenants"].as_array().unwrap().len() == 2
    })
    .await;
    let st = status(&status_file);
    assert_eq!(st["outcome"], "success");
    assert_eq!(
        env.emulator.stats().token_requests_total(),
        tokens,
        "the client and its cache were kept"
    );
    handle.shutdown();
    task.await.unwrap().unwrap();
}
