//! What a configuration builds: the client (on the daemon's clock), with its
//! shared store (Redis or a file) and the fleet's job leases; the API
//! clients; and the certificate-expiry metric of the credential in use.

use std::collections::BTreeMap;
use std::sync::Arc;

use apptoken::{Clock, ConfidentialClient};

use crate::config::DaemonConfig;
use crate::error::Error;
use crate::fleet::Fleet;
use crate::http::Api;
use crate::observe;

pub(super) type Built = (
    ConfidentialClient,
    BTreeMap<String, Arc<Api>>,
    Option<Arc<Fleet>>,
);

/// The client (on the daemon's clock: token lifetimes, refreshes and
/// backoffs all follow one time), the APIs and the fleet of `config`.
pub(super) fn build(config: &DaemonConfig, clock: &Arc<dyn Clock>) -> Result<Built, Error> {
    let mut builder = config.identity.client_builder()?.clock(Arc::clone(clock));
    let mut fleet = None;
    let cache = &config.cache;
    if let Some(url) = &cache.redis {
        let url = redis_url(&url.0, cache.redis_password_file.as_deref())?;
        let key_file = cache.key_file.as_ref().ok_or_else(|| {
            Error::Other("[cache] redis needs key_file (the key that seals tokens)".into())
        })?;
        let key = apptoken::StoreKey::from_file(key_file)?;
        let redis = match &cache.redis_ca_file {
            Some(ca) => {
                let pem = apptoken::read_ca_file(ca).map_err(|e| Error::Other(e.to_string()))?;
                apptoken_redis::RedisStore::with_ca(&url, &pem)?
            }
            None => apptoken_redis::RedisStore::new(&url)?,
        };
        let store: Arc<dyn apptoken::TokenStore> = Arc::new(redis.with_timeout(cache.timeout));
        builder = builder.shared_store(Arc::clone(&store), key);
        let namespace = config.identity.client_id.clone().unwrap_or_default();
        fleet = Some(Arc::new(Fleet::new(
            store,
            config.daemon.job_lease,
            namespace,
        )));
    } else if let Some(file) = &cache.file {
        let key = match &cache.key_file {
            Some(k) => apptoken::StoreKey::from_file(k)?,
            None => apptoken::StoreKey::load_or_create(crate::config::key_path_for(file))?,
        };
        let store = apptoken::FileStore::open(file)?;
        builder = builder.shared_store(Arc::new(store), key);
    }
    let client = builder.build()?;
    let ca = match &config.identity.ca_file {
        Some(p) => Some(apptoken::read_ca_file(p).map_err(|e| Error::Other(e.to_string()))?),
        None => None,
    };
    let mut apis = BTreeMap::new();
    for (name, a) in &config.apis {
        let api = Api::new(a.clone(), ca.as_deref()).map_err(Error::Other)?;
        apis.insert(name.clone(), Arc::new(api));
    }
    Ok((client, apis, fleet))
}

/// The Redis URL with the password of `password_file` in it (never logged).
fn redis_url(url: &str, password_file: Option<&std::path::Path>) -> Result<String, Error> {
    let Some(pf) = password_file else {
        return Ok(url.to_string());
    };
    let bytes = std::fs::read(pf)
        .map_err(|e| Error::Other(format!("cannot read '{}': {e}", pf.display())))?;
    let password = String::from_utf8(bytes)
        .map_err(|_| Error::Other(format!("'{}' is not UTF-8 text", pf.display())))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let mut u = url::Url::parse(url)
        .map_err(|_| Error::Other("[cache] redis is not a valid URL".into()))?;
    if matches!(u.scheme(), "redis+unix" | "unix") {
        u.query_pairs_mut().append_pair("pass", password);
    } else if u.set_password(Some(password)).is_err() {
        return Err(Error::Other(
            "[cache] redis: this URL cannot carry a password".into(),
        ));
    }
    Ok(u.into())
}

pub(super) fn publish_certificate(
    client: &ConfidentialClient,
    config: &DaemonConfig,
    clock: &dyn Clock,
) {
    if let Some(cert) = client
        .credential()
        .and_then(|c| c.certificate_ref().cloned())
    {
        observe::certificate_expiry(&cert, clock.now(), config.daemon.certificate_warning);
    }
}
