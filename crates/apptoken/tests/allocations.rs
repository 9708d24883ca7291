//! Cache hits allocate nothing: counted by a counting global allocator
//! (`allocation-counter`, linked into this test binary only).

use std::sync::Arc;
use std::time::Duration;

use apptoken::{
    Authority, ConfidentialClient, SourceFuture, SourceRequest, TokenRequest, TokenResponse,
    TokenSource,
};
use futures::FutureExt;

#[derive(Debug)]
struct Instant;

impl TokenSource for Instant {
    fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> SourceFuture<'a> {
        Box::pin(async move {
            Ok(TokenResponse::new(
                "token".to_string(),
                Duration::from_secs(3600),
            ))
        })
    }
}

const SCOPE: &str = "api://alloc-api/.default";

fn tenant(i: usize) -> String {
    format!("tenant-{i:05}.example")
}

#[test]
fn cache_hits_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = ConfidentialClient::builder()
        .authority(Authority::parse("https://login.example/home.example").unwrap())
        .client_id("00000000-0000-0000-0000-0000000000a1")
        .token_source(Arc::new(Instant))
        .build()
        .unwrap();
    let names: Vec<String> = (0..20_000).map(tenant).collect();
    rt.block_on(async {
        for t in &names {
            client
                .acquire_token_with(TokenRequest::new([SCOPE]).tenant(t))
                .await
                .unwrap();
        }
    });
    let hit = |t: &str| {
        client
            .acquire_token_for_tenant(&[SCOPE], t)
            .now_or_never()
            .expect("a hit completes at once")
            .expect("a hit")
    };
    // Warm this thread's table of copies up to its full size, and make its
    // copy of the hot key.
    for t in &names[..10_000] {
        hit(t);
    }
    for _ in 0..3 {
        hit(&names[0]);
    }

    // A hot key: served by this thread's copy.
    let info = allocation_counter::measure(|| {
        for _ in 0..10_000 {
            drop(hit(&names[0]));
        }
    });
    assert_eq!(info.count_total, 0, "hot-key hits allocated: {info:?}");

    // Keys this thread has not hit yet: served by the shared index.
    let info = allocation_counter::measure(|| {
        for t in &names[10_000..] {
            drop(hit(t));
        }
    });
    assert_eq!(info.count_total, 0, "shared-index hits allocated: {info:?}");

    // Mixed case and the default tenant take the same path.
    let info = allocation_counter::measure(|| {
        drop(hit("TENANT-00007.EXAMPLE"));
    });
    assert_eq!(info.count_total, 0, "{info:?}");

    // A miss does allocate (the sanity check that counting works).
    let info = allocation_counter::measure(|| {
        rt.block_on(client.acquire_token_for_tenant(&[SCOPE], "cold.example"))
            .unwrap();
    });
    assert!(info.count_total > 0);
}
