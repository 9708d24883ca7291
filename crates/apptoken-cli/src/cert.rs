//! `apptoken cert new` and `apptoken cert show`: client certificates for
//! app registrations.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use apptoken::{AssertionSigner, Certificate, SignFuture, SigningAlgorithm};
use aws_lc_rs::digest;
use base64::Engine;

use crate::Failure;
use crate::cli::{CertNewArgs, CertShowArgs};
use crate::exit;

fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file '{}'", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create '{}' (it exists? use --force to replace it)",
            path.display()
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn to_pem(label: &str, der: &[u8]) -> anyhow::Result<String> {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .map_err(|e| anyhow::anyhow!("encoding PEM: {e}"))
}

fn distinguished_name(subject: &str) -> Result<rcgen::DistinguishedName, Failure> {
    let mut dn = rcgen::DistinguishedName::new();
    let mut any = false;
    for part in subject.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(Failure::config(format!(
                "--subject: '{part}' is not NAME=value (e.g. CN=my-daemon)"
            )));
        };
        let v = v.trim();
        let kind = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => rcgen::DnType::CommonName,
            "O" => rcgen::DnType::OrganizationName,
            "OU" => rcgen::DnType::OrganizationalUnitName,
            "C" => rcgen::DnType::CountryName,
            "ST" => rcgen::DnType::StateOrProvinceName,
            "L" => rcgen::DnType::LocalityName,
            other => {
                return Err(Failure::config(format!(
                    "--subject: unknown attribute '{other}'; use CN, O, OU, C, ST or L"
                )));
            }
        };
        if v.is_empty() {
            return Err(Failure::config(format!("--subject: {k} is empty")));
        }
        dn.push(kind, v);
        any = true;
    }
    if !any {
        return Err(Failure::config(
            "--subject is empty; give e.g. \"CN=my-daemon\"",
        ));
    }
    Ok(dn)
}

pub(crate) fn new(args: CertNewArgs) -> Result<(), Failure> {
    let dn = distinguished_name(&args.subject)?;
    let size = match args.key_size {
        3072 => rcgen::RsaKeySize::_3072,
        4096 => rcgen::RsaKeySize::_4096,
        _ => rcgen::RsaKeySize::_2048,
    };
    let password = match &args.pfx_password_file {
        Some(p) => Some(read_password(p).map_err(|e| Failure {
            code: exit::CONFIG,
            error: e,
        })?),
        None => None,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create '{}'", args.out.display()))?;
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        .map_err(|e| anyhow::anyhow!("generating an RSA key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| anyhow::anyhow!("certificate parameters: {e}"))?;
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(args.days));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .self_signed(&key)
        .map_err(|e| anyhow::anyhow!("self-signing the certificate: {e}"))?;
    let cert_der = cert.der().to_vec();
    let key_der = key.serialize_der();
    let cert_pem = to_pem("CERTIFICATE", &cert_der)?;
    let key_pem = zeroize_string(to_pem("PRIVATE KEY", &key_der)?);

    let (password, generated) = match password {
        Some(p) => (p, false),
        None => {
            let mut raw = [0u8; 18];
            aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("no randomness"))?;
            (
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
                true,
            )
        }
    };
    let mut store = p12_keystore::KeyStore::new();
    let p12_key = p12_keystore::PrivateKey::from_der(&key_der)
        .map_err(|e| anyhow::anyhow!("encoding the PFX key: {e}"))?;
    let p12_cert = p12_keystore::Certificate::from_der(&cert_der)
        .map_err(|e| anyhow::anyhow!("encoding the PFX certificate: {e}"))?;
    let local_key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der)
        .as_ref()
        .to_vec();
    store.add_entry(
        "apptoken",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            local_key_id,
            p12_key,
            [p12_cert],
        )),
    );
    let pfx = store
        .writer(&password)
        .write()
        .map_err(|e| anyhow::anyhow!("writing the PFX: {e}"))?;

    let out = &args.out;
    write_file(
        &out.join("cert.pem"),
        cert_pem.as_bytes(),
        0o644,
        args.force,
    )?;
    write_file(&out.join("key.pem"), key_pem.as_bytes(), 0o600, args.force)?;
    let both = zeroize_string(format!("{cert_pem}{}", key_pem.as_str()));
    write_file(
        &out.join("cert-and-key.pem"),
        both.as_bytes(),
        0o600,
        args.force,
    )?;
    write_file(&out.join("cert.pfx"), &pfx, 0o600, args.force)?;
    if generated {
        write_file(
            &out.join("cert.pfx.password"),
            format!("{password}\n").as_bytes(),
            0o600,
            args.force,
        )?;
    }
    let loaded = Certificate::from_pem(both.as_bytes(), None)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&cert_der);
    println!("subject          {}", loaded.subject());
    println!("not after        {}", rfc3339(loaded.not_after()));
    println!("SHA-1 thumbprint {}", loaded.thumbprint_sha1_hex());
    println!("SHA-256          {}", loaded.thumbprint_sha256_hex());
    println!(
        "files            {}/cert.pem (upload this), key.pem (0600), cert-and-key.pem (0600, for certificate_path), cert.pfx (0600){}",
        out.display(),
        if generated {
            ", cert.pfx.password (0600)"
        } else {
            ""
        }
    );
    println!();
    println!(
        "keyCredentials entry for the app registration (Microsoft Graph or the app manifest):"
    );
    let entry = serde_json::json!({
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "displayName": loaded.subject(),
        "key": b64,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&entry).context("printing")?
    );
    Ok(())
}

