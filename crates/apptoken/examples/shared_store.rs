//! A second-level token store behind the in-memory cache: tokens sealed
//! with AES-256-GCM under a key you keep (`StoreKey`), so a restarted
//! process — or every process of a fleet, with `apptoken-redis` — reuses a
//! valid token instead of asking for a new one. Here: `FileStore`, two
//! clients one after the other (a restart), one token request in all.
//!
//! `cargo run -p apptoken --example shared_store` (offline: the embedded
//! emulator; with `AZURE_CLIENT_ID` set, your app).

mod support;

use std::sync::Arc;

use apptoken::{
    Authority, ClientConfig, ClientSecret, ConfidentialClient, Credential, FileStore, StoreKey,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = support::target().await?;
    let dir = tempfile::tempdir()?;
    // The key: created once (mode 0600) and kept; every process that shares
    // the store needs the same one.
    let key_path = dir.path().join("cache.key");
    let store_path = dir.path().join("tokens.json");
    let build = || -> Result<ConfidentialClient, Box<dyn std::error::Error>> {
        let builder = match &target.info {
            None => ClientConfig::from_env()?.client_builder()?,
            Some(info) => ConfidentialClient::builder()
                .authority(Authority::from_host(&info.authority_host, &info.tenant_id)?)
                .client_id(&info.client_id)
                .credential(Credential::secret(ClientSecret::new(
                    info.client_secret.clone().ok_or("no secret")?,
                ))),
        };
        Ok(builder
            .shared_store(
                Arc::new(FileStore::open(&store_path)?),
                StoreKey::load_or_create(&key_path)?,
            )
            .build()?)
    };
    let first = build()?.acquire_token(&[&target.scope]).await?;
    println!("first process: a token until {}", first.expires_on());
    // A new client, as after a restart: its memory is empty, the store is not.
    let second = build()?.acquire_token(&[&target.scope]).await?;
    // The same token (compared, never printed), not a new one.
    if second.secret() != first.secret() {
        return Err("the second process did not reuse the stored token".into());
    }
    if let Some(e) = &target.emulator {
        let requests = e.stats().token_requests_total();
        println!("token requests for both processes: {requests}");
        if requests != 1 {
            return Err(format!("expected 1 token request, saw {requests}").into());
        }
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
