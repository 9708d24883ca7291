//! A Redis-backed [`TokenStore`] for apptoken: the second level of the token
//! cache, shared by every instance of a fleet, with leases so that one
//! instance asks the identity provider for each key.
//!
//! ```no_run
//! # async fn run() -> Result<(), apptoken::Error> {
//! use std::sync::Arc;
//! use apptoken::{ClientConfig, StoreKey};
//! let store = apptoken_redis::RedisStore::new("redis://127.0.0.1:6379/")?;
//! let key = StoreKey::from_file("/etc/apptoken/cache.key")?;
//! let client = ClientConfig::from_env()?
//!     .client_builder()?
//!     .shared_store(Arc::new(store), key)
//!     .build()?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! `rediss://` uses the system's trust store (Azure Cache for Redis and
//! other services with public certificates need nothing more); a server
//! whose certificate comes from a private CA takes [`RedisStore::with_ca`].
//!
//! The store never makes Redis a single point of failure: every operation
//! has a short timeout, a failed connection is retried in the background at
//! most once a second, and the client carries on from memory and the
//! identity provider meanwhile.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apptoken::{
    ConfigError, ConfigErrorKind, Error, StoreError, StoreErrorKind, StoreFuture, TokenStore,
};
use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

/// Compare-and-delete: release a lease only if we still hold it.
const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// Compare-and-extend: renew a lease only if we still hold it.
const RENEW: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end"#;

/// A [`TokenStore`] on Redis (`redis://`, `rediss://` for TLS, `redis+unix://`).
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: Arc<Mutex<Connection>>,
    timeout: Duration,
}

struct Connection {
    manager: Option<ConnectionManager>,
    last_attempt: Option<Instant>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: show only where it points.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStore")
            .field("addr", &info.addr().to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Redis did not answer in time.
fn timed_out(what: &str) -> Error {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!("redis {what}: timed out"),
    )
    .into()
}

/// Redis failed; the error is the cause. A connection that cannot be made
/// or was lost is `Unavailable`, anything else `Failed`.
fn store_error(what: &str, e: redis::RedisError) -> Error {
    let kind = if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
    {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Failed
    };
    StoreError::new(kind, format!("redis {what} failed"))
        .with_source(e)
        .into()
}

/// A Redis URL that does not parse. Never echoes the URL (it may carry a
/// password), nor redis's error, which may quote it: only the error's kind.
fn invalid_url(kind: redis::ErrorKind) -> Error {
    ConfigError::new(
        ConfigErrorKind::Invalid,
        format!("the Redis URL is not valid ({kind:?})"),
    )
    .with_setting("redis_url")
    .into()
}

impl RedisStore {
    /// A store for this URL. Nothing is connected yet: the first operation
    /// connects, so a daemon starts even while Redis is down.
    pub fn new(url: &str) -> Result<RedisStore, Error> {
        let client = redis::Client::open(url).map_err(|e| invalid_url(e.kind()))?;
        Ok(RedisStore::from_client(client))
    }

    /// A store for a `rediss://` URL whose server certificate is issued by
    /// a private CA: `ca_pem` (PEM, one or more certificates) replaces the
    /// system's trust store for this connection; PEM without a certificate
    /// is refused, as [`apptoken::read_ca_file`] refuses such a file.
    /// Nothing is connected yet.
    pub fn with_ca(url: &str, ca_pem: &[u8]) -> Result<RedisStore, Error> {
        let info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| invalid_url(e.kind()))?;
        if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            return Err(ConfigError::new(
                ConfigErrorKind::Conflict,
                "a CA for Redis needs a rediss:// URL (TLS)",
            )
            .with_setting("redis_url")
            .into());
        }
        apptoken::internal::check_ca_pem(ca_pem, "the Redis CA file")?;
        let client = redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca_pem.to_vec()),
            },
        )
        .map_err(|e| {
            Error::from(
                ConfigError::new(
                    ConfigErrorKind::Invalid,
                    "the Redis CA certificates cannot be used",
                )
                .with_setting("redis_ca_file")
                .with_source(e),
            )
        })?;
        Ok(RedisStore::from_client(client))
    }

    fn from_client(client: redis::Client) -> RedisStore {
        RedisStore {
            client,
            conn: Arc::new(Mutex::new(Connection {
                manager: None,
                last_attempt: None,
            })),
            timeout: Duration::from_millis(250),
        }
    }

    /// How long one operation may take before the client goes on without
    /// the store (default 250 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> RedisStore {
        self.timeout = timeout;
        self
    }

    async fn connection(&self) -> Result<ConnectionManager, Error> {
        let mut c = self.conn.lock().await;
        if let Some(m) = &c.manager {
            return Ok(m.clone());
        }
        if c.last_attempt
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "redis is unavailable (next connection attempt within a second)",
            )
            .into());
        }
        c.last_attempt = Some(Instant::now());
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let manager = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| timed_out("connect"))?
        .map_err(|e| store_error("connect", e))?;
        c.manager = Some(manager.clone());
        Ok(manager)
    }

    async fn run<T: redis::FromRedisValue>(&self, what: &str, cmd: redis::Cmd) -> Result<T, Error> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_error(what, e)),
            Err(_) => Err(timed_out(what)),
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u64::MAX as u128) as u64
}

impl TokenStore for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key);
            self.run("GET", cmd).await
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("PX").arg(millis(ttl));
            self.run::<()>("SET", cmd).await
        })
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(name)
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl));
            let r: Option<String> = self.run("SET NX", cmd).await?;
            Ok(r.is_some())
        })
    }

    fn release_lease<'a>(&'a self, name: &'a str, holder: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(RELEASE).arg(1).arg(name).arg(holder);
            self.run::<i64>("release", cmd).await.map(|_| ())
        })
    }

    fn renew_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(RENEW).arg(1).arg(name).arg(holder).arg(millis(ttl));
            self.run::<i64>("renew", cmd).await.map(|n| n == 1)
        })
    }
}
