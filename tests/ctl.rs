//! `warren ctl`: the real binary run against an in-process broker's management API, checking
//! each command's output and effect, and the exit codes of its failures (rabbitmqctl's: 64
//! usage, 65 data error, 67 no such user, 69 unreachable, 70 already exists, 77 access refused).
//!
//! The commands were first run against RabbitMQ 3.10.8's management API by hand; the tests
//! below need an in-process broker (they read its address and state) and skip otherwise.

mod common;

use common::amqp::{declare, publish, table};
use common::{TestBroker, within};
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, Event, ExchangeKind};
use serde_json::Value;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

/// What one run of `warren ctl` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "ctl failed: {self:?}");
        &self.stdout
    }

    /// Asserts the exit code and an `Error:` message containing `text`.
    fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "unexpected exit code: {self:?}");
        assert!(
            self.stderr.contains("Error") || self.stderr.contains("error"),
            "no error message: {self:?}"
        );
        assert!(self.stderr.contains(text), "expected {text:?} in {self:?}");
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Data lines of a `-q` table, split into cells (header line dropped).
    fn rows(&self) -> Vec<Vec<String>> {
        self.ok()
            .lines()
            .skip(1)
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }
}

/// Runs the binary with exactly `args` and no WARREN_CTL_* settings from the environment.
async fn warren(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"));
    cmd.args(args).kill_on_drop(true);
    for var in [
        "WARREN_CTL_URL",
        "WARREN_CTL_HOST",
        "WARREN_CTL_PORT",
        "WARREN_CTL_USER",
        "WARREN_CTL_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Generous: a debug binary starting on a loaded 2-core machine.
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("warren ctl finished within 60s")
        .expect("run warren");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A broker with its management API, and `warren ctl` pointed at it.
struct Env {
    tb: TestBroker,
    http: SocketAddr,
}

impl Env {
    async fn start() -> Option<Env> {
        let tb = common::start().await;
        let http = tb.broker()?.http_addr().expect("management API enabled");
        Some(Env { tb, http })
    }

    fn broker(&self) -> &warren::Broker {
        self.tb.broker().expect("in-process broker")
    }

    /// `warren ctl --host .. --port .. ARGS` as guest.
    async fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_as("guest", "guest", args).await
    }

    async fn ctl_as(&self, user: &str, password: &str, args: &[&str]) -> Run {
        let port = self.http.port().to_string();
        let mut all = vec![
            "ctl",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--user",
            user,
            "--password",
            password,
        ];
        all.extend_from_slice(args);
        warren(&all, &[]).await
    }
}

/// Polls `f` until it holds (bounded), for effects that land asynchronously.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn confirm_options() -> lapin::options::ConfirmSelectOptions {
    lapin::options::ConfirmSelectOptions::default()
}

