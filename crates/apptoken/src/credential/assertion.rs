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
            header.insert(
                "x5t#S256".into(),
                json!(URL_SAFE_NO_PAD.encode(certificate.sha256())),
            );
        }
        SigningAlgorithm::Rs256 => {
            header.insert(
                "x5t".into(),
                json!(URL_SAFE_NO_PAD.encode(certificate.sha1())),
            );
        }
    }
    if send_x5c {
        let chain: Vec<String> = certificate
            .chain_der()
            .iter()
            .map(|d| STANDARD.encode(d))
            .collect();
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
    let signature = certificate
        .signer()
        .sign(algorithm, signing_input.as_bytes())
        .await?;
    Ok(SecretString::from(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

#[cfg(test)]
mod tests {
    //! The assertions are checked with an independent JOSE implementation
    //! (jsonwebtoken over RustCrypto) and independent digests (sha1/sha2),
    //! not with the code that made them.
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use secrecy::ExposeSecret;
    use sha1::Digest as _;
    use x509_cert::der::Decode;

    const CHAIN_PEM: &[u8] = include_bytes!("../../tests/fixtures/leaf.chain.pem");
    const LEAF_PEM: &[u8] = include_bytes!("../../tests/fixtures/leaf.cert.pem");

    fn ctx() -> AssertionContext {
        AssertionContext {
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            token_endpoint: "https://login.example/tenant/oauth2/v2.0/token".into(),
        }
    }

    fn leaf_der() -> Vec<u8> {
        let (_, der) = pem_rfc7468::decode_vec(LEAF_PEM).unwrap();
        der
    }

    fn decoding_key() -> DecodingKey {
        let der = leaf_der();
        let cert = x509_cert::Certificate::from_der(&der).unwrap();
        DecodingKey::from_rsa_der(
            cert.tbs_certificate()
                .subject_public_key_info()
                .subject_public_key
                .raw_bytes(),
        )
    }

    #[derive(serde::Deserialize)]
    struct Claims {
        aud: String,
        iss: String,
        sub: String,
        jti: String,
        iat: i64,
        nbf: i64,
        exp: i64,
    }

    async fn make(alg: SigningAlgorithm, x5c: bool) -> String {
        let cert = Certificate::from_pem(CHAIN_PEM, None).unwrap();
        build_assertion(&cert, alg, x5c, &ctx(), OffsetDateTime::now_utc())
            .await
            .unwrap()
            .expose_secret()
            .to_string()
    }

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_audience(&[ctx().token_endpoint]);
        v.set_issuer(&[ctx().client_id]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        v.validate_nbf = true;
        v
    }

    #[tokio::test]
    async fn ps256_with_x5t_s256_verifies_independently() {
        let jwt = make(SigningAlgorithm::Ps256, false).await;
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::PS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert!(header.x5t.is_none() && header.x5c.is_none());
        let want = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(leaf_der()));
        assert_eq!(header.x5t_s256.as_deref(), Some(want.as_str()));
        let data =
            jsonwebtoken::decode::<Claims>(&jwt, &decoding_key(), &validation(Algorithm::PS256))
                .unwrap();
        let c = data.claims;
        assert_eq!(
            (c.aud.as_str(), c.iss.as_str(), c.sub.as_str()),
            (
                ctx().token_endpoint.as_str(),
                ctx().client_id.as_str(),
                ctx().client_id.as_str()
            )
        );
        assert_eq!(c.exp - c.nbf, ASSERTION_LIFETIME_SECS);
        assert_eq!(c.iat, c.nbf);
        assert!(uuid::Uuid::parse_str(&c.jti).is_ok());
    }

    #[tokio::test]
    async fn rs256_with_sha1_x5t_and_x5c_chain() {
        let jwt = make(SigningAlgorithm::Rs256, true).await;
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        let want = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(leaf_der()));
        assert_eq!(header.x5t.as_deref(), Some(want.as_str()));
        assert!(header.x5t_s256.is_none());
        let x5c = header.x5c.unwrap();
        assert_eq!(x5c.len(), 2, "leaf and CA");
        // standard base64 with padding, of DER (not of PEM text), leaf first
        assert_eq!(STANDARD.decode(&x5c[0]).unwrap(), leaf_der());
        assert!(
            x5c.iter()
                .all(|e| e.len() % 4 == 0 && !e.contains('-') && !e.contains('_'))
        );
        assert!(!String::from_utf8_lossy(&STANDARD.decode(&x5c[0]).unwrap()).contains("BEGIN"));
        jsonwebtoken::decode::<Claims>(&jwt, &decoding_key(), &validation(Algorithm::RS256))
            .unwrap();
    }

    #[tokio::test]
    async fn times_are_json_numbers_and_jti_is_fresh() {
        let a = make(SigningAlgorithm::Ps256, false).await;
        let b = make(SigningAlgorithm::Ps256, false).await;
        let payload = |jwt: &str| -> serde_json::Value {
            serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(jwt.split('.').nth(1).unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        let (pa, pb) = (payload(&a), payload(&b));
        for k in ["exp", "nbf", "iat"] {
            assert!(pa[k].is_i64(), "{k} must be a JSON number: {}", pa[k]);
        }
        assert_ne!(pa["jti"], pb["jti"]);
        // no padding anywhere in the compact serialization
        assert!(!a.contains('='));
    }

    #[tokio::test]
    async fn a_tampered_assertion_does_not_verify() {
        let jwt = make(SigningAlgorithm::Ps256, false).await;
        let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["sub"] = serde_json::json!("someone-else");
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        let forged = parts.join(".");
        assert!(
            jsonwebtoken::decode::<Claims>(&forged, &decoding_key(), &validation(Algorithm::PS256))
                .is_err()
        );
    }
}
