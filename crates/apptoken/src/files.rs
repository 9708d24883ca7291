//! Reading secret files safely, and public files (CA bundles) boundedly.

use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest secret file read (a PFX with a long chain is a few KiB).
const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// Reads a file that holds a secret (client secret, private key, PFX,
/// password). Refuses files that other users can read, files over 1 MiB and
/// empty files. The message never contains the file's content.
pub(crate) fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let meta = secret_file_metadata(path, what)?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(Error::Credential(format!(
            "the {what} file '{}' is {} bytes; that is too large for a {what}",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Credential(format!(
            "cannot read the {what} file '{}': {e}",
            path.display()
        ))
    })?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::Credential(format!(
            "the {what} file '{}' is empty",
            path.display()
        )));
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
        Error::Credential(format!(
            "cannot read the {what} file '{}': {e}",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(Error::Credential(format!(
            "the {what} file '{}' is not a regular file",
            path.display()
        )));
    }
    check_permissions(path, &meta, what)?;
    Ok(meta)
}

/// Largest CA bundle read (Debian's whole bundle is about 220 KiB).
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// Reads a file of trusted CA certificates (PEM), as a configuration names
/// it: a regular file of at most 4 MiB. A device (`/dev/zero`), a FIFO or
/// a directory is refused with a clear error, never read without end.
///
/// ```
/// let e = apptoken::read_ca_file(std::path::Path::new("/dev/zero")).unwrap_err();
/// assert!(e.to_string().contains("not a regular file"));
/// ```
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot = |e: std::io::Error| {
        Error::Configuration(format!("cannot read the CA file '{}': {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(Error::Configuration(format!(
            "the CA file '{}' is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CA_FILE {
        return Err(Error::Configuration(format!(
            "the CA file '{}' is larger than 4 MiB; that is not a CA bundle",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        return Err(Error::Credential(format!(
            "the {what} file '{}' can be read by other users (mode {mode:04o}); restrict it with \
             'chmod 600 {}' (Kubernetes secret volumes: defaultMode 0400; systemd: LoadCredential=)",
            path.display(),
            path.display()
        )));
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
    fn refuses_missing_and_empty_files() {
        let e = read_secret_file(Path::new("/nonexistent/secret"), "client secret").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/secret"), "{e}");
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = read_secret_file(f.path(), "client secret").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
