//! `POST /api/exchanges/{vhost}/{name}/publish`, the management API's publish (used by the web
//! UI's "Publish message" form), driven over HTTP; lapin checks what the queues received.
//!
//! Every expectation here was checked against RabbitMQ 3.10 with `WARREN_TEST_URI` and
//! `WARREN_TEST_HTTP` set (see tests/common/http.rs); its refusals are 400s that carry the AMQP
//! reply text, because RabbitMQ publishes on a channel that the broker closes.

mod common;

use common::amqp::{as_str, header, poll_get};
use common::http::{Api, Env, Reply, assert_error, enc, unique};
use serde_json::{Value, json};

/// Publishes `payload` through `exchange` in vhost "/".
async fn publish(api: &Api, exchange: &str, body: Value) -> Reply {
    api.post(
        &format!("/api/exchanges/%2F/{}/publish", enc(exchange)),
        body,
    )
    .await
}

fn message(routing_key: &str, payload: &str) -> Value {
    json!({
        "properties": {},
        "routing_key": routing_key,
        "payload": payload,
        "payload_encoding": "string",
    })
}

async fn put_queue(api: &Api, name: &str, body: Value) {
    let r = api
        .put(&format!("/api/queues/%2F/{}", enc(name)), body)
        .await;
    assert_eq!(r.status, 201, "declare {name}: {}", r.body);
}

async fn delete_queue(api: &Api, name: &str) {
    let r = api.delete(&format!("/api/queues/%2F/{}", enc(name))).await;
    assert_eq!(r.status, 204, "delete {name}: {}", r.body);
}

/// Ready messages of a queue, read (and requeued) through the API.
async fn peek(api: &Api, queue: &str) -> Vec<Value> {
    let r = api
        .post(
            &format!("/api/queues/%2F/{}/get", enc(queue)),
            json!({"count": 100, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(r.status, 200, "get {queue}: {}", r.body);
    r.body.as_array().expect("a list").clone()
}

/// A 400 whose reason is exactly `reason`.
fn assert_refused(r: &Reply, reason: &str) {
    assert_error(r, 400, "bad_request");
    assert_eq!(r.body["reason"], reason, "{}", r.body);
}

/// A 400 whose reason (text, or RabbitMQ's list) mentions `what`.
fn assert_refused_for(r: &Reply, what: &str) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"], "bad_request", "{}", r.body);
    assert!(r.body["reason"].to_string().contains(what), "{}", r.body);
}

#[tokio::test]
async fn publish_reaches_the_queue_with_its_properties() {
    let env = Env::start().await;
    let api = &env.api;
    let q = unique("pub");
    put_queue(api, &q, json!({"durable": true})).await;

    let r = publish(
        api,
        "amq.default",
        json!({
            "properties": {
                "content_type": "text/plain",
                "delivery_mode": 2,
                "priority": 3,
                "correlation_id": "c-1",
                "message_id": "m-1",
                "timestamp": 1700000000,
                "type": "greeting",
                "app_id": "ui",
                "headers": {"x-count": 7, "note": "hi"},
            },
            "routing_key": q,
            "payload": "hello from the API",
            "payload_encoding": "string",
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"routed": true}));

    // A binary body travels base64-encoded both ways.
    let r = publish(
        api,
        "amq.default",
        json!({
            "properties": {},
            "routing_key": q,
            "payload": "AP+A",
            "payload_encoding": "base64",
        }),
    )
    .await;
    assert_eq!(r.body, json!({"routed": true}), "{}", r.body);

    let got = peek(api, &q).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["payload"], "hello from the API");
    assert_eq!(got[0]["payload_encoding"], "string");
    assert_eq!(got[0]["exchange"], "");
    assert_eq!(got[0]["routing_key"], q.as_str());
    let p = &got[0]["properties"];
    assert_eq!(p["content_type"], "text/plain");
    assert_eq!(p["delivery_mode"], 2);
    assert_eq!(p["priority"], 3);
    assert_eq!(p["correlation_id"], "c-1");
    assert_eq!(p["message_id"], "m-1");
    assert_eq!(p["timestamp"], 1700000000);
    assert_eq!(p["type"], "greeting");
    assert_eq!(p["app_id"], "ui");
    assert_eq!(p["headers"]["x-count"], 7);
    assert_eq!(p["headers"]["note"], "hi");
    assert_eq!(got[1]["payload"], "AP+A");
    assert_eq!(got[1]["payload_encoding"], "base64");
    assert_eq!(got[1]["payload_bytes"], 3);

    // An AMQP consumer sees the same message.
    let (_conn, ch) = common::within(env.tb.channel()).await;
    let m = poll_get(&ch, &q, 5000, true).await;
    assert_eq!(m.delivery.data, b"hello from the API");
    let props = &m.delivery.properties;
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(props.delivery_mode(), &Some(2));
    assert_eq!(
        header(props, "note").map(as_str).as_deref(),
        Some("hi"),
        "{props:?}"
    );
    let m = poll_get(&ch, &q, 5000, true).await;
    assert_eq!(m.delivery.data, [0x00, 0xff, 0x80]);
    delete_queue(api, &q).await;
}

#[tokio::test]
async fn publish_reports_unroutable_messages() {
    let env = Env::start().await;
    let api = &env.api;
    let q = unique("unrouted");
    put_queue(api, &q, json!({})).await;
    let r = publish(api, "amq.default", message(&unique("nobody"), "lost")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"routed": false}));
    assert!(peek(api, &q).await.is_empty());

    // Through a topic exchange: only a matching key routes.
    let x = unique("topic");
    let xpath = format!("/api/exchanges/%2F/{}", enc(&x));
    assert_eq!(api.put(&xpath, json!({"type": "topic"})).await.status, 201);
    let r = api
        .post(
            &format!("/api/bindings/%2F/e/{}/q/{}", enc(&x), enc(&q)),
            json!({"routing_key": "stock.*"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        publish(api, &x, message("fx.eur", "no")).await.body,
        json!({"routed": false})
    );
    assert_eq!(
        publish(api, &x, message("stock.acme", "yes")).await.body,
        json!({"routed": true})
    );
    let got = peek(api, &q).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], "yes");
    assert_eq!(got[0]["exchange"], x.as_str());
    assert_eq!(got[0]["routing_key"], "stock.acme");
    if env.is_warren() {
        // API publishes count in the broker's message_stats (this broker saw no others); the
        // queue counts the one that reached it.
        let o = api.ok("/api/overview").await;
        assert_eq!(o["message_stats"]["publish"], 3, "{o}");
        assert_eq!(o["message_stats"]["drop_unroutable"], 2, "{o}");
        let queue = api.ok(&format!("/api/queues/%2F/{}", enc(&q))).await;
        assert_eq!(queue["message_stats"]["publish"], 1, "{queue}");
    }
    assert_eq!(api.delete(&xpath).await.status, 204);
    delete_queue(api, &q).await;
}

