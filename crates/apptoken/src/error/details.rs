//! The typed detail an [`Error`] variant holds: a kind to match on, the
//! message, the setting or file at fault and the cause; the sealed [`Kind`]
//! trait that gives each kind its category and its variant.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::kinds::{
    AuthorityErrorKind, ConfigErrorKind, CredentialErrorKind, InternalErrorKind, StoreErrorKind,
};
use super::{Cause, Error};

/// The detail of a [`Error::Configuration`], [`Error::Authority`],
/// [`Error::Credential`], [`Error::Store`] or [`Error::Internal`]: a kind to
/// match on, the message, the setting or file at fault and the cause.
///
/// `K` is the category's kind ([`ConfigErrorKind`], [`AuthorityErrorKind`],
/// [`CredentialErrorKind`], [`StoreErrorKind`], [`InternalErrorKind`]).
/// Displayed as `category: message`; the cause is the
/// [`source`](std::error::Error::source), not part of the text.
#[derive(Debug, Clone)]
pub struct Details<K> {
    kind: K,
    message: String,
    setting: Option<Cow<'static, str>>,
    path: Option<PathBuf>,
    source: Option<Cause>,
}

/// A configuration error's detail.
pub type ConfigError = Details<ConfigErrorKind>;
/// An invalid authority's detail.
pub type AuthorityError = Details<AuthorityErrorKind>;
/// A credential error's detail.
pub type CredentialError = Details<CredentialErrorKind>;
/// A shared token store's error detail.
pub type StoreError = Details<StoreErrorKind>;
/// An internal error's detail.
pub type InternalError = Details<InternalErrorKind>;

impl<K: Kind> Details<K> {
    /// A detail of this kind; `message` says what is wrong and what to fix,
    /// without the cause's text (give it with [`Details::with_source`]) and
    /// never with a secret.
    pub fn new(kind: K, message: impl Into<String>) -> Self {
        Details {
            kind,
            message: message.into(),
            setting: None,
            path: None,
            source: None,
        }
    }

    /// Names the setting at fault (`client_id`, `AZURE_TENANT_ID`, …).
    #[must_use]
    pub fn with_setting(mut self, setting: impl Into<Cow<'static, str>>) -> Self {
        self.setting = Some(setting.into());
        self
    }

    /// Names the file at fault.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Keeps the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// The message, without the category and the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The setting at fault, when one is.
    pub fn setting(&self) -> Option<&str> {
        self.setting.as_deref()
    }

    /// The file at fault, when one is.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl<K: Kind> Details<K> {
    /// Keeps a shared cause.
    pub(crate) fn with_cause(mut self, cause: Cause) -> Self {
        self.source = Some(cause);
        self
    }

    /// Puts `prefix: ` before the message (the file a parse error was in).
    pub(crate) fn prefixed(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

/// Shorthand for the crate's own configuration errors.
pub(crate) fn config(kind: ConfigErrorKind, message: impl Into<String>) -> Error {
    Error::Configuration(ConfigError::new(kind, message))
}

/// Shorthand for the crate's own credential errors.
pub(crate) fn credential(kind: CredentialErrorKind, message: impl Into<String>) -> Error {
    Error::Credential(CredentialError::new(kind, message))
}

/// Shorthand for the crate's own authority errors.
pub(crate) fn authority(kind: AuthorityErrorKind, message: impl Into<String>) -> Error {
    Error::Authority(AuthorityError::new(kind, message))
}

impl<K: Kind> fmt::Display for Details<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.category(), self.message)
    }
}

impl<K: Kind> std::error::Error for Details<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The kinds of [`Details`]: one enum per error category. Sealed.
pub trait Kind: sealed::Sealed + Copy + fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The category, as the message starts (`configuration error`, …).
    fn category(self) -> &'static str;
}

/// A kind's category, and the conversion of its detail into the variant.
macro_rules! kind {
    ($kind:ty, $category:literal, $variant:ident) => {
        impl sealed::Sealed for $kind {}
        impl Kind for $kind {
            fn category(self) -> &'static str {
                $category
            }
        }
        impl From<Details<$kind>> for Error {
            fn from(e: Details<$kind>) -> Error {
                Error::$variant(e)
            }
        }
    };
}

kind!(ConfigErrorKind, "configuration error", Configuration);
kind!(AuthorityErrorKind, "invalid authority", Authority);
kind!(CredentialErrorKind, "credential error", Credential);
kind!(StoreErrorKind, "shared token store", Store);
kind!(InternalErrorKind, "internal error", Internal);
