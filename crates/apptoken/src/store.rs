//! A second-level token store shared by many instances (Redis, …), behind
//! the in-memory cache: one token request per key across a fleet.
//!
//! The core defines the small [`TokenStore`] trait; `apptoken-redis`
//! implements it. Everything that makes a shared store safe lives here, so
//! every store gets it: keys are keyed hashes (no tenant or client id in
//! clear), values are sealed with AES-256-GCM under a key the user provides,
//! with the storage key as associated data (a value cannot be moved to
//! another key), and a value that does not open is a miss, never served.
//!
//! Compiled with the `shared-store` feature only (as is `client/shared.rs`).

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use secrecy::SecretString;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::cache::CacheKey;
use crate::error::{InternalError, InternalErrorKind, Result};

/// A platform failure (no randomness, a primitive refusing valid input).
fn platform(message: &'static str) -> InternalError {
    InternalError::new(InternalErrorKind::Platform, message)
}
use crate::token::AccessToken;

/// The future of a [`TokenStore`] operation.
///
/// Available with the `shared-store` feature.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A shared key-value store with expiring entries and leases. Keys and
/// values given to it are already hashed and sealed. Operations should fail
/// fast (a short timeout): the client then works without the store.
///
/// Available with the `shared-store` feature.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The value at `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Stores `value` at `key` for `ttl`.
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()>;
    /// Takes the lease `name` for `ttl` if nobody holds it (`SET NX PX`);
    /// `true` when `holder` got it.
    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;
    /// Releases the lease if `holder` still holds it.
    fn release_lease<'a>(&'a self, name: &'a str, holder: &'a str) -> StoreFuture<'a, ()>;
    /// Extends the lease to `ttl` from now if `holder` still holds it;
    /// `false` when it was lost (expired, taken by another holder).
    fn renew_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;
}

/// The key that seals values in a shared store and hashes their keys.
///
/// Available with the `shared-store` feature.
#[derive(Clone)]
pub struct StoreKey {
    seal: std::sync::Arc<LessSafeKey>,
    mac: hmac::Key,
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey([redacted])")
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl StoreKey {
    /// A key from at least 32 bytes of secret material (sealing and hashing
    /// keys are derived from it with HKDF-SHA256).
    pub fn from_bytes(material: &[u8]) -> Result<StoreKey> {
        if material.len() < 32 {
            return Err(crate::error::config(
                crate::error::ConfigErrorKind::Invalid,
                format!(
                    "the cache encryption key has {} bytes; it needs at least 32 (for example `openssl rand -base64 32`)",
                    material.len()
                ),
            ));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"apptoken-store-v1").extract(material);
        let mut enc = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"seal"], Len(32))
            .and_then(|okm| okm.fill(&mut enc[..]))
            .map_err(|_| platform("cannot derive the cache sealing key"))?;
        let unbound = UnboundKey::new(&aead::AES_256_GCM, &enc[..])
            .map_err(|_| platform("cannot make the cache sealing key"))?;
        let mac: hmac::Key = prk
            .expand(&[b"key-hash"], hmac::HMAC_SHA256)
            .map_err(|_| platform("cannot derive the cache key-hashing key"))?
            .into();
        Ok(StoreKey {
            seal: std::sync::Arc::new(LessSafeKey::new(unbound)),
            mac,
        })
    }

    /// A key read from a file (only its owner may read it): 32 or more raw
    /// bytes, or that in base64 or hex on one line.
    pub fn from_file(path: impl AsRef<Path>) -> Result<StoreKey> {
        let bytes = crate::files::read_secret_file(path.as_ref(), "cache encryption key")?;
        let text = std::str::from_utf8(&bytes).ok().map(str::trim);
        let decoded = text.and_then(|t| {
            if t.len() >= 64 && t.len() % 2 == 0 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                (0..t.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&t[i..i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()
            } else {
                base64::engine::general_purpose::STANDARD.decode(t).ok()
            }
        });
        match decoded {
            Some(d) if d.len() >= 32 => StoreKey::from_bytes(&Zeroizing::new(d)),
            _ => StoreKey::from_bytes(&bytes),
        }
    }

    /// Reads the key at `path`, or creates it there (32 random bytes in
    /// base64, mode 0600) when the file does not exist yet.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<StoreKey> {
        let path = path.as_ref();
        if !path.exists() {
            let mut raw = Zeroizing::new([0u8; 32]);
            SystemRandom::new()
                .fill(&mut raw[..])
                .map_err(|_| platform("no randomness for a new cache key"))?;
            let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&raw[..]));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path).map_err(|e| {
                crate::error::ConfigError::new(
                    crate::error::ConfigErrorKind::File(crate::error::FileProblem::Unwritable),
                    format!("cannot create the cache key file '{}'", path.display()),
                )
                .with_path(path)
                .with_source(e)
            })?;
            std::io::Write::write_all(&mut f, text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| {
                    crate::error::ConfigError::new(
                        crate::error::ConfigErrorKind::File(crate::error::FileProblem::Unwritable),
                        format!("cannot write the cache key file '{}'", path.display()),
                    )
                    .with_path(path)
                    .with_source(e)
                })?;
        }
        StoreKey::from_file(path)
    }

    /// The storage key for a cache key: `apptoken:v1:` and a keyed hash.
    pub(crate) fn storage_key(&self, key: &CacheKey) -> String {
        let mut ctx = hmac::Context::with_key(&self.mac);
        for part in [&*key.host, &*key.client_id, key.tenant(), key.scope()] {
            ctx.update(part.as_bytes());
            ctx.update(&[0]);
        }
        // Entra's keys have neither, so their storage keys are those of
        // earlier versions (a rolling upgrade keeps sharing them).
        if !key.extra().is_empty() {
            ctx.update(key.extra().as_bytes());
            ctx.update(&[0]);
        }
        if key.exact {
            ctx.update(b"exact\0");
        }
        let tag = ctx.sign();
        let hex: String = tag.as_ref()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("apptoken:v1:{hex}")
    }

    fn seal(&self, storage_key: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| platform("no randomness for sealing"))?;
        let mut in_out = plaintext.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(storage_key.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| platform("sealing the cached token failed"))?;
        let mut out = Vec::with_capacity(13 + in_out.len());
        out.push(1u8); // format version
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    fn open(&self, storage_key: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 13 + 16 || sealed[0] != 1 {
            return None;
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sealed[1..13]);
        let mut in_out = Zeroizing::new(sealed[13..].to_vec());
        let plain_len = self
            .seal
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(storage_key.as_bytes()),
                &mut in_out,
            )
            .ok()?
            .len();
        in_out.truncate(plain_len);
        Some(in_out)
    }
}

