//! Cache keys: their text and its ASCII case folding.
//!
//! Holds [`CacheKey`] (owned: host and client id shared with the client;
//! tenant, scope and the target's extra part stored inline up to [`INLINE`]
//! bytes), its borrowed form [`KeyRef`] (what a hit looks up, as the caller
//! passed it), and the word-at-a-time folding both hash and compare with.
//!
//! Invariants:
//! - A `CacheKey`'s tenant is lower case, and so is its scope unless the key
//!   is `exact` (a generic OpenID provider's scopes are case-sensitive, RFC
//!   6749 §3.3; Entra's are not). A `KeyRef`'s may be in any ASCII case.
//!   The two hash alike (the hash always folds case) and compare equal
//!   exactly when `eq_ignore_ascii_case` would say so for the tenant, and
//!   for the scope of a key that is not exact; an exact key's scope and
//!   every key's extra part (resource indicators, audience) compare byte for
//!   byte, and an exact key never equals one that is not. Only tenant,
//!   scope and extra are hashed; host and client id are compared.
//! - `split` is the tenant's length and `scope_end` the end of the scope:
//!   moving a border between the parts makes another key, and two different
//!   tenants never share one.
//! - Only validated keys are stored, so the borrowed strings of a lookup
//!   need no validation (a `KeyRef` that matches nothing is a miss).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Keys up to this many bytes of tenant + scope are stored inline: a hit
/// then reads the key from the map's node, without another pointer.
const INLINE: usize = 110;

#[derive(Clone)]
enum KeyText {
    Inline(u8, [u8; INLINE]),
    Heap(Box<str>),
}

impl KeyText {
    fn new(s: &str) -> KeyText {
        if s.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            KeyText::Inline(s.len() as u8, buf)
        } else {
            KeyText::Heap(s.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline(len, buf) => &buf[..*len as usize],
            KeyText::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The buffer holds a copy of a `str`: always UTF-8.
            KeyText::Inline(len, buf) => std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
            KeyText::Heap(s) => s,
        }
    }
}

/// What identifies a token: authority host, tenant, client id and the
/// normalised scope. Tenant and scope are stored lower-case and compared
/// without regard to ASCII case; two different tenants never share a key.
#[derive(Clone)]
pub(crate) struct CacheKey {
    pub(crate) host: Arc<str>,
    pub(crate) client_id: Arc<str>,
    split: u16,
    scope_end: u32,
    /// The scope is case-sensitive (generic OpenID providers).
    pub(crate) exact: bool,
    text: KeyText,
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheKey")
            .field("host", &self.host)
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant())
            .field("scope", &self.scope())
            .field("extra", &self.extra())
            .field("exact", &self.exact)
            .finish()
    }
}

impl CacheKey {
    /// An Entra-style key: scope compared without regard to case, no extra part.
    #[cfg(any(test, feature = "msal-cache"))]
    pub(crate) fn new(host: Arc<str>, client_id: Arc<str>, tenant: &str, scope: &str) -> CacheKey {
        CacheKey::with_target(host, client_id, tenant, scope, "", false)
    }

    /// Any key: `extra` is the target's resource indicators and audience
    /// (empty for Entra), `exact` whether the scope is case-sensitive.
    pub(crate) fn with_target(
        host: Arc<str>,
        client_id: Arc<str>,
        tenant: &str,
        scope: &str,
        extra: &str,
        exact: bool,
    ) -> CacheKey {
        // Tenants are validated (at most a few hundred bytes); a longer one
        // cannot be stored, so it would only make a key that matches nothing.
        let tenant = &tenant[..floor_char_boundary(tenant, usize::from(u16::MAX))];
        let mut text = String::with_capacity(tenant.len() + scope.len() + extra.len());
        text.push_str(tenant);
        text.make_ascii_lowercase();
        if exact {
            text.push_str(scope);
        } else {
            text.push_str(&scope.to_ascii_lowercase());
        }
        let scope_end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        text.push_str(extra);
        CacheKey {
            host,
            client_id,
            split: u16::try_from(tenant.len()).unwrap_or(u16::MAX),
            scope_end,
            exact,
            text: KeyText::new(&text),
        }
    }

    /// Tenant, scope and extra part, as bytes.
    fn text_parts(&self) -> (&[u8], &[u8], &[u8]) {
        let text = self.text.as_bytes();
        let (tenant, rest) = text.split_at(usize::from(self.split).min(text.len()));
        let scope_len = (self.scope_end as usize).saturating_sub(tenant.len());
        let (scope, extra) = rest.split_at(scope_len.min(rest.len()));
        (tenant, scope, extra)
    }

