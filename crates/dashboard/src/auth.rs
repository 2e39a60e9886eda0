//! Authentication.
//!
//! * Browsers: `POST /login` with the configured password (`NTA_DASHBOARD_PASSWORD`) gets a
//!   random 256-bit session id in an `HttpOnly; SameSite=Strict` cookie (`Secure` with TLS or
//!   `secure_cookies`; 12 h at most, ended sooner after `session_idle_s` unused; kept in
//!   memory: a restart signs everyone out). Each session has a CSRF token (`GET /api/session`)
//!   that cookie-authenticated POSTs must send as `X-CSRF-Token`; POSTs whose `Origin` names
//!   another host are refused as well. Failed logins are throttled per client, see
//!   [`crate::throttle`].
//! * API clients: `Authorization: Bearer <NTA_DASHBOARD_TOKEN>`; no CSRF token needed, since a
//!   browser never attaches it on its own.
//! * Secrets are compared in constant time (`subtle`).
//! * Neither configured: open (only allowed on a loopback address, see `AppState::new`). Then
//!   the `Host` must be a loopback name or address (a DNS-rebinding page names its own host),
//!   and state-changing requests must come from the same origin (any web page the analyst
//!   visits could otherwise POST to the open dashboard): see [`open_mode_refusal`].

use crate::sql::ApiError;
use crate::throttle::{Locked, Throttle};
use crate::AppState;
use axum::extract::{ConnectInfo, Form, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "nta_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

struct Session {
    csrf: String,
    expires: Instant,
    last_used: Instant,
}

impl Session {
    /// Neither past its lifetime nor unused for `idle`.
    fn live(&self, now: Instant, idle: Duration) -> bool {
        self.expires > now && now.duration_since(self.last_used) < idle
    }
}

pub struct Auth {
    password: Option<String>,
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    /// A session unused this long is over.
    idle: Duration,
    /// Session cookies get `Secure` (built-in TLS, or TLS terminated by a proxy).
    secure_cookies: bool,
    pub throttle: Throttle,
}

/// A bearer token was sent and is not the configured one.
#[derive(Debug)]
pub struct BadBearer;

/// How a request was authenticated.
#[derive(Debug, Clone)]
pub enum Principal {
    Open,
    Bearer,
    Cookie { csrf: String },
}

fn ct_eq(a: &str, b: &str) -> bool {
    // Length is not secret enough to matter; the content comparison is constant-time.
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Auth {
    /// Default policy (tests); the server uses [`Auth::from_config`].
    pub fn new(password: Option<String>, token: Option<String>) -> Auth {
        Self::from_config(&crate::DashboardConfig { password, token, ..Default::default() })
    }

    pub fn from_config(cfg: &crate::DashboardConfig) -> Auth {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Auth {
            password: nonempty(&cfg.password),
            token: nonempty(&cfg.token),
            sessions: Mutex::new(HashMap::new()),
            idle: cfg.session_idle(),
            secure_cookies: cfg.cookies_secure(),
            throttle: Throttle::new(cfg.login_max_failures, cfg.login_lockout()),
        }
    }

    pub fn is_open(&self) -> bool {
        self.password.is_none() && self.token.is_none()
    }

    pub fn mode(&self) -> &'static str {
        match (&self.password, &self.token) {
            (None, None) => "open",
            (Some(_), None) => "password",
            (None, Some(_)) => "token",
            (Some(_), Some(_)) => "password+token",
        }
    }

    fn check_password(&self, given: &str) -> bool {
        self.password.as_deref().is_some_and(|p| ct_eq(p, given))
    }

    fn new_session(&self) -> String {
        let id = random_hex(32);
        let now = Instant::now();
        let idle = self.idle;
        let mut s = self.sessions.lock().unwrap();
        s.retain(|_, v| v.live(now, idle));
        s.insert(id.clone(), Session { csrf: random_hex(32), expires: now + SESSION_TTL, last_used: now });
        id
    }

    /// The CSRF token of a live session, which counts as used now.
    fn session(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap();
        let v = s.get_mut(id)?;
        if !v.live(now, self.idle) {
            s.remove(id);
            return None;
        }
        v.last_used = now;
        Some(v.csrf.clone())
    }

    /// `Set-Cookie` value carrying `value` (empty and expired when signing out).
    fn cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let c = format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}; Max-Age={}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&c).expect("hex id and fixed attributes")
    }

    fn end_session(&self, id: &str) {
        self.sessions.lock().unwrap().remove(id);
    }

    /// Who sent `headers`: `Ok(None)` when nobody (no or an unknown cookie), `Err` when a bearer
    /// token was sent and is wrong (never fall back to the cookie then).
    pub fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, BadBearer> {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let given = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
            return match (&self.token, given) {
                (Some(t), Some(g)) if ct_eq(t, g) => Ok(Some(Principal::Bearer)),
                _ => Err(BadBearer),
            };
        }
        if self.is_open() {
            return Ok(Some(Principal::Open));
        }
        Ok(session_cookie(headers).and_then(|id| self.session(&id)).map(|csrf| Principal::Cookie { csrf }))
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// False when the request carries an `Origin` (or, lacking it, a `Referer`) of another host
/// than its `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(h) => h,
        None => return false,
    };
    let origin = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|o| o.to_str().ok());
    match origin {
        None => true, // non-browser client, or a browser that sent neither (same-origin GET-like)
        Some("null") => false,
        Some(o) => {
            let rest = o.split_once("://").map(|(_, r)| r).unwrap_or("");
            let authority = rest.split('/').next().unwrap_or("");
            authority.eq_ignore_ascii_case(host)
        }
    }
}

