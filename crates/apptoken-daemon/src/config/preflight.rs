//! Everything the configuration check reads from the file system: the
//! identity's credential files and CA file, the directories of output,
//! status and store files, tenant lists, the Redis password, CA and key
//! files.
//!
//! The section checks reach these only through [`Preflight`], called at the
//! moment a value is checked (so problems keep the order of the fields);
//! [`FileSystem`] is the real one. Invariants: nothing here writes; a
//! device or FIFO is refused, never read without end (`read_ca_file`,
//! `tenant_list::load` and the library's file readers check for a regular
//! file); messages name the path.

use std::path::Path;

use apptoken::ClientConfig;

/// The file-system checks of a configuration.
pub(super) trait Preflight {
    /// A file the daemon writes (output, status, store): its directory
    /// exists and it is not itself a directory.
    fn file_place(&self, path: &Path) -> Result<(), String>;
    /// The tenants a tenant list file holds, or its problems (each naming
    /// its line).
    fn tenant_list(&self, path: &Path) -> Result<Vec<String>, Vec<String>>;
    /// The identity's credential loads (its files read and checked).
    fn credential(&self, identity: &ClientConfig) -> Result<(), String>;
    /// A CA file's contents.
    fn ca_file(&self, path: &Path) -> Result<Vec<u8>, String>;
    /// A secret file (`what`: "Redis password") is a regular file that
    /// other users cannot read.
    fn secret_file(&self, path: &Path, what: &str) -> Result<(), String>;
    /// A store key file holds a key.
    fn store_key(&self, path: &Path) -> Result<(), String>;
    /// Whether something exists at `path`.
    fn exists(&self, path: &Path) -> bool;
}

/// The real file system.
pub(super) struct FileSystem;

impl Preflight for FileSystem {
    fn file_place(&self, path: &Path) -> Result<(), String> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !dir.is_dir() {
            Err(format!("the directory '{}' does not exist", dir.display()))
        } else if path.is_dir() {
            Err(format!("'{}' is a directory", path.display()))
        } else {
            Ok(())
        }
    }

    fn tenant_list(&self, path: &Path) -> Result<Vec<String>, Vec<String>> {
        crate::tenant_list::load(path)
    }

    fn credential(&self, identity: &ClientConfig) -> Result<(), String> {
        // The chain's choice (no request is sent: a managed identity is
        // reached at the first token request); an app's credential files
        // are read and checked.
        let choice = identity
            .choose_credential()
            .map_err(|e| e.report().to_string())?;
        match choice.credential {
            apptoken::CredentialType::ManagedIdentity => Ok(()),
            _ => identity
                .client_builder()
                .map(drop)
                .map_err(|e| e.report().to_string()),
        }
    }

    fn ca_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        apptoken::read_ca_file(path).map_err(|e| e.report().to_string())
    }

    fn secret_file(&self, path: &Path, what: &str) -> Result<(), String> {
        apptoken::internal::check_secret_file(path, what).map_err(|e| e.report().to_string())
    }

    fn store_key(&self, path: &Path) -> Result<(), String> {
        apptoken::StoreKey::from_file(path)
            .map(drop)
            .map_err(|e| e.report().to_string())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
