//! Jobs once per fleet: with a shared Redis store, each scheduled tick of a
//! job (each tenant of it) is run by the one instance that takes its lease.
//!
//! A lease is named from a hash of the client id and the job name, the tick
//! (unix milliseconds) and, for per-tenant jobs, a hash of the tenant:
//! `apptoken:job:<hash>:<tick>[:<tenant hash>]`. The holder renews it every
//! third of its TTL while the run goes on; a renewal that answers "lost"
//! stops the run, and the output is committed only after one more renewal
//! (fencing). When the holder finishes it writes a `:done` marker and
//! releases the lease. The other instances keep trying the lease (or seeing
//! the marker) until the tick's follow deadline, so a holder that dies
//! (`kill -9`) hands the tick over once its lease expires. When the store
//! does not answer, the instance runs the tick itself: Redis is never a
//! single point of failure (a tick may then run on several instances).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use apptoken::TokenStore;
use time::OffsetDateTime;
use tracing::warn;

/// The fleet's lease store and this instance's identity as a holder.
pub(crate) struct Fleet {
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) holder: String,
    pub(crate) ttl: Duration,
    /// Hashed into lease names so that two apps sharing one Redis do not meet.
    pub(crate) namespace: String,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn short_hash(parts: &[&str]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p.as_bytes());
        ctx.update(&[0]);
    }
    hex::encode(&ctx.finish().as_ref()[..12])
}

/// How a unit of a tick (the job, or one tenant of it) was claimed.
pub(crate) enum Claim {
    /// This instance holds the lease: run it.
    Held(Lease),
    /// The store does not answer: run it here, without a lease.
    Unavailable,
    /// Another instance ran it (or is running it past the follow deadline).
    Elsewhere,
}

/// A held lease.
pub(crate) struct Lease {
    fleet: Arc<Fleet>,
    name: String,
    done_ttl: Duration,
}

impl Fleet {
    pub(crate) fn new(
        store: Arc<dyn TokenStore>,
        ttl: Duration,
        namespace: impl Into<String>,
    ) -> Fleet {
        Fleet {
            store,
            holder: uuid::Uuid::new_v4().to_string(),
            ttl,
            namespace: namespace.into(),
        }
    }

    /// The lease name of `job`'s `tick` (and `tenant`). No secret, no
    /// tenant or job name in clear.
    pub(crate) fn lease_name(
        &self,
        job: &str,
        tick: OffsetDateTime,
        tenant: Option<&str>,
    ) -> String {
        let ms = tick.unix_timestamp_nanos() / 1_000_000;
        let mut name = format!("apptoken:job:{}:{ms}", short_hash(&[&self.namespace, job]));
        if let Some(t) = tenant {
            name.push(':');
            name.push_str(&short_hash(&[&self.namespace, &t.to_ascii_lowercase()]));
        }
        name
    }

    fn poll(&self) -> Duration {
        (self.ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// Takes the lease `name`, or waits for whoever holds it to finish (or
    /// die) until `deadline` (wall clock: leases expire in real time).
    pub(crate) async fn claim(self: &Arc<Self>, name: String, deadline: OffsetDateTime) -> Claim {
        let done = format!("{name}:done");
        let done_ttl = (deadline - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO)
            + self.ttl * 2;
        let is_done = |r: apptoken::Result<Option<Vec<u8>>>| r.map(|v| v.is_some());
        loop {
            match is_done(self.store.get(&done).await) {
                Ok(true) => return Claim::Elsewhere,
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %apptoken::Report::of(&e), "the shared store does not answer; running this tick here");
                    return Claim::Unavailable;
                }
            }
            match self.store.try_lease(&name, &self.holder, self.ttl).await {
                Ok(true) => {
                    // Finished between the two calls: done before released.
                    if let Ok(true) = is_done(self.store.get(&done).await) {
                        let _ = self.store.release_lease(&name, &self.holder).await;
                        return Claim::Elsewhere;
                    }
                    return Claim::Held(Lease {
                        fleet: Arc::clone(self),
                        name,
                        done_ttl,
                    });
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %apptoken::Report::of(&e), "the shared store does not answer; running this tick here");
                    return Claim::Unavailable;
                }
            }
            if OffsetDateTime::now_utc() >= deadline {
                return Claim::Elsewhere;
            }
            tokio::time::sleep(self.poll()).await;
        }
    }
}

impl Lease {
    /// Renews the lease every third of its TTL; returns when it is lost.
    /// Store errors are logged and the run goes on (Redis is no single
    /// point of failure).
    pub(crate) async fn lost(&self) {
        let f = &self.fleet;
        loop {
            tokio::time::sleep(f.ttl / 3).await;
            match f.store.renew_lease(&self.name, &f.holder, f.ttl).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    warn!(error = %apptoken::Report::of(&e), "cannot renew a job lease; going on")
                }
            }
        }
    }

    /// Fencing before a commit: `false` when the lease was lost.
    pub(crate) async fn still_held(&self) -> bool {
        let f = &self.fleet;
        match f.store.renew_lease(&self.name, &f.holder, f.ttl).await {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %apptoken::Report::of(&e), "cannot renew a job lease before committing; committing");
                true
            }
        }
    }

    /// The unit is finished (committed or failed): no other instance runs
    /// it again.
    pub(crate) async fn finish(self) {
        let f = &self.fleet;
        let done = format!("{}:done", self.name);
        let _ = f.store.put(&done, b"1", self.done_ttl).await;
        let _ = f.store.release_lease(&self.name, &f.holder).await;
    }

    /// Gives the unit back without marking it done (another instance may
    /// run it).
    pub(crate) async fn abandon(self) {
        let f = &self.fleet;
        let _ = f.store.release_lease(&self.name, &f.holder).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_hide_job_and_tenant() {
        let f = Fleet::new(
            Arc::new(apptoken::FileStore::open(std::env::temp_dir().join("unused.json")).unwrap()),
            Duration::from_secs(60),
            "client-id",
        );
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let a = f.lease_name("users", t, None);
        assert!(
            a.starts_with("apptoken:job:") && a.ends_with(":1700000000000"),
            "{a}"
        );
        assert!(!a.contains("users"));
        let b = f.lease_name("users", t, Some("contoso.example"));
        assert!(b.starts_with(&a) && !b.contains("contoso"));
        assert_ne!(f.lease_name("users", t + Duration::from_secs(1), None), a);
        assert_ne!(f.lease_name("groups", t, None), a);
    }
}
