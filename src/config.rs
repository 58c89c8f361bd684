//! Broker configuration: the only code that reads flags, `WARREN_*` environment variables and
//! the TOML config file.
//!
//! Every setting can come from four places; the first that sets it wins:
//! 1. a command-line flag (`--port 5673`),
//! 2. its environment variable (`WARREN_PORT=5673`),
//! 3. the config file given by `--config FILE` / `WARREN_CONFIG` (`port = 5673`),
//! 4. the default ([`Config::default`], RabbitMQ's where RabbitMQ has one).
//!
//! [`Settings`] is one such source with every field optional: clap fills one from flags and
//! environment, serde one from the file, and [`Settings::or`] layers them.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Everything a broker needs to start. `Default` gives RabbitMQ's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Address the AMQP listener binds to.
    pub bind: String,
    /// AMQP port (0 picks an ephemeral port, used by tests).
    pub port: u16,
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// User created on first start.
    pub default_user: String,
    /// Password of the default user.
    pub default_pass: String,
    /// Users that may only connect from loopback (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    /// Heartbeat interval the server proposes, seconds (0 disables).
    pub heartbeat: u16,
    /// Largest frame the server accepts, bytes.
    pub frame_max: u32,
    /// Highest channel number a client may open.
    pub channel_max: u16,
    /// Confirm persistent messages only after fsync. Off gives RabbitMQ classic-queue
    /// semantics (confirmed once written to the OS) and can lose confirmed messages on power
    /// loss.
    pub fsync: bool,
    /// Publishers are blocked while free disk space is below this many bytes.
    pub disk_free_limit: u64,
    /// Publishers are blocked while resident memory exceeds this fraction of RAM (or of the
    /// cgroup memory limit, if lower).
    pub vm_memory_high_watermark: f64,
    /// A delivery not acked within this many ms is requeued and its consumer cancelled
    /// (RabbitMQ's consumer_timeout; per queue: x-consumer-timeout).
    pub consumer_timeout_ms: u64,
    /// Address the management API and Prometheus listeners bind to.
    pub http_bind: String,
    /// Management HTTP API port (RabbitMQ's 15672); `None` disables the API, `Some(0)` picks
    /// an ephemeral port (tests).
    pub http_port: Option<u16>,
    /// Prometheus metrics port (rabbitmq_prometheus's 15692); `None` disables it.
    pub metrics_port: Option<u16>,
    /// How often the management API samples message counters for rates, ms (RabbitMQ's
    /// collect_statistics_interval).
    pub stats_interval_ms: u64,
    /// PEM certificate chain of the AMQPS listener; with `tls_key` it turns the listener on.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: when set, AMQPS clients must present a certificate signed by one
    /// of them (RabbitMQ's `verify_peer` + `fail_if_no_peer_cert`).
    pub tls_ca: Option<PathBuf>,
    /// AMQPS port (RabbitMQ's 5671), on the `bind` address; 0 picks an ephemeral port.
    pub tls_port: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "0.0.0.0".into(),
            port: 5672,
            data_dir: PathBuf::from("warren-data"),
            default_user: "guest".into(),
            default_pass: "guest".into(),
            loopback_users: vec!["guest".into()],
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            fsync: true,
            disk_free_limit: 50_000_000,
            vm_memory_high_watermark: 0.4,
            consumer_timeout_ms: 1_800_000,
            http_bind: "0.0.0.0".into(),
            http_port: Some(15672),
            metrics_port: Some(15692),
            stats_interval_ms: 5000,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_port: 5671,
        }
    }
}

