//! HTTPS: a local CA (reused from the state directory when valid) and a
//! server certificate for loopback and Entra's host names, served with
//! rustls (aws-lc-rs provider). Certificates come from rcgen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData as _,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use x509_cert::der::{Decode as _, Encode as _};

use crate::Error;
use crate::embedded::{write_private, write_public};

/// The CA certificate file in the state directory.
pub(crate) const CA_FILE: &str = "ca.pem";
/// Its private key (mode 0600).
pub(crate) const CA_KEY_FILE: &str = "ca-key.pem";

/// Names the server certificate is valid for.
pub(crate) const SERVER_NAMES: [&str; 9] = [
    "127.0.0.1",
    "::1",
    "localhost",
    "login.microsoftonline.com",
    "login.microsoft.com",
    "*.login.microsoft.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.windows.net",
];

/// A CA is reused only when it stays valid at least this long.
const CA_MIN_REMAINING: time::Duration = time::Duration::days(30);

/// What `start` needs to serve HTTPS.
pub(crate) struct TlsSetup {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) ca_pem: String,
    pub(crate) ca_path: Option<PathBuf>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

fn crypto_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Crypto(format!("{what}: {e}"))
}

/// The CA's parameters; also rebuilds the issuer of a reused CA (same
/// subject and key usages; the key identifier derives from the key).
fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, Error> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(crypto_err("CA parameters"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "apptoken emulator local CA");
    dn.push(DnType::OrganizationName, "apptoken");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(825);
    Ok(params)
}

/// The CA in `dir`, when both files parse, belong together and stay valid.
fn reusable_ca(dir: &Path, now: OffsetDateTime) -> Option<(String, KeyPair)> {
    let pem = std::fs::read_to_string(dir.join(CA_FILE)).ok()?;
    let key_pem = std::fs::read_to_string(dir.join(CA_KEY_FILE)).ok()?;
    let key = KeyPair::from_pem(&key_pem).ok()?;
    let der = crate::crypto::pem_blocks(&pem, "CERTIFICATE")
        .into_iter()
        .next()?;
    let cert = x509_cert::Certificate::from_der(&der).ok()?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()?;
    if spki != key.subject_public_key_info() {
        return None;
    }
    let parsed = crate::crypto::ParsedCert::from_der(&der).ok()?;
    (parsed.not_before <= now && parsed.not_after > now + CA_MIN_REMAINING).then_some((pem, key))
}

/// Loads or creates the CA, issues a fresh server certificate, and builds the
/// rustls acceptor.
pub(crate) fn setup(state_dir: Option<&Path>, now: OffsetDateTime) -> Result<TlsSetup, Error> {
    let reused = state_dir.and_then(|d| reusable_ca(d, now));
    let (ca_pem, ca_key) = match reused {
        Some(found) => found,
        None => {
            let key = KeyPair::generate().map_err(crypto_err("CA key"))?;
            let cert = ca_params(now)?
                .self_signed(&key)
                .map_err(crypto_err("CA certificate"))?;
            let pem = cert.pem();
            if let Some(dir) = state_dir {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
                write_private(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes())?;
                write_public(&dir.join(CA_FILE), pem.as_bytes())?;
            }
            (pem, key)
        }
    };
    let issuer = rcgen::Issuer::new(ca_params(now)?, ca_key);

    let server_key = KeyPair::generate().map_err(crypto_err("server key"))?;
    let mut params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|s| (*s).to_string())
            .collect::<Vec<_>>(),
    )
    .map_err(crypto_err("server certificate names"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "apptoken emulator");
    params.distinguished_name = dn;
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(90);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(crypto_err("server certificate"))?;

    let ca_der = crate::crypto::pem_blocks(&ca_pem, "CERTIFICATE")
        .into_iter()
        .next()
        .ok_or_else(|| Error::Crypto("CA certificate PEM is empty".into()))?;
    let chain = vec![
        CertificateDer::from(server_cert.der().to_vec()),
        CertificateDer::from(ca_der),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Crypto(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Crypto(format!("TLS server certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSetup {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_pem,
        ca_path: state_dir.map(|d| d.join(CA_FILE)),
    })
}
