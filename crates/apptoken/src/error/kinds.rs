//! The kinds of the typed details: one `#[non_exhaustive]` enum per error
//! category, saying what exactly is wrong.

/// What is wrong with the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A required setting is absent (the client id, the tenant, a
    /// credential).
    Missing,
    /// A setting's value is not usable: it does not parse, is out of range
    /// or has the wrong shape.
    Invalid,
    /// Settings that exclude each other were given together.
    Conflict,
    /// What was asked does not apply to this client (replacing the
    /// credential of a client that uses a custom token source, refreshing a
    /// token that was never cached).
    Unsupported,
    /// A file the configuration names cannot be used.
    File(FileProblem),
    /// The HTTP client (TLS set-up) could not be built.
    HttpClient,
}

/// What is wrong with an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthorityErrorKind {
    /// Not a URL, or a URL with a query or fragment.
    NotAUrl,
    /// Not `https` (plain `http` is allowed on loopback only).
    Insecure,
    /// Not of the form `https://host/tenant`.
    Malformed,
    /// The tenant is empty, malformed, or one (`common`,
    /// `organizations`…) that cannot issue app-only tokens.
    Tenant,
    /// A tenant per request on an authority that has none (ADFS, a
    /// generic OpenID Connect issuer).
    PerRequestTenant,
    /// A generic provider's metadata names another issuer than the one
    /// configured (OpenID Connect Discovery §4.3, RFC 8414 §3.3).
    IssuerMismatch,
    /// A generic provider serves no metadata at any of the well-known
    /// addresses of its issuer.
    NoMetadata,
}

/// What is wrong with the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialErrorKind {
    /// The secret, certificate, password or federated token file cannot be
    /// used.
    File(FileProblem),
    /// A certificate, private key, PEM block, PFX or assertion does not
    /// parse.
    Malformed,
    /// The private key is encrypted and no password was given.
    PasswordRequired,
    /// The password does not open the key or the PFX.
    WrongPassword,
    /// The key is not of a type this credential can sign with (an EC key
    /// for Entra ID, which takes RSA).
    UnsupportedKey,
    /// The private key does not match any certificate given with it.
    KeyMismatch,
    /// A part is missing: no private key, or no certificate beside it.
    Incomplete,
    /// The assertion callback failed (its error is the source).
    Callback,
    /// The managed identity that makes the client assertion gave no token
    /// (its error, IMDS's or App Service's answer, is the source).
    ManagedIdentity,
    /// This host offers no such credential: no managed-identity endpoint
    /// answered as Azure's does (the probe's failure is the source).
    Unavailable,
    /// Signing the client assertion failed.
    Signing,
    /// The secret holds characters that cannot be sent in a header.
    NotSendable,
}

/// What is wrong with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileProblem {
    /// It cannot be read (the I/O error is the source: not found, no
    /// permission…).
    Unreadable,
    /// It, or its directory, cannot be written.
    Unwritable,
    /// It is not a regular file (a directory, a device).
    NotAFile,
    /// It is empty.
    Empty,
    /// It is larger than such a file can be.
    TooLarge,
    /// It is not UTF-8 text.
    NotUtf8,
    /// Other users can read it, and it holds a secret.
    OpenToOthers,
    /// It holds nothing of what it should (a CA file without a
    /// certificate).
    NoContent,
}

/// What went wrong with a shared token store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store does not answer (retry later).
    Unavailable,
    /// The store answered, but the operation failed.
    Failed,
}

/// What went wrong inside apptoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InternalErrorKind {
    /// The task getting the token panicked.
    Panicked,
    /// The task getting the token was cancelled (the runtime shutting
    /// down) or ended without an answer.
    Cancelled,
    /// The platform failed: no randomness, a cryptographic primitive that
    /// refused valid input.
    Platform,
}
