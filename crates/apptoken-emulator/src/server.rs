//! Starting and stopping the emulator: the state every handler shares
//! ([`AppState`]), [`Emulator::start`] and the [`RunningEmulator`] handle
//! with its test controls (faults, clock, lifetimes, keys, revocation).
//! The router is `router`, the listen rule `listen`, the description and
//! state files `info`.
//!
//! Invariants: `start` checks the listen rule before binding and writes
//! the state files before serving; the handle's methods change the same
//! shared state the admin API changes, so both are always in agreement;
//! dropping the handle stops the server task.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::Error;
use crate::admin::TokenLifetimes;
use crate::clock::{Clock, ControlledClock, SystemClock};
use crate::config::Config;
use crate::crypto::SigningKey;
use crate::fault::{Fault, FaultSet};
use crate::info::{EmulatorInfo, describe, write_state_files};
use crate::listen::{Exposure, listen_policy, remote_warning};
use crate::router::router;
use crate::stats::{Stats, StatsRecorder};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: Config,
    /// `http://127.0.0.1:PORT`: the authority host; issuers use it.
    pub(crate) base_url: String,
    /// Runtime consents, the signing key ring, revocations.
    pub(crate) runtime: crate::state::RuntimeState,
    /// The built-in external issuers (workload identity federation).
    pub(crate) federation: crate::federation::Issuers,
    /// HTTP client for external issuers' metadata (trusts the local CA too).
    pub(crate) fetch: reqwest::Client,
    pub(crate) clock: ControlledClock,
    pub(crate) stats: StatsRecorder,
    pub(crate) faults: FaultSet,
    /// Overrides set by `set_token_lifetimes` (std mutex, never held across an await).
    pub(crate) lifetimes: std::sync::Mutex<TokenLifetimes>,
    /// IMDS's limits and the managed-identity hold.
    pub(crate) mi_limits: crate::managed_identity::limits::Limits,
    /// The Azure Arc key files written so far.
    pub(crate) arc_keys: crate::managed_identity::arc::ArcKeys,
    /// The App Service `IDENTITY_HEADER` secret.
    pub(crate) identity_header: String,
}

impl AppState {
    pub(crate) fn new(
        config: Config,
        base_url: String,
        signing: SigningKey,
        clock: Arc<dyn Clock>,
        fetch: reqwest::Client,
    ) -> AppState {
        let config_identity_header = config
            .identity_header
            .clone()
            .unwrap_or_else(|| hex::encode(crate::crypto::random_bytes(16)));
        AppState {
            config,
            base_url,
            runtime: crate::state::RuntimeState::new(signing),
            federation: crate::federation::Issuers::default(),
            fetch,
            clock: ControlledClock::new(clock),
            stats: StatsRecorder::default(),
            faults: FaultSet::default(),
            lifetimes: std::sync::Mutex::new(TokenLifetimes::default()),
            mi_limits: crate::managed_identity::limits::Limits::default(),
            arc_keys: crate::managed_identity::arc::ArcKeys::default(),
            identity_header: config_identity_header,
        }
    }

