//! Soak test of `apptoken run` (issue #16): the daemon as a child process,
//! five jobs over four tenants (multi-page, capped, single-item) against the
//! emulator child, its `[cache] redis` a `redis-server` of the test's own on
//! a unix socket, and faults injected all the time from a seeded RNG. See
//! docs/SOAK.md.
//!
//! `APPTOKEN_SOAK_SECS` (default 60) bounds the faulty phase;
//! `APPTOKEN_SOAK_SEED` replays a seed (the same faults in the same order;
//! how they meet the daemon's requests still depends on timing).
//!
//! How it stays checkable:
//!
//! * Tokens live 24 h (`token_lifetime_secs = 86400`) but the emulator
//!   answers `refresh_in = 4`, so the daemon refreshes every few seconds,
//!   under the faults, while the token it holds stays valid for the whole
//!   run. Faults start only once every job has succeeded (every tenant has
//!   a valid token cached). Success bodies with absurd numbers carry a real
//!   token (fetched by the test as another app, whose requests are never
//!   faulted), so whatever the library makes of the numbers the token works.
//! * Error faults on the identity provider (dropped connections, 5xx, 429
//!   and 503 with assorted `Retry-After`, delays, 200s that are not a usable
//!   answer) hit tenants t0..t2 only. Tenant t3 gets only usable success
//!   bodies with absurd lifetimes (0 s, 1e30, u64::MAX, absurd `refresh_in`):
//!   a 0-second token may leave the cache without a valid token, so its
//!   tenant never sees an error. Huge lifetimes go to every tenant.
//! * The sample API is faulted only on `/v1.0/users/` (one user by name),
//!   which only the job `victim` calls: the *allowed* failures are the
//!   victim's (retries exhausted, a `Retry-After` above `max_retry_wait`, a
//!   5xx, a body that is not JSON, and a token refused after a 401 when the
//!   forced refresh meets an identity provider fault). Every other job must
//!   never fail: a valid token was always cached for it.
//! * Redis is killed and restarted (empty) now and then. A run holding a
//!   fleet lease across a restart loses it (`outcome="lost"`, by design: the
//!   output is not committed); at most one run per job per restart.
//!
//! Checked all along and at the end: no "panicked" in the daemon's stderr;
//! the daemon alive until SIGTERM and exit 0 after it; every output file
//! always complete JSONL (the expected users of every tenant, in order, each
//! tenant's from one tick); at most one temporary file per job (per tenant,
//! plus one, for a job with tenants); `/readyz` 200;
//! `apptoken_cache_entries` <= tenants x scopes; Redis keys, open file
//! descriptors and memory bounded; after the faults are cleared, every job
//! (the victim too) succeeds again and the shared store is "up" again.
//! Waits poll for a condition (bounded); wall-clock time only bounds the run.
//!
//! Over 500 lines: one scenario — the child processes, the seeded fault
//! injector, the invariant checker and the report — whose parts are only
//! meaningful together and run as one test; docs/SOAK.md describes them.

#[path = "../../apptoken-redis/tests/common/mod.rs"]
mod redis_server;
use redis_server::{Redis, SAMPLE_API_APP_ID};

mod support;
use support::{ChildGuard, apptoken, start_emulator, write_private};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const DAEMON_APP: &str = "5a0c7e21-3b4d-4c6e-9f81-2a3b4c5d6e7f";
const DAEMON_SECRET: &str = "soak-daemon-secret-not-a-real-one";
/// The test's own app: it fetches real tokens to put in absurd success
/// bodies. Faults name the daemon's client id, so they never hit it.
const TEST_APP: &str = "6b1d8f32-4c5e-4d7f-8a92-3b4c5d6e7f80";
const TEST_SECRET: &str = "soak-test-app-secret-not-a-real-one";
const SCOPE: &str = "api://apptoken-sample-api/.default";
const VICTIM_UPN: &str = "soak.victim@soak.example";
/// Users per tenant (t3 has exactly `capped`'s max_items).
const USERS: [usize; 4] = [25, 9, 14, 5];
/// Tenants that get error faults on the identity provider.
const ERROR_TENANTS: usize = 3;
/// The tenant that gets absurd lifetimes only.
const LIFETIME_TENANT: usize = 3;
const REFRESH_IN_SECS: u64 = 4;
/// `[apis.sample] timeout`, in seconds.
const API_TIMEOUT_SECS: u64 = 20;
const DEADLINE: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// The world: tenants, users, jobs.
// ---------------------------------------------------------------------------

struct TenantSpec {
    id: String,
    domain: String,
    /// (id, user principal name), in the emulator's order.
    users: Vec<(String, String)>,
}

fn tenants() -> Vec<TenantSpec> {
    USERS
        .iter()
        .enumerate()
        .map(|(t, &n)| TenantSpec {
            id: format!("5c0a0000-0000-4000-8000-{:012x}", t + 1),
            domain: format!("t{t}.soak.example"),
            users: (0..n)
                .map(|u| {
                    let upn = if u == 2 {
                        VICTIM_UPN.to_string()
                    } else {
                        format!("user{u}@t{t}.soak.example")
                    };
                    (format!("5c0a{t:04x}-0000-4000-8000-{u:012x}"), upn)
                })
                .collect(),
        })
        .collect()
}

fn emulator_toml(tenants: &[TenantSpec]) -> String {
    let mut t = format!(
        "token_lifetime_secs = 86400\nrefresh_in_secs = {REFRESH_IN_SECS}\nprimary_app = \"{DAEMON_APP}\"\n\n"
    );
    for (i, ten) in tenants.iter().enumerate() {
        t.push_str(&format!(
            "[[tenants]]\nid = \"{}\"\ndomains = [\"{}\"]\ndisplay_name = \"Soak {i}\"\n\n",
            ten.id, ten.domain
        ));
    }
    t.push_str(&format!(
        "[[resources]]\napp_id = \"{SAMPLE_API_APP_ID}\"\napp_id_uri = \"api://apptoken-sample-api\"\nroles = [{{ value = \"Users.Read.All\" }}]\n\n"
    ));
    for (app, secret) in [(DAEMON_APP, DAEMON_SECRET), (TEST_APP, TEST_SECRET)] {
        t.push_str(&format!(
            "[[apps]]\nclient_id = \"{app}\"\nhome_tenant = \"{}\"\nmulti_tenant = true\nrequired_roles = [{{ resource = \"api://apptoken-sample-api\", roles = [\"Users.Read.All\"] }}]\n  [[apps.secrets]]\n  value = \"{secret}\"\n\n",
            tenants[0].domain
        ));
        for ten in tenants {
            t.push_str(&format!(
                "[[grants]]\ntenant = \"{}\"\nclient_id = \"{app}\"\nresource = \"api://apptoken-sample-api\"\nroles = [\"Users.Read.All\"]\n\n",
                ten.domain
            ));
        }
    }
    for (i, ten) in tenants.iter().enumerate() {
        for (u, (id, upn)) in ten.users.iter().enumerate() {
            t.push_str(&format!(
                "[[users]]\ntenant = \"{}\"\nid = \"{id}\"\ndisplay_name = \"Soak User {i}-{u}\"\nuser_principal_name = \"{upn}\"\njob_title = \"Soaker\"\n\n",
                ten.domain
            ));
        }
    }
    t.push_str("[sample_api]\nresource = \"api://apptoken-sample-api\"\nrequired_role = \"Users.Read.All\"\n");
    t
}

