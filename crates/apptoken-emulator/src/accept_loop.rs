//! The accept loop: plain TCP or TLS (tokio-rustls), HTTP/1.1 with hyper,
//! the axum router as the service, graceful shutdown.
//!
//! Invariants: a response carrying the `DropConnection` extension (set by
//! the fault middleware) is never sent: the service fails and hyper closes
//! the connection; a failed accept or TLS handshake never stops the loop;
//! on stop, the listener closes first and requests in flight finish.
//!
//! axum 0.8's `serve` has no TLS and no way to close a connection without an
//! answer, which fault injection needs; this loop does both.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::fault::DropConnection;

/// The error a service returns to make hyper close the connection unanswered.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

fn serve_connection<S>(
    io: S,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            let response = match app.oneshot(request).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(Dropped);
            }
            Ok::<_, Dropped>(response)
        }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    async move {
        if let Err(e) = watcher.watch(connection).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Serves `app` on `listener` until `stop` fires (or the task is aborted),
/// then lets requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let watcher = graceful.watcher();
                match tls.clone() {
                    None => {
                        connections.spawn(serve_connection(stream, app, watcher));
                    }
                    Some(acceptor) => {
                        connections.spawn(async move {
                            match acceptor.accept(stream).await {
                                Ok(tls_stream) => serve_connection(tls_stream, app, watcher).await,
                                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                            }
                        });
                    }
                }
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    connections.shutdown().await;
}
