//! RFC 7523 client assertions, signed as MSAL signs them for Entra ID.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;

use super::{AssertionContext, Certificate, SigningAlgorithm};
use crate::error::Result;

/// How long an assertion is valid. Entra sets no upper bound; MSAL uses ten
/// minutes. Five keeps a leaked assertion useful for less time.
pub(crate) const ASSERTION_LIFETIME_SECS: i64 = 300;

/// Builds and signs a client assertion.
///
/// Encodings (RFC 7515 §4.1.7/§4.1.8, RFC 7523): `x5t` and `x5t#S256` are
/// base64url without padding of the SHA-1 / SHA-256 digest of the DER
/// certificate; `x5c` entries are standard base64 (with padding) of DER, leaf
/// first; `exp`, `nbf` and `iat` are JSON numbers.
pub(crate) async fn build_assertion(
    certificate: &Certificate,
    algorithm: SigningAlgorithm,
    send_x5c: bool,
    ctx: &AssertionContext,
    now: OffsetDateTime,
) -> Result<SecretString> {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), json!(algorithm.name()));
    header.insert("typ".into(), json!("JWT"));
    match algorithm {
        SigningAlgorithm::Ps256 => {
            header.insert("x5t#S256".into(), json!(URL_SAFE_NO_PAD.encode(certificate.sha256())));
        }
        SigningAlgorithm::Rs256 => {
            header.insert("x5t".into(), json!(URL_SAFE_NO_PAD.encode(certificate.sha1())));
        }
    }
    if send_x5c {
        let chain: Vec<String> = certificate.chain_der().iter().map(|d| STANDARD.encode(d)).collect();
        header.insert("x5c".into(), json!(chain));
    }
    let iat = now.unix_timestamp();
    let claims = json!({
        "aud": ctx.token_endpoint,
        "iss": ctx.client_id,
        "sub": ctx.client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ASSERTION_LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = certificate.signer().sign(algorithm, signing_input.as_bytes()).await?;
    Ok(SecretString::from(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))))
}
