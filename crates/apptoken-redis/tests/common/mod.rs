//! A `redis-server` of the test's own, on a unix socket in a temporary
//! directory. Missing `redis-server` fails the test (never skips it).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart();
        r
    }

    pub fn restart(&mut self) {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new(&bin)
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): run scripts/test.sh, which installs redis-server")
            });
        self.child = Some(child);
        wait_for(&self.socket());
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not create {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long a test's store operations may take before they count as
/// failed: long enough that only a Redis that is gone fails them, however
/// loaded the machine (the library's default, 250 ms, is for production,
/// where going on without the store beats waiting).
pub const PATIENT: Duration = Duration::from_secs(30);

/// A lease held this long may have lapsed for another instance (the
/// library's leases last 10 s; its waiters give up after as long).
pub const LONG_HOLD: Duration = Duration::from_secs(5);

/// A store that records what makes a fleet's token requests depend on
/// timing: operations that failed (the client then asks the identity
/// provider itself) and leases held for [`LONG_HOLD`] or more (another
/// instance may have taken over, or given up waiting). With neither, a
/// fleet makes exactly one token request per key.
#[derive(Debug)]
pub struct Observed<S> {
    inner: S,
    errors: std::sync::atomic::AtomicU64,
    long_holds: std::sync::atomic::AtomicU64,
    held: std::sync::Mutex<std::collections::HashMap<(String, String), Instant>>,
}

impl<S: apptoken::TokenStore> Observed<S> {
    pub fn new(inner: S) -> std::sync::Arc<Observed<S>> {
        std::sync::Arc::new(Observed {
            inner,
            errors: Default::default(),
            long_holds: Default::default(),
            held: Default::default(),
        })
    }

    /// Failed operations and long-held leases so far.
    pub fn anomalies(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.errors.load(SeqCst), self.long_holds.load(SeqCst))
    }

    fn note<T>(&self, r: &apptoken::Result<T>) {
        if r.is_err() {
            self.errors
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl<S: apptoken::TokenStore> apptoken::TokenStore for Observed<S> {
    fn get<'a>(&'a self, key: &'a str) -> apptoken::StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let r = self.inner.get(key).await;
            self.note(&r);
            r
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> apptoken::StoreFuture<'a, ()> {
        Box::pin(async move {
            let r = self.inner.put(key, value, ttl).await;
            self.note(&r);
            r
        })
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> apptoken::StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = self.inner.try_lease(name, holder, ttl).await;
            self.note(&r);
            if let Ok(true) = r {
                self.held
                    .lock()
                    .unwrap()
                    .insert((name.to_string(), holder.to_string()), Instant::now());
            }
            r
        })
    }

    fn release_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> apptoken::StoreFuture<'a, ()> {
        Box::pin(async move {
            let since = self
                .held
                .lock()
                .unwrap()
                .remove(&(name.to_string(), holder.to_string()));
            if since.is_some_and(|t| t.elapsed() >= LONG_HOLD) {
                self.long_holds
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let r = self.inner.release_lease(name, holder).await;
            self.note(&r);
            r
        })
    }

    fn renew_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> apptoken::StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = self.inner.renew_lease(name, holder, ttl).await;
            self.note(&r);
            r
        })
    }
}

/// One token request per key when nothing timing-dependent happened (no
/// failed store operation, no long-held lease); otherwise the bounds that
/// hold whatever the timing: at least one per key, at most one per key and
/// instance (each instance's own single flight).
pub fn assert_one_request_per_key(
    requests: u64,
    keys: u64,
    instances: u64,
    (errors, long_holds): (u64, u64),
) {
    if errors == 0 && long_holds == 0 {
        assert_eq!(
            requests, keys,
            "exactly one token request per key for the whole fleet"
        );
    } else {
        println!(
            "the store failed {errors} operations and {long_holds} leases were held long: {requests} token requests for {keys} keys"
        );
        assert!(
            (keys..=keys * instances).contains(&requests),
            "{requests} token requests for {keys} keys and {instances} instances"
        );
    }
}

pub const SAMPLE_API_APP_ID: &str = "e3f9a7c1-2b4d-4f6e-8a9b-0c1d2e3f4a5b";
pub const CLIENT_ID: &str = "0f1e2d3c-4b5a-4968-8776-655443322110";
pub const SECRET: &str = "fleet-test-secret-not-a-real-one";

/// The tenant ids of [`many_tenants_toml`].
pub fn tenant_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("00000000-0000-4000-8000-{:012x}", i + 1))
        .collect()
}

/// An emulator configuration with `n` tenants, each consented to the sample API.
pub fn many_tenants_toml(n: usize) -> String {
    let ids = tenant_ids(n);
    let mut t = String::new();
    for (i, id) in ids.iter().enumerate() {
        t.push_str(&format!(
            "[[tenants]]\nid = \"{id}\"\ndomains = [\"t{i}.example\"]\ndisplay_name = \"Tenant {i}\"\n\n"
        ));
    }
    t.push_str(&format!(
        "[[resources]]\napp_id = \"{SAMPLE_API_APP_ID}\"\napp_id_uri = \"api://apptoken-sample-api\"\nroles = [{{ value = \"Users.Read.All\" }}]\n\n"
    ));
    t.push_str(&format!(
        "[[apps]]\nclient_id = \"{CLIENT_ID}\"\ndisplay_name = \"fleet\"\nhome_tenant = \"{}\"\nmulti_tenant = true\nrequired_roles = [{{ resource = \"api://apptoken-sample-api\", roles = [\"Users.Read.All\"] }}]\n  [[apps.secrets]]\n  value = \"{SECRET}\"\n\n",
        ids[0]
    ));
    for id in &ids {
        t.push_str(&format!(
            "[[grants]]\ntenant = \"{id}\"\nclient_id = \"{CLIENT_ID}\"\nresource = \"api://apptoken-sample-api\"\nroles = [\"Users.Read.All\"]\n\n"
        ));
    }
    t.push_str("[sample_api]\nresource = \"api://apptoken-sample-api\"\nrequired_role = \"Users.Read.All\"\n");
    t
}

/// A `redis-server` of the test's own that speaks only TLS, on an
/// ephemeral 127.0.0.1 port, with a server certificate from a CA made for
/// the test.
pub struct TlsRedis {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// The PEM of the CA that issued the server's certificate.
    pub ca_pem: String,
}

/// A CA: its PEM and an issuer for leaf certificates.
pub fn test_ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

impl TlsRedis {
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    pub fn start() -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = test_ca("apptoken test Redis CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "redis");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        // An ephemeral port: the OS picks it, redis-server binds it next.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let d = |f: &str| dir.path().join(f);
        let child = Command::new(&bin)
            .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port"])
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(d("server.pem"))
            .arg("--tls-key-file")
            .arg(d("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(d("ca.pem"))
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): run scripts/test.sh, which installs redis-server")
            });
        let r = TlsRedis {
            child: Some(child),
            dir,
            port,
            ca_pem,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        r
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