    /// The tenant, lower-case.
    pub(crate) fn tenant(&self) -> &str {
        self.text.as_str().get(..self.split as usize).unwrap_or("")
    }

    /// The scope (lower-case unless the key is exact).
    pub(crate) fn scope(&self) -> &str {
        self.text
            .as_str()
            .get(self.split as usize..self.scope_end as usize)
            .unwrap_or("")
    }

    /// The target's resource indicators and audience, empty for Entra.
    pub(crate) fn extra(&self) -> &str {
        self.text
            .as_str()
            .get(self.scope_end as usize..)
            .unwrap_or("")
    }

    pub(crate) fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            host: &self.host,
            tenant: self.tenant(),
            client_id: &self.client_id,
            scope: self.scope(),
            extra: self.extra(),
            exact: self.exact,
        }
    }
}

/// The largest char boundary of `s` at or below `at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The borrowed form of a key, for allocation-free lookups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub(crate) host: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scope: &'a str,
    /// Resource indicators and audience (empty for Entra).
    pub(crate) extra: &'a str,
    /// The scope is case-sensitive.
    pub(crate) exact: bool,
}

impl KeyRef<'_> {
    pub(crate) fn to_owned_key(self, host: &Arc<str>, client_id: &Arc<str>) -> CacheKey {
        CacheKey::with_target(
            Arc::clone(host),
            Arc::clone(client_id),
            self.tenant,
            self.scope,
            self.extra,
            self.exact,
        )
    }

    /// Whether this is `k` (the tenant without regard to ASCII case, the
    /// scope too unless the keys are exact).
    pub(super) fn parts_eq(&self, k: &CacheKey) -> bool {
        let (tenant, scope, extra) = k.text_parts();
        self.exact == k.exact
            && same_str(self.host, &k.host)
            && same_str(self.client_id, &k.client_id)
            && eq_lower(self.tenant.as_bytes(), tenant)
            && if self.exact {
                self.scope.as_bytes() == scope
            } else {
                eq_lower(self.scope.as_bytes(), scope)
            }
            // Empty for every Entra key: the hot path skips the compare.
            && extra.len() == self.extra.len()
            && (extra.is_empty() || self.extra.as_bytes() == extra)
    }
}

/// String equality that first asks whether both are the same memory (a
/// client's keys share its host and client id).
pub(super) fn same_str(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

/// ASCII lower case of eight bytes at once (bytes ≥ 0x80 are left alone).
pub(super) fn lower8(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    // Bit 7 set where a byte is ≥ 'A', and where it is > 'Z'.
    let ge_a = low7.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
    let gt_z = low7.wrapping_add(0x2525_2525_2525_2525);
    let upper = (ge_a ^ gt_z) & !x & HIGH;
    x | (upper >> 2)
}

fn word(chunk: &[u8]) -> u64 {
    // Assembled in registers (no stack buffer), so no store has to be
    // forwarded to a wider load.
    chunk
        .iter()
        .enumerate()
        .fold(0u64, |w, (i, b)| w | (u64::from(*b) << (8 * i)))
}

/// `a` lower-cased equals `lower` (already lower case).
pub(super) fn eq_lower(a: &[u8], lower: &[u8]) -> bool {
    if a.len() != lower.len() {
        return false;
    }
    let (ac, lc) = (a.chunks_exact(8), lower.chunks_exact(8));
    let (ar, lr) = (ac.remainder(), lc.remainder());
    ac.zip(lc).all(|(x, y)| lower8(word(x)) == word(y)) && lower8(word(ar)) == word(lr)
}

/// Feeds `s` lower-cased, eight bytes at a time, after its length, so
/// that a borrowed key and its owned, already lower-case form hash alike.
fn write_lower<H: Hasher>(h: &mut H, s: &[u8]) {
    h.write_usize(s.len());
    let chunks = s.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        h.write_u64(lower8(word(c)));
    }
    h.write_u64(lower8(word(rest)));
}

/// Only tenant, scope and extra are hashed, always folded to lower case
/// (equal keys, exact or not, fold alike): a cache's keys share host and
/// client id (they are still compared).
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (tenant, scope, extra) = self.text_parts();
        write_parts(h, tenant, scope, extra);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        write_parts(
            h,
            self.tenant.as_bytes(),
            self.scope.as_bytes(),
            self.extra.as_bytes(),
        );
    }
}

fn write_parts<H: Hasher>(h: &mut H, tenant: &[u8], scope: &[u8], extra: &[u8]) {
    write_lower(h, tenant);
    write_lower(h, scope);
    // Entra's keys have none: the hot path hashes two parts.
    if !extra.is_empty() {
        write_lower(h, extra);
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        other.as_ref().parts_eq(self)
    }
}

impl Eq for CacheKey {}
