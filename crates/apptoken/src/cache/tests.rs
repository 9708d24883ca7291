//! The cache's unit tests: key folding against the standard library, the
//! index against a `HashMap` model, per-thread copies and their supersede
//! (with real threads; the protocol itself is model-checked in
//! `tests/supersede_model.rs`), eviction, the schedule and the throttle
//! memory through the façade.
//!
//! Over 500 lines: one file of tests for the façade's behaviour, kept with
//! the helpers they share rather than spread over the parts.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;
use secrecy::SecretString;

use super::key::{eq_lower, lower8};
use super::*;

fn owned(tenant: &str, scope: &str) -> CacheKey {
    CacheKey::new(Arc::from("https://h"), Arc::from("c"), tenant, scope)
}

fn token(secret: &str, tenant: &str, expires_on: OffsetDateTime) -> AccessToken {
    AccessToken::new(
        SecretString::from(secret.to_string()),
        "Bearer".into(),
        expires_on,
        None,
        None,
        tenant.into(),
        vec![],
    )
}

/// Stores `token` for `tenant` and `api://x/.default`.
fn store_token(
    cache: &Cache,
    tenant: &str,
    token: AccessToken,
    refresh_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) {
    cache.store(
        owned(tenant, "api://x/.default"),
        token,
        refresh_at,
        true,
        now,
        Authority::parse("https://h.example/t.example").unwrap(),
        Scopes::new(["api://x/.default"]).unwrap(),
    );
}

fn store(
    cache: &Cache,
    tenant: &str,
    expires_on: OffsetDateTime,
    refresh_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) {
    store_token(cache, tenant, token("t", "t", expires_on), refresh_at, now);
}

fn r<'a>(tenant: &'a str, scope: &'a str) -> KeyRef<'a> {
    KeyRef {
        host: "https://h",
        tenant,
        client_id: "c",
        scope,
        extra: "",
        exact: false,
    }
}

proptest! {
    #[test]
    fn borrowed_and_owned_keys_hash_and_compare_alike(tenant in "[A-Za-z0-9.-]{1,80}", scope in "[A-Za-z0-9:/._-]{1,120}") {
        let s = foldhash::fast::RandomState::default();
        let key = owned(&tenant, &scope);
        let upper = tenant.to_ascii_uppercase();
        let borrowed = r(&upper, &scope);
        prop_assert_eq!(s.hash_one(&key), s.hash_one(borrowed));
        prop_assert!(borrowed.parts_eq(&key));
    }

    #[test]
    fn eight_bytes_are_lower_cased_like_the_standard_library(x in any::<u64>()) {
        let want = u64::from_le_bytes(x.to_le_bytes().map(|b| b.to_ascii_lowercase()));
        prop_assert_eq!(lower8(x), want);
    }

    #[test]
    fn keys_compare_like_eq_ignore_ascii_case(a in proptest::collection::vec(any::<u8>(), 0..40), b in proptest::collection::vec(any::<u8>(), 0..40), same in any::<bool>()) {
        let b = if same { a.to_ascii_uppercase() } else { b };
        let lower = b.to_ascii_lowercase();
        prop_assert_eq!(eq_lower(&a, &lower), a.eq_ignore_ascii_case(&lower));
    }

    #[test]
    fn moving_the_border_between_tenant_and_scope_makes_another_key(t in "[a-z]{2,20}", scope in "[a-z]{1,20}", cut in 1usize..20) {
        let cut = cut.min(t.len() - 1);
        let (t1, rest) = t.split_at(cut);
        let s2 = format!("{rest}{scope}");
        prop_assert_ne!(owned(&t, &scope), owned(t1, &s2));
        prop_assert!(!r(t1, &s2).parts_eq(&owned(&t, &scope)));
    }

    /// The shared index against a `HashMap` model: stores, replacements,
    /// removals (tombstones), growth and shrinking rebuilds.
    #[test]
    fn the_index_behaves_like_a_map(ops in proptest::collection::vec((0u8..3, 0u16..300), 1..600)) {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let mut model: HashMap<u16, OffsetDateTime> = HashMap::new();
        for (i, (op, k)) in ops.into_iter().enumerate() {
            let tenant = format!("t{k}");
            match op {
                0 | 1 => {
                    let exp = now + Duration::hours(1) + Duration::seconds(i as i64);
                    store(&cache, &tenant, exp, None, now);
                    model.insert(k, exp);
                }
                _ => {
                    let _w = cache.writer.lock().unwrap();
                    let table = cache.table.load_full();
                    let gone = table.remove_where(|n| n.meta.key.as_ref().is_some_and(|key| key.tenant() == tenant));
                    cache.len.fetch_sub(gone.len(), Ordering::Relaxed);
                    prop_assert_eq!(gone.len(), usize::from(model.remove(&k).is_some()));
                }
            }
            prop_assert_eq!(cache.len(), model.len());
        }
        // Force a rebuild the way a sweep does, then check every key.
        cache.maybe_sweep(now, 4096);
        prop_assert_eq!(cache.len(), model.len());
        for k in 0u16..300 {
            let tenant = format!("t{k}");
            let found = cache.get(&r(&tenant, "api://x/.default"));
            prop_assert_eq!(found.map(|n| n.expires_on), model.get(&k).copied());
        }
        let table = cache.table.load();
        prop_assert!(table.used.load(Ordering::Relaxed) * 8 <= table.capacity() * 7);
    }
}