    pub(crate) fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.base_url)
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &str {
        self.base_url.split("://").next().unwrap_or("http")
    }

    /// `host:port` of `base_url`.
    pub(crate) fn base_host(&self) -> &str {
        self.base_url.split("://").nth(1).unwrap_or_default()
    }

    /// The `Host` the request arrived at (`login.microsoftonline.com:PORT`),
    /// when it is a plausible host name; else the base URL's `host:port`.
    pub(crate) fn request_host(&self, headers: &HeaderMap) -> String {
        headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase)
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 261
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or_else(|| self.base_host().to_string())
    }

    /// `scheme://` + [`request_host`](Self::request_host): the base of
    /// endpoint URLs in discovery documents.
    pub(crate) fn request_base(&self, headers: &HeaderMap) -> String {
        format!("{}://{}", self.scheme(), self.request_host(headers))
    }
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
    /// `listen` must be a loopback address (`127.0.0.0/8`, `::1`) unless the
    /// configuration allows others ([`Config::with_allow_remote`]): the
    /// admin API (`/_emulator/*`) has no authentication. With it, a warning
    /// is logged.
    ///
    /// # Errors
    /// [`Error::RemoteListen`] for a non-loopback address without
    /// [`Config::with_allow_remote`] (nothing is bound); [`Error::Bind`] if
    /// the address cannot be bound; [`Error::Io`] if the state files cannot
    /// be written; [`Error::Crypto`] if the signing key cannot be generated.
    pub async fn start(config: Config, listen: SocketAddr) -> Result<RunningEmulator, Error> {
        Self::start_with_clock(config, listen, Arc::new(SystemClock)).await
    }

    /// The rule [`start`](Self::start) applies to `listen`, for callers that
    /// want to refuse an address before doing anything else (the CLI does
    /// so before generating credentials).
    ///
    /// # Errors
    /// [`Error::RemoteListen`] when `listen` is not loopback (`0.0.0.0` and
    /// `::` included) and `allow_remote` is false.
    pub fn check_listen(listen: SocketAddr, allow_remote: bool) -> Result<(), Error> {
        listen_policy(listen, allow_remote).map(|_| ())
    }

    pub(crate) async fn start_with_clock(
        config: Config,
        listen: SocketAddr,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningEmulator, Error> {
        // Before binding: a refused address is never opened, not even briefly.
        if listen_policy(listen, config.allow_remote)? == Exposure::Remote {
            tracing::warn!(%listen, "{}", remote_warning(listen));
        }
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
        let mut config = config;
        if config.identity_header.is_none() {
            config.identity_header = Some(hex::encode(crate::crypto::random_bytes(16)));
        }
        let scheme = if config.tls { "https" } else { "http" };
        let base_url = format!("{scheme}://{}", SocketAddr::new(host_ip, local_addr.port()));
        let now = clock.now();
        let signing = SigningKey::generate(now)?;
        let tls = if config.tls {
            Some(crate::tls::setup(config.state_dir.as_deref(), now)?)
        } else {
            None
        };
        let mut info = describe(&config, &base_url, now);
        info.ca_certificate_path = tls.as_ref().and_then(|t| t.ca_path.clone());
        if let Some(dir) = &config.state_dir {
            write_state_files(dir, &info)?;
        }
        let fetch = crate::federation::http_client(tls.as_ref().map(|t| t.ca_pem.as_str()))?;
        let state = Arc::new(AppState::new(
            config,
            base_url.clone(),
            signing,
            clock,
            fetch,
        ));
        let app = router(state.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let acceptor = tls.map(|t| t.acceptor);
        let task = tokio::spawn(crate::accept_loop::serve(listener, app, acceptor, stop_rx));
        tracing::info!(%base_url, "apptoken emulator listening");
        Ok(RunningEmulator {
            local_addr,
            base_url,
            info,
            state,
            ca_pem,
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
    ca_pem: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningEmulator {
    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// With TLS: the local CA certificate (PEM) that clients must trust.
    pub fn ca_certificate_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// `http://127.0.0.1:PORT` (`https://…` with TLS): the authority host clients use.
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

    /// Registers a fault and returns its id (for [`remove_fault`](Self::remove_fault)).
    /// Faults apply in the order added; the first that fires wins.
    pub fn add_fault(&self, fault: Fault) -> u64 {
        self.state.faults.add(fault)
    }

    /// Removes one fault (no-op for an unknown id).
    pub fn remove_fault(&self, id: u64) {
        self.state.faults.remove(id);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Sets the lifetimes of tokens issued from now on
    /// ([`TokenLifetimes::new`] restores the configuration's).
    pub fn set_token_lifetimes(&self, lifetimes: TokenLifetimes) {
        self.state.set_lifetimes(lifetimes);
    }

    /// Stops the emulator's clock at the current instant.
    pub fn freeze_clock(&self) {
        self.state.clock.freeze();
    }

    /// Moves the emulator's clock forward (it stays frozen if it was),
    /// stopping at 9999-12-31T23:59:59Z, the end of the clock's range.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let by = time::Duration::try_from(by).unwrap_or(time::Duration::MAX);
        self.state.clock.advance(by);
    }

    /// Sets the emulator's clock to `at` (it stays frozen if it was, else runs on from `at`).
    /// The clock's range is 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z: an
    /// instant outside it is clamped to the nearer end (`POST /_emulator/clock`
    /// refuses it with a 400 instead).
    pub fn set_clock(&self, at: time::OffsetDateTime) {
        self.state.clock.set(at);
    }

    /// Lets a frozen clock run again from the instant it shows.
    pub fn resume_clock(&self) {
        self.state.clock.resume();
    }

    /// The emulator's current time.
    pub fn now(&self) -> time::OffsetDateTime {
        self.state.clock.now()
    }

    /// Admin consent in `tenant` (id or domain) for the app `client_id`:
    /// creates its service principal there and grants every application
    /// role the app registration requires (`required_roles`), as approving
    /// `/{tenant}/adminconsent` does.
    ///
    /// # Errors
    /// [`Error::Config`] naming an unknown tenant or app, or a single-tenant
    /// app outside its home tenant.
    pub fn grant_consent(&self, tenant: &str, client_id: &str) -> Result<(), Error> {
        self.state
            .runtime
            .consent(&self.state.config, tenant, client_id)
            .map(|_| ())
            .map_err(Error::Config)
    }

    /// Offboarding: the customer removes the app. Deletes the service
    /// principal of `client_id` in `tenant` (id or domain) and every role
    /// granted to it there, whether by a `[[grants]]` entry or by
    /// [`grant_consent`](Self::grant_consent); token requests for that
    /// tenant then answer AADSTS7000229, exactly as in a tenant that never
    /// consented, until the app is consented again. Idempotent. Tokens
    /// already issued stay valid until they expire (see
    /// [`revoke_tokens`](Self::revoke_tokens)). Same as `DELETE
    /// /_emulator/consent`.
    ///
    /// # Errors
    /// [`Error::Config`] naming an unknown tenant or app, the app's home
    /// tenant (its service principal there is the app's own), or a
    /// single-tenant app.
    pub fn revoke_consent(&self, tenant: &str, client_id: &str) -> Result<(), Error> {
        self.state
            .runtime
            .revoke_consent(&self.state.config, tenant, client_id)
            .map(|_| ())
            .map_err(Error::Config)
    }

    /// Rotates the token signing key: a new key signs from now on; the old
    /// one stays in the JWKS (and valid at the sample API) for
    /// `key_overlap_secs`. Returns the new `kid`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the new key cannot be generated.
    pub fn rotate_signing_key(&self) -> Result<String, Error> {
        self.state.rotate_signing_key().map(|(kid, _, _)| kid)
    }

    /// The `kid` of the key signing tokens now.
    pub fn signing_key_id(&self) -> String {
        self.state.runtime.current_key().kid.clone()
    }

    /// Continuous access evaluation: the sample API refuses tokens of
    /// `client_id` (every tenant) issued before now — with an
    /// `insufficient_claims` challenge when the token carries `xms_cc: ["cp1"]`.
    pub fn revoke_tokens(&self, client_id: &str) {
        let at = self.state.clock.now().unix_timestamp();
        self.state.runtime.revoke(client_id, None, at);
    }

    /// Mints a token of the built-in external issuer `name` (workload
    /// identity federation), as `POST /_emulator/federation/{name}/token`:
    /// `iss = {base}/_emulator/federation/{name}`, `sub = subject`, `aud`
    /// (default `api://AzureADTokenExchange`), valid for `lifetime_secs`
    /// (default 3600) from the emulator's clock.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid issuer name; [`Error::Crypto`] if
    /// the issuer's key cannot be generated or used.
    pub fn federated_token(
        &self,
        name: &str,
        subject: &str,
        audience: Option<&str>,
        lifetime_secs: Option<u64>,
    ) -> Result<String, Error> {
        crate::federation::mint(&self.state, name, subject, audience, lifetime_secs)
    }

    /// Holds managed-identity requests (all sources) in flight until
    /// [`release_managed_identity`](Self::release_managed_identity): they
    /// are admitted (and count against IMDS's concurrency limit) but not
    /// answered. For tests of concurrency; see
    /// [`wait_held_managed_identity`](Self::wait_held_managed_identity).
    pub fn hold_managed_identity(&self) {
        self.state.mi_limits.set_hold(true);
    }

    /// Lets held managed-identity requests (and later ones) be answered.
    pub fn release_managed_identity(&self) {
        self.state.mi_limits.set_hold(false);
    }

    /// Waits until at least `n` managed-identity requests are held.
    pub async fn wait_held_managed_identity(&self, n: usize) {
        self.state.mi_limits.wait_held(n).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::path::Path;

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
}
