//! The command line's own error type, [`Failure`]: an error with the exit
//! code it maps to, and the mapping of the libraries' error kinds to the
//! exit codes documented in `docs/CLI.md` (and tested there, one by one).
//!
//! The rule the mapping keeps: a panicked or cancelled task (a bug) is 70,
//! never "configuration"; only what the user can fix in a setting or file
//! is 3.

use apptoken::{ConfigErrorKind, CredentialErrorKind, StoreErrorKind};

/// Exit codes, documented in `docs/CLI.md`.
pub(crate) mod exit {
    /// Something failed that fits no other code.
    pub(crate) const FAILURE: u8 = 1;
    /// Usage error: a missing argument (clap's own code for its errors).
    pub(crate) const USAGE: u8 = 2;
    /// Configuration problem: missing or invalid settings, unreadable or unsafe files.
    pub(crate) const CONFIG: u8 = 3;
    /// The identity provider refused the token request.
    pub(crate) const AUTH: u8 = 4;
    /// The identity provider or the API could not be reached.
    pub(crate) const UNREACHABLE: u8 = 5;
    /// The web API answered with a non-2xx status.
    pub(crate) const API: u8 = 6;
    /// Some tenants failed or were skipped (backing off), the others were
    /// written (`run --once`); some tenants cannot get a token
    /// (`tenants check`).
    pub(crate) const PARTIAL: u8 = 7;
    /// A bug in apptoken (a panicked or cancelled task): not the configuration.
    pub(crate) const INTERNAL: u8 = 70;
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error: anyhow::Error = e.into();
        let code = code_of(&error);
        Failure { code, error }
    }
}

impl Failure {
    /// A setting or argument of the command line itself that cannot be used
    /// (exit 3): what is wrong and what to write instead.
    pub(crate) fn config(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: exit::CONFIG,
            error: anyhow::anyhow!("{message}"),
        }
    }
}

/// The exit code of an error: that of the first error in its chain that
/// says what it is (apptoken's, the daemon's, a task's), else 1.
fn code_of(error: &anyhow::Error) -> u8 {
    for e in error.chain() {
        if let Some(e) = e.downcast_ref::<apptoken::Error>() {
            return code_for(e);
        }
        if let Some(e) = e.downcast_ref::<apptoken_daemon::Error>() {
            return match e {
                apptoken_daemon::Error::Config(_) => exit::CONFIG,
                apptoken_daemon::Error::Client(c) => code_for(c),
                _ => exit::FAILURE,
            };
        }
        if e.downcast_ref::<Unreachable>().is_some() {
            return exit::UNREACHABLE;
        }
        if e.downcast_ref::<CliConfigError>().is_some() {
            return exit::CONFIG;
        }
        if e.downcast_ref::<tokio::task::JoinError>().is_some() {
            return exit::INTERNAL;
        }
    }
    exit::FAILURE
}

/// The exit code of one of apptoken's errors, by its kind.
pub(crate) fn code_for(e: &apptoken::Error) -> u8 {
    use apptoken::Error as E;
    match e {
        // The HTTP client not building is the platform's TLS set-up, not a
        // setting the user wrote.
        E::Configuration(c) if c.kind() == ConfigErrorKind::HttpClient => exit::FAILURE,
        E::Configuration(_) | E::Authority(_) | E::InvalidScope { .. } => exit::CONFIG,
        // A signer or callback failing is its service's failure, not a file
        // or setting to fix.
        E::Credential(c)
            if matches!(
                c.kind(),
                CredentialErrorKind::Callback | CredentialErrorKind::Signing
            ) =>
        {
            exit::FAILURE
        }
        // The managed identity behind a federated credential failed: its
        // own error says what (IMDS refusing is 4, unreachable 5).
        E::Credential(c) if c.kind() == CredentialErrorKind::ManagedIdentity => {
            match std::error::Error::source(c).and_then(|s| s.downcast_ref::<apptoken::Error>()) {
                Some(inner) => code_for(inner),
                None => exit::FAILURE,
            }
        }
        E::Credential(_) => exit::CONFIG,
        E::IdentityProvider(_) => exit::AUTH,
        E::Transport { .. } => exit::UNREACHABLE,
        E::Store(s) if s.kind() == StoreErrorKind::Unavailable => exit::UNREACHABLE,
        // Panicked, cancelled, or the platform failing: never the
        // configuration.
        E::Internal(_) => exit::INTERNAL,
        _ => exit::FAILURE,
    }
}

/// The web API of `call` could not be reached (exit 5). The cause is the
/// HTTP client's error, without the URL (which may carry a query string).
#[derive(Debug, thiserror::Error)]
#[error("could not reach {url}: {}", if *.timeout { "the request timed out" } else { "the request failed" })]
pub(crate) struct Unreachable {
    url: String,
    timeout: bool,
    #[source]
    source: reqwest::Error,
}

