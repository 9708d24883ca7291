//! `rediss://`: a TLS-only redis-server of the test's own, its certificate
//! issued by a CA made for the test.

mod common;

use std::time::Duration;

use apptoken::TokenStore;
use apptoken_redis::RedisStore;
use common::{TlsRedis, test_ca};

#[tokio::test]
async fn rediss_with_the_servers_ca_works() {
    let redis = TlsRedis::start();
    let store = RedisStore::with_ca(&redis.url(), redis.ca_pem.as_bytes())
        .unwrap()
        .with_timeout(common::PATIENT);
    store
        .put("k", b"sealed value", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.get("k").await.unwrap().as_deref(),
        Some(&b"sealed value"[..])
    );
    assert!(
        store
            .try_lease("lease", "me", Duration::from_secs(5))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn rediss_refuses_a_server_the_ca_did_not_issue() {
    let redis = TlsRedis::start();
    let (other_ca, _) = test_ca("another CA");
    let store = RedisStore::with_ca(&redis.url(), other_ca.as_bytes())
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    // The TLS error is the cause (source), printed by the report.
    let err = store.get("k").await.unwrap_err().report().to_string();
    assert!(
        err.contains("redis connect") && err.contains("UnknownIssuer"),
        "{err}"
    );
    // Without a CA the system's trust store is used: the test CA is not in it.
    let store = RedisStore::new(&redis.url())
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    assert!(store.get("k").await.is_err());
}

#[test]
fn a_ca_needs_a_tls_url_and_a_certificate() {
    let (ca, _) = test_ca("a CA");
    let e = RedisStore::with_ca("redis://127.0.0.1:6379/", ca.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("rediss://"), "{e}");
    let e = RedisStore::with_ca("rediss://127.0.0.1:6379/", b"not a certificate").unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let e = RedisStore::with_ca(
        "rediss://127.0.0.1:6379/",
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("CA"), "{e}");
}
