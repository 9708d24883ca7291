//! Starting, describing and stopping the emulator.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::aad::{RequestContext, json_response};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::SigningKey;
use crate::embedded::write_private;
use crate::stats::{Stats, StatsRecorder};
use crate::{Error, discovery, sample_api, token};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: Config,
    /// `http://127.0.0.1:PORT`: the authority host; issuers use it.
    pub(crate) base_url: String,
    pub(crate) signing: SigningKey,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stats: StatsRecorder,
}

impl AppState {
    pub(crate) fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.base_url)
    }
}

/// A tenant other than the primary app's home tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantInfo {
    /// The tenant's GUID.
    pub tenant_id: String,
    /// Its first domain name (the GUID when it has none).
    pub domain: String,
}

/// The facts a client needs to talk to a running emulator; written to
/// `emulator.json` in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmulatorInfo {
    /// Base URL of the emulator, used as the authority host
    /// (`http://127.0.0.1:PORT`).
    pub authority_host: String,
    /// The primary app's home tenant id.
    pub tenant_id: String,
    /// That tenant's first domain name.
    pub tenant_domain: String,
    /// The other configured tenants.
    pub other_tenants: Vec<TenantInfo>,
    /// The primary app's client id.
    pub client_id: String,
    /// The primary app's first unexpired client secret, if any.
    pub client_secret: Option<String>,
    /// The primary app's certificate (PEM), when configured by path.
    pub certificate_path: Option<PathBuf>,
    /// The matching PKCS#8 PEM private key, when known.
    pub private_key_path: Option<PathBuf>,
    /// The matching `.pfx`, when known.
    pub pfx_path: Option<PathBuf>,
    /// The `.pfx` password, when known.
    pub pfx_password: Option<String>,
    /// SHA-1 thumbprint of the certificate (upper-case hex).
    pub certificate_thumbprint_sha1: Option<String>,
    /// SHA-256 thumbprint of the certificate (upper-case hex).
    pub certificate_thumbprint_sha256: Option<String>,
    /// Base URL of the sample API (`{authority_host}/v1.0`).
    pub sample_api: String,
    /// The scope to request for the sample API (`api://…/.default`).
    pub sample_scope: String,
}

fn describe(config: &Config, base_url: &str, now: time::OffsetDateTime) -> EmulatorInfo {
    let app = config.primary();
    let home = app
        .and_then(|a| config.tenant(&a.home_tenant))
        .or_else(|| config.tenants.first());
    let domain_of =
        |t: &crate::config::Tenant| t.domains.first().cloned().unwrap_or_else(|| t.id.clone());
    let cert = app.and_then(|a| a.certificates.first());
    EmulatorInfo {
        authority_host: base_url.to_string(),
        tenant_id: home.map(|t| t.id.clone()).unwrap_or_default(),
        tenant_domain: home.map(domain_of).unwrap_or_default(),
        other_tenants: config
            .tenants
            .iter()
            .filter(|t| Some(t.id.as_str()) != home.map(|h| h.id.as_str()))
            .map(|t| TenantInfo {
                tenant_id: t.id.clone(),
                domain: domain_of(t),
            })
            .collect(),
        client_id: app.map(|a| a.client_id.clone()).unwrap_or_default(),
        client_secret: app.and_then(|a| {
            a.secrets
                .iter()
                .find(|s| s.expires_at.is_none_or(|e| e > now))
                .map(|s| s.value.clone())
        }),
        certificate_path: cert.and_then(|c| c.path.clone()),
        private_key_path: cert.and_then(|c| c.private_key_path.clone()),
        pfx_path: cert.and_then(|c| c.pfx_path.clone()),
        pfx_password: cert.and_then(|c| c.pfx_password.clone()),
        certificate_thumbprint_sha1: cert.map(|c| c.cert.sha1_hex()),
        certificate_thumbprint_sha256: cert.map(|c| c.cert.sha256_hex()),
        sample_api: format!("{base_url}/v1.0"),
        sample_scope: config
            .sample_api
            .as_ref()
            .and_then(|s| config.resource_by_app_id(&s.resource_app_id))
            .map(|r| format!("{}/.default", r.scope_prefix()))
            .unwrap_or_default(),
    }
}

/// Quotes a value for POSIX shells: `'…'` with `'` written as `'\''`.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn env_file(info: &EmulatorInfo) -> String {
    let mut lines = vec![
        "# Written by apptoken-emulator; source it: . ./env".to_string(),
        format!(
            "export AZURE_AUTHORITY_HOST={}",
            shell_quote(&info.authority_host)
        ),
        format!("export AZURE_TENANT_ID={}", shell_quote(&info.tenant_id)),
        format!("export AZURE_CLIENT_ID={}", shell_quote(&info.client_id)),
    ];
    if let Some(secret) = &info.client_secret {
        lines.push(format!(
            "export AZURE_CLIENT_SECRET={}",
            shell_quote(secret)
        ));
    }
    lines.push(format!(
        "export APPTOKEN_SAMPLE_API={}",
        shell_quote(&info.sample_api)
    ));
    lines.push(format!(
        "export APPTOKEN_SAMPLE_SCOPE={}",
        shell_quote(&info.sample_scope)
    ));
    lines.join("\n") + "\n"
}

fn write_state_files(dir: &Path, info: &EmulatorInfo) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    write_private(&dir.join("env"), env_file(info).as_bytes())?;
    let json = serde_json::to_vec_pretty(info).map_err(|e| Error::Config(e.to_string()))?;
    write_private(&dir.join("emulator.json"), &json)
}

/// Entry point: starts the identity provider and the sample API.
#[derive(Debug)]
#[non_exhaustive]
pub struct Emulator;

