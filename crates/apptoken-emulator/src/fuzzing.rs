//! An in-process entry point over the whole router, for the property tests
//! (`tests/it/robustness.rs`) and the cargo-fuzz targets (`fuzz/`, see
//! docs/FUZZING.md), and thin wrappers over the form and JWT parsers for the
//! fuzz targets. Not public API: hidden, no stability promise.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use tower::ServiceExt as _;

use crate::Error;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::crypto::SigningKey;
use crate::router::router;
use crate::server::AppState;

/// A configuration with one app (secret `pw`), one tenant, the sample API
/// and two managed identities (system- and user-assigned).
const FUZZ_TOML: &str = r#"
[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
domains = ["fuzz.example.com"]
[[resources]]
app_id = "22222222-2222-2222-2222-222222222222"
app_id_uri = "api://fuzz"
roles = [{ value = "Users.Read.All" }]
[[apps]]
client_id = "33333333-3333-3333-3333-333333333333"
home_tenant = "11111111-1111-1111-1111-111111111111"
multi_tenant = true
secrets = [{ value = "pw" }]
redirect_uris = ["http://localhost/done"]
required_roles = [{ resource = "api://fuzz", roles = ["Users.Read.All"] }]
  [[apps.federated_credentials]]
  issuer = "{base}/_emulator/federation/fuzz"
  subject = "fuzz"
[[grants]]
tenant = "fuzz.example.com"
client_id = "33333333-3333-3333-3333-333333333333"
resource = "api://fuzz"
roles = ["Users.Read.All"]
[sample_api]
resource = "api://fuzz"
required_role = "Users.Read.All"
[[managed_identities]]
kind = "system"
tenant = "fuzz.example.com"
client_id = "44444444-4444-4444-4444-444444444444"
object_id = "55555555-5555-5555-5555-555555555555"
resource_id = "/subscriptions/66666666-6666-6666-6666-666666666666/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
[[managed_identities]]
kind = "user"
tenant = "fuzz.example.com"
client_id = "77777777-7777-7777-7777-777777777777"
object_id = "88888888-8888-8888-8888-888888888888"
resource_id = "/subscriptions/66666666-6666-6666-6666-666666666666/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id"
app_roles = [{ resource = "api://fuzz", roles = ["Users.Read.All"] }]
"#;

/// The emulator's router driven without a socket. `#[doc(hidden)]`: for
/// tests and fuzzing only.
#[doc(hidden)]
#[derive(Debug)]
pub struct Harness {
    router: Router,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    /// Builds the router over a small fixed configuration (no network: the
    /// base URL is `http://127.0.0.1:9`, never listened on).
    ///
    /// # Errors
    /// [`Error::Crypto`] if the signing key cannot be generated.
    pub fn new() -> Result<Harness, Error> {
        let config = Config::from_toml_str(FUZZ_TOML, std::path::Path::new("."))?;
        let now = time::OffsetDateTime::now_utc();
        let fetch = crate::federation::http_client(None)?;
        let state = Arc::new(AppState::new(
            config,
            "http://127.0.0.1:9".into(),
            SigningKey::generate(now)?,
            Arc::new(SystemClock),
            fetch,
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Crypto(format!("tokio runtime: {e}")))?;
        Ok(Harness {
            router: router(state),
            runtime,
        })
    }

    /// Sends one request through the router and returns the status and
    /// body. A request that cannot even be built (invalid method or URI)
    /// answers 400, as a server's HTTP parser would. Header names or values
    /// that are not valid HTTP are skipped.
    pub fn request(
        &self,
        method: &[u8],
        path: &str,
        headers: &[(Vec<u8>, Vec<u8>)],
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name),
                http::HeaderValue::from_bytes(value),
            ) {
                builder = builder.header(n, v);
            }
        }
        let Ok(request) = builder.body(Body::from(body)) else {
            return (400, Vec::new());
        };
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = match router.oneshot(request).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            (status, bytes)
        })
    }

    /// `POST /{tenant}/oauth2/v2.0/token` with the given headers and body;
    /// the tenant segment is percent-encoded.
    pub fn token_request(
        &self,
        tenant: &str,
        headers: &[(Vec<u8>, Vec<u8>)],
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        let tenant: String = url::form_urlencoded::byte_serialize(tenant.as_bytes()).collect();
        self.request(
            b"POST",
            &format!("/{tenant}/oauth2/v2.0/token"),
            headers,
            body,
        )
    }
}

/// `params::Params`, the form and query parser of every endpoint: the first
/// value of `name` in `text`, as sent.
pub fn form_first(text: &[u8], name: &str) -> Option<String> {
    crate::params::Params::parse(text)
        .first(name)
        .map(str::to_string)
}

/// `jwt::Jwt::parse` and the readers the token endpoint applies to a client
/// assertion (string and date claims, audiences, lenient base64 thumbprints).
/// Returns the signing input when the token parses.
pub fn jwt(token: &str) -> Option<String> {
    let jwt = crate::jwt::Jwt::parse(token)?;
    for name in ["alg", "kid", "typ"] {
        let _ = jwt.header_str(name);
    }
    for name in ["x5t", "x5t#S256"] {
        let _ = jwt.header_str(name).map(crate::crypto::b64_lenient);
    }
    for name in ["iss", "sub", "jti"] {
        let _ = jwt.claim_str(name);
    }
    for name in ["exp", "nbf", "iat"] {
        let _ = jwt.claim_date(name);
    }
    let _ = crate::jwt::audiences(jwt.claims.get("aud"));
    Some(jwt.signing_input.to_string())
}
