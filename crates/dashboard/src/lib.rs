//! Web dashboard and JSON API, served by `nta run --target dashboard`.
//!
//! * Pages (one embedded single-page app, no build step, no CDN): overview, alerts (live over
//!   Server-Sent Events fed from JetStream `NTA_ALERTS`), alert detail, hosts, packets.
//! * JSON API for everything the pages show, described by `/api/openapi.json`.
//! * Reads the tables of the ingestor (`raw_packets`), the windower (`window_features`) and the
//!   predictor (`predictions`, `alerts`, `alert_windows`); runs no migrations of its own or
//!   theirs. A table that does not exist yet gives an empty answer with
//!   `"status": "missing_table"`, never an error page.
//! * Authentication: password login (HttpOnly, SameSite=Strict session cookie, CSRF token for
//!   POSTs, throttled) and/or a bearer token for API clients; see [`auth`] and [`throttle`].
//! * Served by our own accept loop ([`serve`]): header-read timeout, connection cap, optional
//!   built-in TLS; the SSE streams have a cap of their own ([`live`]).

pub mod api;
pub mod assets;
pub mod auth;
mod config;
pub mod live;
pub mod serve;
pub mod sql;
pub mod throttle;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Semaphore};
use tracing::{info, warn};

pub use config::{DashboardConfig, DEFAULT_LISTEN};

/// Counters exported on the dashboard's public `/metrics` (and mirrored in the process-wide
/// metrics). Login failures are deliberately not among them: see [`throttle`].
#[derive(Default)]
pub struct Counters {
    pub http_requests: AtomicU64,
    pub alert_events: AtomicU64,
    pub sse_clients: AtomicU64,
    pub sse_refused: AtomicU64,
    pub open_connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub header_timeouts: AtomicU64,
}

pub struct Inner {
    pub pool: deadpool_postgres::Pool,
    pub nats: async_nats::Client,
    pub auth: auth::Auth,
    /// Alert events as read from `NTA_ALERTS` (stream sequence, JSON text), fanned out to SSE
    /// clients.
    pub alerts_tx: broadcast::Sender<live::LiveEvent>,
    pub pipeline: tokio::sync::RwLock<live::PipelineSnapshot>,
    pub counters: Counters,
    /// One permit per live-alert stream (`max_sse_streams`).
    pub sse_slots: Arc<Semaphore>,
    /// Turns true when the server shuts down, ending the (endless) SSE streams so that the
    /// graceful shutdown does not wait for browsers to disconnect.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Limits of `/api/pcap` (`pcap_max_mb`, `pcap_max_range_s`).
    pub pcap_max_bytes: u64,
    pub pcap_max_range_ns: i64,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state: a connection pool (connections are made on first use, so the
    /// dashboard starts while PostgreSQL is down) and a NATS client that keeps retrying in the
    /// background. Fails only on a malformed configuration or an unsafe auth setup.
    pub async fn new(cfg: &DashboardConfig) -> Result<AppState> {
        let auth = auth::Auth::from_config(cfg);
        if auth.is_open() {
            if !cfg.listen.ip().is_loopback() {
                bail!(
                    "refusing to serve the dashboard on {} without authentication: set \
                     NTA_DASHBOARD_PASSWORD and/or NTA_DASHBOARD_TOKEN (or listen on a loopback address)",
                    cfg.listen
                );
            }
            warn!(listen = %cfg.listen, "dashboard has no password and no token: open to anyone who can reach this loopback address");
        }
        let db = store::DbConfig::parse(&cfg.database_url)?;
        let tls = db.tls()?;
        let mut pg = db.pg;
        // A runaway query (e.g. a 24 h search over a huge table) must not hold a connection forever.
        pg.options("-c statement_timeout=20000 -c application_name=nta-dashboard");
        pg.connect_timeout(Duration::from_secs(5));
        let mgr = deadpool_postgres::Manager::from_config(
            pg,
            tls,
            deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
        );
        let pool = deadpool_postgres::Pool::builder(mgr)
            .max_size(8)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("building the PostgreSQL pool")?;
        let nats = bus::connect(&cfg.nats, "nta-dashboard").await?;
        let (alerts_tx, _) = broadcast::channel(1024);
        Ok(AppState(Arc::new(Inner {
            pool,
            nats,
            auth,
            alerts_tx,
            pipeline: tokio::sync::RwLock::new(live::PipelineSnapshot::default()),
            counters: Counters::default(),
            sse_slots: Arc::new(Semaphore::new(cfg.max_sse_streams)),
            shutdown: tokio::sync::watch::channel(false).0,
            pcap_max_bytes: (cfg.pcap_max_mb.max(0.0) * 1e6) as u64,
            pcap_max_range_ns: (cfg.pcap_max_range_s as i64).saturating_mul(1_000_000_000),
        })))
    }

    /// Starts the background tasks: the `NTA_ALERTS` follower and the pipeline sampler.
    /// They stop when the returned handles are aborted (or the runtime ends).
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![tokio::spawn(live::relay_alerts(self.clone())), tokio::spawn(live::sample_pipeline(self.clone()))]
    }
}

