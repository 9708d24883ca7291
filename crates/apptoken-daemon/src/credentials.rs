//! Credential rotation: the secret, certificate and password files are
//! checked every `credential_poll` (size, modification time and SHA-256);
//! when one changed, the client is rebuilt, and the new credential is used
//! from the next token request. A file that fails to load keeps the last
//! good client. The tenant list files (`tenants_file`) are watched the
//! same way.

use std::path::PathBuf;
use std::time::SystemTime;

use aws_lc_rs::digest;

/// What a file looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint(Vec<(PathBuf, Option<FileState>)>);

/// Size, modification time and SHA-256 of a file's content.
type FileState = (u64, Option<SystemTime>, Vec<u8>);

impl Fingerprint {
    pub(crate) fn of(files: &[PathBuf]) -> Fingerprint {
        Fingerprint(
            files
                .iter()
                .map(|p| {
                    let meta = std::fs::metadata(p).ok().filter(|m| m.is_file());
                    let content = meta.as_ref().and_then(|_| read_bounded(p));
                    let fp = match (meta, content) {
                        (Some(m), Some(c)) => Some((
                            m.len(),
                            m.modified().ok(),
                            digest::digest(&digest::SHA256, &c).as_ref().to_vec(),
                        )),
                        _ => None,
                    };
                    (p.clone(), fp)
                })
                .collect(),
        )
    }
}

/// The most of a file that is hashed: a larger file is still told apart by
/// its size and modification time.
const MAX_HASHED: u64 = 16 * 1024 * 1024;

fn read_bounded(p: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(p)
        .ok()?
        .take(MAX_HASHED)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}