struct JobSpec {
    name: &'static str,
    path: &'static str,
    every: &'static str,
    /// Indexes into the tenants; `None`: the identity's tenant, no `tenant` field.
    tenants: Option<Vec<usize>>,
    paging: bool,
    max_items: Option<usize>,
    /// The only job whose API path is faulted: its failures are allowed.
    victim: bool,
    /// (tenant domain as written in output lines, expected user ids in order).
    expected: Vec<(Option<String>, Vec<String>)>,
}

fn jobs(tenants: &[TenantSpec]) -> Vec<JobSpec> {
    let mut jobs = vec![
        JobSpec {
            name: "users_p4",
            path: "users?$top=4",
            every: "2s",
            tenants: Some(vec![0, 1, 2, 3]),
            paging: true,
            max_items: None,
            victim: false,
            expected: Vec::new(),
        },
        JobSpec {
            name: "users_p7",
            path: "users?$top=7",
            every: "3s",
            tenants: Some(vec![0, 1, 3]),
            paging: true,
            max_items: None,
            victim: false,
            expected: Vec::new(),
        },
        JobSpec {
            name: "capped",
            path: "users?$top=3",
            every: "5s",
            tenants: Some(vec![0, 1, 2, 3]),
            paging: true,
            max_items: Some(5),
            victim: false,
            expected: Vec::new(),
        },
        JobSpec {
            name: "home",
            path: "users?$top=10",
            every: "2s",
            tenants: None,
            paging: true,
            max_items: None,
            victim: false,
            expected: Vec::new(),
        },
        JobSpec {
            name: "victim",
            path: "users/soak.victim@soak.example",
            every: "2s",
            tenants: Some(vec![0, 1, 2, 3]),
            paging: false,
            max_items: None,
            victim: true,
            expected: Vec::new(),
        },
    ];
    for job in &mut jobs {
        let of = |t: usize| -> Vec<String> {
            let users = &tenants[t].users;
            if job.victim {
                return users
                    .iter()
                    .filter(|(_, upn)| upn == VICTIM_UPN)
                    .map(|(id, _)| id.clone())
                    .collect();
            }
            let n = job.max_items.map_or(users.len(), |m| m.min(users.len()));
            users[..n].iter().map(|(id, _)| id.clone()).collect()
        };
        job.expected = match &job.tenants {
            None => vec![(None, of(0))],
            Some(ts) => ts
                .iter()
                .map(|&t| (Some(tenants[t].domain.clone()), of(t)))
                .collect(),
        };
    }
    jobs
}

fn daemon_toml(
    base: &str,
    tenants: &[TenantSpec],
    jobs: &[JobSpec],
    redis: &str,
    dir: &Path,
) -> String {
    let mut t = format!(
        "[identity]\nauthority_host = \"{base}\"\ntenant_id = \"{}\"\nclient_id = \"{DAEMON_APP}\"\nclient_secret_file = \"{}\"\n\n\
         [apis.sample]\nbase_url = \"{base}/v1.0\"\nscopes = [\"{SCOPE}\"]\ntimeout = \"{API_TIMEOUT_SECS}s\"\nmax_concurrency = 8\nmax_retries = 3\nmax_retry_wait = \"4s\"\n\n\
         [cache]\nredis = \"{redis}\"\nkey_file = \"{}\"\n\n\
         [daemon]\nlisten = \"127.0.0.1:0\"\nlog_format = \"json\"\ngrace_period = \"5m\"\njob_lease = \"3s\"\n\n",
        tenants[0].domain,
        dir.join("daemon-secret").display(),
        dir.join("cache.key").display(),
    );
    for job in jobs {
        t.push_str(&format!(
            "[[jobs]]\nname = \"{}\"\napi = \"sample\"\npath = \"{}\"\nevery = \"{}\"\nrun_at_start = true\npaging = {}\n",
            job.name, job.path, job.every, job.paging
        ));
        if let Some(m) = job.max_items {
            t.push_str(&format!("max_items = {m}\n"));
        }
        if let Some(ts) = &job.tenants {
            let list: Vec<String> = ts
                .iter()
                .map(|&i| format!("\"{}\"", tenants[i].domain))
                .collect();
            t.push_str(&format!("tenants = [{}]\n", list.join(", ")));
        }
        if job.victim {
            // Its delayed requests hold at most two of the API's permits.
            t.push_str("tenant_concurrency = 2\n");
        }
        t.push_str(&format!(
            "output = {{ type = \"file\", path = \"{}\" }}\n\n",
            output_path(dir, job.name).display()
        ));
    }
    t
}

fn output_path(dir: &Path, job: &str) -> PathBuf {
    dir.join("out").join(format!("{job}.jsonl"))
}

// ---------------------------------------------------------------------------
// A seeded RNG (splitmix64): the faults, their order and their pacing.
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn index(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 99) < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.index(xs.len())]
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

// ---------------------------------------------------------------------------
// Faults.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    /// Error answers from the identity provider (tenants t0..t2).
    IdpError,
    /// Usable success answers with absurd lifetimes.
    Lifetime,
    /// The sample API, on the victim's path only.
    Api,
}

struct Planned {
    kind: &'static str,
    category: Category,
    json: Value,
    times: u64,
}

