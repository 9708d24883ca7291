//! Keys, certificates, digests and base64: thin wrappers over aws-lc-rs,
//! rcgen and x509-cert (no cryptography is implemented here).

use std::sync::{Arc, OnceLock};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD_INDIFFERENT, URL_SAFE_NO_PAD};
use time::OffsetDateTime;
use x509_cert::der::Decode as _;

use crate::Error;

/// OID of rsaEncryption in a SubjectPublicKeyInfo.
const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

/// base64url without padding (JOSE).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard base64 with padding (x5c).
pub(crate) fn b64std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64url or standard base64, padded or not (Entra's leniency).
pub(crate) fn b64_lenient(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    STANDARD_NO_PAD_INDIFFERENT.decode(normalized).ok()
}

/// SHA-1 digest (certificate thumbprints only).
pub(crate) fn sha1(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .to_vec()
}

/// SHA-256 digest.
pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

/// Cryptographically random bytes.
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    // SystemRandom only fails if the OS has no entropy source at all.
    if aws_lc_rs::rand::SystemRandom::new().fill(&mut out).is_err() {
        out = uuid::Uuid::new_v4().as_bytes().repeat(len / 16 + 1);
        out.truncate(len);
    }
    out
}

/// A deterministic GUID derived from the given parts (stable ids for service
/// principals and sample users).
pub(crate) fn derived_guid(parts: &[&str]) -> uuid::Uuid {
    let joined = parts.join("\u{1f}");
    let hash = sha256(joined.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The DER bodies of every PEM block with the given label.
pub(crate) fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else { break };
        let body: String = after[..stop].split_whitespace().collect();
        if let Ok(der) = STANDARD.decode(body) {
            out.push(der);
        }
        rest = &after[stop + end.len()..];
    }
    out
}

/// PEM-encodes DER with the given label, 64 columns.
pub(crate) fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The public key inside a registered certificate.
#[derive(Debug, Clone)]
pub(crate) enum CertKey {
    /// An RSA key.
    Rsa(RsaKey),
    /// Any other algorithm (named by OID); never verifies an assertion.
    Other(String),
}

/// An RSA public key (PKCS#1 RSAPublicKey DER), parsed for each algorithm
/// the first time an assertion needs it and kept: verifying a client
/// assertion then costs the signature check alone, not a key parse each time.
#[derive(Clone)]
pub(crate) struct RsaKey {
    pub(crate) der: Vec<u8>,
    parsed: Arc<[OnceLock<Option<signature::ParsedPublicKey>>; 2]>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey")
            .field("der_len", &self.der.len())
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    pub(crate) fn new(der: Vec<u8>) -> RsaKey {
        RsaKey {
            der,
            parsed: Arc::new([OnceLock::new(), OnceLock::new()]),
        }
    }

    /// Verifies an RSA signature (`None` from the parse: a key aws-lc
    /// refuses, which verifies nothing).
    pub(crate) fn verify(&self, alg: RsaAlg, message: &[u8], sig: &[u8]) -> bool {
        let (slot, params): (_, &'static dyn signature::VerificationAlgorithm) = match alg {
            RsaAlg::Rs256 => (&self.parsed[0], &signature::RSA_PKCS1_2048_8192_SHA256),
            RsaAlg::Ps256 => (&self.parsed[1], &signature::RSA_PSS_2048_8192_SHA256),
        };
        slot.get_or_init(|| signature::ParsedPublicKey::new(params, &self.der).ok())
            .as_ref()
            .is_some_and(|k| k.verify_sig(message, sig).is_ok())
    }
}

/// A parsed certificate with the facts the emulator needs.
#[derive(Debug, Clone)]
pub(crate) struct ParsedCert {
    pub(crate) der: Vec<u8>,
    pub(crate) sha1: Vec<u8>,
    pub(crate) sha256: Vec<u8>,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) key: CertKey,
}

impl ParsedCert {
    pub(crate) fn from_der(der: &[u8]) -> Result<ParsedCert, Error> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Error::Crypto(format!("not an X.509 certificate: {e}")))?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        let to_time = |t: &x509_cert::time::Time| {
            let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
            OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        };
        let spki = tbs.subject_public_key_info();
        let oid = spki.algorithm.oid.to_string();
        let key = if oid == RSA_ENCRYPTION_OID {
            CertKey::Rsa(RsaKey::new(spki.subject_public_key.raw_bytes().to_vec()))
        } else {
            CertKey::Other(oid)
        };
        Ok(ParsedCert {
            der: der.to_vec(),
            sha1: sha1(der),
            sha256: sha256(der),
            not_before: to_time(&validity.not_before),
            not_after: to_time(&validity.not_after),
            key,
        })
    }

    /// Parses the first certificate of a PEM text.
    pub(crate) fn from_pem(pem: &str) -> Result<ParsedCert, Error> {
        let der = pem_blocks(pem, "CERTIFICATE")
            .into_iter()
            .next()
            .ok_or_else(|| Error::Crypto("no PEM CERTIFICATE block found".into()))?;
        ParsedCert::from_der(&der)
    }

    pub(crate) fn sha1_hex(&self) -> String {
        hex::encode_upper(&self.sha1)
    }

    pub(crate) fn sha256_hex(&self) -> String {
        hex::encode_upper(&self.sha256)
    }
}

/// The RSA algorithms accepted in client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsaAlg {
    Rs256,
    Ps256,
}

/// Verifies an RSA signature with a PKCS#1 public key.
pub(crate) fn verify_rsa(alg: RsaAlg, public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    let params: &'static dyn signature::VerificationAlgorithm = match alg {
        RsaAlg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        RsaAlg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
    };
    signature::UnparsedPublicKey::new(params, public_key)
        .verify(message, sig)
        .is_ok()
}

