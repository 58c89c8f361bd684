//! `warren ctl`: a rabbitmqctl-like command line over the management HTTP API, so an operator
//! can list, create and delete things in a running broker (Warren or RabbitMQ) from a shell.
//!
//! Command names, arguments, informational lines, tables and exit codes follow rabbitmqctl;
//! what differs is the transport (HTTP with basic auth instead of Erlang distribution), so
//! connection options replace `--node`. Each command is one or a few blocking requests; there
//! is no state beyond the process.

pub mod client;
pub mod output;

use clap::{Parser, Subcommand, ValueEnum};
use client::{Client, Failure, Reply, exit, seg};
use output::{Style, Table};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

const AFTER_HELP: &str = "\
Connection options may also come from the environment: WARREN_CTL_URL (e.g.
http://user:pass@host:15672; it replaces --host/--port, and its credentials apply unless
--user/--password are given), WARREN_CTL_HOST, WARREN_CTL_PORT, WARREN_CTL_USER,
WARREN_CTL_PASSWORD. Options on the command line win over the environment.

Exit codes (rabbitmqctl's): 0 ok, 64 usage, 65 data error (bad input, object not found),
67 no such user, 69 broker unreachable, 70 broker-side failure, 75 timeout,
77 access refused (wrong credentials or missing administrator tag).";

/// Manage a running broker through its management API, like rabbitmqctl.
#[derive(Parser, Debug)]
#[command(name = "warren ctl", after_help = AFTER_HELP)]
pub struct CtlArgs {
    #[command(flatten)]
    pub connection: ConnectionOpts,
    #[command(flatten)]
    pub output: OutputOpts,
    /// Virtual host the command applies to.
    #[arg(short = 'p', long, global = true, default_value = "/")]
    pub vhost: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The arguments of `set_policy` and `set_operator_policy`.
#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    name: String,
    /// Regex matched against queue or exchange names.
    #[arg(allow_hyphen_values = true)]
    pattern: String,
    /// Definition as a JSON object, e.g. '{"max-length":1000}'.
    definition: String,
    /// Higher wins when several policies of the kind match.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i64,
    /// What the policy applies to: queues, exchanges or all.
    #[arg(long = "apply-to", default_value = "all")]
    apply_to: String,
}

/// Where the management API is and who to log in as.
#[derive(clap::Args, Debug)]
pub struct ConnectionOpts {
    /// Base URL of the management API; overrides --host and --port.
    #[arg(long, env = "WARREN_CTL_URL", global = true)]
    pub url: Option<String>,
    /// Host of the management API.
    #[arg(
        long,
        env = "WARREN_CTL_HOST",
        global = true,
        default_value = "localhost"
    )]
    pub host: String,
    /// Port of the management API.
    #[arg(long, env = "WARREN_CTL_PORT", global = true, default_value_t = 15672)]
    pub port: u16,
    /// User to log in as, default guest (needs the administrator tag for user, vhost and
    /// definitions commands).
    #[arg(long, env = "WARREN_CTL_USER", global = true)]
    pub user: Option<String>,
    /// Password of --user, default guest.
    #[arg(
        long,
        env = "WARREN_CTL_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Seconds each request may take.
    #[arg(short = 't', long, global = true, default_value_t = 60)]
    pub timeout: u64,
}

/// How results are printed.
#[derive(clap::Args, Debug)]
pub struct OutputOpts {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Formatter::Table)]
    pub formatter: Formatter,
    /// Leave out informational lines ("Listing queues ...").
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Like --quiet, and no table header line either.
    #[arg(short = 's', long, global = true)]
    pub silent: bool,
    /// Leave out the table header line.
    #[arg(long, global = true)]
    pub no_table_headers: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formatter {
    /// Tab-separated columns with a header line.
    Table,
    /// A JSON array with one object per row.
    Json,
}

