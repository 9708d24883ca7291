//! Shared helpers: start an emulator, request tokens, sign assertions.

#![allow(dead_code)]

use std::path::Path;

use apptoken_emulator::{Config, Emulator, RunningEmulator};
use aws_lc_rs::signature;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) struct Harness {
    pub(crate) emu: RunningEmulator,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) http: reqwest::Client,
}

pub(crate) async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::embedded(dir.path()).expect("embedded config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    Harness {
        emu,
        dir,
        http: reqwest::Client::new(),
    }
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Harness {
    pub(crate) fn tenant(&self) -> String {
        self.emu.info().tenant_id.clone()
    }

    pub(crate) fn client_id(&self) -> String {
        self.emu.info().client_id.clone()
    }

    pub(crate) fn secret(&self) -> String {
        self.emu.info().client_secret.clone().expect("secret")
    }

    pub(crate) fn scope(&self) -> String {
        self.emu.info().sample_scope.clone()
    }

    pub(crate) fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.emu.base_url())
    }

    pub(crate) async fn post_form(&self, tenant: &str, form: &[(&str, &str)]) -> Answer {
        let response = self
            .http
            .post(self.token_url(tenant))
            .form(form)
            .send()
            .await
            .expect("send");
        Answer::read(response).await
    }

    /// The client credentials grant with a secret in the body.
    pub(crate) async fn secret_grant(&self, tenant: &str) -> Answer {
        let (id, secret, scope) = (self.client_id(), self.secret(), self.scope());
        self.post_form(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", &scope),
            ],
        )
        .await
    }

    pub(crate) async fn get(&self, path_or_url: &str, bearer: Option<&str>) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.emu.base_url())
        };
        let mut request = self.http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        Answer::read(request.send().await.expect("send")).await
    }

    pub(crate) fn key_pem_path(&self) -> std::path::PathBuf {
        self.emu.info().private_key_path.clone().expect("key path")
    }

    pub(crate) fn cert_der(&self) -> Vec<u8> {
        cert_der_from(
            self.emu
                .info()
                .certificate_path
                .as_deref()
                .expect("cert path"),
        )
    }
}

impl Answer {
    pub(crate) async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Asserts an Entra error answer: status, `error`, code, description start.
    #[track_caller]
    pub(crate) fn assert_aad(&self, status: u16, error: &str, code: u32, prefix: &str) {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(self.body["error"], error, "{:#}", self.body);
        assert_eq!(self.body["error_codes"], json!([code]), "{:#}", self.body);
        let description = self.body["error_description"]
            .as_str()
            .expect("description");
        let expected = format!("AADSTS{code}: {prefix}");
        assert!(
            description.starts_with(&expected),
            "expected prefix {expected:?}\n got {description:?}"
        );
        assert!(description.contains("\r\nTrace ID: "), "{description:?}");
        assert_eq!(
            self.headers["x-ms-request-id"],
            self.body["trace_id"].as_str().expect("trace_id")
        );
        let ts = self.body["timestamp"].as_str().expect("timestamp");
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.ends_with('Z') && &ts[10..11] == " ", "{ts}");
    }

    pub(crate) fn access_token(&self) -> &str {
        assert_eq!(self.status, StatusCode::OK, "{:#}", self.body);
        self.body["access_token"].as_str().expect("access_token")
    }
}

pub(crate) fn cert_der_from(path: &Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(path).expect("cert pem");
    pem_body(&pem)
}

pub(crate) fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("pem base64")
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn sha1(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .to_vec()
}

pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// Decodes a JWT's claims without verifying.
pub(crate) fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("claims part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("json")
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[derive(Clone, Copy)]
pub(crate) enum Alg {
    Rs256,
    Ps256,
}

/// Signs a client assertion with the PKCS#8 PEM key at `key_path`.
pub(crate) fn sign(key_path: &Path, alg: Alg, header: &Value, claims: &Value) -> String {
    let pem = std::fs::read_to_string(key_path).expect("key");
    let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&pem_body(&pem)).expect("pkcs8");
    let (name, encoding): (&str, &'static dyn signature::RsaEncoding) = match alg {
        Alg::Rs256 => ("RS256", &signature::RSA_PKCS1_SHA256),
        Alg::Ps256 => ("PS256", &signature::RSA_PSS_SHA256),
    };
    let mut header = header.clone();
    if header.get("alg").is_none() {
        header["alg"] = json!(name);
    }
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        encoding,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{input}.{}", b64url(&sig))
}

