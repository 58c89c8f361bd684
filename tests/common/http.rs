//! The management API's test client: a broker with its HTTP servers on 127.0.0.1:0 (or an
//! external RabbitMQ via `WARREN_TEST_URI` + `WARREN_TEST_HTTP`) and a thin JSON client.

use super::{TestBroker, within};
use serde_json::Value;

/// A broker with its HTTP servers, and a client logged in as guest.
pub struct Env {
    pub tb: TestBroker,
    pub api: Api,
    /// Base URL of the metrics listener (Warren only).
    pub metrics: Option<String>,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    /// Starts a broker with its own HTTP listeners after letting the test adjust its config.
    pub async fn start_with(adjust: impl FnOnce(&mut warren::Config)) -> Env {
        let tb = super::start_with(adjust).await;
        let Some(broker) = tb.broker() else {
            let base = std::env::var("WARREN_TEST_HTTP")
                .expect("WARREN_TEST_HTTP must name the management API of the external broker");
            return Env {
                api: Api::new(&base, "guest", "guest"),
                tb,
                metrics: None,
            };
        };
        let base = format!("http://{}", broker.http_addr().expect("HTTP API enabled"));
        let metrics = format!("http://{}", broker.metrics_addr().expect("metrics enabled"));
        Env {
            api: Api::new(&base, "guest", "guest"),
            tb,
            metrics: Some(metrics),
        }
    }

    pub fn is_warren(&self) -> bool {
        self.tb.broker().is_some()
    }
}

/// A name unique across test runs (the external-broker mode shares one RabbitMQ).
pub fn unique(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{base}-{}-{nanos}", std::process::id())
}

/// Percent-encodes a path segment ("/" becomes "%2F").
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Thin HTTP client: every call returns (status, JSON body or Null).
#[derive(Clone)]
pub struct Api {
    /// Base URL, without a trailing slash.
    pub base: String,
    user: String,
    pass: String,
    /// For requests the helpers do not cover (raw bodies, other methods).
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Api {
    pub fn new(base: &str, user: &str, pass: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            pass: pass.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub fn as_user(&self, user: &str, pass: &str) -> Api {
        Api {
            user: user.to_owned(),
            pass: pass.to_owned(),
            ..self.clone()
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = within(req.basic_auth(&self.user, Some(&self.pass)).send())
            .await
            .expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = within(resp.bytes()).await.expect("HTTP body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.put(self.url(path)).json(&body)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path))).await
    }

    /// GET that must succeed; returns the body.
    pub async fn ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.body
    }
}

pub fn assert_error(r: &Reply, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"], error, "{}", r.body);
    assert!(r.body["reason"].is_string(), "{}", r.body);
}

pub fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .find(|item| item[key] == value)
}
