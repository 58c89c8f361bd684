//! The one error type handlers return, and the single mapping from it to channel.close (soft) or
//! connection.close (hard). Reply texts follow RabbitMQ's "CODE_NAME - detail" layout because
//! clients and operators grep for them.

use std::fmt;

/// An AMQP failure: reply code, text, and the method that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    /// AMQP reply code (403, 404, 501, ...).
    pub code: u16,
    /// Full reply text, already prefixed with the code name.
    pub text: String,
    /// Class of the offending method (0 when not method-related).
    pub class_id: u16,
    /// Method id of the offending method.
    pub method_id: u16,
}

/// Reply codes, as RabbitMQ names them.
pub mod codes {
    pub const CONNECTION_FORCED: u16 = 320;
    pub const NO_ROUTE: u16 = 312;
    pub const ACCESS_REFUSED: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const RESOURCE_LOCKED: u16 = 405;
    pub const PRECONDITION_FAILED: u16 = 406;
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const COMMAND_INVALID: u16 = 503;
    pub const CHANNEL_ERROR: u16 = 504;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const RESOURCE_ERROR: u16 = 506;
    pub const NOT_ALLOWED: u16 = 530;
    pub const NOT_IMPLEMENTED: u16 = 540;
    pub const INTERNAL_ERROR: u16 = 541;
}

fn code_name(code: u16) -> &'static str {
    match code {
        320 => "CONNECTION_FORCED",
        312 => "NO_ROUTE",
        403 => "ACCESS_REFUSED",
        404 => "NOT_FOUND",
        405 => "RESOURCE_LOCKED",
        406 => "PRECONDITION_FAILED",
        501 => "FRAME_ERROR",
        502 => "SYNTAX_ERROR",
        503 => "COMMAND_INVALID",
        504 => "CHANNEL_ERROR",
        505 => "UNEXPECTED_FRAME",
        506 => "RESOURCE_ERROR",
        530 => "NOT_ALLOWED",
        540 => "NOT_IMPLEMENTED",
        _ => "INTERNAL_ERROR",
    }
}

impl AmqpError {
    /// Builds an error with RabbitMQ's "NAME - detail" text.
    pub fn new(code: u16, detail: impl fmt::Display) -> Self {
        let mut text = format!("{} - {}", code_name(code), detail);
        // reply-text is a shortstr; a longer one would make the close frame itself unencodable.
        if text.len() > 255 {
            let mut cut = 255;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        AmqpError {
            code,
            text,
            class_id: 0,
            method_id: 0,
        }
    }

    /// Attaches the method that failed, reported back in the close frame.
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// Hard errors close the whole connection; soft ones only the channel.
    pub fn is_hard(&self) -> bool {
        !matches!(self.code, 403 | 404 | 405 | 406 | 311 | 312 | 313)
    }

    pub fn access_refused(d: impl fmt::Display) -> Self {
        Self::new(codes::ACCESS_REFUSED, d)
    }
    pub fn not_found(d: impl fmt::Display) -> Self {
        Self::new(codes::NOT_FOUND, d)
    }
    pub fn resource_locked(d: impl fmt::Display) -> Self {
        Self::new(codes::RESOURCE_LOCKED, d)
    }
    pub fn precondition(d: impl fmt::Display) -> Self {
        Self::new(codes::PRECONDITION_FAILED, d)
    }
    pub fn frame_error(d: impl fmt::Display) -> Self {
        Self::new(codes::FRAME_ERROR, d)
    }
    pub fn syntax_error(d: impl fmt::Display) -> Self {
        Self::new(codes::SYNTAX_ERROR, d)
    }
    pub fn command_invalid(d: impl fmt::Display) -> Self {
        Self::new(codes::COMMAND_INVALID, d)
    }
    pub fn channel_error(d: impl fmt::Display) -> Self {
        Self::new(codes::CHANNEL_ERROR, d)
    }
    pub fn unexpected_frame(d: impl fmt::Display) -> Self {
        Self::new(codes::UNEXPECTED_FRAME, d)
    }
    pub fn not_allowed(d: impl fmt::Display) -> Self {
        Self::new(codes::NOT_ALLOWED, d)
    }
    pub fn not_implemented(d: impl fmt::Display) -> Self {
        Self::new(codes::NOT_IMPLEMENTED, d)
    }
    pub fn internal(d: impl fmt::Display) -> Self {
        Self::new(codes::INTERNAL_ERROR, d)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl std::error::Error for AmqpError {}

/// Handler result.
pub type AmqpResult<T> = Result<T, AmqpError>;
