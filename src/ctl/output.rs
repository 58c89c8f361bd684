//! How `warren ctl` prints: rabbitmqctl's informational lines, its tab-separated tables with a
//! header line, and its `--formatter json` shape (an array with one object per line).

use super::client::{Failure, exit};
use serde_json::Value;
use std::io::Write;

/// Where a column's value comes from in an API object.
#[derive(Clone, Copy)]
pub enum Src {
    /// A JSON pointer into the object.
    Ptr(&'static str),
    /// A value the API does not carry because it is always the same (bindings' source kind).
    Const(&'static str),
}

/// One rabbitmqctl info key.
#[derive(Clone, Copy)]
pub struct Col {
    pub key: &'static str,
    pub src: Src,
    /// Printed as AMQP arguments (`[{"x-max-length",10}]`) rather than as JSON.
    pub args: bool,
}

const fn col(key: &'static str, ptr: &'static str) -> Col {
    Col {
        key,
        src: Src::Ptr(ptr),
        args: false,
    }
}

const fn args(key: &'static str, ptr: &'static str) -> Col {
    Col {
        key,
        src: Src::Ptr(ptr),
        args: true,
    }
}

/// What a `list_*` command can show and shows by default (rabbitmqctl's defaults).
pub struct Table {
    pub all: &'static [Col],
    pub default: &'static [&'static str],
}

pub const QUEUES: Table = Table {
    all: &[
        col("name", "/name"),
        col("vhost", "/vhost"),
        col("durable", "/durable"),
        col("auto_delete", "/auto_delete"),
        args("arguments", "/arguments"),
        col("policy", "/policy"),
        col("exclusive", "/exclusive"),
        col("exclusive_consumer_tag", "/exclusive_consumer_tag"),
        col("messages_ready", "/messages_ready"),
        col("messages_unacknowledged", "/messages_unacknowledged"),
        col("messages", "/messages"),
        col("consumers", "/consumers"),
        col("consumer_utilisation", "/consumer_utilisation"),
        col("memory", "/memory"),
        col("state", "/state"),
        col("type", "/type"),
        col("node", "/node"),
    ],
    default: &["name", "messages"],
};

pub const EXCHANGES: Table = Table {
    all: &[
        col("name", "/name"),
        col("vhost", "/vhost"),
        col("type", "/type"),
        col("durable", "/durable"),
        col("auto_delete", "/auto_delete"),
        col("internal", "/internal"),
        args("arguments", "/arguments"),
        col("policy", "/policy"),
    ],
    default: &["name", "type"],
};

pub const BINDINGS: Table = Table {
    all: &[
        col("source_name", "/source"),
        Col {
            key: "source_kind",
            src: Src::Const("exchange"),
            args: false,
        },
        col("destination_name", "/destination"),
        col("destination_kind", "/destination_type"),
        col("routing_key", "/routing_key"),
        args("arguments", "/arguments"),
        col("properties_key", "/properties_key"),
        col("vhost", "/vhost"),
    ],
    default: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ],
};

pub const CONNECTIONS: Table = Table {
    all: &[
        col("name", "/name"),
        col("user", "/user"),
        col("vhost", "/vhost"),
        col("host", "/host"),
        col("port", "/port"),
        col("peer_host", "/peer_host"),
        col("peer_port", "/peer_port"),
        col("state", "/state"),
        col("type", "/type"),
        col("protocol", "/protocol"),
        col("ssl", "/ssl"),
        col("auth_mechanism", "/auth_mechanism"),
        col("channels", "/channels"),
        col("channel_max", "/channel_max"),
        col("frame_max", "/frame_max"),
        col("timeout", "/timeout"),
        col("connected_at", "/connected_at"),
        col("recv_oct", "/recv_oct"),
        col("send_oct", "/send_oct"),
        col("node", "/node"),
        col("client_properties", "/client_properties"),
    ],
    default: &["user", "peer_host", "peer_port", "state"],
};

pub const CONSUMERS: Table = Table {
    all: &[
        col("queue_name", "/queue/name"),
        // The API names channels rather than exposing Erlang pids.
        col("channel_pid", "/channel_details/name"),
        col("consumer_tag", "/consumer_tag"),
        col("ack_required", "/ack_required"),
        col("prefetch_count", "/prefetch_count"),
        col("active", "/active"),
        col("activity_status", "/activity_status"),
        args("arguments", "/arguments"),
        col("exclusive", "/exclusive"),
        col("connection_name", "/channel_details/connection_name"),
        col("vhost", "/queue/vhost"),
    ],
    default: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "activity_status",
        "arguments",
    ],
};

pub const USERS: Table = Table {
    all: &[col("user", "/name"), col("tags", "/tags")],
    default: &["user", "tags"],
};

pub const VHOSTS: Table = Table {
    all: &[
        col("name", "/name"),
        col("description", "/description"),
        col("tags", "/tags"),
        col("tracing", "/tracing"),
        col("messages", "/messages"),
        col("messages_ready", "/messages_ready"),
        col("messages_unacknowledged", "/messages_unacknowledged"),
    ],
    default: &["name"],
};

pub const PERMISSIONS: Table = Table {
    all: &[
        col("user", "/user"),
        col("vhost", "/vhost"),
        col("configure", "/configure"),
        col("write", "/write"),
        col("read", "/read"),
    ],
    default: &["user", "configure", "write", "read"],
};