#[tokio::test]
async fn publish_honours_cc_and_bcc() {
    let env = Env::start().await;
    let api = &env.api;
    let (a, b) = (unique("cc-a"), unique("cc-b"));
    put_queue(api, &a, json!({})).await;
    put_queue(api, &b, json!({})).await;
    let r = publish(
        api,
        "amq.default",
        json!({
            "properties": {"headers": {"CC": [a], "BCC": [b]}},
            "routing_key": unique("nobody"),
            "payload": "copied",
            "payload_encoding": "string",
        }),
    )
    .await;
    assert_eq!(r.body, json!({"routed": true}), "{}", r.body);
    for q in [&a, &b] {
        let got = peek(api, q).await;
        assert_eq!(got.len(), 1, "{q}: {got:?}");
        assert_eq!(got[0]["payload"], "copied");
        let headers = &got[0]["properties"]["headers"];
        assert_eq!(headers["CC"], json!([a]), "{headers}");
        assert!(headers.get("BCC").is_none(), "BCC leaked: {headers}");
    }
    delete_queue(api, &a).await;
    delete_queue(api, &b).await;
}

#[tokio::test]
async fn publish_refuses_bad_requests() {
    let env = Env::start().await;
    let api = &env.api;
    let q = unique("bad");
    put_queue(api, &q, json!({})).await;

    let missing = unique("missing");
    assert_refused(
        &publish(api, &missing, message(&q, "x")).await,
        &format!("404 NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    );
    for key in ["properties", "routing_key", "payload", "payload_encoding"] {
        let mut body = message(&q, "x");
        body.as_object_mut().expect("object").remove(key);
        assert_refused(
            &publish(api, "amq.default", body).await,
            &format!("[{{key_missing,{key}}}]"),
        );
    }
    let r = api
        .send(
            api.http
                .post(api.url("/api/exchanges/%2F/amq.default/publish"))
                .body("{oops"),
        )
        .await;
    assert_refused(&r, "not_json");

    let mut body = message(&q, "x");
    body["payload"] = json!(5);
    assert_refused(
        &publish(api, "amq.default", body).await,
        "payload_not_string",
    );
    // RabbitMQ's reasons for these three are Erlang terms rendered as JSON lists; Warren words
    // them as text.
    let mut body = message(&q, "x");
    body["payload_encoding"] = json!("rot13");
    assert_refused_for(
        &publish(api, "amq.default", body).await,
        "unsupported_encoding",
    );
    let mut body = message(&q, "!!!");
    body["payload_encoding"] = json!("base64");
    assert_refused_for(&publish(api, "amq.default", body).await, "not_base64");
    let mut body = message(&q, "x");
    body["properties"] = json!({"priority": "high"});
    assert_refused_for(&publish(api, "amq.default", body).await, "not_int");

    // The checks basic.publish makes, with the channel's reply text.
    let mut body = message(&q, "x");
    body["properties"] = json!({"user_id": "mallory"});
    assert_refused(
        &publish(api, "amq.default", body).await,
        "406 PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'",
    );
    let mut body = message(&q, "x");
    body["properties"] = json!({"expiration": "-5"});
    assert_refused(
        &publish(api, "amq.default", body).await,
        "406 PRECONDITION_FAILED - invalid expiration '-5': {value_negative,-5}",
    );
    let internal = unique("internal");
    let xpath = format!("/api/exchanges/%2F/{}", enc(&internal));
    let r = api
        .put(&xpath, json!({"type": "fanout", "internal": true}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_refused(
        &publish(api, &internal, message(&q, "x")).await,
        &format!(
            "403 ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"
        ),
    );
    assert_eq!(api.delete(&xpath).await.status, 204);

    // Nothing of the above reached the queue.
    assert!(peek(api, &q).await.is_empty());
    delete_queue(api, &q).await;
}

#[tokio::test]
async fn publish_needs_write_permission() {
    let env = Env::start().await;
    let api = &env.api;
    let q = unique("perm");
    put_queue(api, &q, json!({})).await;
    let user = unique("reader");
    let r = api
        .put(
            &format!("/api/users/{}", enc(&user)),
            json!({"password": "pw", "tags": "management"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let reader = api.as_user(&user, "pw");

    // Without any permission in the vhost the request is refused before it reaches a channel.
    assert_error(
        &publish(&reader, "amq.default", message(&q, "x")).await,
        401,
        "not_authorised",
    );

    let perms = format!("/api/permissions/%2F/{}", enc(&user));
    let r = api
        .put(
            &perms,
            json!({"configure": ".*", "write": "^$", "read": ".*"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_refused(
        &publish(&reader, "amq.default", message(&q, "x")).await,
        &format!(
            "403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user '{user}'"
        ),
    );
    assert!(peek(api, &q).await.is_empty());

    let r = api
        .put(
            &perms,
            json!({"configure": ".*", "write": "^amq\\.default$", "read": ".*"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = publish(&reader, "amq.default", message(&q, "allowed")).await;
    assert_eq!(r.body, json!({"routed": true}), "{}", r.body);
    assert_eq!(peek(api, &q).await.len(), 1);

    assert_eq!(
        api.delete(&format!("/api/users/{}", enc(&user)))
            .await
            .status,
        204
    );
    delete_queue(api, &q).await;
}

#[tokio::test]
async fn publish_to_a_full_reject_publish_queue_is_refused() {
    let env = Env::start().await;
    let api = &env.api;
    let q = unique("full");
    put_queue(
        api,
        &q,
        json!({"arguments": {"x-max-length": 1, "x-overflow": "reject-publish"}}),
    )
    .await;
    let r = publish(api, "amq.default", message(&q, "first")).await;
    assert_eq!(r.body, json!({"routed": true}), "{}", r.body);
    assert_refused(
        &publish(api, "amq.default", message(&q, "second")).await,
        "rejected Unable to publish message. Check queue limits.",
    );
    let got = peek(api, &q).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], "first");
    delete_queue(api, &q).await;
}

#[tokio::test]
async fn publish_is_refused_while_a_resource_alarm_is_raised() {
    let env = Env::start().await;
    let Some(broker) = env.tb.broker() else {
        eprintln!("skipped: needs the in-process broker to raise the alarm");
        return;
    };
    let api = &env.api;
    let q = unique("alarm");
    put_queue(api, &q, json!({})).await;
    // Any free space is below this limit: the disk alarm goes up at the next sample.
    broker.set_disk_free_limit(u64::MAX);
    let (refused, before) = publish_until(api, &q, |r| r.status != 200).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.body["error"], "resource_alarm");
    assert!(
        refused.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("low on disk")),
        "{}",
        refused.body
    );
    broker.set_disk_free_limit(0);
    let (accepted, _) = publish_until(api, &q, |r| r.status == 200).await;
    assert_eq!(accepted.body, json!({"routed": true}));
    // Only the publishes answered 200 (before the alarm, and the last) reached the queue.
    assert_eq!(peek(api, &q).await.len(), before + 1);
    delete_queue(api, &q).await;
}

/// Publishes to `queue` until `done` holds for the answer (at most 10 s); returns that answer
/// and how many earlier ones were 200.
async fn publish_until(api: &Api, queue: &str, done: impl Fn(&Reply) -> bool) -> (Reply, usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut ok = 0;
    loop {
        let r = publish(api, "amq.default", message(queue, "x")).await;
        if done(&r) {
            return (r, ok);
        }
        if r.status == 200 {
            ok += 1;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still answered {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