/// Whether a `Host` header names this machine's loopback: `localhost`, `127.0.0.0/8` or
/// `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || port.starts_with(':') => inside,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why an open-mode request is refused, if it is: a `Host` that is not loopback (DNS
/// rebinding: the browser sends the attacker's name), or a state-changing request from another
/// origin (`Sec-Fetch-Site` other than same-origin/none, or an `Origin`/`Referer` naming
/// another host). Clients that send neither header (curl, scripts) are not browsers on a
/// foreign page, and pass.
pub fn open_mode_refusal(method: &Method, headers: &HeaderMap) -> Option<&'static str> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !loopback_host(host) {
        return Some("this dashboard runs without authentication and answers only to a loopback Host (localhost, 127.0.0.1, [::1])");
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s != "same-origin" && s != "none") || !same_origin(headers) {
        return Some("cross-origin request refused");
    }
    None
}

fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/metrics" | "/login" | "/favicon.ico") || path.starts_with("/assets/")
}

/// Middleware: lets public paths through, requires a principal elsewhere, and CSRF-checks
/// state-changing requests of cookie sessions.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if state.auth.is_open() {
        if let Some(why) = open_mode_refusal(req.method(), req.headers()) {
            return ApiError::Forbidden(why.into()).into_response();
        }
    }
    let path = req.uri().path().to_string();
    if is_public(&path) {
        return next.run(req).await;
    }
    let principal = match state.auth.principal(req.headers()) {
        Ok(Some(p)) => p,
        Ok(None) if req.method() == Method::GET && !path.starts_with("/api/") => {
            return Redirect::to("/login").into_response();
        }
        _ => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "unauthorized", "message": "sign in at /login or send Authorization: Bearer <token>"})),
            )
                .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Principal::Cookie { csrf } = &principal {
            if !same_origin(req.headers()) {
                return ApiError::Forbidden("cross-origin request refused".into()).into_response();
            }
            let given = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !ct_eq(csrf, given) {
                return ApiError::Forbidden("missing or wrong X-CSRF-Token (GET /api/session gives it)".into())
                    .into_response();
            }
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    password: String,
}

/// `POST /login` (form field `password`): sets the session cookie and redirects to `/`.
/// Throttled per client address ([`crate::throttle`]): a failure answers after a growing
/// delay, a locked-out client gets 429 with `Retry-After`.
pub async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return ApiError::Forbidden("cross-origin login refused".into()).into_response();
    }
    // Without the peer address (a router served by other means) every client shares one.
    let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0 .0.ip());
    let attempt = match state.auth.throttle.begin(ip).await {
        Ok(a) => a,
        Err(Locked(left)) => {
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed logins from your address; try again in {secs} s.\n"),
            )
                .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return r;
        }
    };
    if !state.auth.check_password(&form.password) {
        attempt.failed(ip).await;
        return Redirect::to("/login?failed=1").into_response();
    }
    attempt.succeeded();
    let id = state.auth.new_session();
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(header::SET_COOKIE, state.auth.cookie(&id, SESSION_TTL));
    r
}

/// `POST /logout`: ends the session (CSRF-checked like every POST) and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.auth.end_session(&id);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, state.auth.cookie("", Duration::ZERO));
    r
}

/// `GET /api/session`: how the caller is signed in, and its CSRF token.
pub async fn session_info(
    State(state): State<AppState>,
    axum::Extension(p): axum::Extension<Principal>,
) -> Json<serde_json::Value> {
    let (via, csrf) = match p {
        Principal::Open => ("open", None),
        Principal::Bearer => ("bearer", None),
        Principal::Cookie { csrf } => ("cookie", Some(csrf)),
    };
    Json(json!({ "authenticated": true, "via": via, "csrf": csrf, "auth_mode": state.auth.mode(),
                 "password_login": state.auth.password.is_some() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_checks() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST:8080", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:8080"] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:8080",
            "[::2]:80",
            "[::1]x",
            "0.0.0.0",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn open_mode_rules() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("rebind.evil.example:8080"));
        assert!(open_mode_refusal(&Method::GET, &h).is_some(), "foreign Host");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(open_mode_refusal(&Method::GET, &h).is_none());
        assert!(open_mode_refusal(&Method::POST, &h).is_none(), "no Origin: curl");
        h.insert(header::REFERER, HeaderValue::from_static("http://evil.example/page"));
        assert!(open_mode_refusal(&Method::POST, &h).is_some(), "foreign Referer");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(open_mode_refusal(&Method::DELETE, &h).is_none(), "Origin wins over Referer");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(open_mode_refusal(&Method::POST, &h).is_some());
        assert!(open_mode_refusal(&Method::GET, &h).is_none(), "reads are not refused for it");
    }

    #[test]
    fn idle_sessions_end() {
        let cfg = crate::DashboardConfig { password: Some("pw".into()), session_idle_s: 1, ..Default::default() };
        let a = Auth::from_config(&cfg);
        let id = a.new_session();
        assert!(a.session(&id).is_some());
        std::thread::sleep(Duration::from_millis(1100));
        assert!(a.session(&id).is_none());
    }

    #[test]
    fn bearer_and_sessions() {
        let a = Auth::new(Some("pw".into()), Some("tok".into()));
        let mut h = HeaderMap::new();
        assert!(matches!(a.principal(&h), Ok(None)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tok"));
        assert!(matches!(a.principal(&h), Ok(Some(Principal::Bearer))));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tok2"));
        assert!(a.principal(&h).is_err());
        let id = a.new_session();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("x=1; {SESSION_COOKIE}={id}")).unwrap());
        assert!(matches!(a.principal(&h), Ok(Some(Principal::Cookie { .. }))));
        assert!(a.check_password("pw") && !a.check_password("pw2") && !a.check_password(""));
        assert!(Auth::new(Some(String::new()), None).is_open());
    }
}
