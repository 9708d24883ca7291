//! A generic OpenID Connect provider selected by its issuer
//! (`ClientConfig::issuer`), against a scripted provider on loopback: the
//! metadata found at RFC 8414's address when OpenID's answers 404, the
//! issuer compared exactly (a trailing `/` named as such), the secret sent
//! `client_secret_basic` as RFC 6749 §2.3.1 encodes it, the cache in front,
//! and the chain that never falls to a managed identity for such an issuer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apptoken::{AuthorityErrorKind, ClientConfig, ConfigErrorKind, Error};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the provider saw: method, path, `Authorization`, body.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: String,
}

/// A provider whose realm is `/realms/acme`: its OpenID address answers
/// 404, its RFC 8414 one the metadata naming `issuer_in_metadata`.
struct Provider {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    tokens: Arc<AtomicUsize>,
}

async fn provider(issuer_suffix: &'static str, auth_methods: &'static str) -> Provider {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tokens = Arc::new(AtomicUsize::new(0));
    let (b, s, t) = (base.clone(), seen.clone(), tokens.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (base, seen, tokens) = (b.clone(), s.clone(), t.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let header = |name: &str| {
                    head.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_string())
                };
                let len: usize = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                seen.lock().unwrap().push(Seen {
                    path: path.clone(),
                    authorization: header("authorization"),
                    body,
                });
                let (status, answer) = match path.as_str() {
                    "/.well-known/oauth-authorization-server/realms/acme" => (
                        200,
                        format!(
                            r#"{{"issuer":"{base}/realms/acme{issuer_suffix}","token_endpoint":"{base}/realms/acme/token","token_endpoint_auth_methods_supported":{auth_methods}}}"#
                        ),
                    ),
                    "/realms/acme/token" => {
                        let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                        let lifetime = if body_has(&seen, "noexp") {
                            String::new()
                        } else {
                            r#","expires_in":300"#.to_string()
                        };
                        (
                            200,
                            format!(
                                r#"{{"access_token":"opaque-{n}","token_type":"bearer"{lifetime},"scope":"api:read"}}"#
                            ),
                        )
                    }
                    _ => (404, r#"{"error":"not_found"}"#.to_string()),
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    Provider { base, seen, tokens }
}

/// Whether the last request's body holds `needle`.
fn body_has(seen: &Mutex<Vec<Seen>>, needle: &str) -> bool {
    seen.lock()
        .unwrap()
        .last()
        .is_some_and(|s| s.body.contains(needle))
}

fn config(issuer: &str, client_id: &str, secret: Option<&str>) -> ClientConfig {
    let vars: Vec<(String, String)> = [
        ("APPTOKEN_ISSUER", Some(issuer)),
        ("AZURE_CLIENT_ID", Some(client_id)),
        ("AZURE_CLIENT_SECRET", secret),
        // Entra settings an issuer wins over, and IMDS on a closed port.
        ("AZURE_TENANT_ID", Some("contoso.onmicrosoft.com")),
        ("AZURE_REGIONAL_AUTHORITY_NAME", Some("westus2")),
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            Some("http://127.0.0.1:1"),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
    .collect();
    ClientConfig::from_env_vars(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap()
}

#[tokio::test]
async fn an_issuer_finds_rfc_8414_metadata_and_sends_the_secret_basic() {
    let p = provider("", r#"["client_secret_basic","private_key_jwt"]"#).await;
    let issuer = format!("{}/realms/acme", p.base);
    // RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic.
    let cfg = config(&issuer, "reports:app", Some("s3cret:with+chars /"));
    let client = cfg.build_client().unwrap();
    let t = client.acquire_token(&["api:read"]).await.unwrap();
    assert_eq!((t.secret(), t.token_type()), ("opaque-1", "Bearer"));
    let again = client.acquire_token(&["api:read"]).await.unwrap();
    assert_eq!(again.secret(), "opaque-1", "from the cache");
    assert_eq!(p.tokens.load(Ordering::SeqCst), 1);

    let seen = p.seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/realms/acme/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/realms/acme",
            "/realms/acme/token"
        ],
        "OpenID's address, then RFC 8414's, then the token endpoint"
    );
    let token_request = &seen[2];
    let basic = token_request
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .expect("client_secret_basic");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "reports%3Aapp:s3cret%3Awith%2Bchars+%2F"
    );
    assert!(
        !token_request.body.contains("client_secret"),
        "{}",
        token_request.body
    );
    assert!(
        token_request.body.contains("scope=api%3Aread"),
        "{}",
        token_request.body
    );
}

#[tokio::test]
async fn an_answer_without_expires_in_lives_the_configured_default() {
    let p = provider("", "[]").await;
    let issuer = format!("{}/realms/acme", p.base);
    let lifetime = |cfg: ClientConfig| async move {
        let clock = Arc::new(apptoken::ManualClock::starting_now());
        let t = cfg
            .client_builder()
            .unwrap()
            .clock(clock.clone())
            .build()
            .unwrap()
            .acquire_token(&["noexp"])
            .await
            .unwrap();
        (t.expires_on() - apptoken::Clock::now(&*clock)).whole_seconds()
    };
    // The default: 5 minutes.
    assert_eq!(lifetime(config(&issuer, "app", Some("pw"))).await, 300);
    let mut cfg = config(&issuer, "app", Some("pw"));
    cfg.default_token_lifetime = Some(std::time::Duration::from_secs(3600));
    assert_eq!(lifetime(cfg).await, 3600);
}

#[tokio::test]
async fn a_provider_that_lists_only_secret_post_gets_the_secret_in_the_form() {
    let p = provider("", r#"["client_secret_post"]"#).await;
    let cfg = config(&format!("{}/realms/acme", p.base), "app", Some("pw"));
    cfg.build_client()
        .unwrap()
        .acquire_token(&["api:read"])
        .await
        .unwrap();
    let seen = p.seen.lock().unwrap().clone();
    let token_request = seen.last().unwrap();
    assert!(token_request.authorization.is_none());
    assert!(
        token_request.body.contains("client_secret=pw"),
        "{}",
        token_request.body
    );
}

#[tokio::test]
async fn the_issuer_must_match_and_a_trailing_slash_is_named() {
    // The metadata says ".../realms/acme/"; the configuration has no '/'.
    let p = provider("/", "[]").await;
    let cfg = config(&format!("{}/realms/acme", p.base), "app", Some("pw"));
    let e = cfg
        .build_client()
        .unwrap()
        .acquire_token(&["api:read"])
        .await
        .unwrap_err();
    let Error::Authority(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(d.kind(), AuthorityErrorKind::IssuerMismatch);
    assert_eq!(d.setting(), Some("issuer"));
    assert!(e.to_string().contains("with a trailing '/'"), "{e}");
    assert_eq!(p.tokens.load(Ordering::SeqCst), 0, "no token request");

    // No metadata anywhere: every address tried is named.
    let cfg = config(&format!("{}/realms/other", p.base), "app", Some("pw"));
    let e = cfg
        .build_client()
        .unwrap()
        .acquire_token(&["api:read"])
        .await
        .unwrap_err();
    let Error::Authority(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(d.kind(), AuthorityErrorKind::NoMetadata);
    let m = e.to_string();
    assert!(
        m.contains("/realms/other/.well-known/openid-configuration")
            && m.contains("/.well-known/oauth-authorization-server/realms/other")
            && m.contains("/realms/other/.well-known/oauth-authorization-server"),
        "{m}"
    );
}

#[tokio::test]
async fn an_issuer_never_falls_to_a_managed_identity() {
    let e = config("https://idp.example/realms/acme", "app", None)
        .choose_credential()
        .unwrap_err();
    let Error::Configuration(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(d.kind(), ConfigErrorKind::Missing);
    assert!(e.to_string().contains("managed identity: not tried"), "{e}");
    let cfg = ClientConfig::from_toml_str(
        "issuer = \"https://idp.example/realms/acme\"\ncredential = \"managed-identity\"",
    )
    .unwrap();
    let e = cfg.choose_credential().unwrap_err();
    assert!(
        matches!(&e, Error::Configuration(d) if d.kind() == ConfigErrorKind::Conflict),
        "{e}"
    );
    // Plain http only on loopback, named by its setting.
    let cfg = ClientConfig::from_toml_str("issuer = \"http://idp.example/realms/acme\"").unwrap();
    let e = cfg.authority().unwrap_err();
    let Error::Authority(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (d.kind(), d.setting()),
        (AuthorityErrorKind::Insecure, Some("issuer"))
    );
}
