//! Why over 500 lines: the generator is about 400; the rest is its tests.
//!
//! Generated emulator configurations: [`isv`] writes the TOML of an ISV's
//! multi-tenant app consented in N customer tenants (issue #17), so tests and
//! benchmarks get "1,000 tenants, a grant in each, 3 users each" in one call;
//! [`write_isv`] also writes it to a directory with a fresh client secret and
//! the list of tenant domains.
//!
//! Everything but the secret is deterministic: customer `n` (1-based, `n` =
//! index + 1) has the id `c0570000-0000-4000-8000-{n:012}`, the domain
//! `customer{n}.example` and the display name `Customer {n}`, `n` zero-padded
//! to the number of digits of the tenant count.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::embedded::{SAMPLE_API_APP_ID, SAMPLE_API_URI, write_private, write_public};

/// At most this many customer tenants.
pub const MAX_TENANTS: usize = 100_000;
/// At most this many users per customer tenant.
pub const MAX_USERS_PER_TENANT: usize = 10_000;
/// At most this many users in all (about 200 bytes of TOML each).
pub const MAX_TOTAL_USERS: usize = 1_000_000;

/// The ISV's home tenant, where its multi-tenant app is registered.
const HOME_TENANT_ID: &str = "15a00000-0000-4000-8000-000000000000";
const HOME_DOMAIN: &str = "isv.example";
const HOME_DISPLAY_NAME: &str = "ISV";
/// Customer tenant ids: this prefix and the customer's number in 12 digits.
const CUSTOMER_ID_PREFIX: &str = "c0570000-0000-4000-8000-";
/// The ISV's multi-tenant app.
const ISV_CLIENT_ID: &str = "15a0a990-0000-4000-8000-000000000001";
const ISV_APP_NAME: &str = "apptoken ISV daemon";
/// The sample API's role, as in the embedded configuration.
const SAMPLE_ROLE: &str = "Users.Read.All";
const SAMPLE_ROLE_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const REDIRECT_URI: &str = "http://localhost/consent-done";

/// The configuration file [`write_isv`] writes.
pub const CONFIG_FILE: &str = "emulator.toml";
/// The client secret file (mode 0600), named by `value_file` in the TOML.
pub const SECRET_FILE: &str = "client-secret";
/// One customer tenant domain per line, after a `#` comment header.
pub const TENANTS_FILE: &str = "tenants.txt";

/// What [`isv`] generates. Build with [`IsvOptions::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IsvOptions {
    /// Customer tenants (1..=[`MAX_TENANTS`]), besides the ISV's home tenant.
    pub tenants: usize,
    /// Sample users in each customer tenant (0..=[`MAX_USERS_PER_TENANT`];
    /// default 3). The home tenant has none.
    pub users_per_tenant: usize,
    /// 0-based indices of customer tenants with no grant: the app has no
    /// service principal there (AADSTS7000229) until consented.
    pub without_consent: Vec<usize>,
    /// The configuration's `token_lifetime_secs` (60..=86400); default: the
    /// emulator's (3600).
    pub token_lifetime_secs: Option<u64>,
}

impl IsvOptions {
    /// `tenants` customer tenants, 3 users each, all consented.
    pub fn new(tenants: usize) -> Self {
        IsvOptions {
            tenants,
            users_per_tenant: 3,
            without_consent: Vec::new(),
            token_lifetime_secs: None,
        }
    }

    /// Sets the number of users per customer tenant.
    #[must_use]
    pub fn users_per_tenant(mut self, users: usize) -> Self {
        self.users_per_tenant = users;
        self
    }

    /// Sets the 0-based indices of customer tenants without a grant.
    #[must_use]
    pub fn without_consent(mut self, indices: impl IntoIterator<Item = usize>) -> Self {
        self.without_consent = indices.into_iter().collect();
        self
    }

    /// Sets `token_lifetime_secs`.
    #[must_use]
    pub fn token_lifetime_secs(mut self, secs: u64) -> Self {
        self.token_lifetime_secs = Some(secs);
        self
    }
}