impl Emulator {
    /// Binds `listen` (use `127.0.0.1:0` for a free port), writes the `env`
    /// and `emulator.json` files when the config has a state directory, and
    /// serves until [`RunningEmulator::shutdown`] or drop.
    ///
    /// # Errors
    /// [`Error::Bind`] if the address cannot be bound; [`Error::Io`] if the
    /// state files cannot be written; [`Error::Crypto`] if the signing key
    /// cannot be generated.
    pub async fn start(config: Config, listen: SocketAddr) -> Result<RunningEmulator, Error> {
        Self::start_with_clock(config, listen, Arc::new(SystemClock)).await
    }

    pub(crate) async fn start_with_clock(
        config: Config,
        listen: SocketAddr,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningEmulator, Error> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
        let host_ip = match local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let base_url = format!("http://{}", SocketAddr::new(host_ip, local_addr.port()));
        let now = clock.now();
        let signing = SigningKey::generate(now)?;
        let info = describe(&config, &base_url, now);
        if let Some(dir) = &config.state_dir {
            write_state_files(dir, &info)?;
        }
        let state = Arc::new(AppState {
            config,
            base_url: base_url.clone(),
            signing,
            clock,
            stats: StatsRecorder::default(),
        });
        let app = router(state.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "emulator server stopped with an error");
            }
        });
        tracing::info!(%base_url, "apptoken emulator listening");
        Ok(RunningEmulator {
            local_addr,
            base_url,
            info,
            state,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Stops when [`shutdown`](Self::shutdown) is awaited or
/// when dropped.
#[derive(Debug)]
pub struct RunningEmulator {
    local_addr: SocketAddr,
    base_url: String,
    info: EmulatorInfo,
    state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningEmulator {
    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`: the authority host clients use.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The facts written to `emulator.json`.
    pub fn info(&self) -> &EmulatorInfo {
        &self.info
    }

    /// A snapshot of the counters (same data as `GET /_emulator/stats`).
    pub fn stats(&self) -> Stats {
        self.state.stats.snapshot()
    }

    /// Stops accepting connections, lets requests in flight finish, and
    /// waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::jwks))
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(token::token_endpoint).get(token::token_get),
        )
        .route("/v1.0/users", get(sample_api::list_users))
        .route("/v1.0/users/{id}", get(sample_api::get_user))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/stats/reset", post(reset_stats))
        .route("/error", get(error_page))
        .fallback(not_found)
        .with_state(state)
}

async fn stats(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(st.stats.snapshot()).into_response()
}

async fn reset_stats(State(st): State<Arc<AppState>>) -> StatusCode {
    st.stats.reset();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct ErrorQuery {
    code: Option<String>,
}

async fn error_page(
    query: Result<Query<ErrorQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let code = query.ok().and_then(|q| q.0.code).unwrap_or_default();
    let code: String = code.chars().filter(char::is_ascii_digit).take(10).collect();
    axum::Json(serde_json::json!({
        "code": format!("AADSTS{code}"),
        "message": "See docs/EMULATOR.md for the emulator's error table, or https://learn.microsoft.com/entra/identity-platform/reference-error-codes .",
    }))
    .into_response()
}

async fn not_found(State(st): State<Arc<AppState>>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!({
            "error": "not_found",
            "error_description": format!("No endpoint at '{}'.", uri.path()),
            "trace_id": ctx.trace_id,
            "correlation_id": ctx.correlation_id,
        }),
        &ctx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn secrets_expire_on_the_injected_clock() {
        let now = time::OffsetDateTime::now_utc();
        let expires = (now + time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
        let toml = format!(
            r#"
[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
[[resources]]
app_id = "22222222-2222-2222-2222-222222222222"
[[apps]]
client_id = "33333333-3333-3333-3333-333333333333"
home_tenant = "11111111-1111-1111-1111-111111111111"
secrets = [{{ value = "pw", expires_at = "{expires}" }}]
"#
        );
        let config = Config::from_toml_str(&toml, Path::new(".")).expect("config");
        let clock = Arc::new(ManualClock::new(now));
        let emu =
            Emulator::start_with_clock(config, "127.0.0.1:0".parse().expect("addr"), clock.clone())
                .await
                .expect("start");
        let url = format!(
            "{}/11111111-1111-1111-1111-111111111111/oauth2/v2.0/token",
            emu.base_url()
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "33333333-3333-3333-3333-333333333333"),
            ("client_secret", "pw"),
            ("scope", "22222222-2222-2222-2222-222222222222/.default"),
        ];
        let client = reqwest::Client::new();
        let ok = client.post(&url).form(&form).send().await.expect("send");
        assert_eq!(ok.status(), 200);
        let token: serde_json::Value = ok.json().await.expect("json");
        // No grant: the token is issued without a roles claim, as Entra does.
        let claims = token["access_token"]
            .as_str()
            .expect("token")
            .split('.')
            .nth(1)
            .expect("claims");
        let claims: serde_json::Value =
            serde_json::from_slice(&crate::crypto::b64_lenient(claims).expect("b64"))
                .expect("json");
        assert!(claims.get("roles").is_none(), "{claims}");
        assert_eq!(claims["iat"].as_i64(), Some(now.unix_timestamp() - 300));

        clock.advance(time::Duration::hours(2));
        let expired = client.post(&url).form(&form).send().await.expect("send");
        assert_eq!(expired.status(), 401);
        let body: serde_json::Value = expired.json().await.expect("json");
        assert_eq!(body["error_codes"], serde_json::json!([7000222]));
        assert_eq!(
            emu.stats().count(
                "33333333-3333-3333-3333-333333333333",
                "11111111-1111-1111-1111-111111111111",
                "AADSTS7000222"
            ),
            1
        );
        emu.shutdown().await;
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_quote("$HOME `x`"), "'$HOME `x`'");
    }
}