fn exact(scope: &str, extra: &str) -> CacheKey {
    CacheKey::with_target(
        Arc::from("https://h"),
        Arc::from("c"),
        "",
        scope,
        extra,
        true,
    )
}

fn exact_ref<'a>(scope: &'a str, extra: &'a str) -> KeyRef<'a> {
    KeyRef {
        extra,
        exact: true,
        ..r("", scope)
    }
}

proptest! {
    /// A generic provider's scopes are case-sensitive: `api:Read` is not
    /// `api:read`, yet the two hash alike (the hash folds case) and an
    /// exact key still finds itself.
    #[test]
    fn exact_keys_compare_byte_for_byte(scope in "[A-Za-z:._-]{1,60}", extra in "[A-Za-z:/. =-]{0,60}") {
        let s = foldhash::fast::RandomState::default();
        let key = exact(&scope, &extra);
        prop_assert!(exact_ref(&scope, &extra).parts_eq(&key));
        prop_assert_eq!(s.hash_one(&key), s.hash_one(exact_ref(&scope, &extra)));
        let upper = scope.to_ascii_uppercase();
        prop_assert_eq!(exact_ref(&upper, &extra).parts_eq(&key), upper == scope);
        prop_assert_eq!(s.hash_one(exact_ref(&upper, &extra)), s.hash_one(&key));
        // An exact key never equals a case-folded one of the same text.
        prop_assert!(!r("", &scope).parts_eq(&key));
        prop_assert!(!exact_ref(&scope, &extra).parts_eq(&owned("", &scope)));
        // Extras compare exactly, and moving text between scope and extra is another key.
        let other = format!("{extra}x");
        prop_assert!(!exact_ref(&scope, &other).parts_eq(&key));
        let joined = format!("{scope}{extra}");
        if !extra.is_empty() {
            prop_assert!(!exact_ref(&joined, "").parts_eq(&key));
        }
        // The owned key keeps its parts.
        prop_assert_eq!(key.scope(), scope.as_str());
        prop_assert_eq!(key.extra(), extra.as_str());
    }

    #[test]
    fn different_tenants_never_share_a_key(a in "[a-z0-9.-]{1,40}", b in "[a-z0-9.-]{1,40}") {
        prop_assume!(!a.eq_ignore_ascii_case(&b));
        prop_assert_ne!(owned(&a, "api://x/.default"), owned(&b, "api://x/.default"));
        prop_assert!(!r(&a, "api://x/.default").parts_eq(&owned(&b, "api://x/.default")));
    }
}

