//! apptoken's side of `bench/peers/run.sh`: against a running emulator
//! (its `emulator.json`), the cache-hit cost of `acquire_token` and the
//! token requests made by 1,000 concurrent cold callers. Prints one JSON
//! object.
//!
//! `cargo run --release -p apptoken --example peer_bench -- STATE_DIR/emulator.json [HITS] [CALLERS]`

use std::time::Instant;

use apptoken::{Authority, ClientSecret, ConfidentialClient, Credential};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(
        args.get(1)
            .ok_or("usage: peer_bench emulator.json [hits] [callers]")?,
    )?)?;
    let hits: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let callers: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let s = |k: &str| {
        info[k]
            .as_str()
            .map(str::to_string)
            .ok_or(format!("emulator.json has no {k}"))
    };
    let (host, tenant, client_id, secret, scope) = (
        s("authority_host")?,
        s("tenant_id")?,
        s("client_id")?,
        s("client_secret")?,
        s("sample_scope")?,
    );
    let ca = std::fs::read(s("ca_certificate_path")?)?;
    let client = || -> Result<ConfidentialClient, apptoken::Error> {
        ConfidentialClient::builder()
            .authority(Authority::from_host(&host, &tenant)?)
            .client_id(&client_id)
            .credential(Credential::secret(ClientSecret::new(secret.clone())))
            .add_root_certificate_pem(&ca)
            .build()
    };
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca)?)
        .build()?;
    let requests = || async {
        let stats: serde_json::Value = http
            .get(format!("{host}/_emulator/stats"))
            .send()
            .await?
            .json()
            .await?;
        let n: u64 = stats["token_requests"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter(|r| r["client_id"] == client_id.as_str())
                    .map(|r| r["count"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        Ok::<u64, reqwest::Error>(n)
    };

    let c = client()?;
    c.acquire_token(&[&scope]).await?;
    let start = Instant::now();
    for _ in 0..hits {
        std::hint::black_box(c.acquire_token(&[&scope]).await?);
    }
    let hit_ns = start.elapsed().as_nanos() as f64 / hits as f64;

    let before = requests().await?;
    let cold = client()?;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(callers));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (c, b, scope) = (cold.clone(), barrier.clone(), scope.clone());
            tokio::spawn(async move {
                b.wait().await;
                c.acquire_token(&[&scope]).await
            })
        })
        .collect();
    let mut errors = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(_))) {
            errors += 1;
        }
    }
    let cold_requests = requests().await? - before;
    println!(
        "{}",
        serde_json::json!({
            "client": concat!("apptoken ", env!("CARGO_PKG_VERSION")),
            "hit_ns": hit_ns, "cold_callers": callers, "cold_requests": cold_requests, "errors": errors,
        })
    );
    Ok(())
}