/// A string wiped when dropped (it holds a private key).
fn zeroize_string(s: String) -> secrecy::SecretString {
    secrecy::SecretString::from(s)
}

trait AsStr {
    fn as_str(&self) -> &str;
    fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl AsStr for secrecy::SecretString {
    fn as_str(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(self)
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[derive(Debug)]
struct NoKey;

impl AssertionSigner for NoKey {
    fn sign<'a>(&'a self, _: SigningAlgorithm, _: &'a [u8]) -> SignFuture<'a> {
        Box::pin(async {
            Err(apptoken::CredentialError::new(
                apptoken::CredentialErrorKind::Signing,
                "no private key",
            )
            .into())
        })
    }
}

pub(crate) fn show(args: CertShowArgs) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read '{}'", args.file.display()))
        .map_err(|e| Failure {
            code: exit::CONFIG,
            error: e,
        })?;
    let password = match &args.password_file {
        Some(p) => Some(read_password(p).map_err(|e| Failure {
            code: exit::CONFIG,
            error: e,
        })?),
        None => None,
    };
    let (cert, key_status) = if apptoken::internal::looks_like_pem(&bytes) {
        let blocks = apptoken::internal::pem_blocks(&bytes)
            .with_context(|| format!("'{}' is not valid PEM", args.file.display()))?;
        let has_key = blocks.iter().any(|b| b.is_private_key());
        let certs: Vec<Vec<u8>> = blocks
            .iter()
            .filter(|b| b.label() == "CERTIFICATE")
            .map(|b| b.der().to_vec())
            .collect();
        if certs.is_empty() {
            return Err(Failure::config(format!(
                "'{}' holds no certificate",
                args.file.display()
            )));
        }
        let info = Certificate::from_signer(certs, Arc::new(NoKey))?;
        let key_bytes = match &args.key {
            Some(k) => {
                Some(std::fs::read(k).with_context(|| format!("cannot read '{}'", k.display()))?)
            }
            None if has_key => Some(Vec::new()),
            None => None,
        };
        let status = match key_bytes {
            None => None,
            Some(k) => {
                let mut both = bytes.clone();
                both.push(b'\n');
                both.extend_from_slice(&k);
                Some(Certificate::from_pem(&both, password.as_deref()).map(|_| ()))
            }
        };
        (info, status)
    } else {
        let c = Certificate::from_pkcs12(&bytes, password.as_deref().unwrap_or(""))?;
        (c, Some(Ok(())))
    };
    let now = time::OffsetDateTime::now_utc();
    let left = (cert.not_after() - now).whole_days();
    println!("subject          {}", cert.subject());
    println!("issuer           {}", cert.issuer());
    println!("not before       {}", rfc3339(cert.not_before()));
    println!(
        "not after        {} ({})",
        rfc3339(cert.not_after()),
        if cert.not_after() < now {
            "EXPIRED".to_string()
        } else {
            format!("{left} days left")
        }
    );
    println!("SHA-1 thumbprint {}", cert.thumbprint_sha1_hex());
    println!("SHA-256          {}", cert.thumbprint_sha256_hex());
    match key_status {
        None => println!("private key      not given (--key KEY to check one)"),
        Some(Ok(())) => println!("private key      matches the certificate"),
        Some(Err(e)) => {
            println!("private key      DOES NOT MATCH or does not load: {e}");
            return Err(Failure::config(
                "the private key does not match the certificate",
            ));
        }
    }
    Ok(())
}
