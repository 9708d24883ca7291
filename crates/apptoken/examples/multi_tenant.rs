//! An ISV's daemon: one multi-tenant app, consented by each customer's
//! admin, one client for every customer tenant. Each tenant has its own
//! cache entry; a customer who has not consented answers AADSTS7000229 (or
//! 700016/65001), which is that tenant's error, not the others'.
//!
//! `cargo run -p apptoken --example multi_tenant`, or with your app:
//! `AZURE_TENANT_ID=home AZURE_CLIENT_ID=… AZURE_CLIENT_SECRET=…
//! APPTOKEN_TENANTS="contoso.onmicrosoft.com fabrikam.onmicrosoft.com" cargo run -p apptoken --example multi_tenant`.

mod support;

use apptoken::{
    Authority, ClientConfig, ClientSecret, ConfidentialClient, Credential, TokenRequest,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = support::target().await?;
    let (client, mut tenants) = match &target.info {
        None => {
            let tenants = std::env::var("APPTOKEN_TENANTS").unwrap_or_default();
            (
                ClientConfig::from_env()?.build_client()?,
                tenants
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            )
        }
        Some(info) => {
            let client = ConfidentialClient::builder()
                .authority(Authority::from_host(&info.authority_host, &info.tenant_id)?)
                .client_id(&info.client_id)
                .credential(Credential::secret(ClientSecret::new(
                    info.client_secret.clone().ok_or("no secret")?,
                )))
                .build()?;
            let mut tenants = vec![info.tenant_domain.clone()];
            tenants.extend(info.other_tenants.iter().map(|t| t.domain.clone()));
            (client, tenants)
        }
    };
    if target.info.is_some() {
        // A customer that never consented: its refusal is its own.
        tenants.push("nosuch.example".into());
    }
    let mut ok = 0;
    for tenant in &tenants {
        let request = TokenRequest::new([target.scope.as_str()]).tenant(tenant.as_str());
        match client.acquire_token_with(request).await {
            Ok(token) => {
                ok += 1;
                println!("{tenant}: a token until {}", token.expires_on());
                if let Some(info) = &target.info {
                    let n = support::list_users(info, &token.authorization_header()).await?;
                    println!("{tenant}: {n} users");
                }
            }
            // Entra's code says what the customer's admin has to do.
            Err(e) => println!("{tenant}: refused {:?}: {e}", e.aadsts_codes()),
        }
    }
    println!(
        "{ok} of {} tenants answered; {} tokens cached",
        tenants.len(),
        client.cached_tokens()
    );
    if target.info.is_some() && ok + 1 != tenants.len() {
        return Err("every consented tenant should answer".into());
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