pub const POLICIES: Table = Table {
    all: &[
        col("vhost", "/vhost"),
        col("name", "/name"),
        col("pattern", "/pattern"),
        col("apply-to", "/apply-to"),
        col("definition", "/definition"),
        col("priority", "/priority"),
    ],
    default: &[
        "vhost",
        "name",
        "pattern",
        "apply-to",
        "definition",
        "priority",
    ],
};

impl Table {
    /// The columns the user asked for (rabbitmqctl's defaults when none), or a usage error
    /// naming the unknown keys as rabbitmqctl does.
    pub fn select(&self, requested: &[String]) -> Result<Vec<Col>, Failure> {
        let find = |k: &str| self.all.iter().find(|c| c.key == k).copied();
        if requested.is_empty() {
            return Ok(self.default.iter().filter_map(|k| find(k)).collect());
        }
        let unknown: Vec<&str> = requested
            .iter()
            .map(String::as_str)
            .filter(|k| find(k).is_none())
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = self.all.iter().map(|c| c.key).collect();
            return Err(Failure::new(
                exit::USAGE,
                format!(
                    "Info key(s) {} are not supported. Supported keys: {}",
                    unknown.join(","),
                    known.join(", ")
                ),
            ));
        }
        Ok(requested.iter().filter_map(|k| find(k)).collect())
    }
}

fn value_of(row: &Value, col: &Col) -> Value {
    match col.src {
        Src::Ptr(p) => row.pointer(p).cloned().unwrap_or(Value::Null),
        Src::Const(c) => Value::String(c.to_owned()),
    }
}

/// A table cell as rabbitmqctl prints it: strings bare, lists as `[a, b]`, AMQP arguments as
/// Erlang-ish `[{"key",value}]`, other objects as compact JSON, null as nothing.
fn cell(v: &Value, as_args: bool) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|i| cell(i, false)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(m) if as_args => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{{{},{}}}", Value::String(k.clone()), v))
                .collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(_) => v.to_string(),
    }
}

/// Output settings shared by every command.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub json: bool,
    pub quiet: bool,
    pub headers: bool,
}

impl Style {
    /// rabbitmqctl's informational line ("Listing queues ..."): on stdout, left out with
    /// `--quiet` and with the JSON formatter so the output stays parseable.
    pub fn info(&self, out: &mut impl Write, line: &str) -> std::io::Result<()> {
        if self.quiet || self.json {
            return Ok(());
        }
        writeln!(out, "{line}")
    }

    /// Prints `rows` with `cols`, as a table or as rabbitmqctl's JSON.
    pub fn rows(&self, out: &mut impl Write, cols: &[Col], rows: &[Value]) -> std::io::Result<()> {
        if self.json {
            writeln!(out, "[")?;
            for (i, row) in rows.iter().enumerate() {
                let fields: Vec<String> = cols
                    .iter()
                    .map(|c| format!("{}:{}", Value::String(c.key.to_owned()), value_of(row, c)))
                    .collect();
                let sep = if i == 0 { "" } else { "," };
                writeln!(out, "{sep}{{{}}}", fields.join(","))?;
            }
            return writeln!(out, "]");
        }
        if self.headers {
            let names: Vec<&str> = cols.iter().map(|c| c.key).collect();
            writeln!(out, "{}", names.join("\t"))?;
        }
        for row in rows {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| cell(&value_of(row, c), c.args))
                .collect();
            writeln!(out, "{}", cells.join("\t"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_render_like_rabbitmqctl() {
        assert_eq!(cell(&json!({}), true), "[]");
        assert_eq!(
            cell(&json!({"x-max-length": 10, "x-queue-mode": "lazy"}), true),
            r#"[{"x-max-length",10},{"x-queue-mode","lazy"}]"#
        );
        assert_eq!(
            cell(&json!(["administrator", "x"]), false),
            "[administrator, x]"
        );
        assert_eq!(cell(&json!(null), false), "");
        assert_eq!(
            cell(&json!({"max-length": 5}), false),
            r#"{"max-length":5}"#
        );
    }

    #[test]
    fn unknown_keys_are_a_usage_error() {
        let err = QUEUES.select(&["name".into(), "bogus".into()]).err();
        let err = err.expect("bogus is not a queue info key");
        assert_eq!(err.code, exit::USAGE);
        assert!(err.message.contains("bogus"), "{}", err.message);
        let cols = QUEUES.select(&[]).expect("defaults");
        let keys: Vec<&str> = cols.iter().map(|c| c.key).collect();
        assert_eq!(keys, ["name", "messages"]);
    }

    #[test]
    fn json_rows_keep_column_order() {
        let style = Style {
            json: true,
            quiet: false,
            headers: true,
        };
        let cols = QUEUES
            .select(&["name".into(), "messages".into(), "durable".into()])
            .expect("known keys");
        let mut out = Vec::new();
        style
            .rows(
                &mut out,
                &cols,
                &[json!({"name": "a", "messages": 2, "durable": true})],
            )
            .expect("write to a Vec");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "[\n{\"name\":\"a\",\"messages\":2,\"durable\":true}\n]\n"
        );
    }
}
