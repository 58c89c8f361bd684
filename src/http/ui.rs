//! The web management UI: static HTML, CSS and JavaScript compiled into the binary and served
//! without authentication; the page itself calls `/api/...` with the basic-auth credentials
//! its login form keeps in the browser's sessionStorage, as RabbitMQ's UI does.
//!
//! Invariants:
//! - Only the files listed in [`ASSETS`] are served, so no path reaches the filesystem.
//! - Every asset carries a Content-Security-Policy that allows scripts and styles from this
//!   origin only: the page shows names and payloads chosen by clients, and the script inserts
//!   them as text, never as markup.

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// `(name under /ui/, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("ui/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("ui/favicon.svg"),
    ),
];

const INDEX: &[u8] = include_bytes!("ui/index.html");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The UI's routes: `/` (the page) and `/ui/{file}` (its assets), outside the API's auth.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route("/ui/{file}", get(ui_file))
}

async fn ui_file(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => asset(kind, body),
        None => super::ApiError::not_found().into_response(),
    }
}

fn asset(kind: &'static str, body: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            // Revalidated on every load so an upgraded broker never runs yesterday's script.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// Middleware: a 401 to a script's request (marked `X-Requested-With`) goes without
/// `WWW-Authenticate`, so the browser leaves the failed login to the page instead of opening
/// its own password dialog. Other clients still get the challenge.
pub async fn no_prompt_for_scripts(req: Request, next: Next) -> Response {
    let from_script = req.headers().contains_key("x-requested-with");
    let mut resp = next.run(req).await;
    if from_script && resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_links_is_served() {
        let index = std::str::from_utf8(INDEX).expect("index.html is UTF-8");
        for (name, _, body) in ASSETS {
            assert!(!body.is_empty(), "{name} is empty");
            assert!(
                index.contains(&format!("ui/{name}")),
                "index.html does not link {name}"
            );
        }
    }
}
