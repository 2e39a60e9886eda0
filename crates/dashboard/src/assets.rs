//! Embedded static files: the single-page app, the login page and the vendored Chart.js
//! (MIT, licence served next to it at /assets/vendor/chart.js-LICENSE.md).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const LOGIN_HTML: &str = include_str!("../assets/login.html");

/// (path under /assets/, content type, body)
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../assets/app.js")),
    ("login.js", "text/javascript; charset=utf-8", include_bytes!("../assets/login.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../assets/style.css")),
    ("vendor/chart.umd.min.js", "text/javascript; charset=utf-8", include_bytes!("../assets/vendor/chart.umd.min.js")),
    ("vendor/chart.js-LICENSE.md", "text/plain; charset=utf-8", include_bytes!("../assets/vendor/chart.js-LICENSE.md")),
];

fn html(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub async fn index() -> Response {
    html(INDEX_HTML)
}

pub async fn login_page() -> Response {
    html(LOGIN_HTML)
}

pub async fn asset(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, ctype, body)) => {
            let mut r = (StatusCode::OK, *body).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
