//! Request counters, served at `GET /_emulator/stats`.
//!
//! Invariants: one std mutex, held only to bump or copy the counters
//! (never across an `.await`; a poisoned one is still used).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The number of token requests for one (client id, tenant, outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenRequestCount {
    /// The client id as sent (empty when the request had none).
    pub client_id: String,
    /// The resolved tenant id, or the path segment when it did not resolve.
    pub tenant: String,
    /// `"success"`, or the AADSTS code of the failure (`"AADSTS7000215"`).
    pub outcome: String,
    /// How many requests ended this way.
    pub count: u64,
}

/// The number of managed-identity requests for one (source, client id, outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ManagedIdentityRequestCount {
    /// `"imds"`, `"app_service"` or `"arc"`.
    pub source: String,
    /// The identity's client id (empty when the request was refused).
    pub client_id: String,
    /// `"success"`, the HTTP status of a refusal (`"400"`), or `"fault:429"`.
    pub outcome: String,
    /// How many requests ended this way.
    pub count: u64,
}

/// A snapshot of the emulator's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    token_requests_total: u64,
    token_requests: Vec<TokenRequestCount>,
    discovery_requests: u64,
    jwks_requests: u64,
    /// Sample API answers by HTTP status code ("200", "401", ...).
    sample_api_requests: BTreeMap<String, u64>,
    /// Managed-identity requests by source, identity and outcome.
    #[serde(default)]
    managed_identity_requests: Vec<ManagedIdentityRequestCount>,
}

impl Stats {
    /// Every token endpoint request, whatever the outcome.
    pub fn token_requests_total(&self) -> u64 {
        self.token_requests_total
    }

    /// Token requests made with the given client id (any tenant, any outcome).
    pub fn token_requests_for(&self, client_id: &str) -> u64 {
        self.token_requests
            .iter()
            .filter(|c| c.client_id.eq_ignore_ascii_case(client_id))
            .map(|c| c.count)
            .sum()
    }

    /// Tokens issued to the given client id (any tenant).
    pub fn successes_for(&self, client_id: &str) -> u64 {
        self.token_requests
            .iter()
            .filter(|c| c.client_id.eq_ignore_ascii_case(client_id) && c.outcome == "success")
            .map(|c| c.count)
            .sum()
    }

    /// Requests for one (client id, tenant id, outcome); outcome is
    /// `"success"` or an AADSTS code such as `"AADSTS7000215"`.
    pub fn count(&self, client_id: &str, tenant: &str, outcome: &str) -> u64 {
        self.token_requests
            .iter()
            .filter(|c| {
                c.client_id.eq_ignore_ascii_case(client_id)
                    && c.tenant.eq_ignore_ascii_case(tenant)
                    && c.outcome == outcome
            })
            .map(|c| c.count)
            .sum()
    }

    /// Every (client id, tenant, outcome) count.
    pub fn token_requests(&self) -> &[TokenRequestCount] {
        &self.token_requests
    }

    /// OpenID configuration documents served (including failures).
    pub fn discovery_requests(&self) -> u64 {
        self.discovery_requests
    }

    /// JWKS documents served (including failures).
    pub fn jwks_requests(&self) -> u64 {
        self.jwks_requests
    }

    /// Managed-identity requests to `source` (`"imds"`, `"app_service"`,
    /// `"arc"`) that ended with `outcome` (`"success"`, `"400"`, `"fault:410"`, …).
    pub fn managed_identity(&self, source: &str, outcome: &str) -> u64 {
        self.managed_identity_requests
            .iter()
            .filter(|c| c.source == source && c.outcome == outcome)
            .map(|c| c.count)
            .sum()
    }

    /// Every managed-identity (source, client id, outcome) count.
    pub fn managed_identity_requests(&self) -> &[ManagedIdentityRequestCount] {
        &self.managed_identity_requests
    }

    /// Sample API answers with the given HTTP status.
    pub fn sample_api_requests(&self, status: u16) -> u64 {
        self.sample_api_requests
            .get(&status.to_string())
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Counters {
    token: BTreeMap<(String, String, String), u64>,
    discovery: u64,
    jwks: u64,
    sample_api: BTreeMap<u16, u64>,
    managed_identity: BTreeMap<(String, String, String), u64>,
}

/// The live counters behind a std mutex (never held across an await).
#[derive(Debug, Default)]
pub(crate) struct StatsRecorder(Mutex<Counters>);

impl StatsRecorder {
    fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub(crate) fn token(&self, client_id: &str, tenant: &str, outcome: &str) {
        self.with(|c| {
            *c.token
                .entry((
                    client_id.to_string(),
                    tenant.to_string(),
                    outcome.to_string(),
                ))
                .or_default() += 1;
        });
    }

    pub(crate) fn discovery(&self) {
        self.with(|c| c.discovery += 1);
    }

    pub(crate) fn jwks(&self) {
        self.with(|c| c.jwks += 1);
    }

    pub(crate) fn sample_api(&self, status: u16) {
        self.with(|c| *c.sample_api.entry(status).or_default() += 1);
    }

    pub(crate) fn managed_identity(&self, source: &str, client_id: &str, outcome: &str) {
        self.with(|c| {
            *c.managed_identity
                .entry((
                    source.to_string(),
                    client_id.to_string(),
                    outcome.to_string(),
                ))
                .or_default() += 1;
        });
    }

    pub(crate) fn reset(&self) {
        self.with(|c| *c = Counters::default());
    }

    pub(crate) fn snapshot(&self) -> Stats {
        self.with(|c| Stats {
            token_requests_total: c.token.values().sum(),
            token_requests: c
                .token
                .iter()
                .map(|((client_id, tenant, outcome), count)| TokenRequestCount {
                    client_id: client_id.clone(),
                    tenant: tenant.clone(),
                    outcome: outcome.clone(),
                    count: *count,
                })
                .collect(),
            discovery_requests: c.discovery,
            jwks_requests: c.jwks,
            sample_api_requests: c
                .sample_api
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            managed_identity_requests: c
                .managed_identity
                .iter()
                .map(
                    |((source, client_id, outcome), count)| ManagedIdentityRequestCount {
                        source: source.clone(),
                        client_id: client_id.clone(),
                        outcome: outcome.clone(),
                        count: *count,
                    },
                )
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aggregate_and_reset() {
        let r = StatsRecorder::default();
        r.token("A", "t1", "success");
        r.token("a", "t2", "success");
        r.token("a", "t1", "AADSTS7000215");
        r.sample_api(200);
        let s = r.snapshot();
        assert_eq!(s.token_requests_total(), 3);
        assert_eq!(s.token_requests_for("a"), 3);
        assert_eq!(s.successes_for("a"), 2);
        assert_eq!(s.count("a", "t1", "AADSTS7000215"), 1);
        assert_eq!(s.sample_api_requests(200), 1);
        let json = serde_json::to_value(&s).expect("serializes");
        assert_eq!(json["token_requests_total"], 3);
        r.reset();
        assert_eq!(r.snapshot(), Stats::default());
    }
}
