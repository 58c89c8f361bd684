//! Management HTTP API and Prometheus metrics, driven over HTTP with reqwest while AMQP clients
//! (lapin) create the state being looked at.
//!
//! Each test starts a broker in-process plus the management and metrics servers on 127.0.0.1:0.
//! With `WARREN_TEST_URI` and `WARREN_TEST_HTTP` (e.g. `http://127.0.0.1:15672`) set, the same
//! tests run against a real RabbitMQ with its management plugin, which is how the expected
//! statuses and fields were checked; Warren-only assertions are skipped there.

mod common;

use common::http::{Api, Env, assert_error, enc, find, unique};
use common::within;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::time::Duration;

async fn declare(ch: &lapin::Channel, name: &str) {
    within(ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.declare");
}

async fn publish(
    ch: &lapin::Channel,
    exchange: &str,
    rk: &str,
    body: &[u8],
    props: BasicProperties,
) {
    within(ch.basic_publish(
        exchange.into(),
        rk.into(),
        BasicPublishOptions::default(),
        body,
        props,
    ))
    .await
    .expect("publish")
    .await
    .expect("publish confirm");
}

/// Polls until `check` holds (queue counts follow publishes asynchronously on RabbitMQ).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the queue's JSON shows `ready` and `unacked`.
async fn wait_counts(api: &Api, vhost: &str, q: &str, ready: u64, unacked: u64) -> Value {
    let path = format!("/api/queues/{}/{}", enc(vhost), enc(q));
    let mut last = Value::Null;
    for _ in 0..150 {
        last = api.ok(&path).await;
        if last["messages_ready"] == ready && last["messages_unacknowledged"] == unacked {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("queue {q}: wanted ready={ready} unacked={unacked}, got {last}");
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn authentication_and_tags() {
    let env = Env::start().await;
    let api = &env.api;

    let anon = reqwest::Client::new()
        .get(api.url("/api/overview"))
        .send()
        .await
        .expect("request");
    assert_eq!(anon.status().as_u16(), 401);
    assert!(
        anon.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic"))
    );

    let wrong = api
        .as_user("guest", "not-the-password")
        .get("/api/overview")
        .await;
    assert_error(&wrong, 401, "not_authorized");
    assert_eq!(wrong.body["reason"], "Login failed");

    let plain = unique("plain");
    let monitor = unique("mgmt");
    assert_eq!(
        api.put(
            &format!("/api/users/{plain}"),
            json!({"password": "pw", "tags": ""})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        api.put(
            &format!("/api/users/{monitor}"),
            json!({"password": "pw", "tags": "management"})
        )
        .await
        .status,
        201
    );

    let r = api.as_user(&plain, "pw").get("/api/overview").await;
    assert_error(&r, 401, "not_authorised");
    assert_eq!(r.body["reason"], "Not management user");

    let mgmt = api.as_user(&monitor, "pw");
    let me = mgmt.ok("/api/whoami").await;
    assert_eq!(me["name"], monitor.as_str());
    assert_eq!(me["tags"], json!(["management"]));
    assert_eq!(mgmt.get("/api/overview").await.status, 200);
    let r = mgmt.get("/api/users").await;
    assert_error(&r, 401, "not_authorised");
    assert_eq!(r.body["reason"], "Not administrator user");
    assert_eq!(mgmt.get("/api/definitions").await.status, 401);
    assert_eq!(mgmt.put("/api/vhosts/x", json!({})).await.status, 401);
    // No permissions anywhere: listings are empty rather than refused.
    assert_eq!(mgmt.ok("/api/queues").await, json!([]));
    assert_eq!(mgmt.get("/api/queues/%2F").await.status, 401);

    let guest = api.ok("/api/whoami").await;
    assert_eq!(guest["name"], "guest");
    assert_eq!(guest["tags"], json!(["administrator"]));

    for u in [plain, monitor] {
        assert_eq!(api.delete(&format!("/api/users/{u}")).await.status, 204);
    }
}

#[tokio::test]
async fn overview_counts_objects_and_messages() {
    let env = Env::start().await;
    let api = &env.api;
    let (_conn, ch) = within(env.tb.channel()).await;
    within(ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    let q = unique("ov");
    declare(&ch, &q).await;
    for i in 0..3u8 {
        publish(&ch, "", &q, &[i], BasicProperties::default()).await;
    }
    wait_counts(api, "/", &q, 3, 0).await;

    let o = api.ok("/api/overview").await;
    for key in [
        "management_version",
        "rabbitmq_version",
        "product_version",
        "erlang_version",
        "node",
        "cluster_name",
    ] {
        assert!(o[key].is_string(), "{key}: {o}");
    }
    for key in [
        "connections",
        "channels",
        "consumers",
        "exchanges",
        "queues",
    ] {
        assert!(o["object_totals"][key].is_u64(), "{key}: {o}");
    }
    assert!(o["object_totals"]["queues"].as_u64().unwrap_or(0) >= 1);
    assert!(o["object_totals"]["connections"].as_u64().unwrap_or(0) >= 1);
    assert!(o["object_totals"]["exchanges"].as_u64().unwrap_or(0) >= 6);
    assert!(o["message_stats"].is_object() || o["message_stats"].is_array());
    assert!(o["churn_rates"]["queue_created"].is_u64());
    assert!(o["listeners"][0]["port"].is_u64());
    assert!(o["exchange_types"].as_array().is_some_and(|t| t.len() >= 4));
    if env.is_warren() {
        assert_eq!(o["product_name"], "Warren");
        assert_eq!(o["queue_totals"]["messages"], 3);
        assert_eq!(o["queue_totals"]["messages_ready"], 3);
        assert_eq!(o["queue_totals"]["messages_unacknowledged"], 0);
        assert_eq!(o["object_totals"]["queues"], 1);
        assert_eq!(o["object_totals"]["connections"], 1);
    }
    assert_eq!(
        api.delete(&format!("/api/queues/%2F/{q}")).await.status,
        204
    );

    let cluster = api.ok("/api/cluster-name").await;
    assert!(cluster["name"].is_string());
    let nodes = api.ok("/api/nodes").await;
    assert!(nodes[0]["name"].is_string());
}

#[tokio::test]
async fn vhosts_create_list_delete() {
    let env = Env::start().await;
    let api = &env.api;
    let vh = unique("vh");
    let path = format!("/api/vhosts/{vh}");

    assert_error(&api.get(&path).await, 404, "Object Not Found");
    assert_eq!(
        api.put(&path, json!({"description": "test"})).await.status,
        201
    );
    assert_eq!(api.put(&path, json!({})).await.status, 204);
    let v = api.ok(&path).await;
    assert_eq!(v["name"], vh.as_str());
    assert!(v["tracing"].is_boolean());
    if env.is_warren() {
        // RabbitMQ fills message counts in after its first stats emission.
        assert_eq!(v["messages"], 0);
    }
    assert!(find(&api.ok("/api/vhosts").await, "name", &vh).is_some());
    assert!(find(&api.ok("/api/vhosts").await, "name", "/").is_some());

    // The creator gets full permissions in the new vhost, as in RabbitMQ.
    let perms = api.ok(&format!("{path}/permissions")).await;
    let mine = find(&perms, "user", "guest").expect("guest permissions");
    assert_eq!(mine["configure"], ".*");

    // A connection to the vhost is closed and its queues go when the vhost is deleted.
    let conn = within(Connection::connect(
        &env.tb.uri_for("guest", "guest", &vh),
        ConnectionProperties::default(),
    ))
    .await
    .expect("connect to new vhost");
    let ch = within(conn.create_channel()).await.expect("channel");
    declare(&ch, "inside").await;
    assert_eq!(
        api.ok(&format!("/api/queues/{vh}"))
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    assert_eq!(api.delete(&path).await.status, 204);
    assert_error(&api.delete(&path).await, 404, "Object Not Found");
    assert_error(&api.get(&path).await, 404, "Object Not Found");
    eventually("connection closed by vhost deletion", || {
        let connected = conn.status().connected();
        async move { !connected }
    })
    .await;
    if env.is_warren() {
        let st = env.tb.broker().expect("warren").state();
        assert!(!st.permissions.iter().any(|p| p.key().1 == vh));
    }
}

#[tokio::test]
async fn users_put_get_delete() {
    let env = Env::start().await;
    let api = &env.api;
    let name = unique("user");
    let path = format!("/api/users/{name}");

    assert_error(&api.get(&path).await, 404, "Object Not Found");
    assert_eq!(
        api.put(
            &path,
            json!({"password": "s3cret", "tags": "management,monitoring"})
        )
        .await
        .status,
        201
    );
    let u = api.ok(&path).await;
    assert_eq!(u["name"], name.as_str());
    assert_eq!(u["tags"], json!(["management", "monitoring"]));
    assert_eq!(u["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert_eq!(u["password_hash"].as_str().map(str::len), Some(48));
    assert!(find(&api.ok("/api/users").await, "name", &name).is_some());
    assert_eq!(
        api.as_user(&name, "s3cret").get("/api/whoami").await.status,
        200
    );

    // Replacing with a known hash (RabbitMQ's documented example for "test12") and list tags.
    let hash = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR";
    let r = api
        .put(
            &path,
            json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256",
                   "tags": ["administrator"]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let u = api.ok(&path).await;
    assert_eq!(u["password_hash"], hash);
    assert_eq!(u["tags"], json!(["administrator"]));
    assert_eq!(
        api.as_user(&name, "s3cret").get("/api/whoami").await.status,
        401
    );
    assert_eq!(
        api.as_user(&name, "test12").get("/api/whoami").await.status,
        200
    );

    if env.is_warren() {
        let r = api
            .put(&path, json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_md5", "tags": ""}))
            .await;
        assert_error(&r, 400, "bad_request");
    }
    if env.is_warren() {
        // RabbitMQ answers 500 here.
        assert_error(
            &api.put(&path, json!({"tags": 7})).await,
            400,
            "bad_request",
        );
    }
    let r = api.put(&path, json!({"password": "x"})).await;
    assert_error(&r, 400, "bad_request");
    assert_eq!(r.body["reason"], "tags_not_present");
    let r = api
        .send(
            api.http
                .put(api.url(&path))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_error(&r, 400, "bad_request");

    assert_eq!(api.delete(&path).await.status, 204);
    assert_error(&api.delete(&path).await, 404, "Object Not Found");
    assert_eq!(
        api.as_user(&name, "test12").get("/api/whoami").await.status,
        401
    );
}

#[tokio::test]
async fn permissions_put_get_delete() {
    let env = Env::start().await;
    let api = &env.api;
    let user = unique("puser");
    let vh = unique("pvh");
    assert_eq!(
        api.put(
            &format!("/api/users/{user}"),
            json!({"password": "pw", "tags": ""})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        api.put(&format!("/api/vhosts/{vh}"), json!({}))
            .await
            .status,
        201
    );
    let path = format!("/api/permissions/{vh}/{user}");

    assert_error(&api.get(&path).await, 404, "Object Not Found");
    // The user cannot open the vhost yet.
    let uri = env.tb.uri_for(&user, "pw", &vh);
    assert!(
        Connection::connect(&uri, ConnectionProperties::default())
            .await
            .is_err()
    );
    let body = json!({"configure": "^tmp-", "write": ".*", "read": ""});
    assert_eq!(api.put(&path, body.clone()).await.status, 201);
    assert_eq!(api.put(&path, body).await.status, 204);
    let p = api.ok(&path).await;
    assert_eq!(p["user"], user.as_str());
    assert_eq!(p["vhost"], vh.as_str());
    assert_eq!(
        (
            p["configure"].as_str(),
            p["write"].as_str(),
            p["read"].as_str()
        ),
        (Some("^tmp-"), Some(".*"), Some(""))
    );
    assert!(find(&api.ok("/api/permissions").await, "user", &user).is_some());
    assert_eq!(
        api.ok(&format!("/api/users/{user}/permissions"))
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let conn = within(Connection::connect(&uri, ConnectionProperties::default()))
        .await
        .expect("user connects once permitted");
    let _ = conn.close(200, "bye".into()).await;

    let missing_vhost = format!("/api/permissions/{}/{user}", unique("novh"));
    assert_eq!(
        api.put(
            &missing_vhost,
            json!({"configure": ".*", "write": ".*", "read": ".*"})
        )
        .await
        .status
            / 100,
        4
    );
    if env.is_warren() {
        assert_error(
            &api.put(&path, json!({"configure": "(", "write": "", "read": ""}))
                .await,
            400,
            "bad_request",
        );
    }

    assert_eq!(api.delete(&path).await.status, 204);
    assert_error(&api.delete(&path).await, 404, "Object Not Found");
    assert_error(&api.get(&path).await, 404, "Object Not Found");
    assert_eq!(api.delete(&format!("/api/vhosts/{vh}")).await.status, 204);
    assert_eq!(api.delete(&format!("/api/users/{user}")).await.status, 204);
}

#[tokio::test]
async fn connections_list_and_close() {
    let env = Env::start().await;
    let api = &env.api;
    let label = unique("conn");
    let conn = within(Connection::connect(
        &env.tb.uri,
        ConnectionProperties::default().with_connection_name(label.as_str().into()),
    ))
    .await
    .expect("connect");
    let (local_port, name) = {
        let c = own_connection(api, &label).await;
        assert_eq!(c["vhost"], "/");
        assert_eq!(c["protocol"], "AMQP 0-9-1");
        assert!(c["connected_at"].is_u64());
        let props = &c["client_properties"];
        assert_eq!(props["connection_name"], label.as_str(), "{props}");
        assert_eq!(props["product"], "lapin", "{props}");
        assert_eq!(props["capabilities"]["connection.blocked"], true, "{props}");
        assert_eq!(props["capabilities"]["publisher_confirms"], true, "{props}");
        assert!(c["node"].is_string());
        (
            c["peer_port"].as_u64().expect("peer_port"),
            c["name"].as_str().expect("name").to_owned(),
        )
    };
    assert!(local_port > 0);
    assert!(name.contains(" -> "), "{name}");
    let one = api.ok(&format!("/api/connections/{}", enc(&name))).await;
    assert_eq!(one["name"], name.as_str());
    assert_eq!(
        api.ok("/api/vhosts/%2F/connections")
            .await
            .as_array()
            .map(|l| !l.is_empty()),
        Some(true)
    );
    assert!(api.ok("/api/channels").await.is_array());
    assert!(api.ok("/api/consumers").await.is_array());
    assert!(api.ok("/api/consumers/%2F").await.is_array());

    let r = api
        .send(
            api.http
                .delete(api.url(&format!("/api/connections/{}", enc(&name))))
                .header("X-Reason", "test says bye"),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    eventually("connection closed", || {
        let connected = conn.status().connected();
        async move { !connected }
    })
    .await;
    assert_error(
        &api.delete("/api/connections/nope").await,
        404,
        "Object Not Found",
    );
    assert_error(
        &api.get("/api/connections/nope").await,
        404,
        "Object Not Found",
    );
}

#[tokio::test]
async fn exchanges_declare_list_delete() {
    let env = Env::start().await;
    let api = &env.api;
    let name = unique("ex");
    let path = format!("/api/exchanges/%2F/{name}");

    let all = api.ok("/api/exchanges/%2F").await;
    for builtin in [
        "",
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
    ] {
        let e = find(&all, "name", builtin).unwrap_or_else(|| panic!("{builtin} listed"));
        assert_eq!(e["durable"], true);
        assert_eq!(e["vhost"], "/");
    }
    assert!(find(&api.ok("/api/exchanges").await, "name", "amq.topic").is_some());
    let default = api.ok("/api/exchanges/%2F/amq.default").await;
    assert_eq!(default["name"], "");
    assert_eq!(default["type"], "direct");

    assert_error(&api.get(&path).await, 404, "Object Not Found");
    let body = json!({"type": "topic", "durable": true, "arguments": {"alternate-exchange": "amq.fanout"}});
    assert_eq!(api.put(&path, body.clone()).await.status, 201);
    assert_eq!(api.put(&path, body).await.status, 204);
    let e = api.ok(&path).await;
    assert_eq!(e["name"], name.as_str());
    assert_eq!(e["type"], "topic");
    assert_eq!(e["durable"], true);
    assert_eq!(e["auto_delete"], false);
    assert_eq!(e["internal"], false);
    assert_eq!(e["arguments"]["alternate-exchange"], "amq.fanout");

    let r = api
        .put(&path, json!({"type": "fanout", "durable": true}))
        .await;
    assert_error(&r, 400, "bad_request");
    assert!(
        r.body["reason"]
            .as_str()
            .is_some_and(|s| s.contains("inequivalent")),
        "{}",
        r.body
    );
    assert_error(
        &api.put(
            &format!("/api/exchanges/%2F/{}", unique("bad")),
            json!({"type": "nope"}),
        )
        .await,
        400,
        "bad_request",
    );
    assert_eq!(
        api.put(
            &format!("/api/exchanges/{}/x", unique("novh")),
            json!({"type": "direct"})
        )
        .await
        .status,
        404
    );

    assert_error(
        &api.delete("/api/exchanges/%2F/amq.direct").await,
        401,
        "not_authorised",
    );
    assert_error(
        &api.delete("/api/exchanges/%2F/amq.default").await,
        401,
        "not_authorised",
    );
    assert_eq!(api.delete(&path).await.status, 204);
    assert_error(&api.get(&path).await, 404, "Object Not Found");
    assert_error(&api.delete(&path).await, 404, "Object Not Found");
}

#[tokio::test]
async fn queues_declare_count_purge_delete() {
    let env = Env::start().await;
    let api = &env.api;
    let name = unique("q");
    let path = format!("/api/queues/%2F/{name}");

    assert_error(&api.get(&path).await, 404, "Object Not Found");
    let body = json!({"durable": true, "arguments": {"x-max-length": 100}});
    assert_eq!(api.put(&path, body.clone()).await.status, 201);
    assert_eq!(api.put(&path, body).await.status, 204);
    let r = api.put(&path, json!({"durable": false})).await;
    assert_error(&r, 400, "bad_request");
    assert!(
        r.body["reason"]
            .as_str()
            .is_some_and(|s| s.contains("inequivalent arg 'durable'")),
        "{}",
        r.body
    );
    assert_eq!(
        api.put(&format!("/api/queues/{}/q", unique("novh")), json!({}))
            .await
            .status,
        404
    );

    let (_conn, ch) = within(env.tb.channel()).await;
    within(ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    for i in 0..5u8 {
        publish(&ch, "", &name, &[i], BasicProperties::default()).await;
    }
    within(ch.basic_qos(2, Default::default()))
        .await
        .expect("qos");
    let _consumer = within(ch.basic_consume(
        name.as_str().into(),
        "c1".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("consume");
    let q = wait_counts(api, "/", &name, 3, 2).await;
    assert_eq!(q["name"], name.as_str());
    assert_eq!(q["vhost"], "/");
    assert_eq!(q["durable"], true);
    assert_eq!(q["auto_delete"], false);
    assert_eq!(q["exclusive"], false);
    assert_eq!(q["arguments"], json!({"x-max-length": 100}));
    assert_eq!(q["type"], "classic");
    assert!(q["node"].is_string());
    if env.is_warren() {
        // RabbitMQ adds these with its periodic stats.
        assert_eq!(q["state"], "running");
        assert!(q["memory"].is_u64());
    }
    eventually("consumer counted", || async {
        api.ok(&path).await["consumers"] == 1
    })
    .await;
    assert_eq!(q["messages"], 5);
    let listed = api.ok("/api/queues/%2F").await;
    assert_eq!(
        find(&listed, "name", &name).map(|q| q["messages_ready"].clone()),
        Some(json!(3))
    );
    assert!(find(&api.ok("/api/queues").await, "name", &name).is_some());

    // if-empty refuses a queue with ready messages.
    assert_eq!(
        api.delete(&format!("{path}?if-empty=true")).await.status,
        400
    );
    assert_eq!(api.delete(&format!("{path}/contents")).await.status, 204);
    wait_counts(api, "/", &name, 0, 2).await;
    assert_error(
        &api.delete(&format!("/api/queues/%2F/{}/contents", unique("none")))
            .await,
        404,
        "Object Not Found",
    );

    assert_eq!(api.delete(&path).await.status, 204);
    assert_error(&api.get(&path).await, 404, "Object Not Found");
    assert_error(&api.delete(&path).await, 404, "Object Not Found");
}

#[tokio::test]
async fn get_peeks_without_consuming() {
    let env = Env::start().await;
    let api = &env.api;
    let (_conn, ch) = within(env.tb.channel()).await;
    within(ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    let name = unique("peek");
    declare(&ch, &name).await;
    let mut headers = FieldTable::default();
    headers.insert("h".into(), lapin::types::AMQPValue::LongInt(1));
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("m-1".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    publish(&ch, "", &name, b"first", props).await;
    publish(&ch, "", &name, b"second", BasicProperties::default()).await;
    publish(
        &ch,
        "",
        &name,
        &[0xff, 0x00, 0xfe],
        BasicProperties::default(),
    )
    .await;
    wait_counts(api, "/", &name, 3, 0).await;
    let get = format!("/api/queues/%2F/{name}/get");

    let r = api
        .post(&get, json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let msgs = r.body.as_array().expect("list");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["payload"], "first");
    assert_eq!(msgs[0]["payload_encoding"], "string");
    assert_eq!(msgs[0]["payload_bytes"], 5);
    assert_eq!(msgs[0]["redelivered"], false);
    assert_eq!(msgs[0]["exchange"], "");
    assert_eq!(msgs[0]["routing_key"], name.as_str());
    assert_eq!(msgs[0]["message_count"], 2);
    assert_eq!(msgs[0]["properties"]["content_type"], "text/plain");
    assert_eq!(msgs[0]["properties"]["message_id"], "m-1");
    assert_eq!(msgs[0]["properties"]["delivery_mode"], 2);
    assert_eq!(msgs[0]["properties"]["headers"]["h"], 1);
    assert_eq!(msgs[1]["payload"], "second");
    assert_eq!(msgs[1]["message_count"], 1);
    wait_counts(api, "/", &name, 3, 0).await;

    // Binary bodies come back base64-encoded; truncate cuts the payload, not payload_bytes.
    let r = api
        .post(
            &get,
            json!({"count": 3, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 2}),
        )
        .await;
    let msgs = r.body.as_array().expect("list");
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["payload"], "fi");
    assert_eq!(msgs[0]["payload_bytes"], 5);
    assert_eq!(msgs[0]["redelivered"], true);
    assert_eq!(msgs[2]["payload_encoding"], "base64");
    assert_eq!(msgs[2]["payload"], "/wA=");
    let r = api
        .post(
            &get,
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "base64"}),
        )
        .await;
    assert_eq!(r.body[0]["payload"], "Zmlyc3Q=");
    assert_eq!(r.body[0]["payload_encoding"], "base64");

    // Order is kept: a consumer still gets "first" first.
    let got = within(ch.basic_get(name.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(got.delivery.data, b"first");
    assert!(got.delivery.redelivered);
    within(got.delivery.ack(BasicAckOptions::default()))
        .await
        .expect("ack");
    wait_counts(api, "/", &name, 2, 0).await;

    // The requeue_false modes consume.
    let r = api
        .post(
            &get,
            json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}),
        )
        .await;
    assert_eq!(r.body[0]["payload"], "second");
    wait_counts(api, "/", &name, 1, 0).await;

    assert_error(
        &api.post(&get, json!({"count": 1, "encoding": "auto"}))
            .await,
        400,
        "bad_request",
    );
    let r = api
        .post(
            &format!("/api/queues/%2F/{}/get", unique("none")),
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // An empty queue gives an empty list.
    api.delete(&format!("/api/queues/%2F/{name}/contents"))
        .await;
    wait_counts(api, "/", &name, 0, 0).await;
    let r = api
        .post(
            &get,
            json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(r.body, json!([]));
    api.delete(&format!("/api/queues/%2F/{name}")).await;
}

#[tokio::test]
async fn bindings_create_list_delete() {
    let env = Env::start().await;
    let api = &env.api;
    let q = unique("bq");
    let x = unique("bx");
    let x2 = unique("bx2");
    assert_eq!(
        api.put(&format!("/api/queues/%2F/{q}"), json!({}))
            .await
            .status,
        201
    );
    assert_eq!(
        api.put(&format!("/api/exchanges/%2F/{x}"), json!({"type": "topic"}))
            .await
            .status,
        201
    );
    assert_eq!(
        api.put(
            &format!("/api/exchanges/%2F/{x2}"),
            json!({"type": "fanout"})
        )
        .await
        .status,
        201
    );

    let between = format!("/api/bindings/%2F/e/{x}/q/{q}");
    let r = api
        .post(&between, json!({"routing_key": "a.#", "arguments": {}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location");
    assert_eq!(location, format!("{q}/a.%2523"));
    let r = api
        .post(
            &between,
            json!({"routing_key": "k", "arguments": {"x-a": "1"}}),
        )
        .await;
    assert_eq!(r.status, 201);

    let list = api.ok(&between).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let b = find(&list, "routing_key", "a.#").expect("binding listed");
    assert_eq!(b["source"], x.as_str());
    assert_eq!(b["destination"], q.as_str());
    assert_eq!(b["destination_type"], "queue");
    assert_eq!(b["vhost"], "/");
    assert_eq!(b["arguments"], json!({}));
    assert_eq!(b["properties_key"], "a.%23");
    let with_args = find(&list, "routing_key", "k").expect("binding with args");
    let props = with_args["properties_key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert!(props.starts_with("k~"), "{props}");

    // The default exchange's implicit binding is listed too.
    let qb = api.ok(&format!("/api/queues/%2F/{q}/bindings")).await;
    assert_eq!(qb.as_array().map(Vec::len), Some(3));
    assert_eq!(qb[0]["source"], "");
    assert_eq!(qb[0]["routing_key"], q.as_str());
    let all = api.ok("/api/bindings/%2F").await;
    assert!(
        all.as_array()
            .is_some_and(|l| l.iter().any(|b| b["source"] == x.as_str()))
    );
    assert!(
        api.ok("/api/bindings")
            .await
            .as_array()
            .is_some_and(|l| l.len() >= 3)
    );

    // Routing follows the binding.
    let (_conn, ch) = within(env.tb.channel()).await;
    within(ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    publish(&ch, &x, "a.b.c", b"routed", BasicProperties::default()).await;
    wait_counts(api, "/", &q, 1, 0).await;

    // Exchange-to-exchange.
    let e2e = format!("/api/bindings/%2F/e/{x2}/e/{x}");
    assert_eq!(api.post(&e2e, json!({"routing_key": ""})).await.status, 201);
    assert_eq!(
        api.ok(&format!("/api/exchanges/%2F/{x2}/bindings/source"))
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        api.ok(&format!("/api/exchanges/%2F/{x}/bindings/destination"))
            .await[0]["source"],
        x2.as_str()
    );
    publish(&ch, &x2, "ignored", b"via e2e", BasicProperties::default()).await;
    // Fanout into a topic exchange with key "" does not match "a.#".
    wait_counts(api, "/", &q, 1, 0).await;

    // One binding by properties key, then delete it.
    let one = api.ok(&format!("{between}/{}", enc(&props))).await;
    assert_eq!(one["arguments"], json!({"x-a": "1"}));
    assert_eq!(
        api.delete(&format!("{between}/{}", enc(&props)))
            .await
            .status,
        204
    );
    assert_error(
        &api.delete(&format!("{between}/{}", enc(&props))).await,
        404,
        "Object Not Found",
    );
    assert_eq!(api.delete(&format!("{between}/a.%2523")).await.status, 204);
    assert_eq!(api.ok(&between).await, json!([]));
    assert_eq!(api.delete(&format!("{e2e}/~")).await.status, 204);

    assert_eq!(
        api.post(
            &format!("/api/bindings/%2F/e/{}/q/{q}", unique("nope")),
            json!({})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        api.post(
            &format!("/api/bindings/%2F/e/{x}/q/{}", unique("nope")),
            json!({})
        )
        .await
        .status,
        404
    );
    assert_error(
        &api.post(&format!("/api/bindings/%2F/e/amq.default/q/{q}"), json!({}))
            .await,
        401,
        "not_authorised",
    );

    for p in [
        format!("/api/queues/%2F/{q}"),
        format!("/api/exchanges/%2F/{x}"),
        format!("/api/exchanges/%2F/{x2}"),
    ] {
        assert_eq!(api.delete(&p).await.status, 204);
    }
}

#[tokio::test]
async fn definitions_export_and_import() {
    let env = Env::start().await;
    if !env.is_warren() {
        // Importing the fixture into a shared RabbitMQ would leave its objects behind.
        return;
    }
    let api = &env.api;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/definitions/rabbitmq-3.10.8-export.json"
    ))
    .expect("fixture");
    let doc: Value = serde_json::from_str(&fixture).expect("fixture JSON");
    let r = api.post("/api/definitions", doc.clone()).await;
    assert_eq!(r.status, 204, "{}", r.body);

    let out = api.ok("/api/definitions").await;
    for key in [
        "rabbit_version",
        "users",
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
        "policies",
        "parameters",
    ] {
        assert!(!out[key].is_null(), "{key} missing: {out}");
    }
    let guest = find(&out["users"], "name", "guest").expect("guest exported");
    assert_eq!(guest["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert!(
        guest["password_hash"]
            .as_str()
            .is_some_and(|h| h.len() == 48)
    );
    // Everything in the fixture is there after import.
    for section in ["queues", "exchanges"] {
        for item in doc[section].as_array().expect("section") {
            let name = item["name"].as_str().expect("name");
            let vhost = item["vhost"].as_str().expect("vhost");
            let found = out[section]
                .as_array()
                .expect("section")
                .iter()
                .any(|o| o["name"] == name && o["vhost"] == vhost);
            let builtin = name.starts_with("amq.") || name.is_empty();
            let durable = item["durable"] == true;
            assert!(
                found || builtin || !durable,
                "{section} {vhost}/{name} not exported"
            );
        }
    }
    for user in doc["users"].as_array().expect("users") {
        let name = user["name"].as_str().expect("name");
        let mine = find(&out["users"], "name", name).expect("user exported");
        assert_eq!(mine["password_hash"], user["password_hash"]);
    }
    // Re-importing our own export changes nothing.
    assert_eq!(api.post("/api/definitions", out.clone()).await.status, 204);
    assert_eq!(api.ok("/api/definitions").await, out);

    // Per-vhost export has no users and no vhost keys.
    let vh = doc["vhosts"][0]["name"]
        .as_str()
        .expect("fixture vhost")
        .to_owned();
    let per = api.ok(&format!("/api/definitions/{}", enc(&vh))).await;
    assert!(per["users"].is_null());
    assert!(per["queues"].as_array().is_some_and(|q| !q.is_empty()));
    assert!(per["queues"][0]["vhost"].is_null());
    // ...and imports into another vhost.
    let target = unique("copy");
    assert_eq!(
        api.put(&format!("/api/vhosts/{target}"), json!({}))
            .await
            .status,
        201
    );
    let r = api
        .post(&format!("/api/definitions/{target}"), per.clone())
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let copied = api.ok(&format!("/api/definitions/{target}")).await;
    assert_eq!(copied["queues"], per["queues"]);
    assert_eq!(copied["bindings"], per["bindings"]);

    let r = api
        .send(api.http.post(api.url("/api/definitions")).body("{oops"))
        .await;
    assert_error(&r, 400, "bad_request");
    let bad = json!({"users": [{"name": "md5", "password_hash": "abc", "hashing_algorithm": "rabbit_password_hashing_md5", "tags": ""}]});
    assert_error(&api.post("/api/definitions", bad).await, 400, "bad_request");
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let env = Env::start().await;
    let r = env.api.get("/api/no-such-thing").await;
    assert_eq!(r.status, 404);
    if env.is_warren() {
        assert_error(&r, 404, "Object Not Found");
    }
}

#[tokio::test]
async fn prometheus_metrics() {
    let env = Env::start().await;
    let Some(metrics) = env.metrics.clone() else {
        return;
    };
    let (_conn, ch) = within(env.tb.channel()).await;
    within(ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    let name = "metrics \"q\"";
    declare(&ch, name).await;
    for _ in 0..4 {
        publish(&ch, "", name, b"x", BasicProperties::default()).await;
    }
    let _ = within(ch.basic_get(name.into(), BasicGetOptions::default())).await;

    let resp = reqwest::get(format!("{metrics}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = resp.text().await.expect("body");
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start) && l[line_start.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("{line_start} missing in\n{text}"))
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number")
    };
    assert_eq!(value("rabbitmq_connections"), 1.0);
    assert_eq!(value("rabbitmq_queues"), 1.0);
    assert_eq!(value("rabbitmq_consumers"), 0.0);
    let labels = r#"{vhost="/",queue="metrics \"q\""}"#;
    assert_eq!(
        value(&format!("rabbitmq_queue_messages_ready{labels}")),
        3.0
    );
    assert_eq!(
        value(&format!("rabbitmq_queue_messages_unacked{labels}")),
        1.0
    );
    assert_eq!(value(&format!("rabbitmq_queue_messages{labels}")), 4.0);
    assert!(value("rabbitmq_process_resident_memory_bytes") > 0.0);
    assert!(value("rabbitmq_disk_space_available_bytes") > 0.0);
    assert_eq!(value("rabbitmq_alarms_free_disk_space_watermark"), 0.0);
    assert!(text.contains("# TYPE rabbitmq_queue_messages_ready gauge"));
    assert!(text.contains("rabbitmq_identity_info{"));

    // The disk alarm shows up.
    env.tb
        .broker()
        .expect("warren")
        .set_disk_free_limit(u64::MAX);
    let text = reqwest::get(format!("{metrics}/metrics/per-object"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        text.lines()
            .any(|l| l == "rabbitmq_alarms_free_disk_space_watermark 1"),
        "{text}"
    );
    env.tb.broker().expect("warren").set_disk_free_limit(0);
}

/// The `rabbitmqadmin` v2 binary from `RABBITMQADMIN` or the PATH, if installed. RabbitMQ's
/// packages ship the older Python v1 under the same name, which reports RabbitMQ's version.
fn rabbitmqadmin() -> Option<std::path::PathBuf> {
    let is_v2 = |p: &std::path::Path| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("rabbitmqadmin 2."))
    };
    let from_env = std::env::var_os("RABBITMQADMIN").map(std::path::PathBuf::from);
    // Named explicitly (CI does): a missing or wrong binary is a failure, not a skip.
    if let Some(p) = &from_env {
        assert!(
            p.is_file() && is_v2(p),
            "RABBITMQADMIN={} is not a rabbitmqadmin 2.x binary",
            p.display()
        );
    }
    let on_path = std::env::var_os("PATH").map_or_else(Vec::new, |paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("rabbitmqadmin"))
            .collect()
    });
    from_env
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file() && is_v2(p))
}

/// Runs rabbitmqadmin against the API under test; returns stdout, failing on a non-zero exit.
async fn admin(bin: &std::path::Path, base: &str, args: &[&str]) -> String {
    let out = within(
        tokio::process::Command::new(bin)
            .arg("--base-uri")
            .arg(base)
            .args([
                "--username",
                "guest",
                "--password",
                "guest",
                "--non-interactive",
            ])
            .args(args)
            .output(),
    )
    .await
    .expect("run rabbitmqadmin");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rabbitmqadmin {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// RabbitMQ's own HTTP client lists, declares, deletes and exports against the API.
#[tokio::test]
async fn rabbitmqadmin_v2_works() {
    let Some(bin) = rabbitmqadmin() else {
        eprintln!("rabbitmqadmin not installed (cargo install rabbitmqadmin); skipping");
        return;
    };
    let env = Env::start().await;
    if !env.is_warren() {
        // rabbitmqadmin 2.x cannot decode RabbitMQ 3.10's /api/vhosts; it targets 3.13+.
        return;
    }
    let api = &env.api;
    let base = api.base.clone();
    let q = unique("admin-q");
    let x = unique("admin-x");

    let v = admin(&bin, &base, &["show", "overview"]).await;
    assert!(!v.is_empty());

    admin(
        &bin,
        &base,
        &["declare", "queue", "--name", &q, "--durable", "true"],
    )
    .await;
    admin(
        &bin,
        &base,
        &[
            "declare",
            "exchange",
            "--name",
            &x,
            "--type",
            "fanout",
            "--durable",
            "true",
        ],
    )
    .await;
    admin(
        &bin,
        &base,
        &[
            "declare",
            "binding",
            "--source",
            &x,
            "--destination-type",
            "queue",
            "--destination",
            &q,
            "--routing-key",
            "",
        ],
    )
    .await;
    let queue = api.ok(&format!("/api/queues/%2F/{q}")).await;
    assert_eq!(queue["durable"], true);
    assert_eq!(
        api.ok(&format!("/api/exchanges/%2F/{x}")).await["type"],
        "fanout"
    );

    let listed = admin(&bin, &base, &["list", "queues"]).await;
    assert!(listed.contains(&q), "{listed}");
    let listed = admin(&bin, &base, &["list", "exchanges"]).await;
    assert!(listed.contains(&x), "{listed}");
    let listed = admin(&bin, &base, &["list", "bindings"]).await;
    assert!(listed.contains(&x), "{listed}");
    for what in [
        "connections",
        "users",
        "vhosts",
        "permissions",
        "channels",
        "consumers",
    ] {
        admin(&bin, &base, &["list", what]).await;
    }

    // Both kinds of policy, through rabbitmqadmin's own types.
    let cap = unique("admin-cap");
    let pol = unique("admin-pol");
    for (kind, name, def) in [
        ("policies", &pol, r#"{"max-length":10}"#),
        ("operator_policies", &cap, r#"{"max-length":3}"#),
    ] {
        admin(
            &bin,
            &base,
            &[
                kind,
                "declare",
                "--name",
                name,
                "--pattern",
                &format!("^{q}$"),
                "--apply-to",
                "queues",
                "--definition",
                def,
            ],
        )
        .await;
        let listed = admin(&bin, &base, &[kind, "list"]).await;
        assert!(listed.contains(name.as_str()), "{listed}");
    }
    let queue = api.ok(&format!("/api/queues/%2F/{q}")).await;
    assert_eq!(queue["operator_policy"], cap.as_str());
    assert_eq!(queue["effective_policy_definition"]["max-length"], 3);
    let listed = admin(&bin, &base, &["operator_policies", "list"]).await;
    assert!(!listed.contains(&pol), "{listed}");
    admin(
        &bin,
        &base,
        &["operator_policies", "delete", "--name", &cap],
    )
    .await;
    admin(&bin, &base, &["policies", "delete", "--name", &pol]).await;
    assert_eq!(api.ok("/api/operator-policies/%2F").await, json!([]));

    let exported = admin(&bin, &base, &["definitions", "export", "--stdout"]).await;
    let doc: Value = serde_json::from_str(&exported).expect("exported definitions are JSON");
    assert!(find(&doc["queues"], "name", &q).is_some(), "{doc}");
    assert!(find(&doc["users"], "name", "guest").is_some(), "{doc}");

    admin(&bin, &base, &["delete", "queue", "--name", &q]).await;
    admin(&bin, &base, &["delete", "exchange", "--name", &x]).await;
    assert_eq!(api.get(&format!("/api/queues/%2F/{q}")).await.status, 404);
    assert_eq!(
        api.get(&format!("/api/exchanges/%2F/{x}")).await.status,
        404
    );
}

/// The connection of this test's own `label`led client, from /api/connections, found by the
/// connection_name in its client_properties.
async fn own_connection(api: &Api, label: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = api.ok("/api/connections").await;
        if let Some(c) = last.as_array().and_then(|l| {
            l.iter().find(|c| {
                c["user"] == "guest" && c["client_properties"]["connection_name"] == label
            })
        }) {
            return c.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("connection {label} not listed: {last}");
}

#[tokio::test]
async fn channels_and_consumers_are_listed() {
    let env = Env::start().await;
    let api = &env.api;
    let label = unique("chans");
    let conn = within(Connection::connect(
        &env.tb.uri,
        ConnectionProperties::default().with_connection_name(label.as_str().into()),
    ))
    .await
    .expect("connect");
    let ch1 = within(conn.create_channel()).await.expect("channel 1");
    let ch2 = within(conn.create_channel()).await.expect("channel 2");
    within(ch1.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    within(ch1.basic_qos(7, Default::default()))
        .await
        .expect("qos");
    let q = unique("consumed");
    declare(&ch1, &q).await;
    let tag = unique("ctag");
    let _consumer = within(ch1.basic_consume(
        q.as_str().into(),
        tag.as_str().into(),
        BasicConsumeOptions::default(),
        FieldTable::from(std::collections::BTreeMap::from([(
            "x-priority".into(),
            lapin::types::AMQPValue::LongInt(3),
        )])),
    ))
    .await
    .expect("consume");

    let c = own_connection(api, &label).await;
    let conn_name = c["name"].as_str().expect("name").to_owned();
    // RabbitMQ refreshes channel figures every few seconds: poll.
    let mut listed = Value::Null;
    for _ in 0..150 {
        listed = api.ok("/api/channels").await;
        let ours: Vec<&Value> = listed
            .as_array()
            .expect("list")
            .iter()
            .filter(|c| c["connection_details"]["name"] == conn_name.as_str())
            .collect();
        if ours.len() == 2 && ours.iter().any(|c| c["consumer_count"] == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ours: Vec<&Value> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| c["connection_details"]["name"] == conn_name.as_str())
        .collect();
    assert_eq!(ours.len(), 2, "{listed}");
    let first = ours
        .iter()
        .find(|c| c["number"] == ch1.id())
        .expect("channel 1 listed");
    let second = ours
        .iter()
        .find(|c| c["number"] == ch2.id())
        .expect("channel 2 listed");
    assert_eq!(first["confirm"], true, "{first}");
    assert_eq!(first["prefetch_count"], 7, "{first}");
    assert_eq!(first["consumer_count"], 1, "{first}");
    assert_eq!(first["user"], "guest");
    assert_eq!(first["vhost"], "/");
    assert_eq!(second["confirm"], false, "{second}");
    assert_eq!(second["consumer_count"], 0, "{second}");
    let ch_name = first["name"].as_str().expect("channel name").to_owned();
    assert_eq!(ch_name, format!("{conn_name} ({})", ch1.id()));
    let one = api.ok(&format!("/api/channels/{}", enc(&ch_name))).await;
    assert_eq!(one["number"], ch1.id());
    assert_error(
        &api.get("/api/channels/no%20such%20channel").await,
        404,
        "Object Not Found",
    );
    let per_conn = api
        .ok(&format!("/api/connections/{}/channels", enc(&conn_name)))
        .await;
    assert_eq!(per_conn.as_array().map(Vec::len), Some(2), "{per_conn}");
    eventually("the connection's channel count", || async {
        own_connection(api, &label).await["channels"] == 2
    })
    .await;
    if env.is_warren() {
        let o = api.ok("/api/overview").await;
        assert_eq!(o["object_totals"]["channels"], 2, "{o}");
    }

    let consumers = api.ok("/api/consumers/%2F").await;
    let mine = find(&consumers, "consumer_tag", &tag).expect("consumer listed");
    assert_eq!(mine["queue"]["name"], q.as_str(), "{mine}");
    assert_eq!(mine["queue"]["vhost"], "/");
    assert_eq!(mine["ack_required"], true);
    assert_eq!(mine["exclusive"], false);
    assert_eq!(mine["prefetch_count"], 7);
    assert_eq!(mine["arguments"]["x-priority"], 3, "{mine}");
    assert_eq!(mine["channel_details"]["number"], ch1.id());
    assert_eq!(
        mine["channel_details"]["connection_name"],
        conn_name.as_str()
    );
    assert!(find(&api.ok("/api/consumers").await, "consumer_tag", &tag).is_some());
    assert_error(
        &api.get("/api/consumers/no-such-vhost").await,
        404,
        "Object Not Found",
    );

    within(ch1.close(200, "bye".into())).await.expect("close");
    eventually("channel 1 and its consumer gone", || async {
        let chans = api
            .ok(&format!("/api/connections/{}/channels", enc(&conn_name)))
            .await;
        let consumers = api.ok("/api/consumers").await;
        chans.as_array().map(Vec::len) == Some(1)
            && find(&consumers, "consumer_tag", &tag).is_none()
    })
    .await;
    let _ = conn.close(200, "bye".into()).await;
}

/// A `name{labels} value` sample from a Prometheus text exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

#[tokio::test]
async fn message_counters_and_rates() {
    // A short sampling interval so rates show up quickly (RabbitMQ's default is 5 s).
    let env = Env::start_with(|c| c.stats_interval_ms = 200).await;
    let api = &env.api;
    let (conn, ch) = within(env.tb.channel()).await;
    within(ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let q = unique("counted");
    declare(&ch, &q).await;
    for i in 0..10u8 {
        publish(&ch, "", &q, &[i], BasicProperties::default()).await;
    }
    // One unroutable mandatory message, returned.
    within(ch.basic_publish(
        "".into(),
        "no-such-queue".into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"lost",
        BasicProperties::default(),
    ))
    .await
    .expect("publish")
    .await
    .expect("confirm");
    // Two gets (one auto-ack, one acked), then one rejected without requeue.
    let got = within(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get");
    assert!(got.is_some());
    let got = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("get")
        .expect("a message");
    within(got.ack(BasicAckOptions::default()))
        .await
        .expect("ack");
    let got = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("get")
        .expect("a message");
    within(got.reject(lapin::options::BasicRejectOptions { requeue: false }))
        .await
        .expect("reject");

    let path = format!("/api/queues/%2F/{}", enc(&q));
    let mut queue = Value::Null;
    for _ in 0..150 {
        queue = api.ok(&path).await;
        if queue["message_stats"]["ack"] == 1 && queue["messages_ready"] == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = &queue["message_stats"];
    assert_eq!(stats["publish"], 10, "{queue}");
    assert_eq!(stats["deliver_get"], 3, "{queue}");
    assert_eq!(stats["ack"], 1, "{queue}");
    assert!(stats["publish_details"]["rate"].is_number(), "{queue}");

    if !env.is_warren() {
        return;
    }
    // Exact broker-wide figures: this broker has seen nothing else.
    let o = api.ok("/api/overview").await;
    let m = &o["message_stats"];
    assert_eq!(m["publish"], 11, "{o}");
    assert_eq!(m["confirm"], 11, "{o}");
    assert_eq!(m["return_unroutable"], 1, "{o}");
    assert_eq!(m["get_no_ack"], 1, "{o}");
    assert_eq!(m["get"], 2, "{o}");
    assert_eq!(m["deliver_get"], 3, "{o}");
    assert_eq!(m["ack"], 1, "{o}");
    // Rates come from samples 200 ms apart: the publishes above show, then fade to 0.
    let rate = |o: &Value| o["message_stats"]["publish_details"]["rate"].as_f64();
    let mut seen_positive = false;
    for _ in 0..100 {
        let o = api.ok("/api/overview").await;
        let r = rate(&o).expect("a rate");
        if r > 0.0 {
            seen_positive = true;
        } else if seen_positive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_positive, "publish rate never rose above 0");
    eventually("publish rate back to 0", || async {
        rate(&api.ok("/api/overview").await) == Some(0.0)
    })
    .await;

    let metrics = env.metrics.clone().expect("metrics");
    let text = reqwest::get(format!("{metrics}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let amqp = r#"{protocol="amqp091"}"#;
    let classic = r#"{protocol="amqp091",queue_type="rabbit_classic_queue"}"#;
    assert_eq!(
        sample(
            &text,
            &format!("rabbitmq_global_messages_received_total{amqp}")
        ),
        11.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("rabbitmq_global_messages_received_confirm_total{amqp}")
        ),
        11.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("rabbitmq_global_messages_unroutable_returned_total{amqp}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("rabbitmq_global_messages_confirmed_total{amqp}")
        ),
        11.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("rabbitmq_global_messages_delivered_total{classic}")
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("rabbitmq_global_messages_acknowledged_total{classic}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"rabbitmq_global_messages_dead_lettered_rejected_total{queue_type="rabbit_classic_queue",dead_letter_strategy="disabled"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "rabbitmq_channel_messages_published_total"),
        11.0
    );
    assert_eq!(sample(&text, "rabbitmq_channels"), 1.0);
    let labels = format!(r#"{{vhost="/",queue="{q}"}}"#);
    assert_eq!(
        sample(
            &text,
            &format!("rabbitmq_queue_messages_published_total{labels}")
        ),
        10.0
    );

    // Counters survive their connection: closed connections stay in the totals.
    let _ = within(conn.close(200, "bye".into())).await;
    eventually("connection gone", || async {
        api.ok("/api/connections")
            .await
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    let o = api.ok("/api/overview").await;
    assert_eq!(o["message_stats"]["publish"], 11, "{o}");
    assert_eq!(o["message_stats"]["ack"], 1, "{o}");
}
