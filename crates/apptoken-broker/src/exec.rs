//! The child of `apptoken exec`: started with `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` naming an [`AppServiceEndpoint`] and without the
//! credential's variables ([`REMOVED_VARIABLES`]), its SIGINT, SIGTERM and
//! SIGHUP forwarded, its exit status passed on (a signal `N` as `128 + N`,
//! as shells report it).
//!
//! The signal handlers are installed before the child starts, so a signal
//! in between is never the default action (which would end apptoken and
//! leave the child running). A SIGINT is not forwarded when apptoken is in
//! the terminal's foreground process group: the terminal sent it to the
//! child too, and a second one would interrupt the child's own clean-up.

use std::ffi::OsString;
use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};

use crate::app_service::AppServiceEndpoint;
use crate::error::Error;

/// The variables removed from the child's environment: apptoken's own
/// credential (`AZURE_CLIENT_SECRET`, the certificate and its password, the
/// federated token file, a username and password), the settings that would
/// make it read one (`APPTOKEN_CONFIG`, `APPTOKEN_CREDENTIAL`,
/// `AZURE_TOKEN_CREDENTIALS`), and every variable that would make the
/// child's SDK choose another managed-identity source than the endpoint
/// (Service Fabric's thumbprint, Arc's `IMDS_ENDPOINT`, Azure ML's and
/// Cloud Shell's `MSI_*`). `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are
/// replaced.
pub const REMOVED_VARIABLES: &[&str] = &[
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_TOKEN_CREDENTIALS",
    "APPTOKEN_CONFIG",
    "APPTOKEN_CREDENTIAL",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
];

/// A program to run as the endpoint's child.
#[derive(Debug, Clone)]
pub struct Exec {
    program: OsString,
    args: Vec<OsString>,
}

impl Exec {
    /// `program` (looked up in `PATH` when it has no `/`) with `args`.
    pub fn new<P, I, A>(program: P, args: I) -> Exec
    where
        P: Into<OsString>,
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        Exec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Runs the program until it exits and returns its exit code (`128 +
    /// N` when signal `N` ended it), forwarding SIGINT, SIGTERM and SIGHUP
    /// meanwhile.
    ///
    /// # Errors
    /// [`Error::Spawn`] when the program cannot be started (its
    /// [`exit_code`](Error::exit_code) is the shell's 127 or 126);
    /// [`Error::Process`] when the signal handlers cannot be installed.
    pub async fn run(self, endpoint: &AppServiceEndpoint) -> Result<u8, Error> {
        let handler = |kind: SignalKind| {
            signal(kind).map_err(|source| Error::Process {
                what: "installing the signal handlers",
                source,
            })
        };
        let mut int = handler(SignalKind::interrupt())?;
        let mut term = handler(SignalKind::terminate())?;
        let mut hup = handler(SignalKind::hangup())?;

        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args);
        for k in REMOVED_VARIABLES {
            cmd.env_remove(k);
        }
        cmd.env("IDENTITY_ENDPOINT", endpoint.url())
            .env("IDENTITY_HEADER", endpoint.identity_header());
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            program: PathBuf::from(&self.program),
            code: if source.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            },
            source,
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw);
        tracing::debug!(pid = ?pid.map(|p| p.as_raw_pid()), endpoint = endpoint.url(), "child started");
        let status = loop {
            let sig = tokio::select! {
                status = child.wait() => break status.map_err(|source| Error::Process {
                    what: "waiting for the child",
                    source,
                })?,
                _ = int.recv() => rustix::process::Signal::INT,
                _ = term.recv() => rustix::process::Signal::TERM,
                _ = hup.recv() => rustix::process::Signal::HUP,
            };
            if sig == rustix::process::Signal::INT && in_terminal_foreground() {
                tracing::debug!("SIGINT from the terminal: the child has it too");
                continue;
            }
            if let Some(pid) = pid {
                // The child may have just exited: then there is no one to tell.
                if let Err(e) = rustix::process::kill_process(pid, sig) {
                    tracing::debug!(error = %e, "forwarding a signal to the child");
                }
            }
        };
        Ok(exit_code(&status))
    }
}

/// The exit code a shell would report for `status`.
fn exit_code(status: &std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + (sig & 0x7f)).unwrap_or(255),
        (None, None) => 1,
    }
}

/// Whether this process is in the foreground process group of the terminal
/// on its standard input (then the terminal's SIGINT reached the child too).
fn in_terminal_foreground() -> bool {
    rustix::termios::tcgetpgrp(std::io::stdin()).is_ok_and(|fg| fg == rustix::process::getpgrp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_codes_are_the_shells() {
        let s = |raw: i32| std::process::ExitStatus::from_raw(raw);
        assert_eq!(exit_code(&s(0)), 0);
        assert_eq!(exit_code(&s(7 << 8)), 7);
        assert_eq!(exit_code(&s(255 << 8)), 255);
        assert_eq!(exit_code(&s(15)), 143, "SIGTERM");
        assert_eq!(exit_code(&s(9)), 137, "SIGKILL");
        assert_eq!(exit_code(&s(2 | 0x80)), 130, "SIGINT with a core dump");
    }

    #[test]
    fn the_credential_and_other_sources_are_removed() {
        for k in [
            "AZURE_CLIENT_SECRET",
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            "AZURE_FEDERATED_TOKEN_FILE",
            "IDENTITY_SERVER_THUMBPRINT",
            "IMDS_ENDPOINT",
            "MSI_ENDPOINT",
            "MSI_SECRET",
        ] {
            assert!(REMOVED_VARIABLES.contains(&k), "{k}");
        }
        assert!(!REMOVED_VARIABLES.contains(&"AZURE_CLIENT_ID"));
    }
}