/// A generated configuration: the TOML and the facts a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IsvConfig {
    /// The configuration; its app secret is `value_file = "client-secret"`,
    /// relative to the directory the TOML is loaded from.
    pub toml: String,
    /// The customer tenant domains, in order (`tenants[i]` is index `i`).
    pub tenants: Vec<String>,
    /// The customer tenant ids (GUIDs), in the same order.
    pub tenant_ids: Vec<String>,
    /// The 0-based indices of the customer tenants without a grant, sorted.
    pub without_consent: Vec<usize>,
    /// The multi-tenant app's client id (also the `primary_app`).
    pub client_id: String,
    /// The app's home tenant id (the ISV's own tenant).
    pub home_tenant: String,
    /// The home tenant's domain.
    pub home_domain: String,
    /// The sample API's app id URI (`api://apptoken-sample-api`).
    pub resource: String,
    /// The scope to request: `resource + "/.default"`.
    pub scope: String,
    /// Sample users in each customer tenant.
    pub users_per_tenant: usize,
}

/// What [`write_isv`] wrote, and the generated configuration's facts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IsvFiles {
    /// The directory written to.
    pub dir: PathBuf,
    /// `emulator.toml`: load it with [`Config::from_file`](crate::Config::from_file).
    pub config_path: PathBuf,
    /// `client-secret` (mode 0600): the app's secret.
    pub secret_path: PathBuf,
    /// Whether the secret already in `client-secret` was kept (otherwise a
    /// new one was generated).
    pub secret_reused: bool,
    /// `tenants.txt`: one customer tenant domain per line.
    pub tenants_path: PathBuf,
    /// The generated configuration (TOML, tenants, client id, home tenant,
    /// resource, scope).
    pub config: IsvConfig,
}

fn options_error(message: String) -> Error {
    Error::Config(format!("ISV generator: {message}"))
}

/// Checks the options; returns the sorted, deduplicated `without_consent`.
fn check(options: &IsvOptions) -> Result<Vec<usize>, Error> {
    let n = options.tenants;
    if !(1..=MAX_TENANTS).contains(&n) {
        return Err(options_error(format!(
            "tenants = {n} is out of range (1..={MAX_TENANTS})"
        )));
    }
    let users = options.users_per_tenant;
    if users > MAX_USERS_PER_TENANT {
        return Err(options_error(format!(
            "users_per_tenant = {users} is out of range (0..={MAX_USERS_PER_TENANT})"
        )));
    }
    match n.checked_mul(users) {
        Some(total) if total <= MAX_TOTAL_USERS => {}
        _ => {
            return Err(options_error(format!(
                "{n} tenants x {users} users is more than {MAX_TOTAL_USERS} users in all"
            )));
        }
    }
    if let Some(bad) = options.without_consent.iter().find(|&&i| i >= n) {
        return Err(options_error(format!(
            "without_consent index {bad} is out of range for {n} tenants (0..={})",
            n - 1
        )));
    }
    if let Some(secs) = options.token_lifetime_secs
        && !(60..=86_400).contains(&secs)
    {
        return Err(options_error(format!(
            "token_lifetime_secs = {secs} is out of range (60..=86400)"
        )));
    }
    let mut without = options.without_consent.clone();
    without.sort_unstable();
    without.dedup();
    Ok(without)
}

