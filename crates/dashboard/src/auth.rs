//! Authentication.
//!
//! * Browsers: `POST /login` with the configured password (`NTA_DASHBOARD_PASSWORD`) gets a
//!   random 256-bit session id in an `HttpOnly; SameSite=Strict` cookie (12 h, kept in memory:
//!   a restart signs everyone out). Each session has a CSRF token (`GET /api/session`) that
//!   cookie-authenticated POSTs must send as `X-CSRF-Token`; POSTs whose `Origin` names another
//!   host are refused as well.
//! * API clients: `Authorization: Bearer <NTA_DASHBOARD_TOKEN>`; no CSRF token needed, since a
//!   browser never attaches it on its own.
//! * Secrets are compared in constant time (`subtle`).
//! * Neither configured: open (only allowed on a loopback address, see `AppState::new`).

use crate::sql::ApiError;
use crate::AppState;
use axum::extract::{Form, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "nta_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

struct Session {
    csrf: String,
    expires: Instant,
}

pub struct Auth {
    password: Option<String>,
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
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
    pub fn new(password: Option<String>, token: Option<String>) -> Auth {
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Auth { password: nonempty(password), token: nonempty(token), sessions: Mutex::new(HashMap::new()) }
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
        let mut s = self.sessions.lock().unwrap();
        s.retain(|_, v| v.expires > now);
        s.insert(id.clone(), Session { csrf: random_hex(32), expires: now + SESSION_TTL });
        id
    }

    fn session(&self, id: &str) -> Option<String> {
        let s = self.sessions.lock().unwrap();
        s.get(id).filter(|v| v.expires > Instant::now()).map(|v| v.csrf.clone())
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

fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/metrics" | "/login" | "/favicon.ico") || path.starts_with("/assets/")
}

/// Middleware: lets public paths through, requires a principal elsewhere, and CSRF-checks
/// state-changing requests of cookie sessions.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
pub async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if !same_origin(&headers) {
        return ApiError::Forbidden("cross-origin login refused".into()).into_response();
    }
    if !state.auth.check_password(&form.password) {
        state.counters.login_failures.fetch_add(1, Ordering::Relaxed);
        // Slows guessing down a little; the password should be long anyway.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return Redirect::to("/login?failed=1").into_response();
    }
    let id = state.auth.new_session();
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_TTL.as_secs());
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).unwrap());
    r
}

/// `POST /logout`: ends the session (CSRF-checked like every POST) and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.auth.end_session(&id);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("nta_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
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
