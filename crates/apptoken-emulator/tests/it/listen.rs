//! The emulator refuses to expose its unauthenticated admin API by accident:
//! a non-loopback listen address needs `Config::with_allow_remote`. No test
//! here opens a non-loopback socket.

use apptoken_emulator::{Config, Emulator, Error};

/// `0.0.0.0:P` where `P` is held on 127.0.0.1 by this test, and an address of
/// TEST-NET-1 that no machine has: were the emulator to bind before deciding,
/// it would fail with `AddrInUse`/`AddrNotAvailable` ([`Error::Bind`]), never
/// open a socket; the refusal ([`Error::RemoteListen`]) shows that it decides
/// first.
#[tokio::test]
async fn non_loopback_addresses_are_refused_before_binding() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    for listen in [format!("0.0.0.0:{port}"), "192.0.2.1:0".to_string()] {
        let listen = listen.parse().expect("addr");
        let config = Config::embedded(dir.path()).expect("config");
        match Emulator::start(config, listen).await {
            Err(Error::RemoteListen { addr }) => assert_eq!(addr, listen),
            Err(other) => panic!("{listen}: expected RemoteListen, got {other:?}"),
            Ok(running) => panic!("{listen}: started at {}", running.base_url()),
        }
        assert!(
            !dir.path().join("emulator.json").exists(),
            "{listen}: state files written"
        );
    }
    let error = Emulator::check_listen(format!("0.0.0.0:{port}").parse().expect("addr"), false)
        .expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("not a loopback address") && message.contains("--allow-remote"),
        "{message}"
    );
    // Loopback needs no flag.
    let config = Config::embedded(dir.path()).expect("config");
    let running = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("loopback starts");
    running.shutdown().await;
    drop(held);
}
