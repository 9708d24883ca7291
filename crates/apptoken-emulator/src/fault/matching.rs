//! Which registered fault fires for a request: the fault set and its
//! counters, the classification of a request's path into an endpoint kind
//! and tenant segment, and the matching of a fault's target, client id and
//! tenant against it.
//!
//! Invariants: faults are tried in registration order (lowest id first) and
//! the first that matches and fires wins; `share` is deterministic (the
//! `n`th matching request fires when `floor(n * share)` steps up), so a
//! test sees the same sequence every run; the set's mutex is a std mutex
//! taken only in synchronous code, never across an `.await`.

use std::sync::Mutex;

use serde_json::json;

use super::{Fault, Target};
use crate::server::AppState;

/// One registered fault and its counters.
#[derive(Debug)]
pub(super) struct Entry {
    id: u64,
    fault: Fault,
    /// Matching requests seen (drives `share`).
    matched: u64,
    /// Requests the fault was applied to.
    applied: u64,
}

/// The registered faults.
#[derive(Debug, Default)]
pub(crate) struct FaultSet(Mutex<(u64, Vec<Entry>)>);

impl FaultSet {
    fn with<T>(&self, f: impl FnOnce(&mut (u64, Vec<Entry>)) -> T) -> T {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub(crate) fn add(&self, fault: Fault) -> u64 {
        self.with(|(next, entries)| {
            *next += 1;
            entries.push(Entry {
                id: *next,
                fault,
                matched: 0,
                applied: 0,
            });
            *next
        })
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        self.with(|(_, entries)| {
            let before = entries.len();
            entries.retain(|e| e.id != id);
            entries.len() != before
        })
    }

    pub(crate) fn clear(&self) {
        self.with(|(_, entries)| entries.clear());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.with(|(_, entries)| entries.is_empty())
    }

    pub(super) fn needs_client_id(&self) -> bool {
        self.with(|(_, entries)| entries.iter().any(|e| e.fault.client_id.is_some()))
    }

    /// Finds the fault that fires for this request, updating the counters.
    pub(super) fn fire(&self, st: &AppState, request: &Classified) -> Option<Fault> {
        self.with(|(_, entries)| {
            let mut fired = None;
            for (index, entry) in entries.iter_mut().enumerate() {
                if !matches(st, &entry.fault, request) {
                    continue;
                }
                entry.matched += 1;
                if !fires(entry.matched, entry.fault.share.unwrap_or(1.0)) {
                    continue;
                }
                if entry.fault.times.is_some_and(|t| entry.applied >= t) {
                    continue;
                }
                entry.applied += 1;
                fired = Some((index, entry.fault.clone()));
                break;
            }
            let (index, fault) = fired?;
            if fault.times.is_some_and(|t| entries[index].applied >= t) {
                entries.remove(index);
            }
            Some(fault)
        })
    }

    pub(super) fn list(&self) -> serde_json::Value {
        self.with(|(_, entries)| {
            let faults: Vec<_> = entries
                .iter()
                .map(|e| {
                    let f = &e.fault;
                    json!({
                        "id": e.id,
                        "target": f.target.name(),
                        "path": match &f.target { Target::Path(p) => Some(p), _ => None },
                        "client_id": f.client_id,
                        "tenant": f.tenant,
                        "times": f.times,
                        "remaining": f.times.map(|t| t.saturating_sub(e.applied)),
                        "share": f.share,
                        "status": f.status,
                        "retry_after": f.retry_after,
                        "delay_ms": f.delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                        "drop_connection": f.drop_connection,
                        "matched": e.matched,
                        "applied": e.applied,
                    })
                })
                .collect();
            json!({ "faults": faults })
        })
    }
}

/// Whether the `n`th matching request (from 1) gets a fault applied to a
/// `share` of requests: when `floor(n * share)` steps up.
pub(super) fn fires(n: u64, share: f64) -> bool {
    let n = n as f64;
    (n * share).floor() > ((n - 1.0) * share).floor()
}

/// What kind of endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Token,
    Discovery,
    Jwks,
    SampleApi,
    ManagedIdentity,
    Other,
}

