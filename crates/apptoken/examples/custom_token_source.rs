//! A token source of your own: tokens from somewhere other than an OAuth
//! token endpoint (an internal broker, a sidecar, a test double) still get
//! apptoken's cache, single flight, proactive refresh and outage fallback.
//! Here the source counts its calls to show that 100 concurrent callers make
//! one request. Runs offline (it needs no identity provider).
//!
//! `cargo run -p apptoken --example custom_token_source`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apptoken::{
    ConfidentialClient, ServerError, SourceFuture, SourceRequest, TokenResponse, TokenSource,
};

/// Asks "the broker" for a token; refuses tenants it does not serve with an
/// error shaped like an identity provider's, so callers can match on it.
#[derive(Debug, Default)]
struct Broker {
    calls: AtomicUsize,
}

impl TokenSource for Broker {
    fn request_token<'a>(&'a self, request: SourceRequest<'a>) -> SourceFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let tenant = request.authority.tenant();
            if tenant == "refused.example" {
                let mut e = ServerError::new(401, "invalid_client");
                e.error_codes = vec![7000229];
                e.error_description = Some("the broker does not serve this tenant".into());
                return Err(apptoken::Error::IdentityProvider(Box::new(e)));
            }
            // A real source would call its broker here; the value is opaque
            // to apptoken (never logged, never shown by Debug).
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(TokenResponse::new(
                format!("broker-token-for-{tenant}-{}", request.client_id),
                Duration::from_secs(3600),
            )
            .with_refresh_in(Duration::from_secs(1800)))
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = Arc::new(Broker::default());
    let client = ConfidentialClient::builder()
        .authority_url("https://login.microsoftonline.com/contoso.example")
        .client_id("00000000-0000-0000-0000-000000000001")
        .token_source(Arc::clone(&broker) as Arc<dyn TokenSource>)
        .build()?;
    let scope = ["api://internal/.default"];
    let callers = (0..100).map(|_| client.acquire_token(&scope));
    let tokens = futures::future::join_all(callers).await;
    let ok = tokens.iter().filter(|t| t.is_ok()).count();
    let calls = broker.calls.load(Ordering::SeqCst);
    println!("{ok} callers got a token; the broker was asked {calls} time(s)");
    if calls != 1 || ok != 100 {
        return Err(format!("expected 100 tokens from 1 call, got {ok} from {calls}").into());
    }
    let refused = client
        .acquire_token_with(apptoken::TokenRequest::new(scope).tenant("refused.example"))
        .await
        .expect_err("the broker refuses this tenant");
    println!("refused.example: {:?} {refused}", refused.aadsts_codes());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