impl Harness {
    /// Standard, valid assertion claims for the primary app.
    pub(crate) fn assertion_claims(&self, tenant: &str) -> Value {
        let id = self.client_id();
        json!({
            "aud": self.token_url(tenant),
            "iss": id,
            "sub": id,
            "jti": "fixed-jti",
            "nbf": now() - 10,
            "iat": now() - 10,
            "exp": now() + 600,
        })
    }

    pub(crate) fn x5t_header(&self) -> Value {
        json!({"typ": "JWT", "x5t": b64url(&sha1(&self.cert_der()))})
    }

    pub(crate) async fn assertion_grant(&self, tenant: &str, assertion: &str) -> Answer {
        let (id, scope) = (self.client_id(), self.scope());
        self.post_form(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
                ("scope", &scope),
            ],
        )
        .await
    }
}

pub(crate) const T_HOME: &str = "11111111-1111-1111-1111-111111111111";
pub(crate) const T_OTHER: &str = "22222222-2222-2222-2222-222222222222";
pub(crate) const APP_SINGLE: &str = "aaaaaaaa-0000-0000-0000-000000000001";
pub(crate) const APP_MULTI: &str = "aaaaaaaa-0000-0000-0000-000000000002";
pub(crate) const APP_DISABLED: &str = "aaaaaaaa-0000-0000-0000-000000000003";
pub(crate) const APP_NO_ROLE: &str = "aaaaaaaa-0000-0000-0000-000000000004";

/// A file configuration with edge-case apps (all secrets are "pw").
pub(crate) const EDGE_TOML: &str = r#"
refresh_in_secs = 1800
[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
domains = ["home.example.com"]
display_name = "Home"
[[tenants]]
id = "22222222-2222-2222-2222-222222222222"
domains = ["other.example.com"]
display_name = "Other"

[[resources]]
app_id = "bbbbbbbb-0000-0000-0000-000000000001"
app_id_uri = "api://edge"
roles = [{ value = "Users.Read.All" }]

[[apps]]
client_id = "aaaaaaaa-0000-0000-0000-000000000001"
display_name = "single"
home_tenant = "home.example.com"
secrets = [{ value = "pw" }]
[[apps]]
client_id = "aaaaaaaa-0000-0000-0000-000000000002"
display_name = "multi"
home_tenant = "home.example.com"
multi_tenant = true
secrets = [{ value = "pw" }]
[[apps]]
client_id = "aaaaaaaa-0000-0000-0000-000000000003"
display_name = "Disabled App"
home_tenant = "home.example.com"
disabled = true
secrets = [{ value = "pw" }]
[[apps]]
client_id = "aaaaaaaa-0000-0000-0000-000000000004"
display_name = "no role"
home_tenant = "home.example.com"
secrets = [{ value = "pw" }, { value = "old", expires_at = "2020-01-01T00:00:00Z" }]

[[grants]]
tenant = "home.example.com"
client_id = "aaaaaaaa-0000-0000-0000-000000000001"
resource = "api://edge"
roles = ["Users.Read.All"]

[[users]]
tenant = "home.example.com"
display_name = "Only User"
user_principal_name = "only@home.example.com"

[sample_api]
resource = "api://edge"
required_role = "Users.Read.All"
"#;

pub(crate) async fn start_edge() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::from_toml_str(EDGE_TOML, dir.path()).expect("edge config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    Harness {
        emu,
        dir,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    pub(crate) async fn grant_for(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
        scope: &str,
    ) -> Answer {
        self.post_form(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", scope),
            ],
        )
        .await
    }
}