/// What a store holds for one token (sealed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    v: u8,
    token: String,
    token_type: String,
    expires_on: i64,
    refresh_on: Option<i64>,
    ext_expires_on: Option<i64>,
}

/// The client's view of a shared store.
pub(crate) struct Shared {
    pub(crate) store: std::sync::Arc<dyn TokenStore>,
    pub(crate) key: StoreKey,
    /// This client instance, as a lease holder.
    pub(crate) holder: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) poll: Duration,
    degraded: AtomicBool,
    warned_bad_value: AtomicBool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(store: std::sync::Arc<dyn TokenStore>, key: StoreKey) -> Shared {
        Shared {
            store,
            key,
            holder: uuid::Uuid::new_v4().to_string(),
            lease_ttl: Duration::from_secs(10),
            poll: Duration::from_millis(50),
            degraded: AtomicBool::new(false),
            warned_bad_value: AtomicBool::new(false),
        }
    }

    /// Whether the store answered the last operation.
    pub(crate) fn is_up(&self) -> bool {
        !self.degraded.load(Ordering::Relaxed)
    }

    fn note<T>(&self, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "the shared token store answers again; back to the two-level cache"
                    );
                    metrics::gauge!("apptoken_shared_store_up").set(1.0);
                }
                Some(v)
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "the shared token store is unavailable; working from memory and the identity provider until it is back");
                    metrics::gauge!("apptoken_shared_store_up").set(0.0);
                }
                metrics::counter!("apptoken_shared_store_errors_total").increment(1);
                None
            }
        }
    }

    /// A token from the store that is fresh at `now` (and, for refreshes,
    /// newer than `newer_than`).
    pub(crate) async fn read(
        &self,
        key: &CacheKey,
        now: OffsetDateTime,
        newer_than: Option<OffsetDateTime>,
        tenant: &str,
        scopes: &[String],
    ) -> Option<AccessToken> {
        let sk = self.key.storage_key(key);
        let sealed = self.note(self.store.get(&sk).await)??;
        let Some(plain) = self.key.open(&sk, &sealed) else {
            if !self.warned_bad_value.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "a value in the shared token store does not open with this key (tampered, foreign or stale); ignoring it"
                );
            }
            metrics::counter!("apptoken_shared_store_rejected_total").increment(1);
            return None;
        };
        let stored: Stored = serde_json::from_slice(&plain).ok()?;
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).ok();
        let expires_on = at(stored.expires_on)?;
        if now >= crate::limits::sub(expires_on, crate::cache::EXPIRY_MARGIN)
            || newer_than.is_some_and(|n| expires_on <= n)
        {
            return None;
        }
        metrics::counter!("apptoken_shared_store_hits_total").increment(1);
        Some(AccessToken::new(
            SecretString::from(stored.token),
            stored.token_type,
            expires_on,
            stored.refresh_on.and_then(at),
            stored.ext_expires_on.and_then(at),
            tenant.to_string(),
            scopes.to_vec(),
        ))
    }

    pub(crate) async fn write(&self, key: &CacheKey, token: &AccessToken, now: OffsetDateTime) {
        let ttl = token.expires_on() - now;
        let Ok(ttl) = Duration::try_from(ttl) else {
            return;
        };
        if ttl.is_zero() {
            return;
        }
        let stored = Stored {
            v: 1,
            token: token.secret().to_string(),
            token_type: token.token_type().to_string(),
            expires_on: token.expires_on().unix_timestamp(),
            refresh_on: token.refresh_on().map(|t| t.unix_timestamp()),
            ext_expires_on: token.ext_expires_on().map(|t| t.unix_timestamp()),
        };
        let Ok(plain) = serde_json::to_vec(&stored).map(Zeroizing::new) else {
            return;
        };
        let _ = Zeroizing::new(stored.token);
        let sk = self.key.storage_key(key);
        let Ok(sealed) = self.key.seal(&sk, &plain) else {
            return;
        };
        self.note(self.store.put(&sk, &sealed, ttl).await);
    }

    /// `Some(true)`: this instance holds the lease; `Some(false)`: another
    /// does; `None`: the store is unavailable.
    pub(crate) async fn lease(&self, key: &CacheKey) -> Option<bool> {
        let name = format!("{}:lease", self.key.storage_key(key));
        self.note(
            self.store
                .try_lease(&name, &self.holder, self.lease_ttl)
                .await,
        )
    }

    pub(crate) async fn release(&self, key: &CacheKey) {
        let name = format!("{}:lease", self.key.storage_key(key));
        self.note(self.store.release_lease(&name, &self.holder).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key() -> CacheKey {
        CacheKey::new(
            Arc::from("https://h"),
            Arc::from("c"),
            "contoso.example",
            "api://x/.default",
        )
    }

    #[test]
    fn keys_hide_tenant_and_client_and_depend_on_the_secret() {
        let a = StoreKey::from_bytes(&[7u8; 32]).unwrap();
        let b = StoreKey::from_bytes(&[8u8; 32]).unwrap();
        let ka = a.storage_key(&key());
        assert!(ka.starts_with("apptoken:v1:") && !ka.contains("contoso") && !ka.contains("api"));
        assert_eq!(ka, a.storage_key(&key()));
        assert_ne!(ka, b.storage_key(&key()));
        assert!(StoreKey::from_bytes(&[1u8; 16]).is_err());
        assert_eq!(format!("{a:?}"), "StoreKey([redacted])");
    }

    #[test]
    fn sealed_values_open_only_under_their_key_and_storage_key() {
        let a = StoreKey::from_bytes(&[7u8; 32]).unwrap();
        let b = StoreKey::from_bytes(&[8u8; 32]).unwrap();
        let sealed = a.seal("k1", b"secret token").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&a.open("k1", &sealed).unwrap()[..], b"secret token");
        assert!(a.open("k2", &sealed).is_none(), "moved to another key");
        assert!(b.open("k1", &sealed).is_none(), "another fleet's key");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(a.open("k1", &tampered).is_none());
        assert!(a.open("k1", &sealed[..10]).is_none());
        assert!(a.open("k1", b"").is_none());
    }

    #[test]
    fn key_files_in_base64_hex_or_raw() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            p
        };
        let raw: [u8; 32] = std::array::from_fn(|i| 0x80 | (i as u8 * 7));
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let k1 = StoreKey::from_file(write("b64", format!("{b64}\n").as_bytes())).unwrap();
        let k2 = StoreKey::from_file(write("hex", hex.as_bytes())).unwrap();
        let k3 = StoreKey::from_file(write("raw", &raw)).unwrap();
        assert_eq!(k1.storage_key(&key()), k2.storage_key(&key()));
        assert_eq!(k1.storage_key(&key()), k3.storage_key(&key()));
        assert!(StoreKey::from_file(write("short", b"abc")).is_err());
    }
}
