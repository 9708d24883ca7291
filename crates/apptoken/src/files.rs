//! Reading secret files safely, and public files (CA bundles) boundedly.

use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{
    ConfigError, ConfigErrorKind, CredentialError, CredentialErrorKind, FileProblem, Result,
};

/// Largest secret file read (a PFX with a long chain is a few KiB).
const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// Reads a file that holds a secret (client secret, private key, PFX,
/// password). Refuses files that other users can read, files over 1 MiB and
/// empty files. The message never contains the file's content.
pub(crate) fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let meta = secret_file_metadata(path, what)?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(secret_file(
            FileProblem::TooLarge,
            path,
            format!(
                "the {what} file '{}' is {} bytes; that is too large for a {what}",
                path.display(),
                meta.len()
            ),
        )
        .into());
    }
    let bytes = std::fs::read(path).map_err(|e| {
        secret_file(
            FileProblem::Unreadable,
            path,
            format!("cannot read the {what} file '{}'", path.display()),
        )
        .with_source(e)
    })?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(secret_file(
            FileProblem::Empty,
            path,
            format!("the {what} file '{}' is empty", path.display()),
        )
        .into());
    }
    Ok(Zeroizing::new(bytes))
}

/// Checks a file that holds a secret without reading it: it is a regular
/// file that other users cannot read (on Unix, no group or world read bit).
/// `what` names the secret in the message ("Redis password"), which says
/// which file, what is wrong and the `chmod` that fixes it.
pub(crate) fn check_secret_file(path: &Path, what: &str) -> Result<()> {
    secret_file_metadata(path, what).map(drop)
}

fn secret_file_metadata(path: &Path, what: &str) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| {
        secret_file(
            FileProblem::Unreadable,
            path,
            format!("cannot read the {what} file '{}'", path.display()),
        )
        .with_source(e)
    })?;
    if !meta.is_file() {
        return Err(secret_file(
            FileProblem::NotAFile,
            path,
            format!("the {what} file '{}' is not a regular file", path.display()),
        )
        .into());
    }
    check_permissions(path, &meta, what)?;
    Ok(meta)
}

/// Largest CA bundle read (Debian's whole bundle is about 220 KiB).
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// Reads a file of trusted CA certificates (PEM), as a configuration names
/// it: a regular file of at most 4 MiB that holds at least one
/// `-----BEGIN CERTIFICATE-----` block. A device (`/dev/zero`), a FIFO or
/// a directory is refused with a clear error, never read without end; so
/// is a file without a certificate (a key, an empty file, DER), naming the
/// file. The certificates themselves are decoded by the TLS stack that
/// takes them.
///
/// ```
/// let e = apptoken::read_ca_file(std::path::Path::new("/dev/zero")).unwrap_err();
/// assert!(e.to_string().contains("not a regular file"));
/// ```
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let ca_file = |problem, message: String| {
        ConfigError::new(ConfigErrorKind::File(problem), message).with_path(path)
    };
    let cannot = |e: std::io::Error| {
        ca_file(
            FileProblem::Unreadable,
            format!("cannot read the CA file '{}'", path.display()),
        )
        .with_source(e)
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(ca_file(
            FileProblem::NotAFile,
            format!("the CA file '{}' is not a regular file", path.display()),
        )
        .into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CA_FILE {
        return Err(ca_file(
            FileProblem::TooLarge,
            format!(
                "the CA file '{}' is larger than 4 MiB; that is not a CA bundle",
                path.display()
            ),
        )
        .into());
    }
    check_ca_pem(&bytes, &format!("the CA file '{}'", path.display()))
        .map_err(|e| e.with_path(path))?;
    Ok(bytes)
}

/// Checks CA certificates given as PEM text (a CA file's contents):
/// at least one whole `-----BEGIN CERTIFICATE-----` block. `what` names
/// them in the message ("the CA file '/etc/ca.pem'").
pub(crate) fn check_ca_pem(pem: &[u8], what: &str) -> Result<(), ConfigError> {
    if crate::internal::pem::has_certificate(pem) {
        Ok(())
    } else {
        Err(ConfigError::new(
            ConfigErrorKind::File(FileProblem::NoContent),
            format!(
                "{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the PEM file \
                 of the CA that issued the server's certificate"
            ),
        ))
    }
}

/// A secret file's detail.
fn secret_file(problem: FileProblem, path: &Path, message: String) -> CredentialError {
    CredentialError::new(CredentialErrorKind::File(problem), message).with_path(path)
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        return Err(secret_file(
            FileProblem::OpenToOthers,
            path,
            format!(
                "the {what} file '{}' can be read by other users (mode {mode:04o}); restrict it with \
                 'chmod 600 {}' (Kubernetes secret volumes: defaultMode 0400; systemd: LoadCredential=)",
                path.display(),
                path.display()
            ),
        )
        .into());
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &std::fs::Metadata, _what: &str) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[cfg(unix)]
    #[test]
    fn refuses_files_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "s3cr3t-value").unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret_file(f.path(), "client secret")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            &read_secret_file(f.path(), "client secret").unwrap()[..],
            b"s3cr3t-value"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_is_checked_without_being_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("redis.password");
        std::fs::write(&f, "s3cr3t-value").unwrap();
        // Refused: any group or world read bit. Kept: the owner's bits,
        // write and execute bits for others (they do not disclose it).
        for (mode, refused) in [
            (0o600, false),
            (0o400, false),
            (0o700, false),
            (0o620, false),
            (0o602, false),
            (0o640, true),
            (0o604, true),
            (0o644, true),
            (0o444, true),
        ] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let got = check_secret_file(&f, "Redis password");
            assert_eq!(got.is_err(), refused, "mode {mode:04o}: {got:?}");
            if let Err(e) = got {
                let e = e.to_string();
                assert!(
                    e.contains("Redis password")
                        && e.contains(&f.display().to_string())
                        && e.contains(&format!("{mode:04o}"))
                        && e.contains("chmod 600"),
                    "{e}"
                );
                assert!(!e.contains("s3cr3t"), "{e}");
            }
        }
        let e = check_secret_file(dir.path(), "Redis password").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = check_secret_file(&dir.path().join("nothing"), "Redis password").unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot read the Redis password file"),
            "{e}"
        );
    }

    #[test]
    fn a_ca_file_needs_a_certificate() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let ca = fixtures.join("ca.cert.pem");
        assert_eq!(read_ca_file(&ca).unwrap(), std::fs::read(&ca).unwrap());
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("empty.pem", &b""[..]),
            ("hello.pem", b"hello"),
            ("der.crt", b"\x30\x82\x01\x0a\x02\x82\x01\x01"),
            ("unterminated.pem", b"-----BEGIN CERTIFICATE-----\nQQ==\n"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            let e = read_ca_file(&p).unwrap_err().to_string();
            assert!(
                e.contains(&format!("the CA file '{}'", p.display()))
                    && e.contains("holds no PEM certificate"),
                "{name}: {e}"
            );
        }
        // A private key is no CA, and its content never reaches the message.
        let e = read_ca_file(&fixtures.join("leaf.pkcs8.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(!e.contains("MII"), "{e}");
        let e = read_ca_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn refuses_missing_and_empty_files() {
        let e = read_secret_file(Path::new("/nonexistent/secret"), "client secret").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/secret"), "{e}");
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = read_secret_file(f.path(), "client secret").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
