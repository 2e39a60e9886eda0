//! The accept loop: HTTP/1 over plain TCP or built-in TLS, with the limits `axum::serve` does
//! not have.
//!
//! * Header-read timeout (`header_timeout_ms`): a client that does not finish a request's
//!   headers in time (slowloris), or keeps a connection idle that long between requests, is
//!   disconnected. With TLS the handshake gets the same time.
//! * Connection cap (`max_connections`): beyond it new connections are closed at once, so
//!   that slow or idle clients cannot exhaust sockets and tasks.
//! * Graceful shutdown: stop accepting, let requests in flight finish (the SSE streams end on
//!   `AppState::shutdown`), then return.

use crate::AppState;
use anyhow::{bail, Context, Result};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use tracing::{debug, warn};

/// Server side of built-in TLS from PEM files (certificate chain, private key), with the ring
/// provider (the one async-nats already brings).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Decrements the open-connections gauge when a connection ends, however it ends.
struct Open(AppState);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.counters.open_connections.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("nta_dashboard_open_connections").decrement(1.0);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for the connections.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    state: AppState,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            state.counters.connections_refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("nta_dashboard_connections_refused_total").increment(1);
            debug!(%peer, "connection cap reached: closing a new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        state.counters.open_connections.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("nta_dashboard_open_connections").increment(1.0);
        let open = Open(state.clone());
        let watcher = graceful.watcher();
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // Both released when the connection ends, however it ends.
            let (_slot, open) = (slot, open);
            let state = &open.0;
            match tls {
                None => serve_connection(stream, peer, app, state, header_timeout, watcher).await,
                Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => serve_connection(s, peer, app, state, header_timeout, watcher).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => timed_out(state, peer),
                },
            }
        });
    }
    drop(listener);
    // Ends the SSE streams, which would otherwise keep their connections open forever.
    state.shutdown.send_replace(true);
    graceful.shutdown().await;
    Ok(())
}

fn timed_out(state: &AppState, peer: SocketAddr) {
    state.counters.header_timeouts.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("nta_dashboard_header_timeouts_total").increment(1);
    debug!(%peer, "client too slow: connection closed");
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    state: &AppState,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The peer address for handlers that want it (login throttling), as `axum::serve` would
    // provide with `into_make_service_with_connect_info`.
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().call(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        if e.is_timeout() {
            timed_out(state, peer);
        } else {
            debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}
