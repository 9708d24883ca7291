//! Certificates and the keys that sign client assertions.
//!
//! Why over 500 lines: about 410 are code (loading PEM/PKCS#8/PFX, the
//! thumbprints and the signer share the parsed certificate), the rest
//! its unit tests.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use time::OffsetDateTime;
use x509_cert::der::{Decode, Encode};
use zeroize::Zeroizing;

use crate::error::{CredentialError, CredentialErrorKind as Kind, Error, Result, credential};

/// The JWS algorithm of a client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// RSASSA-PSS with SHA-256: what MSAL sends to Entra ID today, with an
    /// `x5t#S256` header. The default for Entra authorities.
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, with a SHA-1 `x5t` header: for AD FS,
    /// and for identity providers that do not take PS256.
    Rs256,
}

impl SigningAlgorithm {
    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Ps256 => "PS256",
            SigningAlgorithm::Rs256 => "RS256",
        }
    }

    /// `PS256` / `RS256` (case-insensitive), or what is wrong with `s`.
    fn from_name(s: &str) -> std::result::Result<SigningAlgorithm, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PS256" => Ok(SigningAlgorithm::Ps256),
            "RS256" => Ok(SigningAlgorithm::Rs256),
            other => Err(format!(
                "assertion signing algorithm '{other}' is not supported; use PS256 or RS256"
            )),
        }
    }
}

crate::setting::named_setting!(
    SigningAlgorithm,
    "assertion_algorithm",
    "`PS256` or `RS256`, case-insensitive"
);

/// The future returned by [`AssertionSigner::sign`].
pub type SignFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>>> + Send + 'a>>;

/// Signs client assertions with a private key.
///
/// The key may live in this process (PEM or PFX files, see [`Certificate`]) or
/// elsewhere: implement this trait over an HSM or a key vault's sign operation
/// and give it to [`Certificate::from_signer`].
pub trait AssertionSigner: Send + Sync + fmt::Debug {
    /// Signs `message` (the JWS signing input) and returns the raw signature.
    fn sign<'a>(&'a self, algorithm: SigningAlgorithm, message: &'a [u8]) -> SignFuture<'a>;
}

/// An RSA private key held in memory (aws-lc-rs).
struct RsaSigner {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaSigner(RSA-{}, [redacted])",
            self.key.public_modulus_len() * 8
        )
    }
}

impl AssertionSigner for RsaSigner {
    fn sign<'a>(&'a self, algorithm: SigningAlgorithm, message: &'a [u8]) -> SignFuture<'a> {
        Box::pin(async move {
            let padding: &'static dyn sig::RsaEncoding = match algorithm {
                SigningAlgorithm::Ps256 => &sig::RSA_PSS_SHA256,
                SigningAlgorithm::Rs256 => &sig::RSA_PKCS1_SHA256,
            };
            let mut out = vec![0u8; self.key.public_modulus_len()];
            self.key
                .sign(padding, &self.rng, message, &mut out)
                .map_err(|_| {
                    credential(
                        Kind::Signing,
                        "the RSA key could not sign the client assertion",
                    )
                })?;
            Ok(out)
        })
    }
}

