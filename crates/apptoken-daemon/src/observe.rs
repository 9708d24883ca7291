//! Metrics: the Prometheus recorder behind the `metrics` facade (the library
//! already counts its cache hits and token requests through it), and the
//! certificate expiry gauge.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::warn;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder,
/// once. Returns `false` when another recorder was installed first (then
/// `/metrics` answers 503).
pub fn install_metrics_recorder() -> bool {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        300.0,
                    ],
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .is_some()
}

/// The Prometheus text of every metric.
pub(crate) fn render() -> Option<String> {
    let h = HANDLE.get()?.as_ref()?;
    h.run_upkeep();
    Some(h.render())
}

/// Publishes a certificate's expiry and warns when it is near.
pub(crate) fn certificate_expiry(
    cert: &apptoken::Certificate,
    now: time::OffsetDateTime,
    warn_before: Duration,
) {
    let thumbprint = cert.thumbprint_sha1_hex();
    metrics::gauge!(
        "apptoken_daemon_certificate_expiry_timestamp_seconds",
        "thumbprint" => thumbprint.clone(),
        "subject" => cert.subject().to_string()
    )
    .set(cert.not_after().unix_timestamp() as f64);
    let left = cert.not_after() - now;
    if left < time::Duration::try_from(warn_before).unwrap_or(time::Duration::MAX) {
        warn!(
            thumbprint = %thumbprint,
            subject = cert.subject(),
            not_after = %cert.not_after(),
            days_left = left.whole_days(),
            "the client certificate expires soon: make a new one (apptoken cert new), register it on the app, and replace the file"
        );
    }
}
