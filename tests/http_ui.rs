//! The web UI's files on the management port: served at `/` and `/ui/...` without credentials,
//! with a strict Content-Security-Policy, while `/api/...` still needs them. The UI itself is
//! driven in Chromium by integration/ui/ui_suite.js.

mod common;

use common::http::Env;
use common::within;

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    within(req.send()).await.expect("HTTP request")
}

#[tokio::test]
async fn ui_files_load_without_credentials() {
    let env = Env::start().await;
    if !env.is_warren() {
        return;
    }
    let base = &env.api.base;
    for (path, kind, marker) in [
        ("/", "text/html", "<title>Warren Management</title>"),
        ("/ui/app.js", "text/javascript", "'use strict'"),
        ("/ui/style.css", "text/css", ":root"),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        let content_type = h["content-type"].to_str().expect("ascii");
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let body = within(resp.text()).await.expect("body");
        assert!(body.contains(marker), "{path} does not contain {marker}");
    }
    // Only the listed files exist; nothing reaches the filesystem.
    for path in [
        "/ui/missing.js",
        "/ui/..%2FCargo.toml",
        "/ui/%2E%2E%2Fsrc%2Fmain.rs",
    ] {
        let resp = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
    // The API behind the page still needs credentials.
    assert_eq!(
        get(&format!("{base}/api/overview"), &[]).await.status(),
        401
    );
}

#[tokio::test]
async fn script_requests_get_no_browser_login_prompt() {
    let env = Env::start().await;
    if !env.is_warren() {
        return;
    }
    let url = format!("{}/api/overview", env.api.base);
    let wrong = ("authorization", "Basic Z3Vlc3Q6d3Jvbmc="); // guest:wrong
    let plain = get(&url, &[wrong]).await;
    assert_eq!(plain.status(), 401);
    assert!(plain.headers().contains_key("www-authenticate"));
    let scripted = get(&url, &[wrong, ("x-requested-with", "XMLHttpRequest")]).await;
    assert_eq!(scripted.status(), 401);
    assert!(!scripted.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = within(scripted.json()).await.expect("JSON error body");
    assert_eq!(body["reason"], "Login failed");
}