/// The settings one source gives. Field names are the flags' in snake_case, which are also the
/// config file's keys; a key the file does not know is an error rather than silently ignored.
///
/// The `[default: ...]` in each help text is written by hand (clap cannot show a default it
/// does not apply); a unit test checks each one against [`Config::default`].
#[derive(clap::Args, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the AMQP and AMQPS listeners bind to [default: 0.0.0.0]
    #[arg(long, env = "WARREN_BIND", value_name = "ADDR")]
    pub bind: Option<String>,
    /// AMQP port [default: 5672]
    #[arg(long, env = "WARREN_PORT")]
    pub port: Option<u16>,
    /// Directory for durable state [default: warren-data]
    #[arg(long, env = "WARREN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Name of the user created at start [default: guest]
    #[arg(long, env = "WARREN_DEFAULT_USER", value_name = "USER")]
    pub default_user: Option<String>,
    /// Password of the default user [default: guest]
    #[arg(long, env = "WARREN_DEFAULT_PASS", value_name = "PASS")]
    pub default_pass: Option<String>,
    /// Users only allowed to connect from loopback, comma-separated ("" for none; a list of
    /// strings in the config file), like RabbitMQ's loopback_users [default: guest]
    #[arg(
        long,
        env = "WARREN_LOOPBACK_USERS",
        value_delimiter = ',',
        value_name = "USERS"
    )]
    pub loopback_users: Option<Vec<String>>,
    /// Heartbeat interval proposed to clients, seconds (0 disables) [default: 60]
    #[arg(long, env = "WARREN_HEARTBEAT", value_name = "SECS")]
    pub heartbeat: Option<u16>,
    /// Largest frame accepted, bytes [default: 131072]
    #[arg(long, env = "WARREN_FRAME_MAX", value_name = "BYTES")]
    pub frame_max: Option<u32>,
    /// Highest channel number per connection [default: 2047]
    #[arg(long, env = "WARREN_CHANNEL_MAX", value_name = "N")]
    pub channel_max: Option<u16>,
    /// UNSAFE: confirm persistent messages once written to the OS instead of after fsync
    /// (RabbitMQ classic-queue semantics); a power loss can lose confirmed messages
    #[arg(
        long,
        env = "WARREN_NO_FSYNC",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_fsync: Option<bool>,
    /// Block publishers while free disk space in the data dir is below this many bytes
    /// (RabbitMQ's disk_free_limit) [default: 50000000]
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT", value_name = "BYTES")]
    pub disk_free_limit: Option<u64>,
    /// Block publishers while resident memory exceeds this fraction of RAM, or of the
    /// cgroup (container) memory limit when that is lower (RabbitMQ's
    /// vm_memory_high_watermark) [default: 0.4]
    #[arg(long, env = "WARREN_VM_MEMORY_HIGH_WATERMARK", value_name = "FRACTION")]
    pub vm_memory_high_watermark: Option<f64>,
    /// Requeue a delivery not acked within this many ms and cancel its consumer
    /// [default: 1800000]
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT", value_name = "MS")]
    pub consumer_timeout: Option<u64>,
    /// Address the management API and metrics listeners bind to [default: 0.0.0.0]
    #[arg(long, env = "WARREN_HTTP_BIND", value_name = "ADDR")]
    pub http_bind: Option<String>,
    /// Management HTTP API port (RabbitMQ's 15672); 0 disables it [default: 15672]
    #[arg(long, env = "WARREN_HTTP_PORT", value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Prometheus metrics port (rabbitmq_prometheus's 15692); 0 disables it [default: 15692]
    #[arg(long, env = "WARREN_METRICS_PORT", value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// PEM certificate (chain) for AMQPS; with --tls-key it starts the TLS listener
    #[arg(long, env = "WARREN_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "WARREN_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): AMQPS clients must present a certificate signed by one
    /// (RabbitMQ's verify_peer + fail_if_no_peer_cert)
    #[arg(long, env = "WARREN_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// AMQPS port, on the --bind address; used only with --tls-cert and --tls-key
    /// [default: 5671]
    #[arg(long, env = "WARREN_TLS_PORT", value_name = "PORT")]
    pub tls_port: Option<u16>,
    /// How often message counters are sampled for the management API's rates, ms
    /// (RabbitMQ's collect_statistics_interval) [default: 5000]
    #[arg(long, env = "WARREN_COLLECT_STATISTICS_INTERVAL", value_name = "MS")]
    pub collect_statistics_interval: Option<u64>,
}

/// Field-wise `Option::or` over every field, so no field can be forgotten in one place only.
macro_rules! layer {
    ($upper:expr, $lower:expr; $($field:ident),* $(,)?) => {{
        let (upper, lower) = ($upper, $lower);
        // A field missing from this list is a compile error here.
        let Settings { $($field: _),* } = &upper;
        Settings { $($field: upper.$field.or(lower.$field)),* }
    }};
}

