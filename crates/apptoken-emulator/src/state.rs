//! What changes while the emulator runs: admin consents given and revoked at
//! runtime, the token signing key ring (rotation), and token revocations (CAE).
//! Every lock here is a std lock taken only in synchronous code.

use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::Error;
use crate::admin::admin_error;
use crate::config::{App, Config, Grant};
use crate::crypto::SigningKey;
use crate::server::AppState;

/// (resource app id, role values) pairs.
pub(crate) type RequiredRoles = Vec<(String, Vec<String>)>;

/// The current signing key and the rotated-out ones still published.
#[derive(Debug)]
pub(crate) struct KeyRing {
    current: Arc<SigningKey>,
    /// Old keys with the instant they leave the JWKS (and stop verifying).
    retired: Vec<(Arc<SigningKey>, OffsetDateTime)>,
}

/// One revocation: tokens of `client_id` (in `tenant_id`, or every tenant)
/// issued before `at` are refused by the sample API.
#[derive(Debug, Clone)]
struct Revocation {
    client_id: String,
    tenant_id: Option<String>,
    at: i64,
}

/// Consents changed at runtime.
#[derive(Debug, Default)]
struct Consents {
    /// Consents given at runtime (admin consent, `grant_consent`).
    grants: Vec<Grant>,
    /// (client id, tenant id) pairs whose consent was revoked: the
    /// configuration's grants there no longer count. A later consent adds
    /// runtime grants again (the app's `required_roles`).
    withdrawn: Vec<(String, String)>,
}

impl Consents {
    fn withdrawn(&self, client_id: &str, tid: &str) -> bool {
        self.withdrawn
            .iter()
            .any(|(c, t)| c == client_id && t == tid)
    }
}

/// The state that changes at runtime.
#[derive(Debug)]
pub(crate) struct RuntimeState {
    consents: Mutex<Consents>,
    revocations: Mutex<Vec<Revocation>>,
    keys: RwLock<KeyRing>,
}

impl RuntimeState {
    pub(crate) fn new(key: SigningKey) -> Self {
        RuntimeState {
            consents: Mutex::new(Consents::default()),
            revocations: Mutex::new(Vec::new()),
            keys: RwLock::new(KeyRing {
                current: Arc::new(key),
                retired: Vec::new(),
            }),
        }
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The key that signs tokens issued now.
    pub(crate) fn current_key(&self) -> Arc<SigningKey> {
        self.ring().current.clone()
    }

    /// The keys in the JWKS at `now`: the current one first.
    pub(crate) fn published_keys(&self, now: OffsetDateTime) -> Vec<Arc<SigningKey>> {
        let ring = self.ring();
        std::iter::once(ring.current.clone())
            .chain(
                ring.retired
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }

    /// A published key by `kid`.
    pub(crate) fn key_for(&self, kid: &str, now: OffsetDateTime) -> Option<Arc<SigningKey>> {
        self.published_keys(now).into_iter().find(|k| k.kid == kid)
    }

    /// Generates a new signing key; the old one stays published for `overlap`.
    pub(crate) fn rotate(
        &self,
        now: OffsetDateTime,
        overlap: time::Duration,
    ) -> Result<(String, String), Error> {
        let fresh = Arc::new(SigningKey::generate(now)?);
        let mut ring = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut ring.current, fresh.clone());
        ring.retired.retain(|(_, until)| *until > now);
        let old_kid = old.kid.clone();
        ring.retired.push((old, now.saturating_add(overlap)));
        Ok((fresh.kid.clone(), old_kid))
    }

    fn lock_consents(&self) -> std::sync::MutexGuard<'_, Consents> {
        self.consents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the app has a service principal in the tenant: its home
    /// tenant, a configured grant (unless revoked), or a consent given at
    /// runtime.
    pub(crate) fn has_service_principal(&self, config: &Config, app: &App, tid: &str) -> bool {
        if app.home_tenant == tid {
            return true;
        }
        let consents = self.lock_consents();
        (!consents.withdrawn(&app.client_id, tid) && config.has_service_principal(app, tid))
            || consents
                .grants
                .iter()
                .any(|g| g.client_id == app.client_id && g.tenant_id == tid)
    }

    /// Roles granted by configuration and by runtime consents.
    pub(crate) fn granted_roles(
        &self,
        config: &Config,
        client_id: &str,
        tid: &str,
        resource_app_id: &str,
    ) -> Vec<String> {
        let consents = self.lock_consents();
        let mut roles = if consents.withdrawn(client_id, tid) {
            Vec::new()
        } else {
            config.granted_roles(client_id, tid, resource_app_id)
        };
        for g in consents.grants.iter().filter(|g| {
            g.client_id == client_id && g.tenant_id == tid && g.resource_app_id == resource_app_id
        }) {
            for r in &g.roles {
                if !roles.contains(r) {
                    roles.push(r.clone());
                }
            }
        }
        roles
    }

    /// Admin consent: creates the app's service principal in the tenant and
    /// grants every application role the app registration requires.
    /// Returns the roles granted, as `resource app id` → values.
    pub(crate) fn consent(
        &self,
        config: &Config,
        tenant: &str,
        client_id: &str,
    ) -> Result<(String, RequiredRoles), String> {
        let tenant = config
            .tenant_by_id_or_domain(tenant.trim())
            .ok_or_else(|| format!("unknown tenant '{tenant}'"))?;
        let app = config
            .app(client_id.trim())
            .ok_or_else(|| format!("unknown client_id '{client_id}'"))?;
        if !app.multi_tenant && app.home_tenant != tenant.id {
            return Err(format!(
                "app '{}' is single-tenant and cannot be consented in tenant '{}'",
                app.client_id, tenant.id
            ));
        }
        let mut consents = self.lock_consents();
        // The service principal, even when the app requires no role.
        consents.grants.push(Grant {
            tenant_id: tenant.id.clone(),
            client_id: app.client_id.clone(),
            resource_app_id: String::new(),
            roles: Vec::new(),
        });
        for (resource, roles) in &app.required_roles {
            consents.grants.push(Grant {
                tenant_id: tenant.id.clone(),
                client_id: app.client_id.clone(),
                resource_app_id: resource.clone(),
                roles: roles.clone(),
            });
        }
        Ok((tenant.id.clone(), app.required_roles.clone()))
    }

    /// The customer removes the app: deletes its service principal in the
    /// tenant and every role granted there, by configuration or at runtime.
    /// Token requests there then answer AADSTS7000229, as in a tenant that
    /// never consented. Idempotent. Returns the tenant id.
    ///
    /// Refused for the app's home tenant (that service principal is the
    /// app's own), for a single-tenant app (its only one is there), and for
    /// an unknown tenant or app.
    pub(crate) fn revoke_consent(
        &self,
        config: &Config,
        tenant: &str,
        client_id: &str,
    ) -> Result<String, String> {
        let tenant = config
            .tenant_by_id_or_domain(tenant.trim())
            .ok_or_else(|| format!("unknown tenant '{tenant}'"))?;
        let app = config
            .app(client_id.trim())
            .ok_or_else(|| format!("unknown client_id '{client_id}'"))?;
        if app.home_tenant == tenant.id {
            return Err(format!(
                "tenant '{}' is the home tenant of app '{}': the service principal there is the app's own and cannot be revoked",
                tenant.id, app.client_id
            ));
        }
        if !app.multi_tenant {
            return Err(format!(
                "app '{}' is single-tenant: it has no service principal in tenant '{}' to revoke",
                app.client_id, tenant.id
            ));
        }
        let mut consents = self.lock_consents();
        consents
            .grants
            .retain(|g| !(g.client_id == app.client_id && g.tenant_id == tenant.id));
        if !consents.withdrawn(&app.client_id, &tenant.id) {
            consents
                .withdrawn
                .push((app.client_id.clone(), tenant.id.clone()));
        }
        Ok(tenant.id.clone())
    }

    /// Records a revocation at `at` (unix seconds).
    pub(crate) fn revoke(&self, client_id: &str, tenant_id: Option<String>, at: i64) {
        self.revocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Revocation {
                client_id: client_id.to_ascii_lowercase(),
                tenant_id,
                at,
            });
    }

