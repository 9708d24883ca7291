//! The shared store against a real `redis-server` (started here on a unix
//! socket in a temporary directory) and the emulator. Store operations
//! have a patient timeout (only a Redis that is gone fails them), and an
//! exact token count is asserted only when nothing timing-dependent
//! happened (see `common::Observed`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apptoken::{Authority, ClientSecret, ConfidentialClient, Credential, StoreKey, TokenRequest};
use apptoken_emulator::{Config, Emulator, RunningEmulator};
use apptoken_redis::RedisStore;
use common::{Observed, PATIENT, Redis, assert_one_request_per_key};

struct Env {
    emulator: RunningEmulator,
    _dir: tempfile::TempDir,
}

async fn emulator() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(
        Config::embedded(dir.path()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    Env {
        emulator,
        _dir: dir,
    }
}

fn instance(env: &Env, store: Option<&RedisStore>, key: &[u8]) -> ConfidentialClient {
    instance_with(env, store.map(|s| Arc::new(s.clone()) as _), key)
}

fn instance_with(
    env: &Env,
    store: Option<Arc<dyn apptoken::TokenStore>>,
    key: &[u8],
) -> ConfidentialClient {
    let info = env.emulator.info();
    let mut b = ConfidentialClient::builder()
        .authority(Authority::from_host(&info.authority_host, &info.tenant_id).unwrap())
        .client_id(&info.client_id)
        .credential(Credential::secret(ClientSecret::new(
            info.client_secret.clone().unwrap(),
        )));
    if let Some(s) = store {
        b = b.shared_store(s, StoreKey::from_bytes(key).unwrap());
    }
    b.build().unwrap()
}

fn requests(env: &Env) -> u64 {
    env.emulator
        .stats()
        .token_requests_for(&env.emulator.info().client_id)
}

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_make_one_request_per_key() {
    let redis = Redis::start();
    let env = emulator().await;
    let store = Observed::new(RedisStore::new(&redis.url()).unwrap().with_timeout(PATIENT));
    let instances: Vec<_> = (0..3)
        .map(|_| instance_with(&env, Some(store.clone() as _), KEY))
        .collect();
    let scope = env.emulator.info().sample_scope.clone();
    let mut tenants = vec![env.emulator.info().tenant_id.clone()];
    tenants.extend(
        env.emulator
            .info()
            .other_tenants
            .iter()
            .map(|t| t.tenant_id.clone()),
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(600));
    let mut tasks = Vec::new();
    for i in 0..600 {
        let c = instances[i % 3].clone();
        let (b, scope, tenant) = (
            barrier.clone(),
            scope.clone(),
            tenants[i % tenants.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            c.acquire_token_with(TokenRequest::new([scope]).tenant(tenant))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_one_request_per_key(requests(&env), tenants.len() as u64, 3, store.anomalies());
    if store.anomalies().0 == 0 {
        assert!(
            instances
                .iter()
                .all(|c| c.shared_store_is_up() == Some(true))
        );
    }
    // The values in Redis reveal no tenant or client id and hold no token in clear.
    let mut raw = redis.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw).unwrap();
    if store.anomalies().0 == 0 {
        assert!(!keys.is_empty());
    }
    for k in &keys {
        assert!(k.starts_with("apptoken:v1:"), "{k}");
        for t in &tenants {
            assert!(!k.contains(t.as_str()));
        }
        assert!(!k.contains(&env.emulator.info().client_id));
        let v: Vec<u8> = redis::cmd("GET").arg(k).query(&mut raw).unwrap_or_default();
        assert!(
            !v.windows(3).any(|w| w == b"eyJ"),
            "a token in clear in {k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_foreign_values_are_never_served() {
    let redis = Redis::start();
    let env = emulator().await;
    let store = RedisStore::new(&redis.url()).unwrap().with_timeout(PATIENT);
    let scope = env.emulator.info().sample_scope.clone();
    instance(&env, Some(&store), KEY)
        .acquire_token(&[&scope])
        .await
        .unwrap();
    assert_eq!(requests(&env), 1);
    let mut raw = redis.raw();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("apptoken:v1:*")
        .query(&mut raw)
        .unwrap();
    let token_key = keys
        .iter()
        .find(|k| !k.ends_with(":lease"))
        .unwrap()
        .clone();
    let sealed: Vec<u8> = redis::cmd("GET").arg(&token_key).query(&mut raw).unwrap();

    // Flip one bit: the value no longer opens; a new instance asks the identity provider.
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(&token_key)
        .arg(&tampered)
        .query(&mut raw)
        .unwrap();
    instance(&env, Some(&store), KEY)
        .acquire_token(&[&scope])
        .await
        .unwrap();
    assert_eq!(requests(&env), 2);

    // A value sealed for another key (another tenant's token), moved here: refused too.
    let other_tenant = env.emulator.info().other_tenants[0].tenant_id.clone();
    instance(&env, Some(&store), KEY)
        .acquire_token_with(TokenRequest::new([&scope]).tenant(&other_tenant))
        .await
        .unwrap();
    assert_eq!(requests(&env), 3);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("apptoken:v1:*")
        .query(&mut raw)
        .unwrap();
    let other_key = keys
        .iter()
        .find(|k| !k.ends_with(":lease") && **k != token_key)
        .unwrap()
        .clone();
    let other_sealed: Vec<u8> = redis::cmd("GET").arg(&other_key).query(&mut raw).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&token_key)
        .arg(&other_sealed)
        .query(&mut raw)
        .unwrap();
    let t = instance(&env, Some(&store), KEY)
        .acquire_token(&[&scope])
        .await
        .unwrap();
    assert_eq!(requests(&env), 4, "the moved value was not served");
    assert_eq!(t.tenant(), env.emulator.info().tenant_id);

    // Another fleet's key cannot read this fleet's values.
    instance(&env, Some(&store), b"another fleet's key, 32 bytes!!!")
        .acquire_token(&[&scope])
        .await
        .unwrap();
    assert_eq!(requests(&env), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_fails_no_acquisition() {
    let mut redis = Redis::start();
    let env = emulator().await;
    // Patient while Redis is up; while it is down, operations fail at once
    // (the socket refuses), not by timing out.
    let store = RedisStore::new(&redis.url()).unwrap().with_timeout(PATIENT);
    let scope = env.emulator.info().sample_scope.clone();
    let client = instance(&env, Some(&store), KEY);
    client.acquire_token(&[&scope]).await.unwrap();
    assert_eq!(client.shared_store_is_up(), Some(true));

    redis.stop();
    for _ in 0..5 {
        client
            .acquire_token_with(TokenRequest::new([&scope]).force_refresh(true))
            .await
            .expect("no acquisition fails while Redis is down");
    }
    assert_eq!(client.shared_store_is_up(), Some(false));
    // A second instance starting while Redis is down works too.
    instance(&env, Some(&store), KEY)
        .acquire_token(&[&scope])
        .await
        .unwrap();

    redis.restart();
    // Back to sharing, by itself: once the client has reconnected, a new
    // instance gets the token from Redis, not the identity provider.
    // Polled (reconnecting takes its own time), with a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        client
            .acquire_token_with(TokenRequest::new([&scope]).force_refresh(true))
            .await
            .expect("no acquisition fails while Redis comes back");
        if client.shared_store_is_up() == Some(true) {
            let before = requests(&env);
            instance(&env, Some(&store), KEY)
                .acquire_token(&[&scope])
                .await
                .unwrap();
            if requests(&env) == before {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the fleet never went back to sharing tokens through Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn leases_are_held_renewed_and_released_only_by_their_holder() {
    use apptoken::TokenStore;
    let redis = Redis::start();
    let store = RedisStore::new(&redis.url()).unwrap().with_timeout(PATIENT);
    // Longer than any test could take: nothing here expires by itself.
    let ttl = Duration::from_secs(3600);
    assert!(store.try_lease("job:a", "one", ttl).await.unwrap());
    assert!(
        !store.try_lease("job:a", "two", ttl).await.unwrap(),
        "held by one"
    );
    assert!(store.renew_lease("job:a", "one", ttl).await.unwrap());
    assert!(
        !store.renew_lease("job:a", "two", ttl).await.unwrap(),
        "two does not hold it"
    );
    store.release_lease("job:a", "two").await.unwrap();
    assert!(
        !store.try_lease("job:a", "two", ttl).await.unwrap(),
        "a stranger cannot release it"
    );
    store.release_lease("job:a", "one").await.unwrap();
    assert!(store.try_lease("job:a", "two", ttl).await.unwrap());
    assert!(
        !store.renew_lease("job:a", "one", ttl).await.unwrap(),
        "one lost it"
    );
}