impl Settings {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| format!("invalid config file {origin}: {e}"))
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Settings::from_toml(&text, &path.display().to_string())
    }

    /// These settings, with `lower` filling the ones not set here.
    pub fn or(self, lower: Settings) -> Settings {
        layer!(self, lower;
            bind, port, data_dir, default_user, default_pass, loopback_users, heartbeat,
            frame_max, channel_max, no_fsync, disk_free_limit, vm_memory_high_watermark,
            consumer_timeout, http_bind, http_port, metrics_port, tls_cert, tls_key, tls_ca,
            tls_port, collect_statistics_interval)
    }

    /// The broker configuration: these settings over [`Config::default`].
    pub fn into_config(self) -> Config {
        let d = Config::default();
        let port_or_off = |p: Option<u16>, default: Option<u16>| match p {
            Some(0) => None,
            Some(p) => Some(p),
            None => default,
        };
        Config {
            bind: self.bind.unwrap_or(d.bind),
            port: self.port.unwrap_or(d.port),
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            default_user: self.default_user.unwrap_or(d.default_user),
            default_pass: self.default_pass.unwrap_or(d.default_pass),
            loopback_users: match self.loopback_users {
                Some(users) => users.into_iter().filter(|u| !u.is_empty()).collect(),
                None => d.loopback_users,
            },
            heartbeat: self.heartbeat.unwrap_or(d.heartbeat),
            frame_max: self.frame_max.unwrap_or(d.frame_max),
            channel_max: self.channel_max.unwrap_or(d.channel_max),
            fsync: self.no_fsync.map_or(d.fsync, |no| !no),
            disk_free_limit: self.disk_free_limit.unwrap_or(d.disk_free_limit),
            vm_memory_high_watermark: self
                .vm_memory_high_watermark
                .unwrap_or(d.vm_memory_high_watermark),
            consumer_timeout_ms: self.consumer_timeout.unwrap_or(d.consumer_timeout_ms),
            http_bind: self.http_bind.unwrap_or(d.http_bind),
            http_port: port_or_off(self.http_port, d.http_port),
            metrics_port: port_or_off(self.metrics_port, d.metrics_port),
            tls_cert: self.tls_cert.or(d.tls_cert),
            tls_key: self.tls_key.or(d.tls_key),
            tls_ca: self.tls_ca.or(d.tls_ca),
            tls_port: self.tls_port.unwrap_or(d.tls_port),
            stats_interval_ms: self
                .collect_statistics_interval
                .unwrap_or(d.stats_interval_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    fn command() -> clap::Command {
        Settings::augment_args(clap::Command::new("warren").no_binary_name(true))
    }

    fn parse(args: &[&str]) -> Settings {
        let matches = command().try_get_matches_from(args).expect("flags parse");
        Settings::from_arg_matches(&matches).expect("settings")
    }

    #[test]
    fn nothing_set_gives_the_defaults() {
        assert_eq!(Settings::default().into_config(), Config::default());
    }

    #[test]
    fn help_defaults_are_the_real_defaults() {
        // Passing the value a help text claims as default must change nothing.
        let re = regex::Regex::new(r"\[default: ([^\]]*)\]").unwrap();
        let mut checked = 0;
        for arg in command().get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(caps) = re.captures(&help) else {
                continue;
            };
            let flag = format!("--{}", arg.get_long().unwrap());
            let config = parse(&[flag.as_str(), &caps[1]]).into_config();
            assert_eq!(config, Config::default(), "{flag}'s help says {}", &caps[0]);
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} defaults found in the help");
    }

    #[test]
    fn upper_layer_wins_field_by_field() {
        let flags = parse(&["--port", "1111", "--no-fsync"]);
        let file = Settings::from_toml(
            "port = 2222\nheartbeat = 7\nloopback_users = []\nhttp_port = 0\n",
            "test",
        )
        .unwrap();
        let config = flags.or(file).into_config();
        assert_eq!(config.port, 1111);
        assert!(!config.fsync);
        assert_eq!(config.heartbeat, 7);
        assert!(config.loopback_users.is_empty());
        assert_eq!(config.http_port, None);
        assert_eq!(config.metrics_port, Config::default().metrics_port);
        assert_eq!(config.frame_max, Config::default().frame_max);
    }

    #[test]
    fn flag_values_convert() {
        let config = parse(&[
            "--loopback-users",
            "a,b",
            "--no-fsync=false",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-port",
            "6671",
            "--metrics-port",
            "0",
        ])
        .into_config();
        assert_eq!(config.loopback_users, ["a", "b"]);
        assert!(config.fsync);
        assert_eq!(config.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(config.tls_key, Some(PathBuf::from("k.pem")));
        assert_eq!(config.tls_port, 6671);
        assert_eq!(config.metrics_port, None);
        assert!(
            parse(&["--loopback-users", ""])
                .into_config()
                .loopback_users
                .is_empty()
        );
    }

    #[test]
    fn every_flag_is_a_file_key() {
        for arg in command().get_arguments() {
            let key = arg.get_id().as_str();
            // A wrong type is fine here; only an unknown key would mean a missing field.
            if let Err(err) = Settings::from_toml(&format!("{key} = \"x\""), "test") {
                assert!(
                    !err.contains("unknown field"),
                    "--{} is not accepted in the file: {err}",
                    arg.get_long().unwrap()
                );
            }
        }
    }

    #[test]
    fn file_errors_are_clear() {
        let err = Settings::from_toml("prot = 5672\n", "w.toml").unwrap_err();
        assert!(
            err.contains("w.toml") && err.contains("unknown field `prot`"),
            "{err}"
        );
        let err = Settings::from_toml("port = 70000\n", "w.toml").unwrap_err();
        assert!(err.contains("port"), "{err}");
        let err = Settings::from_toml("port = \n", "w.toml").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let err = Settings::from_file(Path::new("/nonexistent/warren.toml")).unwrap_err();
        assert!(
            err.contains("cannot read config file /nonexistent/warren.toml"),
            "{err}"
        );
    }

    #[test]
    fn example_file_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/warren.example.toml");
        // It documents the defaults, so it must change nothing.
        let example = Settings::from_file(Path::new(path)).unwrap();
        assert_eq!(example.into_config(), Config::default());
    }
}
