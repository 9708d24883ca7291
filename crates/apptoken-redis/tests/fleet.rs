//! Three processes, one Redis, one emulator: 10,000 concurrent acquisitions
//! over 100 keys make exactly one token request per key — unless a store
//! operation failed or a lease was held long (each worker reports both),
//! and then still between one per key and one per key and process. The
//! worker processes are this test binary itself (`fleet_worker_entry_point`,
//! which does nothing unless `APPTOKEN_FLEET_WORKER` names a task).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apptoken::{Authority, ClientSecret, ConfidentialClient, Credential, StoreKey, TokenRequest};
use apptoken_emulator::{Config, Emulator};
use apptoken_redis::RedisStore;
use common::{
    CLIENT_ID, Observed, PATIENT, Redis, SECRET, assert_one_request_per_key, many_tenants_toml,
    tenant_ids,
};

const TENANTS: usize = 100;
const PER_WORKER: usize = 3334;
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// One worker's task, passed as JSON in the environment.
#[derive(serde::Serialize, serde::Deserialize)]
struct Task {
    authority_host: String,
    redis: Option<String>,
    scope: String,
    go_file: String,
    ready_file: String,
    /// Where the worker writes its store's anomalies (failed operations,
    /// long-held leases) when done.
    report_file: String,
    acquisitions: usize,
    offset: usize,
}

#[test]
fn fleet_worker_entry_point() {
    let Ok(task) = std::env::var("APPTOKEN_FLEET_WORKER") else {
        return; // run as a worker process only
    };
    let task: Task = serde_json::from_str(&task).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tenants = tenant_ids(TENANTS);
        let mut b = ConfidentialClient::builder()
            .authority(Authority::from_host(&task.authority_host, &tenants[0]).unwrap())
            .client_id(CLIENT_ID)
            .credential(Credential::secret(ClientSecret::new(SECRET.to_string())));
        let mut observed = None;
        if let Some(url) = &task.redis {
            let store = Observed::new(RedisStore::new(url).unwrap().with_timeout(PATIENT));
            observed = Some(Arc::clone(&store));
            b = b.shared_store(store, StoreKey::from_bytes(KEY).unwrap());
        }
        let client = b.build().unwrap();
        std::fs::write(&task.ready_file, b"ready").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::path::Path::new(&task.go_file).exists() {
            assert!(Instant::now() < deadline, "no go file");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut tasks = Vec::with_capacity(task.acquisitions);
        for i in 0..task.acquisitions {
            let c = client.clone();
            let tenant = tenants[(task.offset + i) % TENANTS].clone();
            let scope = task.scope.clone();
            tasks.push(tokio::spawn(async move {
                c.acquire_token_with(TokenRequest::new([scope]).tenant(tenant))
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let anomalies = observed.map_or((0, 0), |o| o.anomalies());
        std::fs::write(
            &task.report_file,
            serde_json::to_string(&anomalies).unwrap(),
        )
        .unwrap();
    });
}

/// Runs three worker processes (`redis`: with the shared store) started
/// together; the token requests the emulator counted, and the anomalies
/// the workers' stores saw (failed operations, long-held leases).
fn three_processes(redis: Option<&Redis>) -> (u64, (u64, u64)) {
    let state = tempfile::tempdir().unwrap();
    let cfg = Config::from_toml_str(&many_tenants_toml(TENANTS), state.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt
        .block_on(Emulator::start(cfg, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let info = emulator.info();
    let go = state.path().join("go");
    let me = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    let mut ready = Vec::new();
    let mut reports = Vec::new();
    for w in 0..3 {
        let ready_file = state.path().join(format!("ready-{w}"));
        let report_file = state.path().join(format!("report-{w}"));
        let task = Task {
            authority_host: info.authority_host.clone(),
            redis: redis.map(Redis::url),
            scope: info.sample_scope.clone(),
            go_file: go.display().to_string(),
            ready_file: ready_file.display().to_string(),
            report_file: report_file.display().to_string(),
            acquisitions: PER_WORKER,
            offset: w * 37,
        };
        ready.push(ready_file);
        reports.push(report_file);
        children.push(
            std::process::Command::new(&me)
                .args(["fleet_worker_entry_point", "--exact", "--test-threads=1"])
                .env(
                    "APPTOKEN_FLEET_WORKER",
                    serde_json::to_string(&task).unwrap(),
                )
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.iter().all(|r| r.exists()) {
        assert!(Instant::now() < deadline, "the workers did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&go, b"go").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a worker failed");
    }
    let mut anomalies = (0, 0);
    for r in reports {
        let (errors, long_holds): (u64, u64) =
            serde_json::from_str(&std::fs::read_to_string(r).unwrap()).unwrap();
        anomalies.0 += errors;
        anomalies.1 += long_holds;
    }
    (emulator.stats().token_requests_for(CLIENT_ID), anomalies)
}

#[test]
fn three_processes_10000_acquisitions_one_token_request_per_key() {
    let redis = Redis::start();
    let (requests, anomalies) = three_processes(Some(&redis));
    println!(
        "with Redis: {requests} token requests for {TENANTS} keys, 3 processes, {} acquisitions",
        3 * PER_WORKER
    );
    assert_one_request_per_key(requests, TENANTS as u64, 3, anomalies);
}

#[test]
fn three_processes_without_redis_ask_once_per_key_each() {
    // The baseline of the benchmark row: each process asks for every key.
    let (requests, _) = three_processes(None);
    println!("without Redis: {requests} token requests for {TENANTS} keys, 3 processes");
    assert_eq!(requests, 3 * TENANTS as u64);
}