/// All routes. Every route but `/health`, `/metrics`, `/login` and `/assets/*` requires a
/// session cookie or the bearer token (unless the dashboard runs open on loopback).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/login", get(assets::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{*path}", get(assets::asset))
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/session", get(auth::session_info))
        .route("/api/last10", get(api::last10))
        .route("/api/raw_packets/last/{count}", get(api::raw_packets_last))
        .route("/api/alltraffic", get(api::packets))
        .route("/api/packets", get(api::packets))
        .route("/api/packets.csv", get(api::packets_csv))
        .route("/api/traffic", get(api::traffic))
        .route("/api/protocols", get(api::protocols))
        .route("/api/top-sources", get(api::top_sources))
        .route("/api/top-destinations", get(api::top_destinations))
        .route("/api/top-ports", get(api::top_ports))
        .route("/api/pipeline", get(api::pipeline))
        .route("/api/data-extent", get(api::data_extent))
        .route("/api/alerts", get(api::alerts))
        .route("/api/alerts/summary", get(api::alerts_summary))
        .route("/api/alerts/stream", get(live::alerts_stream))
        .route("/api/alerts/{id}", get(api::alert_detail))
        .route("/api/alerts/{id}/resolve", post(api::resolve_alert))
        .route("/api/hosts/{ip}", get(api::host))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{name}", get(api::run_detail).delete(api::delete_run))
        .route("/api/runs/{name}/alerts", get(api::run_alerts))
        .route("/api/pcap", get(api::pcap))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_auth))
        .layer(axum::middleware::from_fn_with_state(state.clone(), common_headers))
        .with_state(state)
}

/// Security headers on every response (a strict CSP: scripts and styles only from our own
/// embedded files, so even a markup-injection bug could not run inline script) and counting.
async fn common_headers(State(state): State<AppState>, req: Request<axum::body::Body>, next: Next) -> Response {
    state.counters.http_requests.fetch_add(1, Ordering::Relaxed);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Serves the dashboard on `cfg.listen` until `shutdown` completes.
pub async fn run(cfg: DashboardConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(serve::tls_acceptor(cert, key)?),
        (None, None) => None,
        _ => bail!("dashboard.tls_cert and dashboard.tls_key go together: set both or neither"),
    };
    register_metrics();
    let state = AppState::new(&cfg).await?;
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    let tasks = state.spawn_background();
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(listen = %listener.local_addr()?, scheme, auth = state.auth.mode(), "dashboard listening");
    // Serving is all the dashboard needs: it reaches NATS and PostgreSQL per request, and says
    // on its pages when they are down.
    bus::startup::set_ready("dashboard", true);
    let app = router(state.clone());
    let res =
        serve::serve(listener, tls, app, state.clone(), cfg.header_timeout(), cfg.max_connections, shutdown).await;
    for t in tasks {
        t.abort();
    }
    res.context("serving the dashboard")
}

/// The dashboard's process-wide metrics (counted where they happen) exist from start-up at 0.
fn register_metrics() {
    bus::startup::counters_from_zero(&[
        "nta_dashboard_connections_refused_total",
        "nta_dashboard_header_timeouts_total",
        "nta_dashboard_sse_refused_total",
        "nta_dashboard_login_failures_total",
        "nta_dashboard_login_lockouts_total",
        "nta_dashboard_login_refused_total",
        "nta_dashboard_alert_events_malformed_total",
    ]);
    for name in ["nta_dashboard_open_connections", "nta_dashboard_sse_clients"] {
        metrics::gauge!(name).increment(0.0);
    }
}