    /// The latest revocation instant for tokens of this app in this tenant.
    pub(crate) fn revoked_at(&self, client_id: &str, tid: &str) -> Option<i64> {
        self.revocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| {
                r.client_id.eq_ignore_ascii_case(client_id)
                    && r.tenant_id.as_deref().is_none_or(|t| t == tid)
            })
            .map(|r| r.at)
            .max()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    tenant: String,
    client_id: String,
}

/// `POST /_emulator/consent` `{tenant, client_id}`.
pub(crate) async fn post_consent(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let parsed: ConsentBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match st
        .runtime
        .consent(&st.config, &parsed.tenant, &parsed.client_id)
    {
        Ok((tid, roles)) => axum::Json(json!({
            "tenant": tid,
            "client_id": parsed.client_id.to_ascii_lowercase(),
            "granted": roles.iter().map(|(r, v)| json!({"resource": r, "roles": v})).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(m) => admin_error(StatusCode::BAD_REQUEST, &m),
    }
}

/// `DELETE /_emulator/consent` `{tenant, client_id}`: the customer removes the app.
pub(crate) async fn delete_consent(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let parsed: ConsentBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match st
        .runtime
        .revoke_consent(&st.config, &parsed.tenant, &parsed.client_id)
    {
        Ok(tid) => axum::Json(json!({
            "tenant": tid,
            "client_id": parsed.client_id.trim().to_ascii_lowercase(),
            "revoked": true,
        }))
        .into_response(),
        Err(m) => admin_error(StatusCode::BAD_REQUEST, &m),
    }
}

/// `POST /_emulator/keys/rotate`.
pub(crate) async fn post_rotate(State(st): State<Arc<AppState>>) -> Response {
    match st.rotate_signing_key() {
        Ok((kid, previous, until)) => axum::Json(json!({
            "kid": kid,
            "previous_kid": previous,
            "previous_published_until": until.unix_timestamp(),
        }))
        .into_response(),
        Err(e) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    client_id: String,
    tenant: Option<String>,
}

/// `POST /_emulator/revoke` `{client_id, tenant?}`.
pub(crate) async fn post_revoke(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let parsed: RevokeBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let tenant = match &parsed.tenant {
        None => None,
        Some(t) => match st.config.tenant_by_id_or_domain(t.trim()) {
            Some(t) => Some(t.id.clone()),
            None => {
                return admin_error(StatusCode::BAD_REQUEST, &format!("unknown tenant '{t}'"));
            }
        },
    };
    let at = st.clock.now().unix_timestamp();
    st.runtime.revoke(&parsed.client_id, tenant.clone(), at);
    axum::Json(json!({"client_id": parsed.client_id, "tenant": tenant, "revoked_at": at}))
        .into_response()
}

impl AppState {
    /// Rotates the token signing key; returns (new kid, old kid, old key's
    /// end of publication).
    pub(crate) fn rotate_signing_key(&self) -> Result<(String, String, OffsetDateTime), Error> {
        let now = self.clock.now();
        let overlap = time::Duration::seconds(
            i64::try_from(self.config.key_overlap_secs).unwrap_or(i64::MAX),
        );
        let (kid, old) = self.runtime.rotate(now, overlap)?;
        Ok((kid, old, now.saturating_add(overlap)))
    }
}
