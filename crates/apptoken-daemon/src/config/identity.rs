//! The `[identity]` table (the library's `ClientConfig`), completed by the
//! `AZURE_*` environment and by `[daemon] client_secret_credential`.
//!
//! Pure but for the two preflight calls (the credential's files, the CA
//! file), made through [`Preflight`](super::preflight::Preflight).
//! Invariants: the identity's paths are `${VAR}`-expanded and resolved
//! against the file's directory before anything reads them; `ClientConfig`
//! is parsed without spans, so the problems of its fields are reported at
//! the `[identity]` table (in the order paths, client_id, tenant_id,
//! credential, ca_file), those of `client_secret_credential` at its value
//! and those of the `AZURE_*` environment without a place.

use std::path::{Path, PathBuf};

use apptoken::ClientConfig;
use toml::Spanned;

use super::raw::RawDaemon;
use super::{Checker, Inputs};

/// Checks `[identity]`; `rd` gives `client_secret_credential`.
pub(super) fn check(
    ck: &mut Checker<'_>,
    raw: Option<Spanned<ClientConfig>>,
    rd: &RawDaemon,
    inputs: &Inputs<'_>,
) -> ClientConfig {
    let env = inputs.env;
    let identity_span = raw.as_ref().map(|i| i.span());
    let mut identity = raw.map(Spanned::into_inner).unwrap_or_default();
    {
        let fix = |ck: &mut Checker<'_>, p: &mut Option<PathBuf>, field: &str| {
            let Some(v) = p.as_ref() else { return };
            match inputs.expand(&v.to_string_lossy()) {
                Ok(s) => *p = Some(inputs.resolve(&s)),
                Err(m) => {
                    ck.at(identity_span.clone(), format!("identity.{field}"), m);
                    *p = None;
                }
            }
        };
        fix(ck, &mut identity.client_secret_file, "client_secret_file");
        fix(ck, &mut identity.certificate_path, "certificate_path");
        fix(
            ck,
            &mut identity.certificate_password_file,
            "certificate_password_file",
        );
        fix(
            ck,
            &mut identity.federated_token_file,
            "federated_token_file",
        );
        fix(ck, &mut identity.ca_file, "ca_file");
    }
    if let Some(c) = &rd.client_secret_credential {
        match env("CREDENTIALS_DIRECTORY").filter(|v| !v.is_empty()) {
            Some(dir) => identity.client_secret_file = Some(Path::new(&dir).join(c.get_ref())),
            None => ck.at(
                Some(c.span()),
                "daemon.client_secret_credential",
                "CREDENTIALS_DIRECTORY is not set: run under systemd with LoadCredential=, or use identity.client_secret_file",
            ),
        }
    }
    let env_identity = match ClientConfig::from_env_vars(env) {
        Ok(e) => e,
        Err(e) => {
            ck.at(None, "environment", e.report().to_string());
            ClientConfig::default()
        }
    };
    let identity = identity.or_env(env_identity);
    // A managed identity has no app registration: no client id, no tenant.
    let managed = identity
        .choose_credential()
        .is_ok_and(|c| c.credential == apptoken::CredentialType::ManagedIdentity);
    if !managed && identity.client_id.is_none() {
        ck.at(
            identity_span.clone(),
            "identity.client_id",
            "missing: set client_id or AZURE_CLIENT_ID",
        );
    }
    if !managed && let Err(e) = identity.authority() {
        ck.at(
            identity_span.clone(),
            "identity.tenant_id",
            e.report().to_string(),
        );
    }
    if let Err(m) = inputs.files.credential(&identity) {
        ck.at(identity_span.clone(), "identity", m);
    }
    if let Some(ca) = &identity.ca_file
        && let Err(m) = inputs.files.ca_file(ca)
    {
        ck.at(identity_span.clone(), "identity.ca_file", m);
    }
    identity
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::*;

    #[test]
    fn the_identity_timeout_is_a_duration_and_timeout_secs_names_it() {
        let with = |line: &str| {
            with_job("").replacen(
                "client_id = \"cid\"\n",
                &format!("client_id = \"cid\"\n{line}\n"),
                1,
            )
        };
        let c = check(&with("timeout = \"45s\"")).unwrap();
        assert_eq!(c.identity.timeout, Some(Duration::from_secs(45)));
        let text = with("timeout_secs = 30");
        let problems = check(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let p = &problems[0];
        assert!(
            p.message.contains("timeout_secs was renamed")
                && p.message.contains("timeout = \"30s\""),
            "{p}"
        );
        assert_eq!(
            p.location.map(|(line, _)| line),
            Some(place(&text, "timeout_secs").0),
            "{p}"
        );
        let problems = check(&with("timeout = \"soon\"")).unwrap_err();
        assert!(
            problems[0].message.contains("'soon' is not a duration"),
            "{problems:#?}"
        );
    }
}
