//! Access tokens.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::cache::Meta;

/// An app-only access token.
///
/// Cloning is a reference-count increment. `Debug` never shows the token;
/// call [`AccessToken::secret`] to put it in an `Authorization` header.
#[derive(Clone)]
pub struct AccessToken {
    pub(crate) node: Arc<Node>,
    extended: bool,
}

/// The one allocation behind a token. When the cache holds the token, this
/// node *is* the cache entry: `meta` (first, so a cache hit reads one
/// neighbourhood of memory) holds the key and times it checks, and the
/// reference count it increments is this allocation's.
#[repr(C)]
pub(crate) struct Node {
    pub(crate) meta: Meta,
    /// Unique per issued token; shared by its per-thread copies.
    id: u64,
    /// Shared by the per-thread copies (only the reference count is theirs).
    token: Arc<SecretString>,
    token_type: String,
    pub(crate) expires_on: OffsetDateTime,
    refresh_on: Option<OffsetDateTime>,
    pub(crate) ext_expires_on: Option<OffsetDateTime>,
    tenant: String,
    scopes: Vec<String>,
}

impl AccessToken {
    pub(crate) fn new(
        token: SecretString,
        token_type: String,
        expires_on: OffsetDateTime,
        refresh_on: Option<OffsetDateTime>,
        ext_expires_on: Option<OffsetDateTime>,
        tenant: String,
        scopes: Vec<String>,
    ) -> AccessToken {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        AccessToken {
            node: Arc::new(Node {
                meta: Meta::detached(),
                id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                token: Arc::new(token),
                token_type,
                expires_on,
                refresh_on,
                ext_expires_on,
                tenant,
                scopes,
            }),
            extended: false,
        }
    }

    /// The token a cache node stands for.
    pub(crate) fn from_node(node: Arc<Node>) -> AccessToken {
        AccessToken {
            node,
            extended: false,
        }
    }

    /// The same token in a new node with the given cache metadata (the
    /// secret itself is shared, not copied).
    pub(crate) fn with_meta(&self, meta: Meta) -> AccessToken {
        let i = &self.node;
        AccessToken {
            node: Arc::new(Node {
                meta,
                id: i.id,
                token: Arc::clone(&i.token),
                token_type: i.token_type.clone(),
                expires_on: i.expires_on,
                refresh_on: i.refresh_on,
                ext_expires_on: i.ext_expires_on,
                tenant: i.tenant.clone(),
                scopes: i.scopes.clone(),
            }),
            extended: self.extended,
        }
    }

    /// The same token, marked as served past its expiry within its extended
    /// lifetime.
    pub(crate) fn extended(&self) -> AccessToken {
        AccessToken {
            node: Arc::clone(&self.node),
            extended: true,
        }
    }

    /// Whether this token has expired and is served within Entra's extended
    /// lifetime (`ext_expires_in`) because the identity provider is
    /// unavailable (see `serve_extended_lifetime`). Resources that honour
    /// the extended lifetime still accept it.
    pub fn is_extended_lifetime(&self) -> bool {
        self.extended
    }

    /// The token itself. Handle with care: never log it.
    pub fn secret(&self) -> &str {
        self.node.token.expose_secret()
    }

    /// The token type, `Bearer` for Entra ID.
    pub fn token_type(&self) -> &str {
        &self.node.token_type
    }

    /// The value for an `Authorization` header: `Bearer <token>`.
    pub fn authorization_header(&self) -> String {
        format!("{} {}", self.node.token_type, self.secret())
    }

    /// When the token expires.
    pub fn expires_on(&self) -> OffsetDateTime {
        self.node.expires_on
    }

    /// When the identity provider asked the client to refresh it
    /// (`refresh_in`), if it did.
    pub fn refresh_on(&self) -> Option<OffsetDateTime> {
        self.node.refresh_on
    }

    /// Entra's extended lifetime (`ext_expires_in`): how long the token may
    /// be used while the identity provider is unreachable.
    pub fn ext_expires_on(&self) -> Option<OffsetDateTime> {
        self.node.ext_expires_on
    }

    /// The tenant the token was requested from.
    pub fn tenant(&self) -> &str {
        &self.node.tenant
    }

    /// The scopes it was requested for.
    pub fn scopes(&self) -> &[String] {
        &self.node.scopes
    }

    /// Whether two handles are the same issued token (the cache may hand
    /// out per-thread copies of a hot token; they count as the same).
    pub fn is_same_token(&self, other: &AccessToken) -> bool {
        self.node.id == other.node.id
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("token_type", &self.node.token_type)
            .field("expires_on", &self.node.expires_on)
            .field("refresh_on", &self.node.refresh_on)
            .field("tenant", &self.node.tenant)
            .field("scopes", &self.node.scopes)
            .field("extended", &self.extended)
            .finish()
    }
}