#[derive(Debug)]
pub(super) struct Classified {
    pub(super) kind: Kind,
    pub(super) path: String,
    /// The first path segment (the tenant for token, discovery and JWKS).
    pub(super) tenant: String,
    pub(super) client_id: Option<String>,
}

pub(super) fn classify(path: &str) -> (Kind, String) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let tenant = segments.first().copied().unwrap_or_default().to_string();
    let rest = segments.get(1..).unwrap_or_default().join("/");
    let kind = if crate::managed_identity::Source::of_path(path).is_some() {
        Kind::ManagedIdentity
    } else if segments.first() == Some(&"v1.0") {
        Kind::SampleApi
    } else if rest == "oauth2/v2.0/token" || rest == "oauth2/token" {
        Kind::Token
    } else if rest == "v2.0/.well-known/openid-configuration"
        || rest == ".well-known/openid-configuration"
        || rest == "discovery/instance"
    {
        Kind::Discovery
    } else if rest == "discovery/v2.0/keys" || rest == "discovery/keys" {
        Kind::Jwks
    } else {
        Kind::Other
    };
    (kind, tenant)
}

pub(super) fn same_tenant(st: &AppState, wanted: &str, segment: &str) -> bool {
    if wanted.eq_ignore_ascii_case(segment) {
        return true;
    }
    let lookup = |t: &str| {
        st.config
            .tenant_by_id_or_domain(&t.to_ascii_lowercase())
            .map(|t| t.id.clone())
    };
    matches!((lookup(wanted), lookup(segment)), (Some(a), Some(b)) if a == b)
}

pub(super) fn matches(st: &AppState, fault: &Fault, request: &Classified) -> bool {
    let target = match &fault.target {
        Target::Token => request.kind == Kind::Token,
        Target::Discovery => request.kind == Kind::Discovery,
        Target::Jwks => request.kind == Kind::Jwks,
        Target::SampleApi => request.kind == Kind::SampleApi,
        Target::ManagedIdentity => request.kind == Kind::ManagedIdentity,
        Target::Path(prefix) => request.path.starts_with(prefix.as_str()),
    };
    let client = fault.client_id.as_ref().is_none_or(|wanted| {
        request.kind == Kind::Token
            && request
                .client_id
                .as_ref()
                .is_some_and(|c| c.eq_ignore_ascii_case(wanted))
    });
    let tenant = fault
        .tenant
        .as_ref()
        .is_none_or(|wanted| same_tenant(st, wanted, &request.tenant));
    target && client && tenant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_knows_the_endpoints() {
        assert_eq!(classify("/t/oauth2/v2.0/token").0, Kind::Token);
        assert_eq!(classify("/t/oauth2/token").0, Kind::Token);
        assert_eq!(
            classify("/t/v2.0/.well-known/openid-configuration").0,
            Kind::Discovery
        );
        assert_eq!(classify("/common/discovery/instance").0, Kind::Discovery);
        assert_eq!(classify("/t/discovery/v2.0/keys").0, Kind::Jwks);
        assert_eq!(classify("/v1.0/users").0, Kind::SampleApi);
        assert_eq!(classify("/error").0, Kind::Other);
        assert_eq!(
            classify("/metadata/identity/oauth2/token").0,
            Kind::ManagedIdentity
        );
        assert_eq!(classify("/msi/token").0, Kind::ManagedIdentity);
        assert_eq!(classify("/t/oauth2/v2.0/token").1, "t");
    }

    #[test]
    fn share_fires_deterministically() {
        let fire = |share: f64, n: u64| fires(n, share);
        let half: Vec<bool> = (1..=4).map(|n| fire(0.5, n)).collect();
        assert_eq!(half, [false, true, false, true]);
        let third = (1..=9).filter(|n| fire(1.0 / 3.0, *n)).count();
        assert_eq!(third, 3);
        assert!((1..=5).all(|n| fire(1.0, n)));
    }
}