/// Readers on two threads look up while a writer replaces tokens,
/// evicts (a bound of 64) and rebuilds the index: every hit is a token
/// of the key asked for, and nothing panics.
#[test]
fn readers_always_get_their_own_key_while_writers_churn() {
    let cache = Arc::new(Cache::new(Some(64)));
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|seed| {
            let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut hits = 0u64;
                let mut i = seed;
                while !stop.load(Ordering::Relaxed) || hits == 0 {
                    i = (i + 7) % 200;
                    let tenant = format!("T{i}");
                    if let Lookup::Hit { token, .. } = cache.lookup(
                        &r(&tenant, "API://X/.default"),
                        unix_ms(now),
                        Duration::seconds(30),
                    ) {
                        assert_eq!(token.tenant(), format!("t{i}"));
                        hits += 1;
                    }
                }
                hits
            })
        })
        .collect();
    for round in 0..20_000i64 {
        let i = round % 200;
        let tenant = format!("t{i}");
        store_token(
            &cache,
            &tenant,
            token(&format!("token-{round}"), &tenant, now + Duration::hours(1)),
            None,
            now + Duration::milliseconds(round),
        );
        assert!(cache.len() <= 64);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

/// A token replaced by a store on one thread is never served again by
/// another thread that hears of the store afterwards, though that
/// thread holds its own copy of it.
#[test]
fn a_replaced_token_is_not_served_from_another_threads_copy() {
    let cache = Arc::new(Cache::new(None));
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    let (to_reader, reader_rx) = std::sync::mpsc::channel::<u32>();
    let (to_writer, writer_rx) = std::sync::mpsc::channel::<()>();
    let reader = {
        let cache = Arc::clone(&cache);
        std::thread::spawn(move || {
            for round in reader_rx {
                for _ in 0..3 {
                    let t = hit(cache.lookup(
                        &r("t", "api://x/.default"),
                        unix_ms(now),
                        Duration::seconds(30),
                    ));
                    assert_eq!(t.secret(), format!("token-{round}"));
                }
                to_writer.send(()).unwrap();
            }
        })
    };
    for round in 0..200u32 {
        store_token(
            &cache,
            "t",
            token(&format!("token-{round}"), "t", now + Duration::hours(1)),
            None,
            now,
        );
        to_reader.send(round).unwrap();
        writer_rx.recv().unwrap();
    }
    drop(to_reader);
    reader.join().unwrap();
}

#[test]
fn an_evicted_token_is_not_served_from_a_threads_copy() {
    let cache = Cache::new(Some(10));
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    store(&cache, "first", now + Duration::hours(1), None, now);
    let k = r("first", "api://x/.default");
    let ms = unix_ms(now);
    for _ in 0..3 {
        hit(cache.lookup(&k, ms, Duration::seconds(30)));
    }
    for i in 0..20 {
        store(
            &cache,
            &format!("t{i}"),
            now + Duration::hours(1),
            None,
            now + Duration::seconds(i + 1),
        );
    }
    assert!(matches!(
        cache.lookup(&k, ms, Duration::seconds(30)),
        Lookup::Miss
    ));
}

#[test]
fn freshness_margin_and_refresh_claims() {
    let cache = Cache::new(None);
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    store(
        &cache,
        "a",
        now + Duration::hours(1),
        Some(now + Duration::minutes(30)),
        now,
    );
    let k = r("A", "API://X/.default");
    assert!(matches!(
        cache.lookup(&k, unix_ms(now), Duration::seconds(30)),
        Lookup::Hit { refresh: false, .. }
    ));
    assert!(matches!(
        cache.lookup(
            &r("b", "api://x/.default"),
            unix_ms(now),
            Duration::seconds(30)
        ),
        Lookup::Miss
    ));
    let later = now + Duration::minutes(31);
    assert!(matches!(
        cache.lookup(&k, unix_ms(later), Duration::seconds(30)),
        Lookup::Hit { refresh: true, .. }
    ));
    assert!(matches!(
        cache.lookup(&k, unix_ms(later), Duration::seconds(30)),
        Lookup::Hit { refresh: false, .. }
    ));
    assert!(matches!(
        cache.lookup(
            &k,
            unix_ms(later + Duration::seconds(31)),
            Duration::seconds(30)
        ),
        Lookup::Hit { refresh: true, .. }
    ));
    assert!(matches!(
        cache.lookup(
            &k,
            unix_ms(now + Duration::minutes(55)),
            Duration::seconds(30)
        ),
        Lookup::Stale(_)
    ));
}

fn hit(l: Lookup) -> AccessToken {
    match l {
        Lookup::Hit { token, .. } => token,
        _ => panic!("not a hit"),
    }
}

#[test]
fn per_thread_copies_follow_new_tokens_and_never_mix_caches() {
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    let (a, b) = (Cache::new(None), Cache::new(None));
    store(&a, "t", now + Duration::hours(1), None, now);
    store(&b, "t", now + Duration::hours(1), None, now);
    let k = r("t", "api://x/.default");
    let ms = unix_ms(now);
    let first = hit(a.lookup(&k, ms, Duration::seconds(30)));
    // the second hit makes this thread's copy; the third is served from it
    let copy = hit(a.lookup(&k, ms, Duration::seconds(30)));
    let again = hit(a.lookup(&k, ms, Duration::seconds(30)));
    assert!(first.is_same_token(&copy) && copy.is_same_token(&again));
    // the other cache has its own token, never this thread's copy of a's
    let other = hit(b.lookup(&k, ms, Duration::seconds(30)));
    let other = hit(b.lookup(&k, ms, Duration::seconds(30)))
        .is_same_token(&other)
        .then_some(other)
        .unwrap();
    assert!(!other.is_same_token(&first));
    // a new token for the key replaces the copy at once
    store(&a, "t", now + Duration::hours(2), None, now);
    let new = hit(a.lookup(&k, ms, Duration::seconds(30)));
    assert!(!new.is_same_token(&first));
    assert!(hit(a.lookup(&k, ms, Duration::seconds(30))).is_same_token(&new));
    // and a copy stops being served when its token is no longer fresh
    let late = unix_ms(now + Duration::hours(2) - Duration::minutes(4));
    assert!(matches!(
        a.lookup(&k, late, Duration::seconds(30)),
        Lookup::Stale(_)
    ));
}

#[test]
fn a_dropped_caches_copies_are_released_at_the_threads_next_miss() {
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    let ms = unix_ms(now);
    let a = Cache::new(None);
    let tenants: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    for t in &tenants {
        store(&a, t, now + Duration::hours(1), None, now);
    }
    let mut weak = Vec::new();
    for t in &tenants {
        let k = r(t, "api://x/.default");
        for _ in 0..2 {
            hit(a.lookup(&k, ms, Duration::seconds(30)));
        }
        // the third hit is served by this thread's copy
        weak.push(Arc::downgrade(
            &hit(a.lookup(&k, ms, Duration::seconds(30))).node,
        ));
    }
    let held = thread_copies();
    assert!(held >= 4, "{held} copies");
    drop(a);
    // A hit from a copy looks at nothing shared: the copies are still
    // held (never served: they are superseded) until this thread misses.
    assert_eq!(thread_copies(), held);
    let b = Cache::new(None);
    assert!(matches!(
        b.lookup(&r("other", "api://x/.default"), ms, Duration::seconds(30)),
        Lookup::Miss
    ));
    assert_eq!(thread_copies(), 0);
    assert!(
        weak.iter().all(|w| w.upgrade().is_none()),
        "a copy's token is still alive"
    );
}

#[test]
fn the_bound_keeps_the_newest_entries() {
    let cache = Cache::new(Some(100));
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    for i in 0..1000 {
        store(
            &cache,
            &format!("t{i}"),
            now + Duration::hours(1),
            None,
            now + Duration::seconds(i),
        );
        assert!(cache.len() <= 100, "{}", cache.len());
    }
    assert!(matches!(
        cache.lookup(
            &r("t999", "api://x/.default"),
            unix_ms(now),
            Duration::seconds(30)
        ),
        Lookup::Hit { .. }
    ));
    assert!(matches!(
        cache.lookup(
            &r("t0", "api://x/.default"),
            unix_ms(now),
            Duration::seconds(30)
        ),
        Lookup::Miss
    ));
}

#[test]
fn expired_entries_are_swept() {
    let cache = Cache::new(None);
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    for i in 0..4095 {
        store(
            &cache,
            &format!("t{i}"),
            now + Duration::hours(1),
            None,
            now,
        );
    }
    assert_eq!(cache.len(), 4095);
    store(
        &cache,
        "late",
        now + Duration::hours(5),
        None,
        now + Duration::hours(2),
    );
    assert_eq!(cache.len(), 1);
}

#[test]
fn throttle_memory_expires() {
    let cache = Cache::new(None);
    let now = OffsetDateTime::UNIX_EPOCH;
    let key = owned("a", "api://x/.default");
    cache.throttle(
        key.clone(),
        now + Duration::seconds(60),
        crate::error::config(crate::error::ConfigErrorKind::Invalid, "throttled"),
        now,
    );
    assert!(cache.throttled(&key, now + Duration::seconds(59)).is_some());
    assert!(cache.throttled(&key, now + Duration::seconds(60)).is_none());
}

#[test]
fn throttle_memory_stays_bounded_over_a_hundred_thousand_tenants() {
    let cache = Cache::new(None);
    let start = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    let mut most = 0;
    // 100,000 tenants throttled one after another, each for a minute,
    // one per second: about 60 are throttled at any time.
    for i in 0..100_000i64 {
        let now = start + Duration::seconds(i);
        cache.throttle(
            owned(&format!("tenant-{i}"), "api://x/.default"),
            now + Duration::seconds(60),
            crate::error::config(crate::error::ConfigErrorKind::Invalid, "throttled"),
            now,
        );
        most = most.max(cache.throttled_len());
    }
    assert!(most <= 2 * 64 + 1, "the throttle memory held {most} keys");
    // The last one is still throttled, an early one is not.
    let end = start + Duration::seconds(100_000);
    assert!(
        cache
            .throttled(&owned("tenant-99999", "api://x/.default"), end)
            .is_some()
    );
    assert!(
        cache
            .throttled(&owned("tenant-5", "api://x/.default"), end)
            .is_none()
    );
}

#[test]
fn the_schedule_orders_refreshes() {
    let cache = Cache::new(None);
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    store(
        &cache,
        "late",
        now + Duration::hours(2),
        Some(now + Duration::hours(1)),
        now,
    );
    store(
        &cache,
        "early",
        now + Duration::hours(2),
        Some(now + Duration::minutes(10)),
        now,
    );
    assert_eq!(cache.next_due(), Some(now + Duration::minutes(10)));
    assert!(cache.take_due(now).is_empty());
    let due = cache.take_due(now + Duration::minutes(10));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].0.tenant(), "early");
    assert!(cache.entry_if(&due[0].0, due[0].1).is_some());
    assert!(cache.entry_if(&due[0].0, due[0].1 + 100).is_none());
}
