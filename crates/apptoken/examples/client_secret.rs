//! The first thing a daemon does: get an app-only token with a client
//! secret and call an API with it. The second call is a cache hit.
//!
//! `cargo run -p apptoken --example client_secret` (offline: the embedded
//! emulator), or with your app: `AZURE_TENANT_ID=… AZURE_CLIENT_ID=…
//! AZURE_CLIENT_SECRET=… cargo run -p apptoken --example client_secret`.

mod support;

use apptoken::{Authority, ClientConfig, ClientSecret, ConfidentialClient, Credential};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = support::target().await?;
    let client = match &target.info {
        // Your app: the AZURE_* variables, exactly as Azure Identity reads them.
        None => ClientConfig::from_env()?.build_client()?,
        Some(info) => ConfidentialClient::builder()
            .authority(Authority::from_host(&info.authority_host, &info.tenant_id)?)
            .client_id(&info.client_id)
            .credential(Credential::secret(ClientSecret::new(
                info.client_secret
                    .clone()
                    .ok_or("the emulator has no secret")?,
            )))
            .build()?,
    };
    let token = client.acquire_token(&[&target.scope]).await?;
    println!(
        "a token for tenant {} until {} (the token itself is never printed)",
        token.tenant(),
        token.expires_on()
    );
    let again = client.acquire_token(&[&target.scope]).await?;
    assert!(
        again.is_same_token(&token),
        "the second call is served from the cache"
    );
    if let Some(info) = &target.info {
        let n = support::list_users(info, &token.authorization_header()).await?;
        println!("the sample API listed {n} users");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs against the emulator");
    }
}