/// A certificate credential: the certificate (and its chain) registered on
/// the app, and the private key that signs client assertions.
#[derive(Clone)]
pub struct Certificate {
    chain: Arc<[Vec<u8>]>,
    sha1: [u8; 20],
    sha256: [u8; 32],
    subject: String,
    issuer: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    signer: Arc<dyn AssertionSigner>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("thumbprint_sha1", &self.thumbprint_sha1_hex())
            .field("not_after", &self.not_after)
            .field("chain_len", &self.chain.len())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Certificate {
    /// Loads a certificate from a file: PEM (certificate and private key in
    /// one file, key as PKCS#8, PKCS#1 or encrypted PKCS#8) or PKCS#12
    /// (`.pfx`/`.p12`). `password` decrypts an encrypted key or the PFX.
    ///
    /// The file must not be readable by other users.
    pub fn from_file(path: impl AsRef<Path>, password: Option<&str>) -> Result<Certificate> {
        let path = path.as_ref();
        let bytes = crate::files::read_secret_file(path, "certificate")?;
        let result = if crate::internal::pem::looks_like_pem(&bytes) {
            Certificate::from_pem(&bytes, password)
        } else {
            Certificate::from_pkcs12(&bytes, password.unwrap_or(""))
        };
        result.map_err(|e| match e {
            Error::Credential(m) => Error::Credential(m.prefixed(path.display()).with_path(path)),
            other => other,
        })
    }

    /// Parses PEM text holding the certificate (leaf first or in any order,
    /// with its chain) and the RSA private key.
    pub fn from_pem(pem: &[u8], password: Option<&str>) -> Result<Certificate> {
        let mut certs = Vec::new();
        let mut key: Option<Zeroizing<Vec<u8>>> = None;
        let mut key_is_pkcs1 = false;
        for block in crate::internal::pem::pem_blocks(pem)? {
            let (label, der) = block.into_parts();
            match label.as_str() {
                "CERTIFICATE" => certs.push(der.to_vec()),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" if key.is_some() => {
                    return Err(credential(
                        Kind::Malformed,
                        "the PEM holds more than one private key",
                    ));
                }
                "PRIVATE KEY" => key = Some(der),
                "RSA PRIVATE KEY" => {
                    key = Some(der);
                    key_is_pkcs1 = true;
                }
                "ENCRYPTED PRIVATE KEY" => {
                    let Some(pw) = password else {
                        return Err(credential(
                            Kind::PasswordRequired,
                            "the private key is encrypted; give its password (AZURE_CLIENT_CERTIFICATE_PASSWORD)",
                        ));
                    };
                    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der).map_err(|e| {
                        CredentialError::new(
                            Kind::Malformed,
                            "the encrypted private key does not parse",
                        )
                        .with_source(e)
                    })?;
                    let doc = info.decrypt(pw.as_bytes()).map_err(|_| {
                        credential(
                            Kind::WrongPassword,
                            "the encrypted private key could not be decrypted: wrong password or unsupported encryption",
                        )
                    })?;
                    key = Some(Zeroizing::new(doc.as_bytes().to_vec()));
                }
                "EC PRIVATE KEY" => {
                    return Err(credential(
                        Kind::UnsupportedKey,
                        "the key is an EC key; Entra ID takes RSA keys for client assertions",
                    ));
                }
                _ => {}
            }
        }
        let key = key.ok_or_else(|| {
            credential(
                Kind::Incomplete,
                "no private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or ENCRYPTED PRIVATE KEY block)",
            )
        })?;
        let key_pair = if key_is_pkcs1 {
            RsaKeyPair::from_der(&key)
        } else {
            RsaKeyPair::from_pkcs8(&key)
        }
        .map_err(|e| {
            CredentialError::new(
                Kind::UnsupportedKey,
                "the private key is not a usable RSA key",
            )
            .with_source(e)
        })?;
        Certificate::from_rsa_key(certs, key_pair)
    }

    /// Parses separate certificate PEM and key PEM.
    pub fn from_pem_parts(
        cert_pem: &[u8],
        key_pem: &[u8],
        password: Option<&str>,
    ) -> Result<Certificate> {
        let mut joined = Zeroizing::new(cert_pem.to_vec());
        joined.push(b'\n');
        joined.extend_from_slice(key_pem);
        Certificate::from_pem(&joined, password)
    }

    /// Parses a PKCS#12 (`.pfx`) archive.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Certificate> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| {
            let msg = e.to_string();
            if msg.to_ascii_lowercase().contains("mac") {
                credential(
                    Kind::WrongPassword,
                    "the PFX could not be opened: wrong password",
                )
            } else {
                CredentialError::new(
                    Kind::Malformed,
                    "the file is neither PEM nor a PFX that opens with this password",
                )
                .with_source(e)
                .into()
            }
        })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            credential(
                Kind::Incomplete,
                "the PFX holds no private key with a certificate",
            )
        })?;
        let key_pair = RsaKeyPair::from_pkcs8(chain.key().as_der()).map_err(|e| {
            CredentialError::new(
                Kind::UnsupportedKey,
                "the PFX's private key is not a usable RSA key",
            )
            .with_source(e)
        })?;
        let mut certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
        // Certificates stored beside the key chain (some tools put the CA chain there).
        for (_, entry) in store.entries() {
            if let p12_keystore::KeyStoreEntry::Certificate(c) = entry
                && !certs.iter().any(|d| d.as_slice() == c.as_der())
            {
                certs.push(c.as_der().to_vec());
            }
        }
        Certificate::from_rsa_key(certs, key_pair)
    }

    /// A certificate whose key is held elsewhere. `chain` is DER, leaf first.
    pub fn from_signer(
        chain: Vec<Vec<u8>>,
        signer: Arc<dyn AssertionSigner>,
    ) -> Result<Certificate> {
        if chain.is_empty() {
            return Err(credential(Kind::Incomplete, "no certificate given"));
        }
        Certificate::build(chain, signer)
    }

    fn from_rsa_key(certs: Vec<Vec<u8>>, key: RsaKeyPair) -> Result<Certificate> {
        if certs.is_empty() {
            return Err(credential(
                Kind::Incomplete,
                "no certificate found beside the private key",
            ));
        }
        let public = key.public_key().as_ref().to_vec();
        // The leaf is the certificate whose public key is the private key's.
        let mut leaf = None;
        for (i, der) in certs.iter().enumerate() {
            let cert = x509_cert::Certificate::from_der(der).map_err(|e| {
                CredentialError::new(Kind::Malformed, "a certificate does not parse").with_source(e)
            })?;
            let spki = cert.tbs_certificate().subject_public_key_info();
            if spki.subject_public_key.raw_bytes() == public.as_slice() {
                leaf = Some(i);
                break;
            }
        }
        let Some(leaf) = leaf else {
            return Err(credential(
                Kind::KeyMismatch,
                "the private key does not match the certificate (no certificate in the file has this key's public key)",
            ));
        };
        let mut chain = certs;
        let leaf_der = chain.remove(leaf);
        chain.insert(0, leaf_der);
        Certificate::build(
            chain,
            Arc::new(RsaSigner {
                key,
                rng: SystemRandom::new(),
            }),
        )
    }

    fn build(chain: Vec<Vec<u8>>, signer: Arc<dyn AssertionSigner>) -> Result<Certificate> {
        let cert = x509_cert::Certificate::from_der(&chain[0]).map_err(|e| {
            CredentialError::new(Kind::Malformed, "the certificate does not parse").with_source(e)
        })?;
        // Re-encode check: a certificate with trailing bytes is refused by from_der already.
        let _ = cert.to_der();
        let tbs = cert.tbs_certificate();
        let to_time = |t: x509_cert::time::Time| {
            OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64).map_err(
                |_| {
                    credential(
                        Kind::Malformed,
                        "the certificate's validity dates are out of range",
                    )
                },
            )
        };
        let not_before = to_time(tbs.validity().not_before)?;
        let not_after = to_time(tbs.validity().not_after)?;
        let mut sha1 = [0u8; 20];
        sha1.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &chain[0]).as_ref());
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest::digest(&digest::SHA256, &chain[0]).as_ref());
        Ok(Certificate {
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            not_before,
            not_after,
            sha1,
            sha256,
            chain: chain.into(),
            signer,
        })
    }

    /// SHA-1 thumbprint of the DER certificate, upper-case hex (what the
    /// Azure portal shows).
    pub fn thumbprint_sha1_hex(&self) -> String {
        hex_upper(&self.sha1)
    }

    /// SHA-256 thumbprint of the DER certificate, upper-case hex.
    pub fn thumbprint_sha256_hex(&self) -> String {
        hex_upper(&self.sha256)
    }

    pub(crate) fn sha1(&self) -> &[u8; 20] {
        &self.sha1
    }

    pub(crate) fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The chain, DER, leaf first.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The leaf's subject (RFC 4514).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The leaf's issuer (RFC 4514).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub(crate) fn signer(&self) -> &Arc<dyn AssertionSigner> {
        &self.signer
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Certificate::from_pem(b"", None).is_err());
        assert!(
            Certificate::from_pem(
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
                None
            )
            .is_err()
        );
        assert!(Certificate::from_pkcs12(b"\x30\x03\x02\x01\x03", "x").is_err());
        assert!(Certificate::from_pkcs12(&[0xff; 64], "x").is_err());
        assert!(Certificate::from_signer(vec![], Arc::new(NoSigner)).is_err());
        assert!(Certificate::from_signer(vec![vec![1, 2, 3]], Arc::new(NoSigner)).is_err());
    }

    #[derive(Debug)]
    struct NoSigner;
    impl AssertionSigner for NoSigner {
        fn sign<'a>(&'a self, _: SigningAlgorithm, _: &'a [u8]) -> SignFuture<'a> {
            Box::pin(async { Err(credential(Kind::Signing, "no")) })
        }
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    const PW: &str = "fixture-password";

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}{name}")).unwrap()
    }

    fn leaf() -> Certificate {
        Certificate::from_pem_parts(&read("leaf.cert.pem"), &read("leaf.pkcs8.pem"), None).unwrap()
    }

    #[test]
    fn every_format_gives_the_same_certificate() {
        let want = leaf().thumbprint_sha256_hex();
        let all = [
            Certificate::from_pem(&read("leaf.combined.pem"), None).unwrap(),
            Certificate::from_pem(&read("leaf.chain.pem"), None).unwrap(),
            Certificate::from_pem_parts(&read("leaf.cert.pem"), &read("leaf.pkcs1.pem"), None)
                .unwrap(),
            Certificate::from_pem_parts(
                &read("leaf.cert.pem"),
                &read("leaf.encrypted.pem"),
                Some(PW),
            )
            .unwrap(),
            Certificate::from_pkcs12(&read("leaf.pfx"), PW).unwrap(),
            Certificate::from_pkcs12(&read("leaf.legacy.pfx"), PW).unwrap(),
        ];
        for c in &all {
            assert_eq!(c.thumbprint_sha256_hex(), want);
            assert_eq!(c.subject(), "CN=apptoken-test-daemon");
            assert!(c.not_after() > c.not_before());
        }
        // the chain file and the PFX carry the CA too, leaf first
        assert_eq!(all[1].chain_der().len(), 2);
        assert_eq!(all[4].chain_der().len(), 2);
        assert_eq!(all[4].chain_der()[0], all[0].chain_der()[0]);
        assert_eq!(leaf().thumbprint_sha1_hex().len(), 40);
    }

    #[test]
    fn wrong_passwords_and_wrong_keys_are_clear_errors() {
        let e = Certificate::from_pkcs12(&read("leaf.pfx"), "nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("password"), "{e}");
        let e = Certificate::from_pem_parts(
            &read("leaf.cert.pem"),
            &read("leaf.encrypted.pem"),
            Some("nope"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("password"), "{e}");
        let e =
            Certificate::from_pem_parts(&read("leaf.cert.pem"), &read("leaf.encrypted.pem"), None)
                .unwrap_err()
                .to_string();
        assert!(e.contains("encrypted"), "{e}");
        let e = Certificate::from_pem_parts(&read("ca.cert.pem"), &read("leaf.pkcs8.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
        let e = Certificate::from_pem(&read("leaf.cert.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no private key"), "{e}");
        let e = Certificate::from_pem(&read("leaf.pkcs8.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no certificate"), "{e}");
        let e = Certificate::from_pem(&read("ec.combined.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EC key"), "{e}");
        let e = Certificate::from_pkcs12(b"not a pfx", PW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither PEM nor a PFX"), "{e}");
    }

    #[test]
    fn from_file_sniffs_the_format_and_checks_permissions() {
        let dir = tempfile::tempdir().unwrap();
        for (name, pw) in [("leaf.combined.pem", None), ("leaf.pfx", Some(PW))] {
            let p = dir.path().join(name);
            std::fs::write(&p, read(name)).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
                assert!(Certificate::from_file(&p, pw).is_ok(), "{name}");
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
                let e = Certificate::from_file(&p, pw).unwrap_err().to_string();
                assert!(e.contains("other users"), "{e}");
            }
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let shown = format!("{:?}", leaf());
        assert!(
            shown.contains("[redacted]") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
