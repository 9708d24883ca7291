//! No secret, assertion or token ever appears in logs, even at trace level.
//!
//! A test binary of its own: tracing caches per-callsite interest, and other
//! tests running in parallel without a subscriber would hide spans from a
//! thread-local one.

#[path = "it/support.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use apptoken::{Certificate, ClientSecret, Credential, TokenRequest};

use support::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// A current-thread runtime: every task (the shared token request included)
// runs on this thread, under the capturing subscriber.
#[tokio::test(flavor = "current_thread")]
async fn trace_logs_hold_no_secret_and_no_token() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = start().await;
    let mut tokens = Vec::new();
    tokens.push(env.secret_client().acquire_token(&[SCOPE]).await.unwrap());
    let basic = env.client(Credential::secret_with(
        ClientSecret::new(SECRET),
        apptoken::SecretAuthMethod::Basic,
    ));
    tokens.push(basic.acquire_token(&[SCOPE]).await.unwrap());
    let cert =
        Certificate::from_pem(&std::fs::read(fixture("leaf.combined.pem")).unwrap(), None).unwrap();
    let cert_client = env.client(Credential::certificate(cert));
    tokens.push(cert_client.acquire_token(&[SCOPE]).await.unwrap());
    tokens.push(
        cert_client
            .acquire_token_with(TokenRequest::new([SCOPE]).force_refresh(true))
            .await
            .unwrap(),
    );
    let assertion = signed_assertion(
        &env.token_endpoint(HOME_TENANT),
        jsonwebtoken::Algorithm::PS256,
        600,
    );
    let a2 = assertion.clone();
    let cb = env.client(Credential::assertion_callback(move |_| {
        let a = a2.clone();
        async move { Ok::<_, std::io::Error>(a) }
    }));
    tokens.push(cb.acquire_token(&[SCOPE]).await.unwrap());
    let wrong = env.client(Credential::secret(ClientSecret::new(
        "another-wrong-secret",
    )));
    let _ = wrong.acquire_token(&[SCOPE]).await.unwrap_err();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("token_request"), "the capture works: {logs}");
    let mut forbidden: Vec<String> = vec![
        SECRET.into(),
        "another-wrong-secret".into(),
        assertion.clone(),
    ];
    // the signature part of the assertion is unique to it
    forbidden.push(assertion.rsplit('.').next().unwrap().to_string());
    let key_pem = std::fs::read_to_string(fixture("leaf.pkcs8.pem")).unwrap();
    forbidden.push(key_pem.lines().nth(1).unwrap().to_string());
    for t in &tokens {
        forbidden.push(t.secret().to_string());
        forbidden.push(t.secret().rsplit('.').next().unwrap().to_string());
    }
    // the basic header value
    {
        use base64::Engine;
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        forbidden.push(base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(CLIENT_ID),
            enc(SECRET)
        )));
    }
    for f in &forbidden {
        assert!(
            !logs.contains(f.as_str()),
            "a secret or token leaked into the logs"
        );
    }
}

/// Records the `acquire_token` spans opened and their `cache` field.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Cache(String);
        impl tracing::field::Visit for Cache {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "cache" {
                    self.0 = value.to_string();
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if attrs.metadata().name() == "acquire_token" {
            let mut cache = Cache(String::new());
            attrs.record(&mut cache);
            self.0.lock().unwrap().push(cache.0);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_acquisition_opens_a_span_hits_included() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let env = start().await;
    let client = env.secret_client();
    client.acquire_token(&[SCOPE]).await.unwrap();
    client.acquire_token(&[SCOPE]).await.unwrap();
    // Through the full path (the scope is normalised first), still a hit.
    client
        .acquire_token_with(TokenRequest::new([format!("{SCOPE} openid")]))
        .await
        .unwrap();
    client
        .acquire_token_for_tenant(&[SCOPE], HOME_TENANT)
        .await
        .unwrap();
    assert_eq!(*spans.0.lock().unwrap(), ["miss", "hit", "hit", "hit"]);
}
