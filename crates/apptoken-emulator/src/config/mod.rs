//! The emulator's configuration: the public [`Config`] and its methods
//! (building it, the `with_*` options, the lookups handlers use).
//!
//! The pieces: `raw` (the TOML schema as serde reads it), `validate` (raw
//! shapes to model, every check and its error message) and `model` (the
//! validated types). The invariants the lookups rely on (normalized ids,
//! resolved references) are `model`'s, established by `validate`.

use std::path::{Path, PathBuf};

use crate::Error;

mod model;
mod raw;
mod validate;

pub(crate) use model::*;
pub(crate) use raw::*;
pub(crate) use validate::{parse_guid, validate};

/// The emulator's whole configuration: tenants, apps and their credentials,
/// resources, admin consents (grants), sample users and token settings.
///
/// Build it with [`Config::from_toml_str`], [`Config::from_file`] or
/// [`Config::embedded`]. `Debug` never prints secrets.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) token_lifetime_secs: u64,
    pub(crate) refresh_in_secs: Option<u64>,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) resources: Vec<Resource>,
    pub(crate) apps: Vec<App>,
    pub(crate) grants: Vec<Grant>,
    pub(crate) users: Vec<User>,
    pub(crate) sample_api: Option<SampleApi>,
    pub(crate) primary_app: Option<String>,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) tls: bool,
    /// Whether `start` may listen on an address that is not loopback.
    pub(crate) allow_remote: bool,
    /// How long a rotated-out signing key stays in the JWKS.
    pub(crate) key_overlap_secs: u64,
}