/// Number of decimal digits of `n` (at least 1).
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// A TOML basic string (JSON's escapes are TOML's).
fn q(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// Generates the configuration of an ISV: a home tenant (`isv.example`)
/// with a multi-tenant app, `options.tenants` customer tenants where the app
/// holds `Users.Read.All` on the sample API (`api://apptoken-sample-api`,
/// which `[sample_api]` protects with that role) except those in
/// `without_consent`, and `users_per_tenant` sample users in each customer
/// tenant. The app's secret is read from `client-secret` next to the TOML.
///
/// # Errors
/// [`Error::Config`] naming the option when `tenants` is 0 or over
/// [`MAX_TENANTS`], `users_per_tenant` over [`MAX_USERS_PER_TENANT`], the
/// users in all over [`MAX_TOTAL_USERS`], a `without_consent` index is not
/// below `tenants`, or `token_lifetime_secs` is outside 60..=86400.
pub fn isv(options: &IsvOptions) -> Result<IsvConfig, Error> {
    let without = check(options)?;
    let n = options.tenants;
    let users = options.users_per_tenant;
    let width = digits(n);
    let user_width = digits(users);
    let numbers = || (1..=n).map(|k| format!("{k:0width$}"));
    let tenants: Vec<String> = numbers().map(|k| format!("customer{k}.example")).collect();
    let tenant_ids: Vec<String> = (1..=n)
        .map(|k| format!("{CUSTOMER_ID_PREFIX}{k:012}"))
        .collect();

    // About 200 bytes per user and per tenant.
    let mut t =
        String::with_capacity((n.saturating_mul(users.saturating_add(2))).saturating_mul(200));
    // Writing to a String cannot fail: the results of writeln! are ignored.
    let _ = writeln!(
        t,
        "# Generated by apptoken_emulator::generate::isv: the multi-tenant app {ISV_CLIENT_ID}\n\
         # of the ISV tenant {HOME_DOMAIN} in {n} customer tenants ({} without consent),\n\
         # {users} users each. The app's secret is in the file client-secret next to this one.",
        without.len()
    );
    let _ = writeln!(t, "primary_app = {}", q(ISV_CLIENT_ID));
    if let Some(secs) = options.token_lifetime_secs {
        let _ = writeln!(t, "token_lifetime_secs = {secs}");
    }

    let _ = writeln!(
        t,
        "\n[[tenants]]\nid = {}\ndomains = [{}]\ndisplay_name = {}",
        q(HOME_TENANT_ID),
        q(HOME_DOMAIN),
        q(HOME_DISPLAY_NAME)
    );
    for ((id, domain), number) in tenant_ids.iter().zip(&tenants).zip(numbers()) {
        let _ = writeln!(
            t,
            "\n[[tenants]]\nid = {}\ndomains = [{}]\ndisplay_name = {}",
            q(id),
            q(domain),
            q(&format!("Customer {number}"))
        );
    }

    let _ = writeln!(
        t,
        "\n[[resources]]\napp_id = {}\napp_id_uri = {}\ndisplay_name = \"apptoken sample API\"\n\
         roles = [{{ value = {}, id = {} }}]",
        q(SAMPLE_API_APP_ID),
        q(SAMPLE_API_URI),
        q(SAMPLE_ROLE),
        q(SAMPLE_ROLE_ID)
    );

    let _ = writeln!(
        t,
        "\n[[apps]]\nclient_id = {}\ndisplay_name = {}\nhome_tenant = {}\nmulti_tenant = true\n\
         required_roles = [{{ resource = {}, roles = [{}] }}]\nredirect_uris = [{}]\n\
         \x20 [[apps.secrets]]\n\x20 value_file = {}",
        q(ISV_CLIENT_ID),
        q(ISV_APP_NAME),
        q(HOME_TENANT_ID),
        q(SAMPLE_API_URI),
        q(SAMPLE_ROLE),
        q(REDIRECT_URI),
        q(SECRET_FILE)
    );

    let grant = |t: &mut String, tenant: &str| {
        let _ = writeln!(
            t,
            "\n[[grants]]\ntenant = {}\nclient_id = {}\nresource = {}\nroles = [{}]",
            q(tenant),
            q(ISV_CLIENT_ID),
            q(SAMPLE_API_URI),
            q(SAMPLE_ROLE)
        );
    };
    // The home tenant too, as the embedded configuration does.
    grant(&mut t, HOME_TENANT_ID);
    for (i, id) in tenant_ids.iter().enumerate() {
        if without.binary_search(&i).is_err() {
            grant(&mut t, id);
        }
    }

    for (domain, number) in tenants.iter().zip(numbers()) {
        for u in 1..=users {
            let u = format!("{u:0user_width$}");
            let upn = format!("user{u}@{domain}");
            let _ = writeln!(
                t,
                "\n[[users]]\ntenant = {}\ndisplay_name = {}\ngiven_name = \"User\"\nsurname = {}\n\
                 user_principal_name = {}\njob_title = {}",
                q(domain),
                q(&format!("User {u} (Customer {number})")),
                q(&u),
                q(&upn),
                q("Operator")
            );
        }
    }

    let _ = writeln!(
        t,
        "\n[sample_api]\nresource = {}\nrequired_role = {}",
        q(SAMPLE_API_URI),
        q(SAMPLE_ROLE)
    );

    Ok(IsvConfig {
        toml: t,
        tenants,
        tenant_ids,
        without_consent: without,
        client_id: ISV_CLIENT_ID.to_string(),
        home_tenant: HOME_TENANT_ID.to_string(),
        home_domain: HOME_DOMAIN.to_string(),
        resource: SAMPLE_API_URI.to_string(),
        scope: format!("{SAMPLE_API_URI}/.default"),
        users_per_tenant: users,
    })
}

/// Generates [`isv`]'s configuration and writes, into `dir` (created with
/// mode 0700 when missing): `emulator.toml`, `client-secret` (mode 0600; a
/// new random secret shaped like Entra's, or the one already in that file,
/// kept so running clients keep working) and `tenants.txt` (the customer
/// tenant domains, one per line, after a `#` comment header). Files are
/// replaced atomically. Nothing is written when the options are invalid.
///
/// # Errors
/// As [`isv`]; [`Error::Io`] naming the file that cannot be written.
pub fn write_isv(dir: &Path, options: &IsvOptions) -> Result<IsvFiles, Error> {
    let config = isv(options)?;
    create_private_dir(dir)?;
    let secret_path = dir.join(SECRET_FILE);
    let existing = std::fs::read_to_string(&secret_path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let secret_reused = existing.is_some();
    let secret = existing.unwrap_or_else(crate::embedded::generate_secret);
    // Rewritten even when kept, so that its mode is 0600.
    write_private(&secret_path, format!("{secret}\n").as_bytes())?;

    let config_path = dir.join(CONFIG_FILE);
    write_public(&config_path, config.toml.as_bytes())?;

    let tenants_path = dir.join(TENANTS_FILE);
    let mut list = format!(
        "# {} customer tenants of the app {} (home tenant {} {}), one domain per line.\n",
        config.tenants.len(),
        config.client_id,
        config.home_domain,
        config.home_tenant
    );
    if !config.without_consent.is_empty() {
        list.push_str("# Without consent (no service principal):");
        for &i in &config.without_consent {
            if let Some(domain) = config.tenants.get(i) {
                list.push(' ');
                list.push_str(domain);
            }
        }
        list.push('\n');
    }
    for domain in &config.tenants {
        list.push_str(domain);
        list.push('\n');
    }
    write_public(&tenants_path, list.as_bytes())?;

    Ok(IsvFiles {
        dir: dir.to_path_buf(),
        config_path,
        secret_path,
        secret_reused,
        tenants_path,
        config,
    })
}

/// Creates `dir` and its parents; a directory created here gets mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io("creating", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn message(result: Result<IsvConfig, Error>) -> String {
        match result {
            Err(Error::Config(m)) => m,
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    #[test]
    fn bad_options_are_named() {
        for (options, expected) in [
            (
                IsvOptions::new(0),
                "tenants = 0 is out of range (1..=100000)",
            ),
            (
                IsvOptions::new(100_001),
                "tenants = 100001 is out of range (1..=100000)",
            ),
            (
                IsvOptions::new(usize::MAX),
                "tenants = 18446744073709551615 is out of range",
            ),
            (
                IsvOptions::new(1).users_per_tenant(10_001),
                "users_per_tenant = 10001 is out of range (0..=10000)",
            ),
            (
                IsvOptions::new(100_000).users_per_tenant(11),
                "100000 tenants x 11 users is more than 1000000 users in all",
            ),
            (
                IsvOptions::new(3).without_consent([1, 3]),
                "without_consent index 3 is out of range for 3 tenants (0..=2)",
            ),
            (
                IsvOptions::new(3).without_consent([usize::MAX]),
                "without_consent index 18446744073709551615 is out of range",
            ),
            (
                IsvOptions::new(3).token_lifetime_secs(59),
                "token_lifetime_secs = 59 is out of range (60..=86400)",
            ),
            (
                IsvOptions::new(3).token_lifetime_secs(u64::MAX),
                "token_lifetime_secs = 18446744073709551615 is out of range",
            ),
        ] {
            let m = message(isv(&options));
            assert!(m.starts_with("ISV generator: "), "{m}");
            assert!(m.contains(expected), "{options:?}: {m}");
        }
    }

    #[test]
    fn bad_options_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("isv");
        assert!(matches!(
            write_isv(&target, &IsvOptions::new(0)),
            Err(Error::Config(_))
        ));
        assert!(!target.exists());
    }

    #[test]
    fn names_and_ids_are_deterministic_and_padded() {
        let c = isv(&IsvOptions::new(1000).without_consent([999, 7, 7])).expect("isv");
        assert_eq!(c.tenants.len(), 1000);
        assert_eq!(c.tenants[0], "customer0001.example");
        assert_eq!(c.tenants[999], "customer1000.example");
        assert_eq!(c.tenant_ids[0], "c0570000-0000-4000-8000-000000000001");
        assert_eq!(c.tenant_ids[999], "c0570000-0000-4000-8000-000000001000");
        assert_eq!(c.without_consent, vec![7, 999]);
        assert_eq!(c.scope, "api://apptoken-sample-api/.default");
        assert_eq!(c.resource, "api://apptoken-sample-api");
        assert_eq!(
            c,
            isv(&IsvOptions::new(1000).without_consent([7, 999])).expect("isv")
        );
        for id in c.tenant_ids.iter().chain([&c.home_tenant, &c.client_id]) {
            assert_eq!(crate::config::parse_guid(id).as_deref(), Some(id.as_str()));
        }
        assert!(c.toml.contains("display_name = \"Customer 0001\""));
        assert!(
            c.toml
                .contains("user_principal_name = \"user1@customer0001.example\"")
        );

        let small = isv(&IsvOptions::new(9).users_per_tenant(10)).expect("isv");
        assert_eq!(small.tenants[8], "customer9.example");
        assert!(small.toml.contains("\"user01@customer9.example\""));
        assert!(small.toml.contains("\"user10@customer9.example\""));
        let one = isv(&IsvOptions::new(1).users_per_tenant(0)).expect("isv");
        assert_eq!(one.tenants, vec!["customer1.example"]);
    }

    #[test]
    fn the_toml_loads_with_grants_users_and_the_sample_api() {
        let options = IsvOptions::new(50)
            .users_per_tenant(4)
            .without_consent([0, 49])
            .token_lifetime_secs(600);
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_isv(dir.path(), &options).expect("write");
        assert!(!files.secret_reused);
        let c = Config::from_file(&files.config_path).expect("load");
        assert_eq!(c.tenants.len(), 51);
        assert_eq!(c.token_lifetime_secs, 600);
        assert_eq!(c.users.len(), 200);
        // The home tenant and every customer tenant but two.
        assert_eq!(c.grants.len(), 49);
        let app = c.primary().expect("primary app");
        assert_eq!(app.client_id, files.config.client_id);
        assert_eq!(app.home_tenant, files.config.home_tenant);
        assert!(app.multi_tenant);
        let secret = std::fs::read_to_string(&files.secret_path).expect("secret");
        assert_eq!(app.secrets[0].value, secret.trim());
        assert_eq!(
            app.required_roles,
            vec![(SAMPLE_API_APP_ID.to_string(), vec![SAMPLE_ROLE.to_string()])]
        );
        let ids = &files.config.tenant_ids;
        assert!(!c.has_service_principal(app, &ids[0]));
        assert!(c.has_service_principal(app, &ids[1]));
        assert!(!c.has_service_principal(app, &ids[49]));
        assert_eq!(
            c.granted_roles(&app.client_id, &ids[1], SAMPLE_API_APP_ID),
            vec![SAMPLE_ROLE.to_string()]
        );
        let in_second = c.users.iter().filter(|u| u.tenant_id == ids[1]).count();
        assert_eq!(in_second, 4);
        let sample = c.sample_api.as_ref().expect("sample api");
        assert_eq!(sample.resource_app_id, SAMPLE_API_APP_ID);
        assert_eq!(sample.required_role.as_deref(), Some(SAMPLE_ROLE));
    }

    #[test]
    fn write_isv_writes_the_files_with_their_modes_and_keeps_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("new");
        let files = write_isv(&target, &IsvOptions::new(12).without_consent([2])).expect("write");
        assert_eq!(files.config_path, target.join("emulator.toml"));
        assert_eq!(files.secret_path, target.join("client-secret"));
        assert_eq!(files.tenants_path, target.join("tenants.txt"));
        let secret = std::fs::read_to_string(&files.secret_path).expect("secret");
        assert_eq!(secret.trim().len(), 40, "Entra-shaped secret");
        let list = std::fs::read_to_string(&files.tenants_path).expect("tenants");
        let lines: Vec<&str> = list.lines().collect();
        assert!(
            lines[0].starts_with("# 12 customer tenants of the app "),
            "{list}"
        );
        assert_eq!(
            lines[1],
            "# Without consent (no service principal): customer03.example"
        );
        let domains: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(domains, files.config.tenants);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&files.secret_path), 0o600);
            assert_eq!(mode(&target), 0o700);
            assert_eq!(mode(&files.config_path), 0o644);
        }
        let again = write_isv(&target, &IsvOptions::new(3)).expect("again");
        assert!(again.secret_reused);
        assert_eq!(
            std::fs::read_to_string(&again.secret_path).expect("secret"),
            secret
        );
    }
}
