//! The HTTP side of `warren ctl`: one blocking request at a time to the management API, and
//! the failures a command can end with, each carrying rabbitmqctl's exit code.

use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::time::Duration;

/// rabbitmqctl's exit codes (sysexits.h), so scripts written against it read Warren's the same.
pub mod exit {
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const NOUSER: u8 = 67;
    pub const UNAVAILABLE: u8 = 69;
    pub const SOFTWARE: u8 = 70;
    pub const TEMPFAIL: u8 = 75;
    /// Not one rabbitmqctl uses (it authenticates with the Erlang cookie, not a password); the
    /// sysexits code for "permission denied", so a wrong password is told apart from a down broker.
    pub const NOPERM: u8 = 77;
}

/// Why a command failed: the message after `Error:` and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn data(message: impl Into<String>) -> Failure {
        Failure::new(exit::DATAERR, message)
    }

    pub fn no_user(user: &str) -> Failure {
        Failure::new(exit::NOUSER, format!("User \"{user}\" does not exist"))
    }

    pub fn no_vhost(vhost: &str) -> Failure {
        Failure::data(format!("Virtual host '{vhost}' does not exist"))
    }
}

/// A response with a 2xx, 4xx or 5xx status (transport failures never get this far).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's `reason` (RabbitMQ's human-readable part), else its `error`, else the status.
    pub fn reason(&self) -> String {
        ["reason", "error"]
            .iter()
            .find_map(|k| self.body.get(*k).and_then(Value::as_str))
            .or_else(|| self.body.as_str())
            .map(|s| unescape_html(s.trim()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                let text = ureq::http::StatusCode::from_u16(self.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                format!("HTTP status {} {text}", self.status)
                    .trim_end()
                    .to_owned()
            })
    }

    /// The failure for a non-2xx status. `not_found` describes a 404 in the command's terms,
    /// because the API's own text for it is only "Not Found".
    pub fn failure(&self, not_found: impl FnOnce() -> Failure) -> Failure {
        match self.status {
            401 | 403 => Failure::new(exit::NOPERM, format!("Access refused: {}", self.reason())),
            404 => not_found(),
            s if s >= 500 => Failure::new(
                exit::SOFTWARE,
                format!("the broker failed the request ({s}): {}", self.reason()),
            ),
            _ => Failure::data(self.reason()),
        }
    }

    /// The body of a 2xx reply, or the failure for any other status.
    pub fn ok(self, not_found: impl FnOnce() -> Failure) -> Result<Value, Failure> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(self.failure(not_found))
        }
    }
}

/// RabbitMQ HTML-escapes its reasons (`&lt;&lt;"a"&gt;&gt; is not a valid maximum length`);
/// a terminal wants the text.
fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A logged-in view of one management API.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    authorization: String,
}

/// Percent-encodes one path segment, so the default vhost "/" becomes "%2F".
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl Client {
    /// `base` is like `http://localhost:15672` (a path prefix is kept); `timeout` bounds each
    /// request from connect to the last byte of the body.
    pub fn new(base: &str, user: &str, password: &str, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .build()
            .into();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {token}"),
        }
    }

    /// Where requests go, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> Result<Reply, Failure> {
        self.send("GET", path, None, &[])
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Reply, Failure> {
        self.send("PUT", path, Some(body.to_string()), &[])
    }

    pub fn post_raw(&self, path: &str, body: String) -> Result<Reply, Failure> {
        self.send("POST", path, Some(body), &[])
    }

    pub fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, Failure> {
        self.send("DELETE", path, None, headers)
    }

    /// One request; `path` starts with `/api/` and has its segments encoded already.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            // No Accept header: RabbitMQ answers 406 to `DELETE .../contents` with one.
            .header("authorization", &self.authorization);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let result = match body {
            Some(b) => {
                let req = req
                    .header("content-type", "application/json")
                    .body(b)
                    .map_err(|e| Failure::new(exit::USAGE, format!("invalid URL {url}: {e}")))?;
                self.agent.run(req)
            }
            None => {
                let req = req
                    .body(())
                    .map_err(|e| Failure::new(exit::USAGE, format!("invalid URL {url}: {e}")))?;
                self.agent.run(req)
            }
        };
        let mut resp = result.map_err(|e| self.transport_failure(e))?;
        let status = resp.status().as_u16();
        // Definitions of a large broker exceed ureq's default 10 MB body limit.
        let raw = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| self.transport_failure(e))?;
        let body = if raw.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&raw)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
        };
        Ok(Reply { status, body })
    }

    /// A request that got no HTTP answer: the broker is down, unreachable or not speaking HTTP
    /// there (69), or too slow (75), as rabbitmqctl reports a node it cannot reach.
    fn transport_failure(&self, e: ureq::Error) -> Failure {
        let code = match e {
            ureq::Error::Timeout(_) => exit::TEMPFAIL,
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => exit::USAGE,
            _ => exit::UNAVAILABLE,
        };
        Failure::new(
            code,
            format!(
                "unable to reach the management API at {}: {e}. Check that the broker is running \
                 and that --host/--port (or WARREN_CTL_URL) name its management listener.",
                self.base
            ),
        )
    }
}