impl Unreachable {
    pub(crate) fn new(url: &str, e: reqwest::Error) -> Unreachable {
        Unreachable {
            url: url.to_string(),
            timeout: e.is_timeout(),
            source: e.without_url(),
        }
    }
}

/// A setting of the command line's own configuration file that cannot be
/// used (exit 3): the file, the line and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CliConfigError(pub(crate) String);

#[cfg(test)]
mod tests {
    use super::*;
    use apptoken::{
        AuthorityError, AuthorityErrorKind, ConfigError, CredentialError, FileProblem,
        InternalError, InternalErrorKind, ServerError, StoreError,
    };

    fn code(e: impl Into<anyhow::Error>) -> u8 {
        Failure::from(e).code
    }

    #[test]
    fn each_kind_of_error_has_its_documented_exit_code() {
        let cases: Vec<(apptoken::Error, u8)> = vec![
            (
                ConfigError::new(ConfigErrorKind::Missing, "no client id").into(),
                exit::CONFIG,
            ),
            (
                ConfigError::new(ConfigErrorKind::File(FileProblem::Unreadable), "ca").into(),
                exit::CONFIG,
            ),
            (
                ConfigError::new(ConfigErrorKind::HttpClient, "tls").into(),
                exit::FAILURE,
            ),
            (
                AuthorityError::new(AuthorityErrorKind::Tenant, "common").into(),
                exit::CONFIG,
            ),
            (
                CredentialError::new(CredentialErrorKind::File(FileProblem::OpenToOthers), "0644")
                    .into(),
                exit::CONFIG,
            ),
            (
                CredentialError::new(CredentialErrorKind::WrongPassword, "pfx").into(),
                exit::CONFIG,
            ),
            (
                CredentialError::new(CredentialErrorKind::Callback, "vault").into(),
                exit::FAILURE,
            ),
            (
                apptoken::Error::server(ServerError::new(401, "invalid_client")),
                exit::AUTH,
            ),
            // A federated credential's managed identity: its own error decides.
            (
                CredentialError::new(CredentialErrorKind::ManagedIdentity, "fic")
                    .with_source(apptoken::Error::server(ServerError::new(
                        400,
                        "invalid_request",
                    )))
                    .into(),
                exit::AUTH,
            ),
            (
                CredentialError::new(CredentialErrorKind::ManagedIdentity, "fic")
                    .with_source(apptoken::Error::transport(
                        "http://169.254.169.254",
                        "refused",
                        false,
                        None,
                    ))
                    .into(),
                exit::UNREACHABLE,
            ),
            (
                apptoken::Error::transport("https://x", "refused", false, None),
                exit::UNREACHABLE,
            ),
            (
                StoreError::new(StoreErrorKind::Unavailable, "redis").into(),
                exit::UNREACHABLE,
            ),
            (
                StoreError::new(StoreErrorKind::Failed, "redis").into(),
                exit::FAILURE,
            ),
            (
                InternalError::new(InternalErrorKind::Panicked, "boom").into(),
                exit::INTERNAL,
            ),
            (
                InternalError::new(InternalErrorKind::Cancelled, "gone").into(),
                exit::INTERNAL,
            ),
            (
                InternalError::new(InternalErrorKind::Platform, "rng").into(),
                exit::INTERNAL,
            ),
            (
                apptoken::Error::external(std::io::Error::other("x"), true),
                exit::FAILURE,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(code(e.clone()), want, "{e:?}");
        }
    }

    #[test]
    fn the_code_is_found_under_context_and_inside_the_daemons_error() {
        let internal: apptoken::Error =
            InternalError::new(InternalErrorKind::Panicked, "boom").into();
        let wrapped = anyhow::Error::new(internal.clone()).context("getting a token");
        assert_eq!(code(wrapped), exit::INTERNAL);
        assert_eq!(
            code(apptoken_daemon::Error::Client(internal)),
            exit::INTERNAL
        );
        assert_eq!(code(anyhow::anyhow!("something else")), exit::FAILURE);
        assert_eq!(code(CliConfigError("f.toml: bad".into())), exit::CONFIG);
    }

    #[tokio::test]
    async fn a_panicked_or_cancelled_task_is_internal_never_configuration() {
        let panicked = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        assert_eq!(code(panicked), exit::INTERNAL);
        let pending = tokio::spawn(std::future::pending::<()>());
        pending.abort();
        let cancelled = pending.await.unwrap_err();
        assert!(cancelled.is_cancelled());
        assert_eq!(code(cancelled), exit::INTERNAL);
    }
}
