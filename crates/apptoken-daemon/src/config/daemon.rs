//! The `[daemon]` table: grace period, listener, log format, credential
//! poll, certificate warning, job lease.
//!
//! Pure. Invariants: every duration is a string (`"30s"`) with a minimum
//! (`job_lease` also a maximum, a day); a value with a problem keeps the
//! default. `client_secret_credential` is read by the `[identity]` check
//! (it names the identity's secret file).

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::raw::RawDaemon;
use super::{Checker, DaemonSettings, LogFormat};

/// Checks `[daemon]` (absent: all defaults).
pub(super) fn check(ck: &mut Checker<'_>, rd: &RawDaemon) -> DaemonSettings {
    let mut daemon = DaemonSettings::default();
    if let Some(d) = ck.duration(&rd.grace_period, "daemon.grace_period", Duration::ZERO) {
        daemon.grace_period = d;
    }
    if let Some(d) = ck.duration(
        &rd.credential_poll,
        "daemon.credential_poll",
        Duration::from_secs(1),
    ) {
        daemon.credential_poll = d;
    }
    if let Some(d) = ck.duration(
        &rd.certificate_warning,
        "daemon.certificate_warning",
        Duration::ZERO,
    ) {
        daemon.certificate_warning = d;
    }
    if let Some(d) = ck.duration(&rd.job_lease, "daemon.job_lease", Duration::from_secs(1)) {
        if d > Duration::from_secs(86400) {
            let span = rd.job_lease.as_ref().map(Spanned::span);
            ck.at(span, "daemon.job_lease", "must be at most 1d (a day)");
        } else {
            daemon.job_lease = d;
        }
    }
    if let Some(old) = &rd.job_lease_secs {
        ck.at(
            Some(old.span()),
            "daemon.job_lease_secs",
            "renamed: use job_lease = \"60s\" (a duration)",
        );
    }
    if let Some(l) = &rd.listen {
        match l.get_ref().parse::<SocketAddr>() {
            Ok(a) => daemon.listen = Some(a),
            Err(_) => ck.at(
                Some(l.span()),
                "daemon.listen",
                format!(
                    "'{}' is not an address:port such as \"127.0.0.1:9464\"",
                    l.get_ref()
                ),
            ),
        }
    }
    if let Some(f) = &rd.log_format {
        match f.get_ref().to_ascii_lowercase().as_str() {
            "text" => daemon.log_format = Some(LogFormat::Text),
            "json" => daemon.log_format = Some(LogFormat::Json),
            other => ck.at(
                Some(f.span()),
                "daemon.log_format",
                format!("'{other}' is not text or json"),
            ),
        }
    }

    daemon
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    #[test]
    fn job_lease_is_a_duration_and_job_lease_secs_names_it() {
        let dir = workspace("");
        let c = check_in(dir.path(), &with_job("")).unwrap();
        assert_eq!(c.daemon.job_lease, Duration::from_secs(60));
        let text = format!("{}\n[daemon]\njob_lease = \"90s\"\n", with_job(""));
        let c = check_in(dir.path(), &text).unwrap();
        assert_eq!(c.daemon.job_lease, Duration::from_secs(90));
        for (value, fragment) in [
            ("\"0s\"", "must be at least 1s"),
            ("\"2d\"", "must be at most 1d"),
            ("\"soon\"", "is not a duration"),
        ] {
            let text = format!("{}\n[daemon]\njob_lease = {value}\n", with_job(""));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                "daemon.job_lease",
                place(&text, value),
                fragment,
            );
        }
        let text = format!("{}\n[daemon]\njob_lease_secs = 60\n", with_job(""));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "daemon.job_lease_secs",
            place(&text, "60\n"),
            "renamed: use job_lease = \"60s\"",
        );
    }
}
