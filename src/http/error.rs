//! The management API's one error type: a status plus RabbitMQ's `{"error", "reason"}` body.

use crate::error::AmqpError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// A failed request, rendered as RabbitMQ renders it.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// RabbitMQ's short error class ("bad_request", "not_authorised", "Object Not Found").
    pub error: &'static str,
    /// Human-readable detail.
    pub reason: String,
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// 404 with RabbitMQ's exact wording, which clients match on.
    pub fn not_found() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
        }
    }

    /// 400 for a request the broker refuses (bad JSON, inequivalent declaration, ...).
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason: reason.into(),
        }
    }

    /// 401 for missing rights; RabbitMQ answers 401 (not 403) for these too.
    pub fn not_authorised(reason: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: reason.into(),
        }
    }

    /// 401 "Access refused.", RabbitMQ's answer when a user lacks a vhost permission.
    pub fn access_refused() -> Self {
        Self::not_authorised("Access refused.")
    }
}

impl From<AmqpError> for ApiError {
    /// Maps a broker refusal to the status RabbitMQ's API gives the same AMQP error, with the
    /// "CODE_NAME - " prefix dropped as RabbitMQ drops it.
    fn from(e: AmqpError) -> Self {
        let reason = e
            .text
            .split_once(" - ")
            .map_or(e.text.as_str(), |(_, detail)| detail)
            .to_owned();
        match e.code {
            404 => ApiError {
                status: StatusCode::NOT_FOUND,
                error: "not_found",
                reason,
            },
            403 => ApiError::not_authorised(reason),
            _ => ApiError::bad_request(reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.error, "reason": self.reason });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Warren Management\""),
            );
        }
        resp
    }
}

/// Parses a request body as JSON regardless of its content type (RabbitMQ's clients do not all
/// send one); an empty body reads as `{}`.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request("not_json")
        } else {
            ApiError::bad_request(e.to_string())
        }
    })
}