/// A freshly generated RSA-2048 key with its self-signed certificate.
#[derive(Debug)]
pub(crate) struct GeneratedCert {
    pub(crate) pkcs8_der: Vec<u8>,
    pub(crate) cert_der: Vec<u8>,
}

impl GeneratedCert {
    /// Generates an RSA-2048 key (aws-lc-rs through rcgen) and a self-signed
    /// certificate for it, valid from `not_before` to `not_after`.
    pub(crate) fn generate(
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<GeneratedCert, Error> {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(|e| Error::Crypto(format!("generating an RSA key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Error::Crypto(e.to_string()))?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::Crypto(format!("self-signing a certificate: {e}")))?;
        Ok(GeneratedCert {
            pkcs8_der: key.serialize_der(),
            cert_der: cert.der().to_vec(),
        })
    }
}

/// The emulator's token signing key: RSA-2048, generated per start, with a
/// self-signed certificate so that JWKS carries `x5c` and `x5t` like Entra's.
#[derive(Debug)]
pub(crate) struct SigningKey {
    key: RsaKeyPair,
    pub(crate) cert_der: Vec<u8>,
    /// `kid` and `x5t`: base64url SHA-1 thumbprint of the certificate.
    pub(crate) kid: String,
    pub(crate) n: String,
    pub(crate) e: String,
    /// PKCS#1 public key, to verify our own tokens.
    public_der: Vec<u8>,
}

impl SigningKey {
    /// A new key whose certificate is valid from a day before `now` for a
    /// year. `now` comes from the emulator's clock (key rotation, issuer keys)
    /// and may be at the end of its range: the validity saturates (at year
    /// 9999, which X.509's `GeneralizedTime` can still express).
    pub(crate) fn generate(now: OffsetDateTime) -> Result<SigningKey, Error> {
        let generated = GeneratedCert::generate(
            "apptoken-emulator token signing",
            now.saturating_sub(time::Duration::days(1)),
            now.saturating_add(time::Duration::days(365)),
        )?;
        let key = RsaKeyPair::from_pkcs8(&generated.pkcs8_der)
            .map_err(|e| Error::Crypto(format!("loading the signing key: {e}")))?;
        let public = key.public_key();
        let n = b64url(public.modulus().big_endian_without_leading_zero());
        let e = b64url(public.exponent().big_endian_without_leading_zero());
        let public_der = public.as_ref().to_vec();
        let kid = b64url(&sha1(&generated.cert_der));
        Ok(SigningKey {
            key,
            cert_der: generated.cert_der,
            kid,
            n,
            e,
            public_der,
        })
    }

    /// Signs `header.claims` with RS256 and returns the compact JWT.
    pub(crate) fn sign_jwt(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, Error> {
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::Crypto("RSA signing failed".into()))?;
        Ok(format!("{signing_input}.{}", b64url(&sig)))
    }

    /// Verifies an RS256 signature made by this key.
    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        verify_rsa(RsaAlg::Rs256, &self.public_der, message, sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_key_verifies_both_algorithms_from_its_kept_parse() {
        let now = OffsetDateTime::now_utc();
        let g = GeneratedCert::generate("t", now, now + time::Duration::days(1)).unwrap();
        let CertKey::Rsa(key) = ParsedCert::from_der(&g.cert_der).unwrap().key else {
            panic!("an RSA certificate");
        };
        let pair = RsaKeyPair::from_pkcs8(&g.pkcs8_der).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sign = |enc: &'static dyn signature::RsaEncoding| {
            let mut sig = vec![0u8; pair.public_modulus_len()];
            pair.sign(enc, &rng, b"message", &mut sig).unwrap();
            sig
        };
        let (pkcs1, pss) = (
            sign(&signature::RSA_PKCS1_SHA256),
            sign(&signature::RSA_PSS_SHA256),
        );
        for _ in 0..2 {
            assert!(key.verify(RsaAlg::Rs256, b"message", &pkcs1));
            assert!(key.verify(RsaAlg::Ps256, b"message", &pss));
            assert!(!key.verify(RsaAlg::Rs256, b"message", &pss));
            assert!(!key.verify(RsaAlg::Ps256, b"massage", &pss));
        }
        // A clone shares the parse; a key aws-lc refuses verifies nothing.
        assert!(key.clone().verify(RsaAlg::Ps256, b"message", &pss));
        assert!(!RsaKey::new(b"not a key".to_vec()).verify(RsaAlg::Rs256, b"message", &pkcs1));
    }

    #[test]
    fn lenient_base64_accepts_all_four_forms() {
        let bytes = [0xfbu8, 0xff, 0xbe, 0x01];
        let std_pad = STANDARD.encode(bytes);
        let url = URL_SAFE_NO_PAD.encode(bytes);
        assert!(std_pad.contains('+') || std_pad.contains('/'));
        for form in [
            std_pad.clone(),
            std_pad.trim_end_matches('=').to_string(),
            url.clone(),
            format!("{url}=="),
        ] {
            assert_eq!(b64_lenient(&form).as_deref(), Some(&bytes[..]), "{form}");
        }
        assert_eq!(b64_lenient("not base64!"), None);
    }

    #[test]
    fn pem_roundtrip() {
        let der = vec![1u8, 2, 3, 4, 5];
        let pem = to_pem("CERTIFICATE", &der);
        assert_eq!(pem_blocks(&pem, "CERTIFICATE"), vec![der]);
        assert!(pem_blocks(&pem, "PRIVATE KEY").is_empty());
    }

    #[test]
    fn derived_guid_is_stable_and_distinct() {
        assert_eq!(derived_guid(&["a", "b"]), derived_guid(&["a", "b"]));
        assert_ne!(derived_guid(&["a", "b"]), derived_guid(&["ab"]));
    }
}