#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
pub enum Command {
    /// Lists queues and their properties [name messages by default].
    ListQueues {
        /// Info keys to show: name vhost durable auto_delete arguments policy exclusive
        /// exclusive_consumer_tag messages_ready messages_unacknowledged messages consumers
        /// consumer_utilisation memory state type node.
        columns: Vec<String>,
    },
    /// Lists exchanges [name type by default].
    ListExchanges {
        /// Info keys: name vhost type durable auto_delete internal arguments policy.
        columns: Vec<String>,
    },
    /// Lists bindings [source_name source_kind destination_name destination_kind routing_key arguments].
    ListBindings {
        /// Info keys: those above, plus properties_key vhost.
        columns: Vec<String>,
    },
    /// Lists client connections, all vhosts [user peer_host peer_port state by default].
    ListConnections {
        /// Info keys: name user vhost host port peer_host peer_port state type protocol ssl
        /// auth_mechanism channels channel_max frame_max timeout connected_at recv_oct send_oct
        /// node client_properties.
        columns: Vec<String>,
    },
    /// Lists consumers in a vhost.
    ListConsumers {
        /// Info keys: queue_name channel_pid (the channel's name) consumer_tag ack_required
        /// prefetch_count active activity_status arguments exclusive connection_name vhost.
        columns: Vec<String>,
    },
    /// Lists users and their tags.
    ListUsers {
        /// Info keys: user tags.
        columns: Vec<String>,
    },
    /// Lists virtual hosts.
    ListVhosts {
        /// Info keys: name description tags tracing messages messages_ready messages_unacknowledged.
        columns: Vec<String>,
    },
    /// Lists user permissions in a vhost.
    ListPermissions {
        /// Info keys: user vhost configure write read.
        columns: Vec<String>,
    },
    /// Lists the policies of a vhost.
    ListPolicies {
        /// Info keys: vhost name pattern apply-to definition priority.
        columns: Vec<String>,
    },
    /// Lists the operator policies of a vhost (-p).
    ListOperatorPolicies {
        /// Info keys: vhost name pattern apply-to definition priority.
        columns: Vec<String>,
    },
    /// Creates a user (fails if it exists); it has no tags and no permissions.
    AddUser {
        username: String,
        // Ids differ from the global --password/--vhost options, which clap would merge them with.
        #[arg(id = "new_password", value_name = "PASSWORD")]
        password: String,
    },
    /// Deletes a user.
    DeleteUser { username: String },
    /// Changes a user's password, keeping its tags and permissions.
    ChangePassword {
        username: String,
        new_password: String,
    },
    /// Replaces a user's tags (none clears them).
    SetUserTags { username: String, tags: Vec<String> },
    /// Creates a virtual host (no error if it exists).
    AddVhost {
        #[arg(id = "vhost_name", value_name = "VHOST")]
        vhost: String,
        /// Description of the vhost.
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated vhost tags.
        #[arg(long)]
        tags: Option<String>,
    },
    /// Deletes a virtual host and everything in it.
    DeleteVhost {
        #[arg(id = "vhost_name", value_name = "VHOST")]
        vhost: String,
    },
    /// Sets a user's configure, write and read permission regexes in a vhost (-p).
    SetPermissions {
        username: String,
        #[arg(allow_hyphen_values = true)]
        conf: String,
        #[arg(allow_hyphen_values = true)]
        write: String,
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Sets or updates a policy in a vhost (-p).
    SetPolicy(PolicyArgs),
    /// Removes a policy from a vhost (-p).
    ClearPolicy { name: String },
    /// Sets or updates an operator policy in a vhost (-p): limits (message-ttl, expires,
    /// max-length, max-length-bytes, delivery-limit) that cap what policies and arguments ask.
    SetOperatorPolicy(PolicyArgs),
    /// Removes an operator policy from a vhost (-p).
    ClearOperatorPolicy { name: String },
    /// Removes every ready message from a queue.
    PurgeQueue { queue: String },
    /// Deletes a queue.
    DeleteQueue {
        queue: String,
        /// Only if it has no consumers.
        #[arg(short = 'u', long = "if-unused")]
        if_unused: bool,
        /// Only if it has no messages.
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
    },
    /// Closes a client connection, named as list_connections' name column shows it.
    CloseConnection {
        connection: String,
        /// Text the client receives with the 320 CONNECTION_FORCED close.
        explanation: String,
    },
    /// Imports definitions (users, vhosts, permissions, topology, policies) from a JSON file.
    ImportDefinitions {
        /// JSON file; "-" or none reads standard input.
        path: Option<String>,
    },
    /// Exports definitions as JSON to a file ("-" for standard output).
    ExportDefinitions { path: String },
    /// Shows the node's version, alarms, resource use, listeners and object counts.
    Status,
}

/// Parses `args` (the words after `warren ctl`) and runs the command. A usage error prints
/// clap's message and exits 64 as rabbitmqctl does; `--help` exits 0.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // Rust ignores SIGPIPE, which would turn `warren ctl list_queues | head` into a write
    // error; a command-line tool should just stop, as rabbitmqctl and cat do.
    // SAFETY: resetting a signal disposition to its default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let argv = std::iter::once(OsString::from("warren ctl")).chain(args);
    match CtlArgs::try_parse_from(argv) {
        Ok(a) => run(a),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// Runs one parsed command; on failure prints `Error:` and the reason on stderr and returns
/// rabbitmqctl's exit code for it.
pub fn run(args: CtlArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match execute(&args, &mut out) {
        Ok(()) => {
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(f) => {
            let _ = out.flush();
            eprintln!("Error:\n{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The management API's base URL and the credentials: --user/--password (or their variables)
/// first, then those in --url, then guest/guest.
fn endpoint(c: &ConnectionOpts) -> Result<(String, String, String), Failure> {
    let finish = |base: String, url_user: Option<String>, url_password: Option<String>| {
        let user = c
            .user
            .clone()
            .or(url_user)
            .unwrap_or_else(|| "guest".into());
        let password = c
            .password
            .clone()
            .or(url_password)
            .unwrap_or_else(|| "guest".into());
        (base, user, password)
    };
    let Some(url) = c.url.as_deref() else {
        let host = if c.host.contains(':') && !c.host.starts_with('[') {
            format!("[{}]", c.host)
        } else {
            c.host.clone()
        };
        return Ok(finish(format!("http://{host}:{}", c.port), None, None));
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Failure::new(
            exit::USAGE,
            format!("unsupported URL scheme '{scheme}' in {url}: warren ctl speaks plain http"),
        ));
    }
    let (authority, path) = rest
        .find('/')
        .map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
    // Credentials in the URL (http://user:pass@host:port) are taken out of it because ureq
    // does not turn userinfo into basic auth.
    let Some((userinfo, hostport)) = authority.rsplit_once('@') else {
        return Ok(finish(format!("http://{authority}{path}"), None, None));
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    Ok(finish(
        format!("http://{hostport}{path}"),
        Some(decode(u)),
        Some(decode(p)),
    ))
}

fn style(o: &OutputOpts) -> Style {
    Style {
        json: o.formatter == Formatter::Json,
        quiet: o.quiet || o.silent,
        headers: !(o.silent || o.no_table_headers),
    }
}

/// I/O errors writing our own stdout (a closed pipe) end the command like a failed write in
/// rabbitmqctl: non-zero, with the cause.
fn io(e: std::io::Error) -> Failure {
    Failure::new(exit::SOFTWARE, format!("cannot write output: {e}"))
}

fn execute(args: &CtlArgs, out: &mut impl Write) -> Result<(), Failure> {
    let (base, user, password) = endpoint(&args.connection)?;
    let api = Client::new(
        &base,
        &user,
        &password,
        Duration::from_secs(args.connection.timeout.max(1)),
    );
    let st = style(&args.output);
    let vh = args.vhost.as_str();
    let v = seg(vh);
    let no_vhost = || Failure::no_vhost(vh);
    use Command as C;
    match &args.command {
        C::ListQueues { columns } => {
            let banner = format!("Listing queues for vhost {vh} ...");
            list(
                &api,
                out,
                st,
                &banner,
                &format!("/api/queues/{v}"),
                &output::QUEUES,
                columns,
                no_vhost,
            )
        }
        C::ListExchanges { columns } => {
            let banner = format!("Listing exchanges for vhost {vh} ...");
            list(
                &api,
                out,
                st,
                &banner,
                &format!("/api/exchanges/{v}"),
                &output::EXCHANGES,
                columns,
                no_vhost,
            )
        }
        C::ListBindings { columns } => {
            let banner = format!("Listing bindings for vhost {vh}...");
            list(
                &api,
                out,
                st,
                &banner,
                &format!("/api/bindings/{v}"),
                &output::BINDINGS,
                columns,
                no_vhost,
            )
        }
        C::ListConnections { columns } => list(
            &api,
            out,
            st,
            "Listing connections ...",
            "/api/connections",
            &output::CONNECTIONS,
            columns,
            || Failure::data("the management API has no /api/connections"),
        ),
        C::ListConsumers { columns } => {
            let banner = format!("Listing consumers in vhost {vh} ...");
            list(
                &api,
                out,
                st,
                &banner,
                &format!("/api/consumers/{v}"),
                &output::CONSUMERS,
                columns,
                no_vhost,
            )
        }
        C::ListUsers { columns } => list(
            &api,
            out,
            st,
            "Listing users ...",
            "/api/users",
            &output::USERS,
            columns,
            || Failure::data("the management API has no /api/users"),
        ),
        C::ListVhosts { columns } => list(
            &api,
            out,
            st,
            "Listing vhosts ...",
            "/api/vhosts",
            &output::VHOSTS,
            columns,
            || Failure::data("the management API has no /api/vhosts"),
        ),
        C::ListPermissions { columns } => {
            let banner = format!("Listing permissions for vhost \"{vh}\" ...");
            list(
                &api,
                out,
                st,
                &banner,
                &format!("/api/vhosts/{v}/permissions"),
                &output::PERMISSIONS,
                columns,
                no_vhost,
            )
        }
        C::ListPolicies { columns } | C::ListOperatorPolicies { columns } => {
            let operator = matches!(&args.command, C::ListOperatorPolicies { .. });
            let (banner, path) = if operator {
                (
                    format!("Listing operator policy overrides for vhost \"{vh}\" ..."),
                    "operator-policies",
                )
            } else {
                (
                    format!("Listing policies for vhost \"{vh}\" ..."),
                    "policies",
                )
            };
            let missing = || missing_vhost_or(&api, vh, path);
            list(
                &api,
                out,
                st,
                &banner,
                &format!("/api/{path}/{v}"),
                &output::POLICIES,
                columns,
                missing,
            )
        }
        C::AddUser { username, password } => {
            st.info(out, &format!("Adding user \"{username}\" ..."))
                .map_err(io)?;
            let path = format!("/api/users/{}", seg(username));
            // PUT would silently replace an existing user; rabbitmqctl refuses instead.
            let existing = api.get(&path)?;
            if existing.is_success() {
                return Err(Failure::new(
                    exit::SOFTWARE,
                    format!("User \"{username}\" already exists"),
                ));
            }
            if existing.status != 404 {
                return Err(existing.failure(|| Failure::no_user(username)));
            }
            api.put(&path, &json!({ "password": password, "tags": "" }))?
                .ok(|| Failure::no_user(username))?;
            st.info(
                out,
                "Done. Don't forget to grant the user permissions to some virtual hosts! \
                 See 'warren ctl set_permissions --help' to learn more.",
            )
            .map_err(io)
        }
        C::DeleteUser { username } => {
            st.info(out, &format!("Deleting user \"{username}\" ..."))
                .map_err(io)?;
            api.delete(&format!("/api/users/{}", seg(username)), &[])?
                .ok(|| Failure::no_user(username))?;
            Ok(())
        }
        C::ChangePassword {
            username,
            new_password,
        } => {
            st.info(
                out,
                &format!("Changing password for user \"{username}\" ..."),
            )
            .map_err(io)?;
            let path = format!("/api/users/{}", seg(username));
            let current = api.get(&path)?.ok(|| Failure::no_user(username))?;
            let tags = current.get("tags").cloned().unwrap_or(json!(""));
            api.put(&path, &json!({ "password": new_password, "tags": tags }))?
                .ok(|| Failure::no_user(username))?;
            Ok(())
        }
        C::SetUserTags { username, tags } => {
            st.info(
                out,
                &format!(
                    "Setting tags for user \"{username}\" to [{}] ...",
                    tags.join(", ")
                ),
            )
            .map_err(io)?;
            let path = format!("/api/users/{}", seg(username));
            let current = api.get(&path)?.ok(|| Failure::no_user(username))?;
            // PUT replaces the whole user: send its current hash back so the password survives.
            let mut body = json!({
                "password_hash": current.get("password_hash").cloned().unwrap_or(json!("")),
                "tags": tags,
            });
            if let Some(alg) = current.get("hashing_algorithm") {
                body["hashing_algorithm"] = alg.clone();
            }
            api.put(&path, &body)?.ok(|| Failure::no_user(username))?;
            Ok(())
        }
        C::AddVhost {
            vhost,
            description,
            tags,
        } => {
            st.info(out, &format!("Adding vhost \"{vhost}\" ..."))
                .map_err(io)?;
            let mut body = json!({});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(t) = tags {
                body["tags"] = json!(t);
            }
            api.put(&format!("/api/vhosts/{}", seg(vhost)), &body)?
                .ok(|| Failure::no_vhost(vhost))?;
            Ok(())
        }
        C::DeleteVhost { vhost } => {
            st.info(out, &format!("Deleting vhost \"{vhost}\" ..."))
                .map_err(io)?;
            api.delete(&format!("/api/vhosts/{}", seg(vhost)), &[])?
                .ok(|| Failure::no_vhost(vhost))?;
            Ok(())
        }
        C::SetPermissions {
            username,
            conf,
            write,
            read,
        } => {
            st.info(
                out,
                &format!("Setting permissions for user \"{username}\" in vhost \"{vh}\" ..."),
            )
            .map_err(io)?;
            let reply = api.put(
                &format!("/api/permissions/{v}/{}", seg(username)),
                &json!({ "configure": conf, "write": write, "read": read }),
            )?;
            // Warren answers 404 and RabbitMQ 400 "vhost_or_user_not_found" for either.
            if reply.status == 404 || (reply.status == 400 && reply.reason().contains("not_found"))
            {
                let vhost_reply = api.get(&format!("/api/vhosts/{v}"))?;
                return Err(if vhost_reply.status == 404 {
                    Failure::no_vhost(vh)
                } else {
                    Failure::no_user(username)
                });
            }
            reply.ok(|| Failure::no_user(username))?;
            Ok(())
        }
        C::SetPolicy(a) | C::SetOperatorPolicy(a) => {
            let PolicyArgs {
                name,
                pattern,
                definition,
                priority,
                apply_to,
            } = a;
            let (what, path) = if matches!(&args.command, C::SetOperatorPolicy { .. }) {
                ("operator policy override", "operator-policies")
            } else {
                ("policy", "policies")
            };
            let parsed: Value = serde_json::from_str(definition).map_err(|e| {
                Failure::data(format!("JSON decoding error in the policy definition: {e}"))
            })?;
            if !parsed.is_object() {
                return Err(Failure::data("the policy definition must be a JSON object"));
            }
            st.info(
                out,
                &format!(
                    "Setting {what} \"{name}\" for pattern \"{pattern}\" to \"{definition}\" \
                     with priority \"{priority}\" for vhost \"{vh}\" ..."
                ),
            )
            .map_err(io)?;
            api.put(
                &format!("/api/{path}/{v}/{}", seg(name)),
                &json!({
                    "pattern": pattern,
                    "definition": parsed,
                    "priority": priority,
                    "apply-to": apply_to,
                }),
            )?
            .ok(|| missing_vhost_or(&api, vh, path))?;
            Ok(())
        }
        C::ClearPolicy { name } | C::ClearOperatorPolicy { name } => {
            let (what, missing, path) = if matches!(&args.command, C::ClearOperatorPolicy { .. }) {
                ("operator policy", "Operator policy", "operator-policies")
            } else {
                ("policy", "Policy", "policies")
            };
            st.info(
                out,
                &format!("Clearing {what} \"{name}\" on vhost \"{vh}\" ..."),
            )
            .map_err(io)?;
            api.delete(&format!("/api/{path}/{v}/{}", seg(name)), &[])?
                .ok(|| {
                    Failure::data(format!("{missing} \"{name}\" not found in vhost \"{vh}\""))
                })?;
            Ok(())
        }
        C::PurgeQueue { queue } => {
            st.info(out, &format!("Purging queue '{queue}' in vhost '{vh}' ..."))
                .map_err(io)?;
            api.delete(&format!("/api/queues/{v}/{}/contents", seg(queue)), &[])?
                .ok(|| no_queue(queue, vh))?;
            Ok(())
        }
        C::DeleteQueue {
            queue,
            if_unused,
            if_empty,
        } => {
            st.info(
                out,
                &format!("Deleting queue '{queue}' on vhost '{vh}' ..."),
            )
            .map_err(io)?;
            let path = format!("/api/queues/{v}/{}", seg(queue));
            // Read first for the message count rabbitmqctl reports; the API's DELETE has none.
            let before = api.get(&path)?.ok(|| no_queue(queue, vh))?;
            let mut flags = Vec::new();
            if *if_unused {
                flags.push("if-unused=true");
            }
            if *if_empty {
                flags.push("if-empty=true");
            }
            let query = if flags.is_empty() {
                String::new()
            } else {
                format!("?{}", flags.join("&"))
            };
            api.delete(&format!("{path}{query}"), &[])?
                .ok(|| no_queue(queue, vh))?;
            let ready = before
                .get("messages_ready")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            st.info(
                out,
                &format!("Queue was successfully deleted with {ready} ready messages"),
            )
            .map_err(io)
        }
        C::CloseConnection {
            connection,
            explanation,
        } => {
            st.info(
                out,
                &format!("Closing connection \"{connection}\", reason: {explanation}..."),
            )
            .map_err(io)?;
            api.delete(
                &format!("/api/connections/{}", seg(connection)),
                &[("x-reason", explanation.as_str())],
            )?
            .ok(|| Failure::data(format!("Connection \"{connection}\" not found")))?;
            Ok(())
        }
        C::ImportDefinitions { path } => import(&api, out, st, path.as_deref()),
        C::ExportDefinitions { path } => export(&api, out, st, path),
        C::Status => status(&api, out, st),
    }
}

/// A 404 from an endpoint under a vhost: the vhost is missing, or (when it exists) the
/// broker's API lacks the endpoint, as older Warren releases lack `/api/policies`.
fn missing_vhost_or(api: &Client, vhost: &str, what: &str) -> Failure {
    match api.get(&format!("/api/vhosts/{}", seg(vhost))) {
        Ok(r) if r.status == 404 => Failure::no_vhost(vhost),
        Ok(r) if r.is_success() => Failure::data(format!(
            "the management API at {} does not support {what}",
            api.base()
        )),
        Ok(r) => r.failure(|| Failure::no_vhost(vhost)),
        Err(f) => f,
    }
}

fn no_queue(queue: &str, vhost: &str) -> Failure {
    Failure::data(format!("Queue '{queue}' not found in vhost '{vhost}'"))
}

#[allow(clippy::too_many_arguments)]
fn list(
    api: &Client,
    out: &mut impl Write,
    st: Style,
    banner: &str,
    path: &str,
    table: &Table,
    columns: &[String],
    not_found: impl FnOnce() -> Failure,
) -> Result<(), Failure> {
    let cols = table.select(columns)?;
    let body = api.get(path)?.ok(not_found)?;
    let Value::Array(rows) = body else {
        return Err(unexpected(api, path, &body));
    };
    st.info(out, banner).map_err(io)?;
    st.rows(out, &cols, &rows).map_err(io)
}

/// A 2xx answer that is not what the API documents: likely not a management API at all.
fn unexpected(api: &Client, path: &str, body: &Value) -> Failure {
    let mut shown = body.to_string();
    if shown.len() > 200 {
        let mut end = 200;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push_str("...");
    }
    Failure::new(
        exit::UNAVAILABLE,
        format!(
            "unexpected answer from {}{path} (is this a management API?): {shown}",
            api.base()
        ),
    )
}

fn import(
    api: &Client,
    out: &mut impl Write,
    st: Style,
    path: Option<&str>,
) -> Result<(), Failure> {
    let (text, from) = match path {
        None | Some("-") => {
            st.info(out, "Importing definitions in JSON from standard input ...")
                .map_err(io)?;
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::data(format!("cannot read standard input: {e}")))?;
            (s, "standard input".to_owned())
        }
        Some(p) => {
            st.info(
                out,
                &format!("Importing definitions in JSON from a file at \"{p}\" ..."),
            )
            .map_err(io)?;
            let s = std::fs::read_to_string(p)
                .map_err(|e| Failure::data(format!("cannot read file {p}: {e}")))?;
            (s, format!("File {p}"))
        }
    };
    if text.trim().is_empty() {
        return Err(Failure::data(format!("{from} is zero-sized")));
    }
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        Failure::data(format!(
            "Failed to deserialise input (format: JSON) (error: {e})"
        ))
    })?;
    if !doc.is_object() {
        return Err(Failure::data(
            "Failed to deserialise input (format: JSON) (error: definitions must be a JSON object)",
        ));
    }
    api.post_raw("/api/definitions", text)?
        .ok(|| Failure::data("the management API has no /api/definitions"))?;
    Ok(())
}

fn export(api: &Client, out: &mut impl Write, st: Style, path: &str) -> Result<(), Failure> {
    let to_stdout = path == "-";
    if !to_stdout {
        st.info(
            out,
            &format!("Exporting definitions in JSON to a file at \"{path}\" ..."),
        )
        .map_err(io)?;
    }
    let doc = api
        .get("/api/definitions")?
        .ok(|| Failure::data("the management API has no /api/definitions"))?;
    if !doc.is_object() {
        return Err(unexpected(api, "/api/definitions", &doc));
    }
    let mut text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Failure::new(exit::SOFTWARE, format!("cannot encode definitions: {e}")))?;
    text.push('\n');
    if to_stdout {
        out.write_all(text.as_bytes()).map_err(io)
    } else {
        std::fs::write(path, text)
            .map_err(|e| Failure::data(format!("cannot write file {path}: {e}")))
    }
}

fn status(api: &Client, out: &mut impl Write, st: Style) -> Result<(), Failure> {
    let none = || Failure::data("the management API has no /api/overview");
    let overview = api.get("/api/overview")?.ok(none)?;
    if !overview.is_object() {
        return Err(unexpected(api, "/api/overview", &overview));
    }
    let node_name = overview["node"].as_str().unwrap_or("").to_owned();
    let nodes: Reply = api.get("/api/nodes")?;
    let nodes = nodes.ok(|| Failure::data("the management API has no /api/nodes"))?;
    let node = nodes
        .as_array()
        .and_then(|ns| {
            ns.iter()
                .find(|n| n["name"].as_str() == Some(node_name.as_str()))
                .or_else(|| ns.first())
        })
        .cloned()
        .unwrap_or(Value::Null);
    let vhosts = api
        .get("/api/vhosts")?
        .ok(|| Failure::data("no /api/vhosts"))?;
    let mut alarms = Vec::new();
    if node["mem_alarm"].as_bool() == Some(true) {
        alarms.push(format!("Memory alarm on node {node_name}"));
    }
    if node["disk_free_alarm"].as_bool() == Some(true) {
        alarms.push(format!("Free disk space alarm on node {node_name}"));
    }
    let totals = &overview["object_totals"];
    let queue_totals = &overview["queue_totals"];
    let status = json!({
        "node": node_name,
        "product_name": overview["product_name"],
        "product_version": overview["product_version"],
        "rabbitmq_version": overview["rabbitmq_version"],
        "cluster_name": overview["cluster_name"],
        "alarms": alarms,
        "memory": { "used": node["mem_used"], "limit": node["mem_limit"] },
        "disk": { "free": node["disk_free"], "limit": node["disk_free_limit"] },
        "file_descriptors": { "used": node["fd_used"], "total": node["fd_total"] },
        "uptime": node["uptime"],
        "listeners": overview["listeners"],
        "totals": {
            "connections": totals["connections"],
            "channels": totals["channels"],
            "consumers": totals["consumers"],
            "exchanges": totals["exchanges"],
            "queues": totals["queues"],
            "virtual_hosts": vhosts.as_array().map(Vec::len),
            "messages": queue_totals["messages"],
            "messages_ready": queue_totals["messages_ready"],
            "messages_unacknowledged": queue_totals["messages_unacknowledged"],
        },
    });
    if st.json {
        let text = serde_json::to_string_pretty(&status)
            .map_err(|e| Failure::new(exit::SOFTWARE, e.to_string()))?;
        return writeln!(out, "{text}").map_err(io);
    }
    let s = |v: &Value| match v {
        Value::Null => "unknown".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    st.info(out, &format!("Status of node {node_name} ..."))
        .map_err(io)?;
    let mut text = String::new();
    let mut line = |l: String| {
        text.push_str(&l);
        text.push('\n');
    };
    line("Basics\n".into());
    line(format!("Product name: {}", s(&status["product_name"])));
    line(format!(
        "Product version: {}",
        s(&status["product_version"])
    ));
    line(format!(
        "RabbitMQ version: {}",
        s(&status["rabbitmq_version"])
    ));
    line(format!("Cluster name: {}", s(&status["cluster_name"])));
    line(format!("Uptime (seconds): {}", s(&status["uptime"])));
    line("\nAlarms\n".into());
    if alarms.is_empty() {
        line("(none)".into());
    }
    for a in &alarms {
        line(a.clone());
    }
    line("\nMemory\n".into());
    line(format!("Used: {} bytes", s(&status["memory"]["used"])));
    line(format!(
        "High watermark: {} bytes",
        s(&status["memory"]["limit"])
    ));
    line("\nFree Disk Space\n".into());
    line(format!("Free: {} bytes", s(&status["disk"]["free"])));
    line(format!(
        "Low free disk space watermark: {} bytes",
        s(&status["disk"]["limit"])
    ));
    line("\nFile Descriptors\n".into());
    line(format!("Used: {}", s(&status["file_descriptors"]["used"])));
    line("\nListeners\n".into());
    for l in overview["listeners"].as_array().into_iter().flatten() {
        line(format!(
            "Interface: {}, port: {}, protocol: {}",
            s(&l["ip_address"]),
            s(&l["port"]),
            s(&l["protocol"])
        ));
    }
    line("\nTotals\n".into());
    let t = &status["totals"];
    line(format!("Connection count: {}", s(&t["connections"])));
    line(format!("Queue count: {}", s(&t["queues"])));
    line(format!("Exchange count: {}", s(&t["exchanges"])));
    line(format!("Consumer count: {}", s(&t["consumers"])));
    line(format!("Virtual host count: {}", s(&t["virtual_hosts"])));
    line(format!("Message count: {}", s(&t["messages"])));
    line(format!("Ready message count: {}", s(&t["messages_ready"])));
    line(format!(
        "Unacknowledged message count: {}",
        s(&t["messages_unacknowledged"])
    ));
    out.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: Option<&str>, user: Option<&str>, password: Option<&str>) -> ConnectionOpts {
        ConnectionOpts {
            url: url.map(str::to_owned),
            host: "localhost".into(),
            port: 15672,
            user: user.map(str::to_owned),
            password: password.map(str::to_owned),
            timeout: 60,
        }
    }

    fn endpoint_of(c: &ConnectionOpts) -> (String, String, String) {
        endpoint(c).unwrap_or_else(|f| panic!("{}", f.message))
    }

    #[test]
    fn host_and_port_default_to_guest_on_localhost() {
        let (base, user, password) = endpoint_of(&opts(None, None, None));
        assert_eq!(
            (base.as_str(), user.as_str(), password.as_str()),
            ("http://localhost:15672", "guest", "guest")
        );
        let mut v6 = opts(None, Some("admin"), None);
        v6.host = "::1".into();
        let (base, user, password) = endpoint_of(&v6);
        assert_eq!(
            (base.as_str(), user.as_str(), password.as_str()),
            ("http://[::1]:15672", "admin", "guest")
        );
    }

    #[test]
    fn url_credentials_come_after_explicit_ones() {
        let url = Some("http://ad%40min:p%3Ass@broker:15999/prefix");
        let (base, user, password) = endpoint_of(&opts(url, None, None));
        assert_eq!(
            (base.as_str(), user.as_str(), password.as_str()),
            ("http://broker:15999/prefix", "ad@min", "p:ss")
        );
        let (_, user, password) = endpoint_of(&opts(url, Some("other"), None));
        assert_eq!((user.as_str(), password.as_str()), ("other", "p:ss"));
        let (base, user, _) = endpoint_of(&opts(Some("broker:1234"), None, None));
        assert_eq!(
            (base.as_str(), user.as_str()),
            ("http://broker:1234", "guest")
        );
    }

    #[test]
    fn https_is_refused_as_usage() {
        let f = endpoint(&opts(Some("https://broker:15671"), None, None)).err();
        assert_eq!(f.map(|f| f.code), Some(exit::USAGE));
    }
}
