//! Shared set-up: an emulator with a known configuration.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apptoken::{Authority, ClientSecret, Clock, ConfidentialClient, Credential};
use apptoken_emulator::{Config, Emulator, RunningEmulator};
use base64::Engine;

pub(crate) const HOME_TENANT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub(crate) const HOME_DOMAIN: &str = "contoso.example";
pub(crate) const OTHER_TENANT: &str = "bbbbbbbb-0000-4000-8000-000000000002";
pub(crate) const OTHER_DOMAIN: &str = "fabrikam.example";
pub(crate) const UNCONSENTED_TENANT: &str = "cccccccc-0000-4000-8000-000000000003";
pub(crate) const CLIENT_ID: &str = "11111111-0000-4000-8000-000000000001";
pub(crate) const SECRET: &str = "test-secret-Value~with.special_chars:and=signs";
pub(crate) const RESOURCE_APP_ID: &str = "22222222-0000-4000-8000-000000000002";
pub(crate) const SCOPE: &str = "api://apptoken-sample-api/.default";
pub(crate) const FIXTURE_PASSWORD: &str = "fixture-password";

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of a fixture with mode 0600 (git does not keep file modes).
pub(crate) fn private_copy(dir: &Path, name: &str) -> PathBuf {
    let dest = dir.join(name);
    std::fs::copy(fixture(name), &dest).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    dest
}

pub(crate) fn config_toml() -> String {
    format!(
        r#"
primary_app = "{CLIENT_ID}"

[[tenants]]
id = "{HOME_TENANT}"
domains = ["{HOME_DOMAIN}"]
display_name = "Contoso"

[[tenants]]
id = "{OTHER_TENANT}"
domains = ["{OTHER_DOMAIN}"]
display_name = "Fabrikam"

[[tenants]]
id = "{UNCONSENTED_TENANT}"
domains = ["northwind.example"]
display_name = "Northwind"

[[resources]]
app_id = "{RESOURCE_APP_ID}"
app_id_uri = "api://apptoken-sample-api"
display_name = "Sample API"
roles = [{{ value = "Users.Read.All", id = "33333333-0000-4000-8000-000000000003" }}]

[[apps]]
client_id = "{CLIENT_ID}"
display_name = "apptoken test daemon"
home_tenant = "{HOME_TENANT}"
multi_tenant = true

[[apps.secrets]]
value = "{SECRET}"

[[apps.certificates]]
path = "{cert}"

[[grants]]
tenant = "{HOME_TENANT}"
client_id = "{CLIENT_ID}"
resource = "api://apptoken-sample-api"
roles = ["Users.Read.All"]

[[grants]]
tenant = "{OTHER_TENANT}"
client_id = "{CLIENT_ID}"
resource = "api://apptoken-sample-api"
roles = ["Users.Read.All"]


[[users]]
tenant = "{HOME_TENANT}"
display_name = "Adele Vance"
given_name = "Adele"
surname = "Vance"
user_principal_name = "adele.vance@{HOME_DOMAIN}"
job_title = "Engineer"

[[users]]
tenant = "{HOME_TENANT}"
display_name = "Alex Wilber"
given_name = "Alex"
surname = "Wilber"
user_principal_name = "alex.wilber@{HOME_DOMAIN}"
job_title = "Engineer"

[[users]]
tenant = "{HOME_TENANT}"
display_name = "Diego Siciliani"
given_name = "Diego"
surname = "Siciliani"
user_principal_name = "diego.siciliani@{HOME_DOMAIN}"
job_title = "Engineer"

[[users]]
tenant = "{HOME_TENANT}"
display_name = "Grady Archie"
given_name = "Grady"
surname = "Archie"
user_principal_name = "grady.archie@{HOME_DOMAIN}"
job_title = "Engineer"

[[users]]
tenant = "{HOME_TENANT}"
display_name = "Henrietta Mueller"
given_name = "Henrietta"
surname = "Mueller"
user_principal_name = "henrietta.mueller@{HOME_DOMAIN}"
job_title = "Engineer"

[[users]]
tenant = "{HOME_TENANT}"
display_name = "Isaiah Langer"
given_name = "Isaiah"
surname = "Langer"
user_principal_name = "isaiah.langer@{HOME_DOMAIN}"
job_title = "Engineer"

[[users]]
tenant = "{HOME_TENANT}"
display_name = "Johanna Lorenz"
given_name = "Johanna"
surname = "Lorenz"
user_principal_name = "johanna.lorenz@{HOME_DOMAIN}"
job_title = "Engineer"

[sample_api]
resource = "api://apptoken-sample-api"
required_role = "Users.Read.All"
"#,
        cert = fixture("leaf.cert.pem").display()
    )
}

pub(crate) struct TestEnv {
    pub(crate) emulator: RunningEmulator,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn start_tls() -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml_str(&config_toml(), dir.path())
        .expect("test emulator config")
        .with_tls(true)
        .with_state_dir(dir.path());
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    TestEnv { emulator, dir }
}

pub(crate) async fn start() -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml_str(&config_toml(), dir.path()).expect("test emulator config");
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    TestEnv { emulator, dir }
}

impl TestEnv {
    pub(crate) fn authority(&self) -> Authority {
        Authority::from_host(&self.emulator.base_url(), HOME_TENANT).unwrap()
    }

    pub(crate) fn client(&self, credential: Credential) -> ConfidentialClient {
        ConfidentialClient::builder()
            .authority(self.authority())
            .client_id(CLIENT_ID)
            .credential(credential)
            .build()
            .unwrap()
    }

    pub(crate) fn client_with_clock(
        &self,
        credential: Credential,
        clock: Arc<dyn Clock>,
    ) -> ConfidentialClient {
        ConfidentialClient::builder()
            .authority(self.authority())
            .client_id(CLIENT_ID)
            .credential(credential)
            .clock(clock)
            .build()
            .unwrap()
    }

    pub(crate) fn secret_client(&self) -> ConfidentialClient {
        self.client(Credential::secret(ClientSecret::new(SECRET)))
    }

    pub(crate) fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.emulator.base_url())
    }

    /// Token requests the emulator has seen for our client.
    pub(crate) fn requests(&self) -> u64 {
        self.emulator.stats().token_requests_for(CLIENT_ID)
    }
}

/// A client assertion signed in the test with an independent JOSE library.
pub(crate) fn signed_assertion(
    aud: &str,
    alg: jsonwebtoken::Algorithm,
    exp_offset_secs: i64,
) -> String {
    let cert_der = {
        let pem = std::fs::read(fixture("leaf.cert.pem")).unwrap();
        let text = String::from_utf8(pem).unwrap();
        let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    use sha2::Digest;
    let mut header = jsonwebtoken::Header::new(alg);
    header.x5t_s256 = Some(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&cert_der)),
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "aud": aud, "iss": CLIENT_ID, "sub": CLIENT_ID, "jti": uuid(),
        "nbf": now - 60, "iat": now - 60, "exp": now + exp_offset_secs,
    });
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(fixture("leaf.pkcs8.pem")).unwrap())
            .unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
