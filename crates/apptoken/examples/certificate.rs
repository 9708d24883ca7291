//! A certificate instead of a secret: the client signs a short-lived
//! assertion (RFC 7523; PS256 with `x5t#S256` for Entra) for each token
//! request. The certificate and key come from one PEM file, or a PFX.
//!
//! `cargo run -p apptoken --example certificate`, or with your app:
//! `AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_CERTIFICATE_PATH=cert-and-key.pem
//! cargo run -p apptoken --example certificate` (`apptoken cert new` makes one).

mod support;

use apptoken::{Authority, Certificate, ClientConfig, ConfidentialClient, Credential};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = support::target().await?;
    let client = match &target.info {
        None => ClientConfig::from_env()?.build_client()?,
        Some(info) => {
            // The emulator wrote the certificate and its key as two PEM files.
            let mut pem = std::fs::read(info.certificate_path.as_ref().ok_or("no certificate")?)?;
            pem.extend(std::fs::read(
                info.private_key_path.as_ref().ok_or("no key")?,
            )?);
            let certificate = Certificate::from_pem(&pem, None)?;
            println!(
                "certificate {} ({}), valid until {}",
                certificate.thumbprint_sha1_hex(),
                certificate.subject(),
                certificate.not_after()
            );
            ConfidentialClient::builder()
                .authority(Authority::from_host(&info.authority_host, &info.tenant_id)?)
                .client_id(&info.client_id)
                .credential(Credential::certificate(certificate))
                .build()?
        }
    };
    let token = client.acquire_token(&[&target.scope]).await?;
    println!("a token until {}", token.expires_on());
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