fn http_date(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// Small ones, HTTP dates (near, past, year 9999), absurd numbers, junk.
fn retry_after(rng: &mut Rng) -> String {
    let now = time::OffsetDateTime::now_utc();
    match rng.range(0, 11) {
        0 => "0".into(),
        1 => "1".into(),
        2 => "3".into(),
        3 => http_date(now + time::Duration::seconds(rng.range(1, 3) as i64)),
        4 => http_date(now - time::Duration::minutes(5)),
        5 => "Fri, 31 Dec 9999 23:59:59 GMT".into(),
        6 => "300000000000".into(),
        7 => "18446744073709551615".into(),
        8 => "18446744073709551616".into(),
        9 => "-1".into(),
        10 => "1.5".into(),
        _ => "soon".into(),
    }
}

fn token_fault(tenant: &str, times: u64) -> Value {
    json!({"target": "token", "client_id": DAEMON_APP, "tenant": tenant, "times": times})
}

fn success_body(expires_in: &str, extra: &str, jwt: &str) -> String {
    format!(
        "{{\"token_type\":\"Bearer\",\"expires_in\":{expires_in}{extra},\"access_token\":\"{jwt}\"}}"
    )
}

fn idp_error_fault(rng: &mut Rng, tenants: &[TenantSpec], jwts: &[String]) -> Planned {
    let t = rng.index(ERROR_TENANTS);
    let times = rng.range(1, 3);
    let mut f = token_fault(&tenants[t].domain, times);
    let kind = match rng.range(0, 9) {
        0 => {
            f["drop_connection"] = json!(true);
            if rng.chance(30) {
                f["delay_ms"] = json!(rng.range(100, 3000));
            }
            "token: dropped connection"
        }
        1 => {
            f["status"] = json!(*rng.pick(&[500u16, 502, 504]));
            if rng.chance(50) {
                f["body"] = json!("upstream failure");
                f["content_type"] = json!("text/plain");
            }
            "token: 5xx"
        }
        2 => {
            f["preset"] = json!("unavailable");
            if rng.chance(50) {
                f["retry_after"] = json!(retry_after(rng));
            }
            "token: 503 (Entra body)"
        }
        3 => {
            f["status"] = json!(429);
            f["retry_after"] = json!(retry_after(rng));
            f["body"] = json!("Too Many Requests");
            f["content_type"] = json!("text/plain; charset=utf-8");
            "token: 429 + Retry-After"
        }
        4 => {
            f["status"] = json!(503);
            f["retry_after"] = json!(retry_after(rng));
            "token: 503 + Retry-After"
        }
        5 => {
            // Mostly below the library's 30 s request timeout, now and then past it.
            let ms = if rng.chance(5) {
                rng.range(31_000, 34_000)
            } else {
                rng.range(200, 8_000)
            };
            f["delay_ms"] = json!(ms);
            "token: delay"
        }
        6 => {
            let e = *rng.pick(&[
                "-5",
                "-1e30",
                "\"18446744073709551616\"",
                "\"soon\"",
                "null",
                "true",
                "{}",
            ]);
            f["status"] = json!(200);
            f["body"] = json!(success_body(e, "", &jwts[t]));
            f["content_type"] = json!("application/json; charset=utf-8");
            "token: 200 with an unusable expires_in"
        }
        7 => {
            let (body, ct) = *rng.pick(&[
                ("<html><body>Sign in</body></html>", "text/html"),
                ("{\"access_token\":", "application/json"),
                ("{}", "application/json"),
                ("[]", "application/json"),
                (
                    "{\"access_token\":\"\",\"token_type\":\"Bearer\",\"expires_in\":3599}",
                    "application/json",
                ),
                (
                    "{\"token_type\":\"Bearer\",\"expires_in\":3599}",
                    "application/json",
                ),
            ]);
            f["status"] = json!(200);
            f["body"] = json!(body);
            f["content_type"] = json!(ct);
            "token: 200 that is not a token answer"
        }
        8 => {
            f = json!({"target": "discovery", "tenant": tenants[t].domain, "times": times});
            if rng.chance(50) {
                f["drop_connection"] = json!(true);
            } else {
                f["status"] = json!(500);
            }
            "discovery: 500 or dropped"
        }
        _ => {
            f["status"] = json!(*rng.pick(&[500u16, 503]));
            f["delay_ms"] = json!(rng.range(500, 5_000));
            "token: slow 5xx"
        }
    };
    Planned {
        kind,
        category: Category::IdpError,
        json: f,
        times,
    }
}

fn lifetime_fault(rng: &mut Rng, tenants: &[TenantSpec], jwts: &[String]) -> Planned {
    let times = rng.range(1, 2);
    // An absurd refresh_in stops t3's refreshes for a minute: rarely.
    let (kind, t, body) = match *rng.pick(&[0, 0, 0, 0, 1, 1, 1, 1, 2]) {
        0 => {
            // Huge lifetimes, on any tenant; a small refresh_in keeps the
            // refreshes (and their faults) coming.
            let t = rng.index(tenants.len());
            let e = *rng.pick(&[
                "1e30",
                "18446744073709551615",
                "300000000000",
                "18446744073709551616",
                "1.7976931348623157e308",
                "\"18446744073709551615\"",
            ]);
            let mut extra = format!(",\"refresh_in\":{}", rng.range(1, 15));
            if rng.chance(50) {
                extra.push_str(&format!(
                    ",\"ext_expires_in\":{}",
                    rng.pick(&["1e30", "18446744073709551615", "0"])
                ));
            }
            (
                "token: 200 with a huge expires_in",
                t,
                success_body(e, &extra, &jwts[t]),
            )
        }
        1 => {
            let e = *rng.pick(&["0", "0.0", "0.5", "1", "\"0\""]);
            let extra = *rng.pick(&[
                "",
                ",\"refresh_in\":0",
                ",\"refresh_in\":1",
                ",\"ext_expires_in\":0",
            ]);
            (
                "token: 200 with expires_in 0 (t3)",
                LIFETIME_TENANT,
                success_body(e, extra, &jwts[LIFETIME_TENANT]),
            )
        }
        _ => {
            let r = *rng.pick(&["18446744073709551615", "1e30", "300000000000"]);
            let extra = format!(",\"refresh_in\":{r},\"ext_expires_in\":18446744073709551615");
            (
                "token: 200 with an absurd refresh_in (t3)",
                LIFETIME_TENANT,
                success_body("120", &extra, &jwts[LIFETIME_TENANT]),
            )
        }
    };
    let mut f = token_fault(&tenants[t].domain, times);
    f["status"] = json!(200);
    f["body"] = json!(body);
    f["content_type"] = json!("application/json; charset=utf-8");
    Planned {
        kind,
        category: Category::Lifetime,
        json: f,
        times,
    }
}

fn api_fault(rng: &mut Rng) -> Planned {
    let times = rng.range(1, 3);
    let mut f = json!({"path": "/v1.0/users/", "times": times});
    let graph_error = |code: &str| {
        json!({"error": {"code": code, "message": "injected by the soak test"}}).to_string()
    };
    let kind = match rng.range(0, 7) {
        0 => {
            f["drop_connection"] = json!(true);
            if rng.chance(30) {
                f["delay_ms"] = json!(rng.range(100, 3000));
            }
            "api: dropped connection"
        }
        1 => {
            f["status"] = json!(*rng.pick(&[500u16, 502, 504]));
            f["body"] = json!(graph_error("generalException"));
            f["content_type"] = json!("application/json");
            "api: 5xx"
        }
        2 => {
            f["status"] = json!(503);
            f["retry_after"] = json!(retry_after(rng));
            "api: 503 + Retry-After"
        }
        3 => {
            f["status"] = json!(429);
            f["retry_after"] = json!(retry_after(rng));
            f["body"] = json!(graph_error("TooManyRequests"));
            f["content_type"] = json!("application/json");
            "api: 429 + Retry-After"
        }
        4 => {
            let ms = if rng.chance(10) {
                rng.range(
                    API_TIMEOUT_SECS * 1000 + 500,
                    API_TIMEOUT_SECS * 1000 + 4000,
                )
            } else {
                rng.range(200, 6_000)
            };
            f["delay_ms"] = json!(ms);
            "api: delay"
        }
        5 => {
            f["status"] = json!(401);
            f["body"] = json!(graph_error("InvalidAuthenticationToken"));
            f["content_type"] = json!("application/json");
            "api: 401 (forced token refresh)"
        }
        6 => {
            f["status"] = json!(200);
            f["body"] = json!("<html>maintenance</html>");
            f["content_type"] = json!("text/html");
            "api: 200 that is not JSON"
        }
        _ => {
            f["status"] = json!(429);
            "api: 429 without Retry-After"
        }
    };
    Planned {
        kind,
        category: Category::Api,
        json: f,
        times,
    }
}

/// A fault registered in the emulator.
struct Live {
    kind: &'static str,
    category: Category,
    times: u64,
    applied: u64,
    remove_at: Instant,
}

#[derive(Default)]
struct FaultBook {
    live: BTreeMap<u64, Live>,
    /// kind -> (injected, fired).
    by_kind: BTreeMap<&'static str, (u64, u64)>,
    times_total: u64,
}

impl FaultBook {
    fn pending(&self, c: Category) -> usize {
        self.live.values().filter(|l| l.category == c).count()
    }

    fn add(&mut self, emu: &str, p: Planned, remove_at: Instant) {
        let a = request(
            emu,
            "POST",
            "/_emulator/faults",
            "application/json",
            &p.json.to_string(),
        )
        .expect("the emulator answers");
        assert_eq!(a.status, 200, "fault {} refused: {}", p.json, a.body);
        let id = serde_json::from_str::<Value>(&a.body).unwrap()["id"]
            .as_u64()
            .unwrap();
        self.by_kind.entry(p.kind).or_default().0 += 1;
        self.times_total += p.times;
        self.live.insert(
            id,
            Live {
                kind: p.kind,
                category: p.category,
                times: p.times,
                applied: 0,
                remove_at,
            },
        );
    }

    /// Accounts for faults that fired, removes those past their time.
    fn prune(&mut self, emu: &str, now: Instant) {
        let Ok(a) = request(emu, "GET", "/_emulator/faults", "", "") else {
            return;
        };
        let listed: BTreeMap<u64, u64> = serde_json::from_str::<Value>(&a.body)
            .ok()
            .and_then(|v| v["faults"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| Some((f["id"].as_u64()?, f["applied"].as_u64().unwrap_or(0))))
            .collect();
        let ids: Vec<u64> = self.live.keys().copied().collect();
        for id in ids {
            let gone = match listed.get(&id) {
                None => {
                    // Spent: it fired `times` times and removed itself.
                    let l = &self.live[&id];
                    Some(l.times)
                }
                Some(&applied) => {
                    let l = self.live.get_mut(&id).unwrap();
                    l.applied = applied;
                    if now >= l.remove_at {
                        let _ = request(emu, "DELETE", &format!("/_emulator/faults/{id}"), "", "");
                        Some(applied)
                    } else {
                        None
                    }
                }
            };
            if let Some(fired) = gone {
                let l = self.live.remove(&id).unwrap();
                self.by_kind.entry(l.kind).or_default().1 += fired;
            }
        }
    }

    fn clear(&mut self, emu: &str) {
        self.prune(emu, Instant::now());
        let _ = request(emu, "DELETE", "/_emulator/faults", "", "");
        for (_, l) in std::mem::take(&mut self.live) {
            self.by_kind.entry(l.kind).or_default().1 += l.applied;
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1 to the emulator and the daemon's listener (loopback only).
// ---------------------------------------------------------------------------

struct Answer {
    status: u16,
    body: String,
}

fn request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<Answer, String> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    assert!(sock.ip().is_loopback(), "{addr} is not loopback");
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    s.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let ct = if content_type.is_empty() {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("write {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read {addr}{path}: {e}"))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: no status"))?;
    let rest = &raw[end + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        b = &b[eol + 2..];
        if size == 0 || size > b.len() {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or_default();
    }
    out
}

/// A real token for `tenant`, as the test's own app (never faulted).
fn fetch_jwt(emu: &str, tenant_id: &str) -> String {
    let form = format!(
        "grant_type=client_credentials&client_id={TEST_APP}&client_secret={TEST_SECRET}&scope=api%3A%2F%2Fapptoken-sample-api%2F.default"
    );
    let a = request(
        emu,
        "POST",
        &format!("/{tenant_id}/oauth2/v2.0/token"),
        "application/x-www-form-urlencoded",
        &form,
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    serde_json::from_str::<Value>(&a.body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------
// What the daemon shows: metrics, its log, its outputs, /proc.
// ---------------------------------------------------------------------------

#[derive(Default, Clone)]
struct Metrics(Vec<(String, BTreeMap<String, String>, f64)>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((n, rest)) => (n.to_string(), labels(rest.trim_end_matches('}'))),
            };
            out.push((name, labels, value));
        }
        Metrics(out)
    }

    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn runs(&self, job: &str, outcome: &str) -> u64 {
        self.sum(
            "apptoken_daemon_job_runs_total",
            &[("job", job), ("outcome", outcome)],
        ) as u64
    }
}

fn labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').trim().to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// The daemon's standard error, read as it grows.
struct LogTail {
    file: std::fs::File,
    partial: Vec<u8>,
    listen: Option<String>,
    panics: Vec<String>,
    panic_message_next: bool,
    /// (job, error) of every "job run failed".
    failed: Vec<(String, String)>,
    /// (job, "tenant T: error") of every tenant's failure in a run.
    tenant_failed: Vec<(String, String)>,
    /// (job, tenant) -> how many 401s the API answered.
    unauthorized: BTreeMap<(String, String), u64>,
    /// job -> retries of API requests (transport errors, 429/503).
    api_retries: BTreeMap<String, u64>,
    lines: u64,
}

impl LogTail {
    fn open(path: &Path) -> LogTail {
        LogTail {
            file: std::fs::File::open(path).unwrap(),
            partial: Vec::new(),
            listen: None,
            panics: Vec::new(),
            panic_message_next: false,
            failed: Vec::new(),
            tenant_failed: Vec::new(),
            unauthorized: BTreeMap::new(),
            api_retries: BTreeMap::new(),
            lines: 0,
        }
    }

    fn poll(&mut self) {
        let mut new = Vec::new();
        self.file.read_to_end(&mut new).unwrap();
        self.partial.extend_from_slice(&new);
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            self.line(&String::from_utf8_lossy(&line));
        }
    }

    /// Also whatever is left without a final newline (after the exit).
    fn finish(&mut self) {
        self.poll();
        if !self.partial.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            self.line(&rest);
        }
    }

    fn line(&mut self, line: &str) {
        self.lines += 1;
        if self.panic_message_next {
            // The line after "panicked at FILE:LINE:COL:" holds the message.
            self.panic_message_next = false;
            if let Some(last) = self.panics.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        }
        if line.contains("panicked") {
            self.panics.push(line.trim().to_string());
            self.panic_message_next = line.trim_end().ends_with(':');
        }
        if self.listen.is_none()
            && let Some(at) = line.find("health and metrics on http://")
        {
            self.listen = line[at + 29..]
                .split_whitespace()
                .next()
                .map(str::to_string);
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let f = if v["fields"].is_object() {
            &v["fields"]
        } else {
            &v
        };
        let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
        let message = s("message");
        if message.starts_with("job run failed") {
            self.failed.push((s("job"), s("error")));
        } else if message.starts_with("the tenant's run failed")
            || message.starts_with("the tenant refused")
        {
            // A tenant's failure is its own (issue #17): logged per tenant.
            self.tenant_failed
                .push((s("job"), format!("tenant {}: {}", s("tenant"), s("error"))));
        } else if message.starts_with("the API answered 401") {
            *self
                .unauthorized
                .entry((s("job"), s("tenant")))
                .or_default() += 1;
        } else if message.starts_with("API request failed; retrying")
            || message.starts_with("the API is throttling")
        {
            *self.api_retries.entry(s("job")).or_default() += 1;
        }
    }
}

const LOST: &str = "lost its fleet lease";

/// Checks one output file: `Ok(None)` when it does not exist, else the
/// tick of the complete run it holds.
fn check_output(path: &Path, job: &JobSpec) -> Result<Option<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if !text.ends_with('\n') {
        return Err(format!(
            "does not end with a newline ({} bytes)",
            text.len()
        ));
    }
    // Each tenant's lines come from one run; a shared file may hold several
    // runs across tenants (a tenant that failed or lost its lease keeps its
    // previous lines, issue #17).
    let mut ticks: BTreeMap<Option<String>, String> = BTreeMap::new();
    let mut got: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", n + 1))?;
        if v["job"] != job.name {
            return Err(format!("line {}: job {}", n + 1, v["job"]));
        }
        let t = v["tick"]
            .as_str()
            .ok_or_else(|| format!("line {}: no tick", n + 1))?;
        let tenant = match (&job.tenants, &v["tenant"]) {
            (None, Value::Null) => None,
            (Some(_), Value::String(s)) => Some(s.clone()),
            (_, other) => return Err(format!("line {}: tenant {other}", n + 1)),
        };
        match ticks.get(&tenant) {
            None => {
                ticks.insert(tenant.clone(), t.to_string());
            }
            Some(first) if first != t => {
                return Err(format!(
                    "line {}: tick {t}, but this tenant's first line has {first}: two runs mixed",
                    n + 1
                ));
            }
            Some(_) => {}
        }
        let id = v["item"]["id"]
            .as_str()
            .ok_or_else(|| format!("line {}: item without id", n + 1))?;
        got.entry(tenant).or_default().push(id.to_string());
    }
    // The newest run the file holds (RFC 3339 in UTC sorts as time).
    let tick = ticks.into_values().max();
    let want: BTreeMap<Option<String>, Vec<String>> = job.expected.iter().cloned().collect();
    if got != want {
        let count = |m: &BTreeMap<Option<String>, Vec<String>>| -> Vec<(Option<String>, usize)> {
            m.iter().map(|(k, v)| (k.clone(), v.len())).collect()
        };
        return Err(format!(
            "items per tenant {:?}, expected {:?} (or another order)",
            count(&got),
            count(&want)
        ));
    }
    Ok(tick)
}

/// The temporary output files (`.NAME.tmp-…`) there are now.
fn temp_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("out"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Open file descriptors and resident memory (KiB) of a process (Linux).
fn proc_stats(pid: u32) -> Option<(usize, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((fds, rss))
}

fn dbsize(redis: &Redis) -> Option<u64> {
    let client = redis::Client::open(redis.url()).ok()?;
    let mut c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    redis::cmd("DBSIZE").query(&mut c).ok()
}

#[cfg(unix)]
fn sigterm(pid: u32) {
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Everything the soak observes, and what went wrong.
struct Observer<'a> {
    jobs: &'a [JobSpec],
    dir: &'a Path,
    listen: String,
    log: LogTail,
    violations: Vec<String>,
    /// job -> distinct ticks seen in its output.
    ticks: BTreeMap<&'static str, BTreeSet<String>>,
    metrics: Metrics,
    max_entries: f64,
    max_temp_files: usize,
    ready_states: BTreeMap<String, u64>,
    began: Instant,
    /// Temporary file -> (first, last) seen, in seconds since the start.
    temp_seen: BTreeMap<String, (f64, f64)>,
}

impl Observer<'_> {
    fn violation(&mut self, v: String) {
        if !self.violations.contains(&v) {
            eprintln!("soak: VIOLATION: {v}");
            self.violations.push(v);
        }
    }

    fn outputs(&mut self, must_exist: bool) {
        for job in self.jobs {
            match check_output(&output_path(self.dir, job.name), job) {
                Ok(Some(tick)) => {
                    self.ticks.entry(job.name).or_default().insert(tick);
                }
                Ok(None) if must_exist => {
                    self.violation(format!("{}: the output file is gone", job.name));
                }
                Ok(None) => {}
                Err(e) => self.violation(format!("{}.jsonl: {e}", job.name)),
            }
        }
        let temp = temp_files(self.dir);
        self.max_temp_files = self.max_temp_files.max(temp.len());
        let now = self.began.elapsed().as_secs_f64();
        for n in &temp {
            self.temp_seen.entry(n.clone()).or_insert((now, now)).1 = now;
        }
        for job in self.jobs {
            let prefix = format!(".{}.jsonl.tmp-", job.name);
            let mine: Vec<&String> = temp.iter().filter(|n| n.starts_with(&prefix)).collect();
            // One run of a job at a time: one temporary file per run, or with
            // tenants one part per tenant and the file they are assembled into.
            let allowed = job.tenants.as_ref().map_or(1, |t| t.len() + 1);
            if mine.len() > allowed {
                self.violation(format!(
                    "{}: {} temporary output files at once: {mine:?}",
                    job.name,
                    mine.len()
                ));
            }
        }
    }

    fn scrape(&mut self) {
        let Ok(a) = request(&self.listen, "GET", "/metrics", "", "") else {
            self.violation("/metrics does not answer".into());
            return;
        };
        self.metrics = Metrics::parse(&a.body);
        let entries = self.metrics.sum("apptoken_cache_entries", &[]);
        self.max_entries = self.max_entries.max(entries);
        let bound = USERS.len() as f64; // tenants x one scope
        if entries > bound {
            self.violation(format!(
                "apptoken_cache_entries = {entries}, more than tenants x scopes = {bound}"
            ));
        }
        for job in self.jobs.iter().filter(|j| !j.victim) {
            let failed = self.metrics.runs(job.name, "failure");
            if failed > 0 {
                self.violation(format!(
                    "{}: {failed} failed runs (metrics) although a valid token was cached",
                    job.name
                ));
            }
        }
    }

    fn ready(&mut self) {
        match request(&self.listen, "GET", "/readyz", "", "") {
            Ok(a) => {
                let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
                let store = v["shared_store"].as_str().unwrap_or("none").to_string();
                *self.ready_states.entry(store).or_default() += 1;
                if a.status != 200 {
                    self.violation(format!(
                        "/readyz answered {} although a token is cached: {}",
                        a.status, a.body
                    ));
                }
            }
            Err(e) => self.violation(format!("/readyz: {e}")),
        }
    }

    fn log(&mut self) {
        self.log.poll();
        for p in self.log.panics.clone() {
            self.violation(format!("the daemon panicked: {p}"));
        }
    }

    fn successes(&self) -> BTreeMap<&'static str, u64> {
        self.jobs
            .iter()
            .map(|j| (j.name, self.metrics.runs(j.name, "success")))
            .collect()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

#[cfg(unix)]
#[test]
fn soak_the_daemon_under_random_faults_and_redis_restarts() {
    let secs = env_u64("APPTOKEN_SOAK_SECS").unwrap_or(60);
    let seed = env_u64("APPTOKEN_SOAK_SEED").unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
    });
    eprintln!(
        "soak: seed {seed} (replay: APPTOKEN_SOAK_SEED={seed}), {secs} s of faults (APPTOKEN_SOAK_SECS)"
    );
    let mut rng = Rng(seed);
    let began = Instant::now();

    // The world.
    let tenants = tenants();
    let jobs = jobs(&tenants);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let emu_cfg = dir.path().join("emulator.toml");
    std::fs::write(&emu_cfg, emulator_toml(&tenants)).unwrap();
    let mut redis = Redis::start();
    let emu = start_emulator(Some(&emu_cfg));
    let base = emu.info["authority_host"].as_str().unwrap().to_string();
    assert_eq!(emu.info["sample_scope"].as_str(), Some(SCOPE));
    write_private(&dir.path().join("daemon-secret"), DAEMON_SECRET.as_bytes());
    write_private(
        &dir.path().join("cache.key"),
        b"c2VjcmV0LWZsZWV0LWtleS0zMi1ieXRlcy1sb25nISE=",
    );
    let cfg = dir.path().join("daemon.toml");
    std::fs::write(
        &cfg,
        daemon_toml(&base, &tenants, &jobs, &redis.url(), dir.path()),
    )
    .unwrap();
    let check = apptoken()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // The daemon.
    let log_path = dir.path().join("daemon.log");
    let child = apptoken()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut daemon = ChildGuard(Some(child));
    let mut log = LogTail::open(&log_path);
    let deadline = Instant::now() + DEADLINE;
    while log.listen.is_none() {
        assert!(
            Instant::now() < deadline,
            "the daemon never said where it listens"
        );
        assert!(
            daemon.0.as_mut().unwrap().try_wait().unwrap().is_none(),
            "the daemon exited at start: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
        log.poll();
    }
    let mut obs = Observer {
        jobs: &jobs,
        dir: dir.path(),
        listen: log.listen.clone().unwrap(),
        log,
        violations: Vec::new(),
        ticks: BTreeMap::new(),
        metrics: Metrics::default(),
        max_entries: 0.0,
        max_temp_files: 0,
        ready_states: BTreeMap::new(),
        began,
        temp_seen: BTreeMap::new(),
    };

    // Warm-up, without faults: every job succeeds once, so every tenant
    // has a valid token cached.
    let deadline = Instant::now() + DEADLINE;
    loop {
        obs.scrape();
        obs.outputs(false);
        obs.log();
        if obs.successes().values().all(|n| *n > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "warm-up: not every job succeeded without faults: {:?}\n{:?}",
            obs.successes(),
            obs.log.failed
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    obs.ready();
    let warm = began.elapsed();
    let baseline = proc_stats(pid);
    let mut jwts: Vec<String> = tenants
        .iter()
        .map(|t| fetch_jwt(&emu.addr, &t.id))
        .collect();
    let mut jwts_at = Instant::now();
    eprintln!(
        "soak: warm-up done in {:.1} s; faults for {secs} s",
        warm.as_secs_f64()
    );

    // The soak.
    let mut book = FaultBook::default();
    let mut redis_up = true;
    let mut redis_restarts = 0u64;
    let mut max_dbsize = 0u64;
    let (mut max_fds, mut max_rss) = baseline.unwrap_or((0, 0));
    let mut rss_first_half = 0u64;
    let mut rss_second_half = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut next_fault = start;
    let mut next_prune = start;
    let mut next_scrape = start;
    let mut next_outputs = start;
    let mut next_ready = start;
    let mut next_proc = start;
    let mut next_redis = start + rng.millis(3_000, 10_000);
    let mut died = false;
    while Instant::now() < end {
        let now = Instant::now();
        if let Some(status) = daemon.0.as_mut().unwrap().try_wait().unwrap() {
            obs.violation(format!("the daemon exited during the soak: {status}"));
            died = true;
            break;
        }
        if now >= next_fault {
            let roll = rng.range(0, 99);
            let planned = if roll < 45 {
                idp_error_fault(&mut rng, &tenants, &jwts)
            } else if roll < 65 {
                lifetime_fault(&mut rng, &tenants, &jwts)
            } else {
                api_fault(&mut rng)
            };
            let cap = match planned.category {
                Category::IdpError | Category::Api => 3,
                Category::Lifetime => 2,
            };
            let keep = rng.millis(1_000, 8_000);
            if book.pending(planned.category) < cap {
                book.add(&emu.addr, planned, now + keep);
            }
            next_fault = now + rng.millis(100, 600);
        }
        if now >= next_prune {
            book.prune(&emu.addr, now);
            next_prune = now + Duration::from_millis(300);
        }
        if now >= next_redis {
            if redis_up {
                redis.stop();
                next_redis = now + rng.millis(1_000, 5_000);
            } else {
                redis.restart();
                redis_restarts += 1;
                next_redis = now + rng.millis(3_000, 12_000);
            }
            redis_up = !redis_up;
        }
        if now >= next_outputs {
            obs.outputs(true);
            obs.log();
            next_outputs = now + Duration::from_millis(200);
        }
        if now >= next_scrape {
            obs.scrape();
            next_scrape = now + Duration::from_secs(1);
        }
        if now >= next_ready {
            obs.ready();
            next_ready = now + Duration::from_secs(3);
        }
        if now >= next_proc {
            if let Some((fds, rss)) = proc_stats(pid) {
                max_fds = max_fds.max(fds);
                max_rss = max_rss.max(rss);
                if now < start + Duration::from_secs(secs / 2) {
                    rss_first_half = rss_first_half.max(rss);
                } else {
                    rss_second_half = rss_second_half.max(rss);
                }
            }
            if redis_up && let Some(n) = dbsize(&redis) {
                max_dbsize = max_dbsize.max(n);
            }
            next_proc = now + Duration::from_secs(1);
        }
        if jwts_at.elapsed() > Duration::from_secs(1800) {
            jwts = tenants
                .iter()
                .map(|t| fetch_jwt(&emu.addr, &t.id))
                .collect();
            jwts_at = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let soaked = start.elapsed();

    // Recovery: no faults, Redis up. Every job (the victim too) succeeds
    // again, and the daemon finds Redis again.
    book.clear(&emu.addr);
    if !redis_up {
        redis.restart();
        redis_restarts += 1;
    }
    let recovery = Instant::now();
    if !died {
        obs.scrape();
        let before = obs.successes();
        let deadline = Instant::now() + DEADLINE;
        loop {
            obs.scrape();
            obs.outputs(true);
            obs.log();
            let now = obs.successes();
            if before.iter().all(|(j, n)| now[j] > *n) {
                break;
            }
            if Instant::now() >= deadline {
                obs.violation(format!(
                    "after the faults were cleared, not every job succeeded again: before {before:?}, now {now:?}"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let a = request(&obs.listen, "GET", "/readyz", "", "");
            if a.as_ref()
                .is_ok_and(|a| a.status == 200 && a.body.contains("\"shared_store\":\"up\""))
            {
                break;
            }
            if Instant::now() >= deadline {
                obs.violation(format!(
                    "the shared store is not up again after Redis came back: {:?}",
                    a.map(|a| a.body)
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        obs.scrape();
    }
    let recovered = recovery.elapsed();
    let last_proc = proc_stats(pid);
    let stats: Value = request(&emu.addr, "GET", "/_emulator/stats", "", "")
        .ok()
        .and_then(|a| serde_json::from_str(&a.body).ok())
        .unwrap_or_default();

    // SIGTERM: exit 0, within the grace period.
    let mut exit = None;
    if !died {
        sigterm(pid);
        let mut child = daemon.0.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(360);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                exit = Some(st);
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                obs.violation("the daemon did not exit within 6 minutes of SIGTERM".into());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(st) = exit
            && st.code() != Some(0)
        {
            obs.violation(format!("exit status after SIGTERM: {st}, not 0"));
        }
    }
    obs.log.finish();
    obs.log();
    obs.outputs(true);
    if exit.is_some() {
        let left = temp_files(dir.path());
        if !left.is_empty() {
            obs.violation(format!(
                "temporary output files left after the daemon exited: {left:?}"
            ));
        }
    }

    // What the log says about every run, including those of the grace period.
    let mut failed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut lost: BTreeMap<&str, u64> = BTreeMap::new();
    let mut victim_reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut no_token: BTreeMap<String, u64> = BTreeMap::new();
    // A job with tenants logs each tenant's failure; its "job run failed"
    // (no tenant succeeded) repeats them in one line, counted once here.
    let mut failures = obs.log.tenant_failed.clone();
    failures.extend(
        obs.log
            .failed
            .iter()
            .filter(|(job, error)| {
                error.contains(LOST)
                    || jobs
                        .iter()
                        .any(|j| j.name == job.as_str() && j.tenants.is_none())
            })
            .cloned(),
    );
    for (job, error) in failures {
        let Some(spec) = jobs.iter().find(|j| j.name == job) else {
            obs.violation(format!("a failed run of an unknown job {job:?}: {error}"));
            continue;
        };
        if error.contains(LOST) {
            *lost.entry(spec.name).or_default() += 1;
            continue;
        }
        *failed.entry(spec.name).or_default() += 1;
        if spec.victim {
            for t in &tenants {
                if error.contains(&format!("tenant {}: no token", t.domain)) {
                    *no_token.entry(t.domain.clone()).or_default() += 1;
                }
            }
            // One reason per failed tenant ("tenant A: …; tenant B: …").
            for part in error.split("; tenant ") {
                let part = part.trim_start_matches("tenant ");
                let reason = part.split_once(": ").map_or(part, |(_, r)| r);
                let reason = reason.replace(&base, "{emulator}");
                let reason: String = reason.chars().take(100).collect();
                *victim_reasons.entry(reason).or_default() += 1;
            }
        } else {
            obs.violation(format!(
                "{job}: a run failed although a valid token was cached and its API path is never faulted: {error}"
            ));
        }
    }
    for ((job, tenant), n) in obs.log.unauthorized.clone() {
        if job != "victim" {
            obs.violation(format!(
                "{job} (tenant {tenant:?}): the API refused the daemon's token {n} times (it is never faulted there)"
            ));
        }
    }
    for (tenant, n) in &no_token {
        // Only a forced refresh after a 401 may fail for want of a token.
        let refreshes = obs
            .log
            .unauthorized
            .get(&("victim".to_string(), tenant.clone()))
            .copied()
            .unwrap_or(0);
        if *n > refreshes {
            obs.violation(format!(
                "victim, tenant {tenant}: {n} runs found no token, but only {refreshes} followed a 401 (the others had a valid token cached)"
            ));
        }
    }
    let lost_total: u64 = lost.values().sum();
    if lost_total > redis_restarts * jobs.len() as u64 {
        obs.violation(format!(
            "{lost_total} runs lost their lease, more than one per job per Redis restart ({redis_restarts} restarts)"
        ));
    }
    for job in &jobs {
        let elsewhere = obs.metrics.runs(job.name, "elsewhere");
        if elsewhere > 0 {
            obs.violation(format!(
                "{}: {elsewhere} ticks 'ran elsewhere' with a single instance",
                job.name
            ));
        }
        let seen = obs.ticks.get(job.name).map_or(0, BTreeSet::len);
        if !job.victim && seen < 2 {
            obs.violation(format!(
                "{}: its output was seen from {seen} runs only (not updated during the soak)",
                job.name
            ));
        }
    }

    // Token requests: the daemon's client only; never refused by the
    // emulator itself (only by injected faults); no runaway refreshing.
    let mut token_outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for r in stats["token_requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if r["client_id"]
            .as_str()
            .unwrap_or_default()
            .eq_ignore_ascii_case(DAEMON_APP)
        {
            *token_outcomes
                .entry(r["outcome"].as_str().unwrap_or_default().to_string())
                .or_default() += r["count"].as_u64().unwrap_or(0);
        }
    }
    for (outcome, n) in &token_outcomes {
        if outcome != "success" && !outcome.starts_with("fault:") {
            obs.violation(format!(
                "the emulator refused {n} token requests of the daemon with {outcome}"
            ));
        }
    }
    // A refresh needs a use of the token since the previous one (or a
    // caller): never more token requests than acquisitions, give or take
    // the faults' retries.
    let successes = token_outcomes.get("success").copied().unwrap_or(0);
    let acquisitions = obs.metrics.sum("apptoken_daemon_api_requests_total", &[]) as u64
        + obs.ready_states.values().sum::<u64>();
    let bound = acquisitions + 2 * book.times_total + 10 * USERS.len() as u64;
    if successes > bound {
        obs.violation(format!(
            "{successes} successful token requests for {acquisitions} acquisitions: more than {bound} (runaway refreshing)"
        ));
    }
    if max_dbsize > 500 {
        obs.violation(format!("Redis held {max_dbsize} keys (more than 500)"));
    }
    if max_fds > 256 {
        obs.violation(format!("the daemon had {max_fds} open file descriptors"));
    }
    if rss_first_half > 0 && rss_second_half > 2 * rss_first_half + 32 * 1024 {
        obs.violation(format!(
            "memory grew: {rss_first_half} KiB in the first half, {rss_second_half} KiB in the second"
        ));
    }

    // What it did.
    let m = |name: &str, want: &[(&str, &str)]| obs.metrics.sum(name, want) as u64;
    eprintln!("soak: ---- seed {seed} ----");
    eprintln!(
        "soak: warm-up {:.1} s, faults {:.1} s, recovery {:.1} s, total {:.1} s",
        warm.as_secs_f64(),
        soaked.as_secs_f64(),
        recovered.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    eprintln!("soak: faults injected / fired, by kind:");
    for (kind, (injected, fired)) in &book.by_kind {
        eprintln!("soak:   {kind:<45} {injected:>5} / {fired:>5}");
    }
    eprintln!("soak: runs by job (metrics at the end of recovery; log for failures):");
    for job in &jobs {
        let jm = &obs.metrics;
        eprintln!(
            "soak:   {:<9} success {:>4}  failure {:>4}  lost {:>3}  skipped {:>3}  outputs seen {:>4}  API retries {:>4}{}",
            job.name,
            jm.runs(job.name, "success"),
            failed.get(job.name).copied().unwrap_or(0),
            lost.get(job.name).copied().unwrap_or(0),
            jm.sum("apptoken_daemon_job_skipped_total", &[("job", job.name)]) as u64,
            obs.ticks.get(job.name).map_or(0, BTreeSet::len),
            obs.log.api_retries.get(job.name).copied().unwrap_or(0),
            if job.victim {
                "  (failures allowed)"
            } else {
                ""
            },
        );
    }
    for (reason, n) in &victim_reasons {
        eprintln!("soak:   victim tenant failed {n:>4}x: {reason}");
    }
    eprintln!("soak: token requests of the daemon at the emulator: {token_outcomes:?}");
    eprintln!(
        "soak: library: token requests success {} error {}, retries {}, refreshes {}, stale served {}",
        m("apptoken_token_requests_total", &[("outcome", "success")]),
        m("apptoken_token_requests_total", &[("outcome", "error")]),
        m("apptoken_token_retries_total", &[]),
        m("apptoken_token_refreshes_total", &[]),
        m("apptoken_stale_tokens_served_total", &[]),
    );
    eprintln!(
        "soak: API 401s answered to the victim: {:?}",
        obs.log.unauthorized
    );
    eprintln!(
        "soak: Redis restarts {redis_restarts}, max keys {max_dbsize}, shared store errors {}; /readyz shared_store seen {:?}",
        m("apptoken_shared_store_errors_total", &[]),
        obs.ready_states
    );
    eprintln!(
        "soak: cache entries max {} (bound {}), temporary files max {}, fds {:?} -> max {max_fds} -> {:?}, RSS KiB {:?} -> max {max_rss} -> {:?}",
        obs.max_entries,
        USERS.len(),
        obs.max_temp_files,
        baseline.map(|b| b.0),
        last_proc.map(|p| p.0),
        baseline.map(|b| b.1),
        last_proc.map(|p| p.1),
    );
    eprintln!("soak: daemon log {} lines, exit {:?}", obs.log.lines, exit);
    for (name, (first, last)) in &obs.temp_seen {
        if last - first > 60.0 {
            eprintln!("soak: temporary file {name} seen from {first:.1} s to {last:.1} s");
        }
    }
    let violations = std::mem::take(&mut obs.violations);
    drop(obs);
    if !violations.is_empty() {
        // The daemon's log, configuration and outputs, for a post-mortem.
        eprintln!(
            "soak: kept {} (daemon.log, daemon.toml, emulator.toml, out/)",
            dir.keep().display()
        );
    }
    drop(emu);
    assert!(
        violations.is_empty(),
        "soak failed (replay with APPTOKEN_SOAK_SEED={seed}):\n  {}",
        violations.join("\n  ")
    );
}
