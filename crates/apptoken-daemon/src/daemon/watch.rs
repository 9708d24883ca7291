//! The polls of a running daemon's files: a changed credential file goes
//! into the running client (its cache stays; a broken one is logged and the
//! last good one stays), a changed tenants file replaces the job's tenant
//! list (a list with problems is logged and the current one stays).

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::Shared;
use super::build::publish_certificate;
use crate::credentials::Fingerprint;

pub(super) async fn watch_credentials(shared: Arc<Shared>, stop: CancellationToken) {
    let mut last = Fingerprint::of(&shared.config().credential_files());
    let mut tenants = Fingerprint::of(&shared.config().tenant_files());
    loop {
        let poll = shared.config().daemon.credential_poll;
        tokio::select! {
            _ = shared.clock.sleep(poll) => {}
            _ = stop.cancelled() => return,
        }
        check_credentials(&shared, &mut last);
        check_tenant_files(&shared, &mut tenants);
    }
}

/// Re-reads the tenant lists when a tenants file changed (one poll). A
/// list with problems is logged and the current one stays; the client, its
/// cache and the schedules are kept.
pub(crate) fn check_tenant_files(shared: &Shared, last: &mut Fingerprint) {
    let config = shared.config();
    let files = config.tenant_files();
    let now = Fingerprint::of(&files);
    if now == *last {
        return;
    }
    *last = now;
    let mut next = (*config).clone();
    let mut changed = false;
    for job in &mut next.jobs {
        let Some(path) = &job.tenants_file else {
            continue;
        };
        match crate::tenant_list::load(path) {
            Ok(list) if list.is_empty() => {
                metrics::counter!("apptoken_daemon_tenant_list_reloads_total", "outcome" => "failure").increment(1);
                error!(job = %job.name, file = %path.display(), "the tenants file lists no tenant; the current list stays");
            }
            Ok(list) => {
                if list != job.tenants {
                    let old: HashSet<&String> = job.tenants.iter().collect();
                    let new: HashSet<&String> = list.iter().collect();
                    let added = new.difference(&old).count();
                    let removed = old.difference(&new).count();
                    info!(job = %job.name, file = %path.display(), tenants = list.len(), added, removed, "the tenants file changed; the next run uses the new list");
                    job.tenants = list;
                    changed = true;
                }
                metrics::counter!("apptoken_daemon_tenant_list_reloads_total", "outcome" => "success").increment(1);
            }
            Err(problems) => {
                metrics::counter!("apptoken_daemon_tenant_list_reloads_total", "outcome" => "failure").increment(1);
                for p in &problems {
                    error!(job = %job.name, problem = %p, "the tenants file has a problem; the current list stays");
                }
            }
        }
    }
    if changed {
        *shared.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        shared.forget_unlisted_tenants();
    }
}

/// Rebuilds the client when a credential file changed (one poll).
pub(crate) fn check_credentials(shared: &Shared, last: &mut Fingerprint) {
    let config = shared.config();
    let now = Fingerprint::of(&config.credential_files());
    if now == *last {
        return;
    }
    *last = now;
    // The new credential goes into the running client: its cache stays.
    match config
        .identity
        .credential()
        .and_then(|c| shared.client().set_credential(c.clone()).map(|()| c))
    {
        Ok(credential) => {
            let client = shared.client();
            publish_certificate(&client, &config, shared.clock.as_ref());
            let thumbprint = credential
                .certificate_ref()
                .map(|c| c.thumbprint_sha1_hex());
            metrics::counter!("apptoken_daemon_credential_reloads_total", "outcome" => "success")
                .increment(1);
            info!(
                thumbprint = thumbprint.as_deref(),
                "a credential file changed; the new credential is used from the next token request"
            );
        }
        Err(e) => {
            metrics::counter!("apptoken_daemon_credential_reloads_total", "outcome" => "failure")
                .increment(1);
            error!(error = %apptoken::Report::of(&e), "a credential file changed but does not load; the last good credential stays in use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DaemonConfig;
    use crate::daemon::{Daemon, Options};

    fn thumbprint(d: &Daemon) -> Option<String> {
        d.shared
            .client()
            .credential()
            .and_then(|c| c.certificate_ref().map(|c| c.thumbprint_sha1_hex()))
    }

    fn combined(state: &std::path::Path) -> Vec<u8> {
        let mut pem = std::fs::read(state.join("client-cert.pem")).unwrap();
        pem.extend(std::fs::read(state.join("client-key.pem")).unwrap());
        pem
    }

    fn write_private(path: &std::path::Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn a_changed_certificate_is_used_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        apptoken_emulator::Config::embedded(&a).unwrap();
        apptoken_emulator::Config::embedded(&b).unwrap();
        let cert = dir.path().join("app.pem");
        write_private(&cert, &combined(&a));
        let path = dir.path().join("daemon.toml");
        std::fs::write(
            &path,
            "[identity]\nauthority_host = \"http://127.0.0.1:9\"\ntenant_id = \"t.example\"\nclient_id = \"c\"\ncertificate_path = \"app.pem\"\n",
        )
        .unwrap();
        let config = DaemonConfig::load(&path, &|_| None).unwrap();
        let daemon = Daemon::new(config, Options::default()).unwrap();
        let first = thumbprint(&daemon).unwrap();
        let mut last = Fingerprint::of(&daemon.shared.config().credential_files());
        check_credentials(&daemon.shared, &mut last);
        assert_eq!(thumbprint(&daemon).unwrap(), first, "unchanged");
        write_private(&cert, b"-----BEGIN GARBAGE-----\n");
        check_credentials(&daemon.shared, &mut last);
        assert_eq!(
            thumbprint(&daemon).unwrap(),
            first,
            "the last good credential stays"
        );
        write_private(&cert, &combined(&b));
        check_credentials(&daemon.shared, &mut last);
        let second = thumbprint(&daemon).unwrap();
        assert_ne!(second, first, "the new certificate is used");
    }
}