impl Config {
    /// Parses a TOML configuration; relative paths (`value_file`, certificate
    /// `path`) resolve against `base_dir`.
    ///
    /// # Errors
    /// [`Error::ConfigSyntax`] when the TOML is invalid or has an unknown or
    /// mistyped field (the message names line and column);
    /// [`Error::Config`] when a reference names an unknown tenant, app or
    /// resource, an id is not a GUID, or a date does not parse;
    /// [`Error::Io`]/[`Error::Crypto`] when a referenced file is unreadable
    /// or not a certificate.
    pub fn from_toml_str(toml: &str, base_dir: &Path) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(toml)
            .map_err(|e| Error::ConfigSyntax(e.to_string().trim_end().to_string()))?;
        validate(raw, base_dir)
    }

    /// Reads and parses a TOML configuration file; relative paths resolve
    /// against the file's directory.
    ///
    /// # Errors
    /// As [`Config::from_toml_str`], plus [`Error::Io`] if the file cannot be read.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Config::from_toml_str(&text, base).map_err(|e| match e {
            Error::ConfigSyntax(m) => Error::ConfigSyntax(format!("{}: {m}", path.display())),
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The embedded default configuration (two tenants, one multi-tenant app
    /// consented in both, the sample API and deterministic sample users).
    ///
    /// Generates — or reuses, when valid files are already there — the
    /// default app's client secret and an RSA-2048 key with a self-signed
    /// certificate in `state_dir` (PEM certificate, PKCS#8 PEM key with mode
    /// 0600, and a password-protected `.pfx`). `start` later writes the `env`
    /// and `emulator.json` files there too.
    ///
    /// # Errors
    /// [`Error::Io`] when `state_dir` cannot be created or written;
    /// [`Error::Crypto`] when key generation fails.
    pub fn embedded(state_dir: &Path) -> Result<Config, Error> {
        crate::embedded::config(state_dir)
    }

    /// Serves HTTPS (`true`) or plain HTTP (`false`, the default; TOML key
    /// `tls`). With TLS, `start` creates a local CA (or reuses `ca.pem` and
    /// `ca-key.pem` from the state directory) and a server certificate for
    /// loopback and Entra's login host names; see docs/EMULATOR.md.
    #[must_use]
    pub fn with_tls(mut self, enabled: bool) -> Config {
        self.tls = enabled;
        self
    }

    /// Lets [`Emulator::start`](crate::Emulator::start) listen on an address
    /// that is not loopback (not in `127.0.0.0/8`, not `::1`), such as
    /// `0.0.0.0`; default `false`, and without it such an address is refused
    /// with [`Error::RemoteListen`] before anything is bound. There is no
    /// TOML key for it: exposing the emulator is the caller's decision.
    ///
    /// The admin API (`/_emulator/*`: faults, clock, token lifetimes,
    /// consent, key rotation, revocation, stats) has no authentication:
    /// anyone who can reach the port can change the emulator's behaviour.
    /// `start` logs a warning saying so when this is used.
    #[must_use]
    pub fn with_allow_remote(mut self, allow: bool) -> Config {
        self.allow_remote = allow;
        self
    }

    /// Sets the directory where `start` writes the `env` and `emulator.json`
    /// files.
    #[must_use]
    pub fn with_state_dir(mut self, dir: &Path) -> Config {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    pub(crate) fn tenant_by_id_or_domain(&self, name: &str) -> Option<&Tenant> {
        let lower = name.to_ascii_lowercase();
        self.tenants
            .iter()
            .find(|t| t.id == lower || t.domains.contains(&lower))
    }

    pub(crate) fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    pub(crate) fn app(&self, client_id: &str) -> Option<&App> {
        let lower = client_id.to_ascii_lowercase();
        self.apps.iter().find(|a| a.client_id == lower)
    }

    pub(crate) fn resource_by_app_id(&self, app_id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.app_id == app_id)
    }

    /// The primary app: `primary_app` or the first app.
    pub(crate) fn primary(&self) -> Option<&App> {
        match &self.primary_app {
            Some(id) => self.app(id),
            None => self.apps.first(),
        }
    }

    /// Whether the app has a service principal in the tenant (its home
    /// tenant, or any tenant where a grant consents to it).
    pub(crate) fn has_service_principal(&self, app: &App, tenant_id: &str) -> bool {
        app.home_tenant == tenant_id
            || self
                .grants
                .iter()
                .any(|g| g.client_id == app.client_id && g.tenant_id == tenant_id)
    }

    /// Application roles granted to the app on the resource in the tenant.
    pub(crate) fn granted_roles(
        &self,
        client_id: &str,
        tenant_id: &str,
        resource_app_id: &str,
    ) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        for g in self.grants.iter().filter(|g| {
            g.client_id == client_id
                && g.tenant_id == tenant_id
                && g.resource_app_id == resource_app_id
        }) {
            for r in &g.roles {
                if !roles.contains(r) {
                    roles.push(r.clone());
                }
            }
        }
        roles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "11111111-1111-1111-1111-111111111111";

    fn minimal() -> String {
        format!(
            r#"
[[tenants]]
id = "{T1}"
domains = ["contoso.onmicrosoft.com"]
display_name = "Contoso"

[[resources]]
app_id = "22222222-2222-2222-2222-222222222222"
app_id_uri = "api://sample"
roles = [{{ value = "Users.Read.All" }}]

[[apps]]
client_id = "33333333-3333-3333-3333-333333333333"
home_tenant = "contoso.onmicrosoft.com"
  [[apps.secrets]]
  value = "s3cret"
  expires_at = "2030-01-01T00:00:00Z"

[[grants]]
tenant = "Contoso.onmicrosoft.com"
client_id = "33333333-3333-3333-3333-333333333333"
resource = "api://sample"
roles = ["Users.Read.All"]

[sample_api]
resource = "api://sample"
required_role = "Users.Read.All"
"#
        )
    }

    fn parse(text: &str) -> Result<Config, Error> {
        Config::from_toml_str(text, Path::new("/nonexistent"))
    }

    #[test]
    fn minimal_config_parses_and_resolves_references() {
        let c = parse(&minimal()).expect("valid");
        assert_eq!(c.token_lifetime_secs, 3600);
        assert_eq!(c.refresh_in_secs, None);
        assert_eq!(c.apps[0].home_tenant, T1);
        assert_eq!(c.grants[0].tenant_id, T1);
        assert_eq!(
            c.grants[0].resource_app_id,
            "22222222-2222-2222-2222-222222222222"
        );
        assert!(c.apps[0].secrets[0].expires_at.is_some());
        assert_eq!(
            c.primary().map(|a| a.client_id.as_str()),
            Some("33333333-3333-3333-3333-333333333333")
        );
        assert!(
            c.tenant_by_id_or_domain("CONTOSO.onmicrosoft.com")
                .is_some()
        );
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug must redact secrets"
        );
    }

    #[test]
    fn unknown_field_is_named_with_line_and_column() {
        let text = minimal().replace("display_name = \"Contoso\"", "display_nam = \"Contoso\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("display_nam"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn unknown_references_are_named() {
        let text = minimal().replace(
            "home_tenant = \"contoso.onmicrosoft.com\"",
            "home_tenant = \"nowhere.example\"",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("nowhere.example"), "{err}");

        let text = minimal().replace(
            "resource = \"api://sample\"\nroles",
            "resource = \"api://other\"\nroles",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("api://other"), "{err}");

        let text = minimal().replace(
            "client_id = \"33333333-3333-3333-3333-333333333333\"\nresource",
            "client_id = \"44444444-4444-4444-4444-444444444444\"\nresource",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("44444444-4444-4444-4444-444444444444"),
            "{err}"
        );

        let text = minimal().replace("roles = [\"Users.Read.All\"]", "roles = [\"Mail.Send\"]");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("Mail.Send"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected() {
        let err = parse(&minimal().replace(T1, "not-a-guid"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not-a-guid"), "{err}");
        let err = parse(&minimal().replace("2030-01-01T00:00:00Z", "tomorrow"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tomorrow"), "{err}");
        let err = parse(&format!("token_lifetime_secs = 5\n{}", minimal()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("token_lifetime_secs"), "{err}");
        let err = parse(&minimal().replace("value = \"s3cret\"", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("value_file"), "{err}");
        assert!(matches!(parse("tenants = 3"), Err(Error::ConfigSyntax(_))));
    }

    #[test]
    fn value_file_and_refresh_in_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret.txt"), "from-file\n").expect("write");
        let text = format!("refresh_in_secs = 1800\n{}", minimal())
            .replace("value = \"s3cret\"", "value_file = \"secret.txt\"");
        let c = Config::from_toml_str(&text, dir.path()).expect("valid");
        assert_eq!(c.apps[0].secrets[0].value, "from-file");
        assert_eq!(c.refresh_in_secs, Some(1800));
    }

    #[test]
    fn duplicates_and_references_are_reported_at_the_first_place() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        let t2 = "44444444-4444-4444-4444-444444444444";
        // A second tenant with the first one's id (upper case: ids are normalized).
        let text = format!("[[tenants]]\nid = \"{}\"\n{}", T1.to_uppercase(), minimal());
        assert_eq!(
            err(&text),
            format!("invalid emulator configuration: tenants[1]: duplicate id '{T1}'")
        );
        // A domain twice in one tenant, and in two tenants.
        let text = minimal().replace(
            "domains = [\"contoso.onmicrosoft.com\"]",
            "domains = [\"contoso.onmicrosoft.com\", \"Contoso.onmicrosoft.com\"]",
        );
        assert!(
            err(&text).ends_with("tenants[0]: duplicate domain 'contoso.onmicrosoft.com'"),
            "{}",
            err(&text)
        );
        let text = format!(
            "[[tenants]]\nid = \"{t2}\"\ndomains = [\"x.example\", \"contoso.onmicrosoft.com\"]\n{}",
            minimal()
        );
        assert!(
            err(&text).ends_with("tenants[1]: duplicate domain 'contoso.onmicrosoft.com'"),
            "{}",
            err(&text)
        );
        // References by id or domain, in any case; the first bad user is named.
        let user = |tenant: &str, upn: &str, id: &str| {
            format!(
                "\n[[users]]\ntenant = \"{tenant}\"\nid = \"{id}\"\ndisplay_name = \"U\"\nuser_principal_name = \"{upn}\"\n"
            )
        };
        let u1 = "55555555-5555-5555-5555-555555555555";
        let ok = format!(
            "{}{}{}",
            minimal(),
            user(&T1.to_uppercase(), "a@contoso.onmicrosoft.com", u1),
            user("CONTOSO.onmicrosoft.com", "b@contoso.onmicrosoft.com", t2)
        );
        let c = parse(&ok).expect("valid");
        assert!(c.users.iter().all(|u| u.tenant_id == T1));
        let text = format!(
            "{ok}{}{}",
            user("contoso.onmicrosoft.com", "c@contoso.onmicrosoft.com", u1),
            user("nowhere.example", "d@contoso.onmicrosoft.com", t2)
        );
        assert!(
            err(&text).ends_with(&format!("users[2]: duplicate user id '{u1}'")),
            "{}",
            err(&text)
        );
        let text = format!(
            "{ok}{}",
            user("nowhere.example", "d@contoso.onmicrosoft.com", u1)
        );
        assert!(
            err(&text).ends_with("users[2]: tenant 'nowhere.example' is not a configured tenant"),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn resource_matching_is_lenient_about_case_and_trailing_slash() {
        let r = Resource {
            app_id: "22222222-2222-2222-2222-222222222222".into(),
            app_id_uri: Some("https://api.example".into()),
            roles: vec![],
        };
        assert!(r.matches("https://API.example"));
        assert!(r.matches("https://api.example/"));
        assert!(r.matches("22222222-2222-2222-2222-222222222222"));
        assert!(!r.matches("https://api.example/other"));
    }
}