#[tokio::test]
async fn list_queues_prints_rabbitmqctl_tables_and_json() {
    let Some(env) = Env::start().await else {
        return;
    };
    let (_conn, ch) = env.tb.channel().await;
    within(ch.confirm_select(confirm_options()))
        .await
        .expect("confirm.select");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    declare(
        &ch,
        "ctl-q1",
        durable,
        table(&[("x-max-length", AMQPValue::LongLongInt(10))]),
    )
    .await;
    declare(
        &ch,
        "ctl-q2",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    for body in [&b"a"[..], b"b", b"c"] {
        publish(&ch, "ctl-q1", body).await;
    }

    // Default columns, with rabbitmqctl's informational line and header.
    let out = env.ctl(&["list_queues"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(
        lines,
        [
            "Listing queues for vhost / ...",
            "name\tmessages",
            "ctl-q1\t3",
            "ctl-q2\t0"
        ]
    );

    let out = env
        .ctl(&[
            "-q",
            "list_queues",
            "name",
            "messages",
            "consumers",
            "durable",
            "arguments",
        ])
        .await;
    assert_eq!(
        out.ok(),
        "name\tmessages\tconsumers\tdurable\targuments\n\
         ctl-q1\t3\t0\ttrue\t[{\"x-max-length\",10}]\n\
         ctl-q2\t0\t0\tfalse\t[]\n"
    );

    // -s: no informational line and no header.
    assert_eq!(
        env.ctl(&["-s", "list_queues"]).await.ok(),
        "ctl-q1\t3\nctl-q2\t0\n"
    );
    assert_eq!(
        env.ctl(&["list_queues", "--no-table-headers", "-q", "name"])
            .await
            .ok(),
        "ctl-q1\nctl-q2\n"
    );

    let json = env
        .ctl(&[
            "list_queues",
            "name",
            "messages",
            "durable",
            "--formatter",
            "json",
        ])
        .await
        .json();
    assert_eq!(
        json,
        serde_json::json!([
            {"name": "ctl-q1", "messages": 3, "durable": true},
            {"name": "ctl-q2", "messages": 0, "durable": false},
        ])
    );

    // Another vhost is empty; an unknown one is a data error.
    env.broker().add_vhost("ctl-empty");
    assert_eq!(
        env.ctl(&["-s", "list_queues", "-p", "ctl-empty"])
            .await
            .ok(),
        ""
    );
    env.ctl(&["list_queues", "-p", "no-such-vhost"])
        .await
        .fails(65, "Virtual host 'no-such-vhost' does not exist");
}

#[tokio::test]
async fn list_exchanges_and_bindings() {
    let Some(env) = Env::start().await else {
        return;
    };
    let (_conn, ch) = env.tb.channel().await;
    within(ch.exchange_declare(
        "ctl-x".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("exchange.declare");
    declare(
        &ch,
        "ctl-bq",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    within(ch.queue_bind(
        "ctl-bq".into(),
        "ctl-x".into(),
        "a.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.bind");

    let out = env.ctl(&["list_exchanges"]).await;
    let text = out.ok();
    assert!(
        text.starts_with("Listing exchanges for vhost / ...\nname\ttype\n"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "ctl-x\ttopic"), "{text}");
    assert!(text.lines().any(|l| l == "amq.fanout\tfanout"), "{text}");
    // The default exchange has an empty name, as rabbitmqctl prints it.
    assert!(text.lines().any(|l| l == "\tdirect"), "{text}");

    let json = env
        .ctl(&[
            "list_exchanges",
            "name",
            "type",
            "durable",
            "internal",
            "--formatter",
            "json",
        ])
        .await
        .json();
    let ours: Vec<&Value> = json
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["name"] == "ctl-x")
        .collect();
    assert_eq!(
        ours,
        [
            &serde_json::json!({"name": "ctl-x", "type": "topic", "durable": true, "internal": false})
        ]
    );

    let out = env.ctl(&["list_bindings"]).await;
    let text = out.ok();
    assert!(
        text.starts_with("Listing bindings for vhost /...\n"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments"
    );
    assert!(
        lines.contains(&"\texchange\tctl-bq\tqueue\tctl-bq\t[]"),
        "{text}"
    );
    assert!(
        lines.contains(&"ctl-x\texchange\tctl-bq\tqueue\ta.#\t[]"),
        "{text}"
    );

    let rows = env
        .ctl(&["-q", "list_bindings", "source_name", "routing_key", "vhost"])
        .await
        .rows();
    assert!(
        rows.contains(&vec!["ctl-x".into(), "a.#".into(), "/".into()]),
        "{rows:?}"
    );
}

#[tokio::test]
async fn list_and_close_connections() {
    let Some(env) = Env::start().await else {
        return;
    };
    let conn = env.tb.connect().await;
    let mut events = tokio_test::task::spawn(conn.events_listener());

    let out = env.ctl(&["list_connections"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "Listing connections ...");
    assert_eq!(lines[1], "user\tpeer_host\tpeer_port\tstate");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[2].starts_with("guest\t127.0.0.1\t"), "{lines:?}");
    assert!(lines[2].ends_with("\trunning"), "{lines:?}");

    let rows = env
        .ctl(&["-q", "list_connections", "name", "vhost"])
        .await
        .rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let name = rows[0][0].clone();
    assert!(name.contains(" -> "), "{name}");
    assert_eq!(rows[0][1], "/");

    let out = env
        .ctl(&["close_connection", &name, "closed by ctl test"])
        .await;
    assert!(out.ok().contains("Closing connection"), "{out:?}");
    let err = within(async {
        loop {
            match events.poll_next() {
                Poll::Ready(Some(Event::Error(e))) => break e,
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => panic!("events ended without an error"),
                Poll::Pending => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    assert_eq!(common::amqp::reply_code(&err), Some(320), "{err}");
    assert_eq!(
        common::amqp::reply_text(&err).as_deref(),
        Some("CONNECTION_FORCED - closed by ctl test")
    );
    eventually("connection gone from the list", || async {
        env.ctl(&["-s", "list_connections"]).await.ok().is_empty()
    })
    .await;

    env.ctl(&["close_connection", &name, "again"])
        .await
        .fails(65, "not found");
}

#[tokio::test]
async fn list_consumers_shows_each_consumer() {
    let Some(env) = Env::start().await else {
        return;
    };
    let (_conn, ch) = env.tb.channel().await;
    declare(
        &ch,
        "ctl-cq",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    within(ch.basic_qos(7, BasicQosOptions::default()))
        .await
        .expect("basic.qos");
    let _consumer = within(ch.basic_consume(
        "ctl-cq".into(),
        "ctl-tag".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("basic.consume");

    let out = env.ctl(&["list_consumers"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "Listing consumers in vhost / ...");
    assert_eq!(
        lines[1],
        "queue_name\tchannel_pid\tconsumer_tag\tack_required\tprefetch_count\tactive\t\
         activity_status\targuments"
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    let cells: Vec<&str> = lines[2].split('\t').collect();
    assert_eq!(cells[0], "ctl-cq");
    assert!(cells[1].contains(" -> "), "channel name: {lines:?}");
    assert_eq!(&cells[2..], ["ctl-tag", "true", "7", "true", "up", "[]"]);

    let json = env
        .ctl(&[
            "list_consumers",
            "queue_name",
            "consumer_tag",
            "--formatter",
            "json",
        ])
        .await
        .json();
    assert_eq!(
        json,
        serde_json::json!([{"queue_name": "ctl-cq", "consumer_tag": "ctl-tag"}])
    );
}

#[tokio::test]
async fn list_consumers_of_an_empty_or_missing_vhost() {
    let Some(env) = Env::start().await else {
        return;
    };
    let out = env.ctl(&["list_consumers"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "Listing consumers in vhost / ...");
    assert!(
        lines[1].starts_with("queue_name\tchannel_pid\tconsumer_tag"),
        "{lines:?}"
    );
    env.ctl(&["list_consumers", "-p", "nope"])
        .await
        .fails(65, "Virtual host 'nope' does not exist");
}

/// Whether `user`/`password` can open an AMQP connection to the default vhost.
async fn can_log_in(tb: &TestBroker, user: &str, password: &str) -> bool {
    within(Connection::connect(
        &tb.uri_for(user, password, "/"),
        ConnectionProperties::default(),
    ))
    .await
    .is_ok()
}

#[tokio::test]
async fn users_add_change_tag_delete() {
    let Some(env) = Env::start().await else {
        return;
    };
    let out = env.ctl(&["add_user", "ctl-u", "pw1"]).await;
    assert!(
        out.ok().starts_with("Adding user \"ctl-u\" ...\n"),
        "{out:?}"
    );
    env.ctl(&["add_user", "ctl-u", "other"])
        .await
        .fails(70, "User \"ctl-u\" already exists");
    // The refused add_user left the password alone.
    env.ctl(&["set_permissions", "ctl-u", ".*", ".*", ".*"])
        .await
        .ok();
    assert!(can_log_in(&env.tb, "ctl-u", "pw1").await);

    let rows = env.ctl(&["-q", "list_users"]).await.rows();
    assert!(
        rows.contains(&vec!["ctl-u".into(), "[]".into()]),
        "{rows:?}"
    );

    env.ctl(&["set_user_tags", "ctl-u", "management", "monitoring"])
        .await
        .ok();
    let rows = env.ctl(&["-q", "list_users"]).await.rows();
    assert!(
        rows.contains(&vec!["ctl-u".into(), "[management, monitoring]".into()]),
        "{rows:?}"
    );
    // Setting tags kept the password.
    assert!(can_log_in(&env.tb, "ctl-u", "pw1").await);

    env.ctl(&["change_password", "ctl-u", "pw2"]).await.ok();
    assert!(can_log_in(&env.tb, "ctl-u", "pw2").await);
    assert!(!can_log_in(&env.tb, "ctl-u", "pw1").await);
    // ... and kept the tags and permissions.
    let rows = env.ctl(&["-q", "list_users"]).await.rows();
    assert!(
        rows.contains(&vec!["ctl-u".into(), "[management, monitoring]".into()]),
        "{rows:?}"
    );

    // A management user may look but not administer.
    let rows = env
        .ctl_as("ctl-u", "pw2", &["-q", "list_queues"])
        .await
        .rows();
    assert!(rows.is_empty(), "{rows:?}");
    env.ctl_as("ctl-u", "pw2", &["add_user", "x", "y"])
        .await
        .fails(77, "Access refused");

    env.ctl(&["set_user_tags", "ctl-u"]).await.ok();
    let rows = env.ctl(&["-q", "list_users", "user", "tags"]).await.rows();
    assert!(
        rows.contains(&vec!["ctl-u".into(), "[]".into()]),
        "{rows:?}"
    );

    env.ctl(&["delete_user", "ctl-u"]).await.ok();
    assert!(!can_log_in(&env.tb, "ctl-u", "pw2").await);
    for args in [
        &["delete_user", "ctl-u"][..],
        &["change_password", "ctl-u", "x"],
        &["set_user_tags", "ctl-u", "administrator"],
        &["set_permissions", "ctl-u", ".*", ".*", ".*"],
    ] {
        env.ctl(args)
            .await
            .fails(67, "User \"ctl-u\" does not exist");
    }
    // change_password must not create the user it did not find.
    let rows = env.ctl(&["-q", "list_users"]).await.rows();
    assert!(rows.iter().all(|r| r[0] != "ctl-u"), "{rows:?}");
}

#[tokio::test]
async fn vhosts_and_permissions() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.broker().add_user("ctl-p", "pw", &[]);
    let out = env.ctl(&["add_vhost", "ctl-vh"]).await;
    assert_eq!(out.ok(), "Adding vhost \"ctl-vh\" ...\n");
    // Adding an existing vhost is not an error, as in rabbitmqctl.
    env.ctl(&["add_vhost", "ctl-vh"]).await.ok();
    let rows = env.ctl(&["-q", "list_vhosts"]).await.rows();
    assert_eq!(rows, [vec!["/".to_owned()], vec!["ctl-vh".to_owned()]]);

    // Patterns that look like options or are empty pass through unchanged.
    let out = env
        .ctl(&[
            "set_permissions",
            "-p",
            "ctl-vh",
            "ctl-p",
            "^ctl-.*",
            "",
            "-x",
        ])
        .await;
    assert_eq!(
        out.ok(),
        "Setting permissions for user \"ctl-p\" in vhost \"ctl-vh\" ...\n"
    );
    let rows = env
        .ctl(&["-q", "list_permissions", "-p", "ctl-vh"])
        .await
        .rows();
    assert!(
        rows.contains(&vec![
            "ctl-p".into(),
            "^ctl-.*".into(),
            "".into(),
            "-x".into()
        ]),
        "{rows:?}"
    );
    // The permissions are the broker's, not just the API's.
    let uri = env.tb.uri_for("ctl-p", "pw", "ctl-vh");
    let conn = within(Connection::connect(&uri, ConnectionProperties::default()))
        .await
        .expect("ctl-p may use ctl-vh");
    let ch = within(conn.create_channel()).await.expect("channel");
    within(ch.queue_declare(
        "other".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect_err("configure is limited to ^ctl-.*");

    env.ctl(&["set_permissions", "-p", "nope", "ctl-p", ".*", ".*", ".*"])
        .await
        .fails(65, "Virtual host 'nope' does not exist");
    env.ctl(&["list_permissions", "-p", "nope"])
        .await
        .fails(65, "Virtual host 'nope' does not exist");

    let out = env.ctl(&["delete_vhost", "ctl-vh"]).await;
    assert_eq!(out.ok(), "Deleting vhost \"ctl-vh\" ...\n");
    let rows = env.ctl(&["-q", "list_vhosts"]).await.rows();
    assert_eq!(rows, [vec!["/".to_owned()]]);
    env.ctl(&["delete_vhost", "ctl-vh"])
        .await
        .fails(65, "Virtual host 'ctl-vh' does not exist");
}

#[tokio::test]
async fn purge_and_delete_queues() {
    let Some(env) = Env::start().await else {
        return;
    };
    let (_conn, ch) = env.tb.channel().await;
    within(ch.confirm_select(confirm_options()))
        .await
        .expect("confirm.select");
    for q in ["ctl-pq", "ctl-dq"] {
        declare(
            &ch,
            q,
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        for _ in 0..4 {
            publish(&ch, q, b"m").await;
        }
    }

    let out = env.ctl(&["purge_queue", "ctl-pq"]).await;
    assert_eq!(out.ok(), "Purging queue 'ctl-pq' in vhost '/' ...\n");
    assert_eq!(common::amqp::ready_count(&ch, "ctl-pq").await, 0);

    env.ctl(&["delete_queue", "ctl-dq", "--if-empty"])
        .await
        .fails(65, "not empty");
    assert_eq!(common::amqp::ready_count(&ch, "ctl-dq").await, 4);
    let out = env.ctl(&["delete_queue", "ctl-dq"]).await;
    assert_eq!(
        out.ok(),
        "Deleting queue 'ctl-dq' on vhost '/' ...\n\
         Queue was successfully deleted with 4 ready messages\n"
    );
    let rows = env.ctl(&["-q", "list_queues", "name"]).await.rows();
    assert_eq!(rows, [vec!["ctl-pq".to_owned()]]);
    env.ctl(&["delete_queue", "-q", "--if-unused", "ctl-pq"])
        .await
        .ok();

    for args in [
        &["delete_queue", "ctl-dq"][..],
        &["purge_queue", "ctl-dq"],
        &["purge_queue", "-p", "nope", "ctl-dq"],
    ] {
        env.ctl(args).await.fails(65, "Queue 'ctl-dq' not found");
    }
}

#[tokio::test]
async fn policies_set_list_clear() {
    let Some(env) = Env::start().await else {
        return;
    };
    let out = env
        .ctl(&[
            "set_policy",
            "--priority",
            "3",
            "--apply-to",
            "queues",
            "ctl-pol",
            "^ctl-",
            r#"{"max-length":5}"#,
        ])
        .await;
    assert_eq!(
        out.ok(),
        "Setting policy \"ctl-pol\" for pattern \"^ctl-\" to \"{\"max-length\":5}\" with \
         priority \"3\" for vhost \"/\" ...\n"
    );
    let rows = env.ctl(&["-q", "list_policies"]).await.rows();
    assert_eq!(
        rows,
        [vec![
            "/",
            "ctl-pol",
            "^ctl-",
            "queues",
            r#"{"max-length":5}"#,
            "3"
        ]]
    );
    let json = env
        .ctl(&["list_policies", "name", "priority", "--formatter", "json"])
        .await
        .json();
    assert_eq!(
        json,
        serde_json::json!([{"name": "ctl-pol", "priority": 3}])
    );

    // Rejections by the broker are data errors with its reason.
    env.ctl(&[
        "set_policy",
        "--apply-to",
        "bogus",
        "p2",
        "^x",
        r#"{"max-length":5}"#,
    ])
    .await
    .fails(65, "apply-to");
    env.ctl(&[
        "set_policy",
        "-p",
        "nope",
        "p2",
        "^x",
        r#"{"max-length":5}"#,
    ])
    .await
    .fails(65, "Virtual host 'nope' does not exist");

    let out = env.ctl(&["clear_policy", "ctl-pol"]).await;
    assert_eq!(out.ok(), "Clearing policy \"ctl-pol\" on vhost \"/\" ...\n");
    assert!(env.ctl(&["-q", "list_policies"]).await.rows().is_empty());
    env.ctl(&["clear_policy", "ctl-pol"])
        .await
        .fails(65, "Policy \"ctl-pol\" not found");
}

#[tokio::test]
async fn operator_policies_set_list_clear() {
    let Some(env) = Env::start().await else {
        return;
    };
    let out = env
        .ctl(&[
            "set_operator_policy",
            "--apply-to",
            "queues",
            "ctl-cap",
            "^ctl-",
            r#"{"max-length":100}"#,
        ])
        .await;
    assert_eq!(
        out.ok(),
        "Setting operator policy override \"ctl-cap\" for pattern \"^ctl-\" to \
         \"{\"max-length\":100}\" with priority \"0\" for vhost \"/\" ...\n"
    );
    let rows = env.ctl(&["-q", "list_operator_policies"]).await.rows();
    assert_eq!(
        rows,
        [vec![
            "/",
            "ctl-cap",
            "^ctl-",
            "queues",
            r#"{"max-length":100}"#,
            "0"
        ]]
    );
    // Kept apart from policies.
    assert!(env.ctl(&["-q", "list_policies"]).await.rows().is_empty());
    let banner = env.ctl(&["list_operator_policies", "name"]).await;
    assert!(
        banner
            .ok()
            .starts_with("Listing operator policy overrides for vhost \"/\" ..."),
        "{banner:?}"
    );
    // Only limits are operator settings: the broker's reason comes back as a data error.
    env.ctl(&[
        "set_operator_policy",
        "p2",
        "^x",
        r#"{"dead-letter-exchange":"dlx"}"#,
    ])
    .await
    .fails(65, "are not recognised policy settings");
    env.ctl(&[
        "set_operator_policy",
        "-p",
        "nope",
        "p2",
        "^x",
        r#"{"max-length":5}"#,
    ])
    .await
    .fails(65, "Virtual host 'nope' does not exist");

    let out = env.ctl(&["clear_operator_policy", "ctl-cap"]).await;
    assert_eq!(
        out.ok(),
        "Clearing operator policy \"ctl-cap\" on vhost \"/\" ...\n"
    );
    assert!(
        env.ctl(&["-q", "list_operator_policies"])
            .await
            .rows()
            .is_empty()
    );
    env.ctl(&["clear_operator_policy", "ctl-cap"])
        .await
        .fails(65, "Operator policy \"ctl-cap\" not found");
}

#[tokio::test]
async fn set_policy_checks_its_definition_before_sending() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.ctl(&["set_policy", "p", "^x", "{bad"])
        .await
        .fails(65, "JSON decoding error");
    env.ctl(&["set_policy", "p", "^x", "[1]"])
        .await
        .fails(65, "must be a JSON object");
    env.ctl(&["set_policy", "--priority", "high", "p", "^x", "{}"])
        .await
        .fails(64, "--priority");
}

/// The parts of a definitions export that must survive export + import.
fn topology(defs: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "users",
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
    ] {
        let mut items = defs[key].as_array().cloned().unwrap_or_default();
        items.sort_by_key(|v| v.to_string());
        out.insert(key.to_owned(), Value::Array(items));
    }
    Value::Object(out)
}

#[tokio::test]
async fn definitions_export_then_import_round_trips() {
    let Some(src) = Env::start().await else {
        return;
    };
    src.broker().add_user("ctl-d", "pw", &["monitoring"]);
    src.broker().add_vhost("ctl-dvh");
    src.broker()
        .set_permissions("ctl-d", "ctl-dvh", "^a", "^b", "^c")
        .expect("permissions");
    let (_conn, ch) = src.tb.channel().await;
    within(ch.exchange_declare(
        "ctl-dx".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("exchange.declare");
    declare(
        &ch,
        "ctl-dq",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        table(&[("x-message-ttl", AMQPValue::LongLongInt(60_000))]),
    )
    .await;
    within(ch.queue_bind(
        "ctl-dq".into(),
        "ctl-dx".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.bind");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("defs.json");
    let file = file.to_str().expect("utf-8 path");
    let out = src.ctl(&["export_definitions", file]).await;
    assert_eq!(
        out.ok(),
        format!("Exporting definitions in JSON to a file at \"{file}\" ...\n")
    );
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("file written"))
            .expect("file is JSON");
    assert!(
        exported["queues"]
            .as_array()
            .is_some_and(|qs| qs.iter().any(|q| q["name"] == "ctl-dq")),
        "{exported}"
    );
    // "-" writes the same document to stdout.
    let to_stdout = src.ctl(&["export_definitions", "-"]).await.json();
    assert_eq!(topology(&to_stdout), topology(&exported));

    let dst = Env::start().await.expect("second broker");
    let out = dst.ctl(&["import_definitions", file]).await;
    assert_eq!(
        out.ok(),
        format!("Importing definitions in JSON from a file at \"{file}\" ...\n")
    );
    let reimported = dst.ctl(&["export_definitions", "-"]).await.json();
    assert_eq!(topology(&reimported), topology(&exported));
    // The imported user logs in with its old password (the hash travelled).
    assert!(
        within(Connection::connect(
            &dst.tb.uri_for("ctl-d", "pw", "ctl-dvh"),
            ConnectionProperties::default()
        ))
        .await
        .is_ok()
    );

    // Bad input is refused before anything is sent, or by the broker, with 65.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "not json").expect("write");
    dst.ctl(&["import_definitions", bad.to_str().expect("utf-8")])
        .await
        .fails(65, "Failed to deserialise input");
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "").expect("write");
    dst.ctl(&["import_definitions", empty.to_str().expect("utf-8")])
        .await
        .fails(65, "zero-sized");
    dst.ctl(&["import_definitions", "/nonexistent/defs.json"])
        .await
        .fails(65, "cannot read file /nonexistent/defs.json");
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"{"queues":[{"name":5}]}"#).expect("write");
    dst.ctl(&["import_definitions", wrong.to_str().expect("utf-8")])
        .await
        .fails(65, "");
    dst.ctl(&["export_definitions", "/nonexistent/out.json"])
        .await
        .fails(65, "cannot write file");
}

#[tokio::test]
async fn import_definitions_reads_stdin() {
    let Some(env) = Env::start().await else {
        return;
    };
    let port = env.http.port().to_string();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"));
    cmd.args([
        "ctl",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "import_definitions",
    ])
    .env_remove("WARREN_CTL_URL")
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    use tokio::io::AsyncWriteExt;
    stdin
        .write_all(
            br#"{"queues":[{"name":"ctl-stdin","vhost":"/","durable":true,"auto_delete":false,"arguments":{}}]}"#,
        )
        .await
        .expect("write stdin");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("finished")
        .expect("output");
    assert!(out.status.success(), "{out:?}");
    let rows = env
        .ctl(&["-q", "list_queues", "name", "durable"])
        .await
        .rows();
    assert_eq!(rows, [vec!["ctl-stdin".to_owned(), "true".to_owned()]]);
}

#[tokio::test]
async fn status_reports_the_node() {
    let Some(env) = Env::start().await else {
        return;
    };
    let (_conn, ch) = env.tb.channel().await;
    declare(
        &ch,
        "ctl-sq",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let out = env.ctl(&["status"]).await;
    let text = out.ok();
    assert!(text.starts_with("Status of node warren@"), "{text}");
    for line in [
        "Product name: Warren",
        "Queue count: 1",
        "Connection count: 1",
        "Virtual host count: 1",
        "(none)",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in {text}"
        );
    }
    let amqp_port = format!("port: {}, protocol: amqp", env.tb.addr.port());
    assert!(text.contains(&amqp_port), "{text}");

    let json = env.ctl(&["status", "--formatter", "json"]).await.json();
    assert_eq!(json["product_name"], "Warren");
    assert_eq!(json["totals"]["queues"], 1);
    assert_eq!(json["totals"]["connections"], 1);
    assert_eq!(json["alarms"], serde_json::json!([]));
    assert!(
        json["memory"]["used"].as_u64().is_some_and(|m| m > 0),
        "{json}"
    );

    // An alarm shows up.
    env.broker().set_disk_free_limit(u64::MAX);
    let json = env.ctl(&["status", "--formatter", "json"]).await.json();
    let alarms = json["alarms"].to_string();
    assert!(alarms.contains("Free disk space alarm"), "{json}");
}

#[tokio::test]
async fn wrong_credentials_exit_77() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.ctl_as("guest", "wrong", &["list_queues"])
        .await
        .fails(77, "Access refused");
    env.ctl_as("nobody", "x", &["status"])
        .await
        .fails(77, "Access refused");
}

#[tokio::test]
async fn connection_settings_from_the_environment() {
    let Some(env) = Env::start().await else {
        return;
    };
    let url = format!("http://guest:guest@{}", env.http);
    let out = warren(&["ctl", "-s", "list_vhosts"], &[("WARREN_CTL_URL", &url)]).await;
    assert_eq!(out.ok(), "/\n");
    let port = env.http.port().to_string();
    let out = warren(
        &["ctl", "-s", "list_vhosts"],
        &[
            ("WARREN_CTL_HOST", "127.0.0.1"),
            ("WARREN_CTL_PORT", &port),
            ("WARREN_CTL_PASSWORD", "wrong"),
        ],
    )
    .await;
    out.fails(77, "Access refused");
    // Explicit credentials win over the URL's.
    let out = warren(
        &["ctl", "-s", "--password", "wrong", "list_vhosts"],
        &[("WARREN_CTL_URL", &url)],
    )
    .await;
    out.fails(77, "Access refused");
    warren(&["ctl", "--url", "https://127.0.0.1:15671", "status"], &[])
        .await
        .fails(64, "plain http");
    // --url on the command line wins over the environment.
    let out = warren(
        &[
            "ctl",
            "-s",
            "--url",
            &format!("http://{}", env.http),
            "list_vhosts",
        ],
        &[("WARREN_CTL_URL", "http://127.0.0.1:1")],
    )
    .await;
    assert_eq!(out.ok(), "/\n");
}

#[tokio::test]
async fn unreachable_broker_exits_69() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port().to_string()
    };
    let out = warren(
        &["ctl", "--host", "127.0.0.1", "--port", &port, "list_queues"],
        &[],
    )
    .await;
    out.fails(69, "unable to reach the management API");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[tokio::test]
async fn an_amqp_port_is_not_a_management_api() {
    let Some(env) = Env::start().await else {
        return;
    };
    let port = env.tb.addr.port().to_string();
    warren(
        &["ctl", "--host", "127.0.0.1", "--port", &port, "status"],
        &[],
    )
    .await
    .fails(69, "unable to reach the management API");
}

#[tokio::test]
async fn bad_usage_exits_64() {
    for args in [
        &["ctl"][..],
        &["ctl", "frobnicate"],
        &["ctl", "add_user", "only-name"],
        &["ctl", "set_permissions", "u", ".*", ".*"],
        &["ctl", "export_definitions"],
        &["ctl", "list_queues", "name", "bogus"],
        &["ctl", "--formatter", "xml", "list_queues"],
        &["ctl", "--port", "notaport", "status"],
    ] {
        let out = warren(args, &[]).await;
        assert_eq!(out.code, 64, "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: {out:?}");
    }
    let out = warren(&["ctl", "list_queues", "bogus"], &[]).await;
    out.fails(64, "Info key(s) bogus are not supported");
}

#[tokio::test]
async fn help_lists_ctl_and_its_commands() {
    let top = warren(&["--help"], &[]).await;
    assert!(top.ok().contains("ctl"), "{top:?}");
    assert!(
        top.ok().contains("--http-port"),
        "server flags still listed: {top:?}"
    );
    let ctl = warren(&["ctl", "--help"], &[]).await;
    for command in [
        "list_queues",
        "list_exchanges",
        "list_bindings",
        "list_connections",
        "list_consumers",
        "add_user",
        "delete_user",
        "change_password",
        "set_user_tags",
        "add_vhost",
        "delete_vhost",
        "set_permissions",
        "set_policy",
        "clear_policy",
        "set_operator_policy",
        "clear_operator_policy",
        "list_operator_policies",
        "purge_queue",
        "delete_queue",
        "close_connection",
        "import_definitions",
        "export_definitions",
        "status",
    ] {
        assert!(ctl.ok().contains(command), "{command} missing: {ctl:?}");
    }
    assert!(ctl.ok().contains("WARREN_CTL_URL"), "{ctl:?}");
    let sub = warren(&["ctl", "set_policy", "--help"], &[]).await;
    assert!(sub.ok().contains("--apply-to"), "{sub:?}");
    // Server flags and ctl do not mix.
    let mixed = warren(&["--port", "5673", "ctl", "status"], &[]).await;
    assert_ne!(mixed.code, 0, "{mixed:?}");
}

#[tokio::test]
async fn a_silent_server_times_out_75() {
    // The kernel accepts the connection into the backlog; nothing ever answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let out = warren(
        &[
            "ctl",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "-t",
            "1",
            "list_queues",
        ],
        &[],
    )
    .await;
    out.fails(75, "unable to reach the management API");
    drop(listener);
}

/// Serves every request on a fresh port with one canned HTTP response; returns the port.
async fn canned_http(status: &str, content_type: &str, body: &str) -> String {
    let response: std::sync::Arc<str> = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                // One read holds the whole of ctl's small GET request.
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn server_failures_and_foreign_servers() {
    let port = canned_http(
        "500 Internal Server Error",
        "application/json",
        r#"{"error":"internal","reason":"boom"}"#,
    )
    .await;
    warren(
        &["ctl", "--host", "127.0.0.1", "--port", &port, "list_queues"],
        &[],
    )
    .await
    .fails(70, "boom");

    // A web server that is not a management API answers 200 with something else.
    let port = canned_http("200 OK", "text/html", "<html></html>").await;
    warren(
        &["ctl", "--host", "127.0.0.1", "--port", &port, "list_queues"],
        &[],
    )
    .await
    .fails(69, "is this a management API?");
}
