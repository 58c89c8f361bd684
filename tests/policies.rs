//! Policies: `/api/policies` over HTTP (reqwest) and their effect on queues and exchanges as
//! lapin clients see it.
//!
//! With `WARREN_TEST_URI` and `WARREN_TEST_HTTP` set (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`
//! and `http://127.0.0.1:15672`) the suite runs against a real RabbitMQ 3.10, which is how the
//! expectations were checked. Restart and `consumer-timeout` (a policy key only from RabbitMQ
//! 3.12) are Warren-only and skip themselves there.
//!
//! RabbitMQ's rules under test: only one policy applies to an object (the highest priority);
//! for `max-length`, `message-ttl`, `expires` the lower of argument and policy wins, for
//! `dead-letter-exchange` and `alternate-exchange` the argument wins; a policy change acts on
//! existing queues at once (a lowered length limit drops head messages), a new TTL applies to
//! messages enqueued from then on.

mod common;

use common::amqp::*;
use common::http::{Api, assert_error, enc};
use common::{TestBroker, within};
use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// A broker and a management client logged in as guest.
struct Env {
    tb: TestBroker,
    api: Api,
}

impl Env {
    async fn start() -> Env {
        Self::on(common::start().await)
    }

    fn on(tb: TestBroker) -> Env {
        let base = match tb.broker() {
            Some(b) => format!("http://{}", b.http_addr().expect("HTTP API enabled")),
            None => std::env::var("WARREN_TEST_HTTP")
                .expect("WARREN_TEST_HTTP must name the management API of the external broker"),
        };
        Env {
            api: Api::new(&base, "guest", "guest"),
            tb,
        }
    }

    /// A channel in confirm mode, so a publish has been routed when it returns.
    async fn channel(&self) -> (lapin::Connection, Channel) {
        let (conn, ch) = self.tb.channel().await;
        within(ch.confirm_select(ConfirmSelectOptions::default()))
            .await
            .expect("confirm.select");
        (conn, ch)
    }
}

/// A name no other test (nor another run against a shared RabbitMQ) uses; safe in a regex.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "pol-{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn policy_path(vhost: &str, name: &str) -> String {
    format!("/api/policies/{}/{}", enc(vhost), enc(name))
}

/// PUTs a policy on "/" that must succeed (201 or 204).
async fn set_policy(api: &Api, name: &str, pattern: &str, apply_to: &str, prio: i64, def: Value) {
    let body =
        json!({"pattern": pattern, "definition": def, "priority": prio, "apply-to": apply_to});
    let r = api.put(&policy_path("/", name), body).await;
    assert!(
        r.status == 201 || r.status == 204,
        "PUT policy {name}: {} {}",
        r.status,
        r.body
    );
}

async fn clear_policy(api: &Api, name: &str) {
    let r = api.delete(&policy_path("/", name)).await;
    assert_eq!(r.status, 204, "DELETE policy {name}: {}", r.body);
}

/// The queue's JSON once it reports `policy` (RabbitMQ refreshes queue stats every few
/// seconds, so this polls, for up to 15 s).
async fn queue_with_policy(api: &Api, q: &str, policy: Value) -> Value {
    queue_where(api, q, "policy", policy).await
}

/// The queue's JSON once its `key` is `want`, polled as in [`queue_with_policy`].
async fn queue_where(api: &Api, q: &str, key: &str, want: Value) -> Value {
    let path = format!("/api/queues/%2F/{}", enc(q));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let j = api.ok(&path).await;
        if j[key] == want {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "{q}: wanted {key} {want}, have {}",
            j[key]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A broker on the data directory `dir`, for tests that restart it.
async fn boot_in(dir: &std::path::Path) -> Env {
    let path = dir.to_path_buf();
    Env::on(within(common::start_with(move |c| c.data_dir = path)).await)
}

fn operator_policy_path(vhost: &str, name: &str) -> String {
    format!("/api/operator-policies/{}/{}", enc(vhost), enc(name))
}

async fn declare_plain(ch: &Channel, name: &str, args: FieldTable) {
    declare(ch, name, QueueDeclareOptions::default(), args).await;
}

async fn delete_queue(ch: &Channel, name: &str) {
    within(ch.queue_delete(name.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, args: FieldTable) {
    within(ch.exchange_declare(name.into(), kind, ExchangeDeclareOptions::default(), args))
        .await
        .expect("exchange.declare");
}

async fn delete_exchange(ch: &Channel, name: &str) {
    within(ch.exchange_delete(name.into(), Default::default()))
        .await
        .expect("exchange.delete");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.bind");
}

/// Polls the ready count until it is `want`; fails after 10 s.
async fn wait_ready(ch: &Channel, queue: &str, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = ready_count(ch, queue).await;
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{queue}: wanted {want} ready, have {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes `n` messages off `queue` (waiting for each), returning (body, x-death reason).
async fn take_dead(ch: &Channel, queue: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let m = poll_get(ch, queue, 10_000, true).await;
        out.push((
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
            death_reason(&m.delivery.properties),
        ));
    }
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// the API
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn policy_crud_and_error_paths() {
    let env = Env::start().await;
    let api = &env.api;
    let name = unique("crud");
    let path = policy_path("/", &name);
    let body = json!({"pattern": "^crud-", "definition": {"max-length": 5}, "priority": 3,
                      "apply-to": "queues"});
    let r = api.put(&path, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body = json!({"pattern": "^crud-", "definition": {"max-length": 6}, "priority": 3,
                      "apply-to": "queues"});
    let r = api.put(&path, body).await;
    assert_eq!(r.status, 204, "replacing answers 204: {}", r.body);
    let got = api.ok(&path).await;
    assert_eq!(
        got,
        json!({"vhost": "/", "name": name, "pattern": "^crud-", "apply-to": "queues",
               "definition": {"max-length": 6}, "priority": 3})
    );
    let in_vhost = api.ok("/api/policies/%2F").await;
    let in_all = api.ok("/api/policies").await;
    for list in [&in_vhost, &in_all] {
        let found: Vec<&Value> = list
            .as_array()
            .expect("a list")
            .iter()
            .filter(|p| p["name"] == name.as_str())
            .collect();
        assert_eq!(found, vec![&got]);
    }

    // Defaults: apply-to "all", priority 0.
    let plain = unique("plain");
    let r = api
        .put(
            &policy_path("/", &plain),
            json!({"pattern": "^nothing-matches-this$", "definition": {"max-length": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let p = api.ok(&policy_path("/", &plain)).await;
    assert_eq!((&p["apply-to"], &p["priority"]), (&json!("all"), &json!(0)));

    // Refused bodies: 400 with RabbitMQ's reason, and nothing created.
    let bad = unique("bad");
    let ok_def = json!({"max-length": 1});
    for (body, needle) in [
        (json!({"pattern": "(", "definition": ok_def}), "pattern"),
        (
            json!({"pattern": "x", "definition": ok_def, "apply-to": "foo"}),
            "apply-to 'foo' unrecognised",
        ),
        (
            json!({"pattern": "x", "definition": ok_def, "priority": "high"}),
            "priority should be a number",
        ),
        (
            json!({"pattern": "x", "definition": {"foo": 2}}),
            "not recognised policy settings",
        ),
        (
            json!({"pattern": "x", "definition": {"max-length": "a"}}),
            "not a valid maximum length",
        ),
        (
            json!({"pattern": "x", "definition": {"expires": 0}}),
            "not a valid queue expiry",
        ),
        (
            json!({"pattern": "x", "definition": {"overflow": "nope"}}),
            "not a valid overflow value",
        ),
        (
            json!({"pattern": "x", "definition": {}}),
            "no policy provided",
        ),
        (json!({"definition": ok_def}), "key_missing,pattern"),
        (json!({"pattern": "x"}), "key_missing,definition"),
    ] {
        let r = api.put(&policy_path("/", &bad), body.clone()).await;
        assert_error(&r, 400, "bad_request");
        let reason = r.body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "{body}: {reason}");
    }
    assert_error(
        &api.get(&policy_path("/", &bad)).await,
        404,
        "Object Not Found",
    );

    // Unknown vhost.
    let r = api
        .put(
            "/api/policies/no-such-vhost-for-policies/p",
            json!({"pattern": "x", "definition": ok_def}),
        )
        .await;
    assert_error(&r, 404, "not_found");
    assert_error(
        &api.get("/api/policies/no-such-vhost-for-policies").await,
        404,
        "Object Not Found",
    );

    // A management user may list but not change; a policymaker needs vhost permissions.
    let viewer = unique("viewer");
    let maker = unique("maker");
    for (user, tags) in [(&viewer, "management"), (&maker, "policymaker")] {
        let r = api
            .put(
                &format!("/api/users/{}", enc(user)),
                json!({"password": "pw", "tags": tags}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let viewer_api = api.as_user(&viewer, "pw");
    let maker_api = api.as_user(&maker, "pw");
    let body = json!({"pattern": "x", "definition": ok_def});
    let r = viewer_api.put(&policy_path("/", &bad), body.clone()).await;
    assert_error(&r, 401, "not_authorised");
    let r = maker_api.put(&policy_path("/", &bad), body.clone()).await;
    assert_error(&r, 401, "not_authorised");
    let r = maker_api.get("/api/policies").await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p["vhost"] == "/"),
        "no permissions, no view of '/': {}",
        r.body
    );
    let perms = json!({"configure": ".*", "write": ".*", "read": ".*"});
    for user in [&viewer, &maker] {
        let r = api
            .put(
                &format!("/api/permissions/%2F/{}", enc(user)),
                perms.clone(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = viewer_api.get("/api/policies").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p["name"] == name.as_str())
    );
    assert_error(&viewer_api.get(&path).await, 401, "not_authorised");
    assert_error(&viewer_api.delete(&path).await, 401, "not_authorised");
    let r = maker_api.put(&policy_path("/", &bad), body).await;
    assert_eq!(r.status, 201, "policymaker with permissions: {}", r.body);
    assert_eq!(maker_api.delete(&policy_path("/", &bad)).await.status, 204);

    // Delete, twice.
    assert_eq!(api.delete(&path).await.status, 204);
    assert_error(&api.delete(&path).await, 404, "Object Not Found");
    assert_error(&api.get(&path).await, 404, "Object Not Found");
    clear_policy(api, &plain).await;
    for user in [&viewer, &maker] {
        assert_eq!(
            api.delete(&format!("/api/users/{}", enc(user)))
                .await
                .status,
            204
        );
    }
    env.tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// effect on queues
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn policy_changes_an_existing_queue_with_messages_and_a_consumer() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("live");
    let (work, dlx, dead, pol) = (
        format!("{p}-work"),
        format!("{p}-dlx"),
        format!("{p}-dead"),
        format!("{p}-pol"),
    );
    declare_exchange(&ch, &dlx, ExchangeKind::Fanout, FieldTable::default()).await;
    declare_plain(&ch, &dead, FieldTable::default()).await;
    bind(&ch, &dead, &dlx, "").await;
    declare_plain(&ch, &work, FieldTable::default()).await;

    // A consumer holding one unacked message, five more ready behind it.
    let (_c2, cch) = env.tb.channel().await;
    qos(&cch, 1).await;
    let mut sub = consume_with(&cch, &work, "holder", false, FieldTable::default()).await;
    publish(&ch, &work, b"m0").await;
    let held = sub.next().await;
    assert_eq!(held.data, b"m0");
    for i in 1..=5 {
        publish(&ch, &work, format!("m{i}").as_bytes()).await;
    }
    wait_ready(&ch, &work, 5).await;
    queue_with_policy(api, &work, Value::Null).await;

    // A length limit with a dead-letter exchange: the oldest ready messages leave at once.
    let def = json!({"max-length": 2, "dead-letter-exchange": dlx});
    set_policy(api, &pol, &format!("^{work}$"), "queues", 0, def.clone()).await;
    assert_eq!(
        take_dead(&ch, &dead, 3).await,
        pairs(&[("m1", "maxlen"), ("m2", "maxlen"), ("m3", "maxlen")])
    );
    wait_ready(&ch, &work, 2).await;
    let q = queue_with_policy(api, &work, json!(pol)).await;
    assert_eq!(q["effective_policy_definition"], def);
    assert_eq!(q["arguments"], json!({}));

    // A TTL instead: messages published from now on expire (and are dead-lettered) once they
    // reach the head; the ones already queued keep theirs (none).
    set_policy(
        api,
        &pol,
        &format!("^{work}$"),
        "queues",
        0,
        json!({"message-ttl": 200, "dead-letter-exchange": dlx}),
    )
    .await;
    publish(&ch, &work, b"fresh").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    ack(&cch, held.delivery_tag).await;
    for want in ["m4", "m5"] {
        let d = sub.next().await;
        assert_eq!(d.data, want.as_bytes());
        ack(&cch, d.delivery_tag).await;
    }
    assert_eq!(
        take_dead(&ch, &dead, 1).await,
        pairs(&[("fresh", "expired")])
    );
    sub.assert_quiet(300).await;

    // Cleared: back to the queue's own arguments (none), so nothing is dropped or expires.
    clear_policy(api, &pol).await;
    for i in 0..4 {
        publish(&ch, &work, format!("after-{i}").as_bytes()).await;
    }
    // The consumer takes one (prefetch 1, last delivery acked); three stay ready.
    let got = sub.next().await;
    assert_eq!(got.data, b"after-0");
    tokio::time::sleep(Duration::from_millis(400)).await;
    wait_ready(&ch, &work, 3).await;
    queue_with_policy(api, &work, Value::Null).await;
    assert!(get(&ch, &dead, true).await.is_none());
    delete_queue(&ch, &work).await;
    delete_queue(&ch, &dead).await;
    delete_exchange(&ch, &dlx).await;
    env.tb.stop().await;
}

#[tokio::test]
async fn a_new_queue_gets_the_matching_policy_and_only_queues_policies_apply() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("new");
    let (matching, other) = (format!("{p}-q1"), format!("{p}-x1"));
    let (qpol, xpol) = (format!("{p}-qpol"), format!("{p}-xpol"));
    set_policy(
        api,
        &qpol,
        &format!("^{p}-q"),
        "queues",
        1,
        json!({"max-length": 1}),
    )
    .await;
    // Higher priority and matching the name too, but for exchanges only.
    set_policy(
        api,
        &xpol,
        &format!("^{p}-q"),
        "exchanges",
        9,
        json!({"alternate-exchange": "amq.fanout"}),
    )
    .await;
    declare_plain(&ch, &matching, FieldTable::default()).await;
    declare_plain(&ch, &other, FieldTable::default()).await;
    for q in [&matching, &other] {
        for i in 1..=3 {
            publish(&ch, q, format!("{i}").as_bytes()).await;
        }
    }
    wait_ready(&ch, &other, 3).await;
    wait_ready(&ch, &matching, 1).await;
    assert_eq!(drain(&ch, &matching).await, vec![b"3".to_vec()]);
    queue_with_policy(api, &matching, json!(qpol)).await;
    queue_with_policy(api, &other, Value::Null).await;
    clear_policy(api, &qpol).await;
    clear_policy(api, &xpol).await;
    delete_queue(&ch, &matching).await;
    delete_queue(&ch, &other).await;
    env.tb.stop().await;
}

#[tokio::test]
async fn the_highest_priority_policy_is_the_one_that_applies() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("prio");
    let q = format!("{p}-q");
    let (a, b) = (format!("{p}-a"), format!("{p}-b"));
    let pattern = format!("^{p}-");
    set_policy(api, &a, &pattern, "queues", 1, json!({"max-length": 4})).await;
    set_policy(api, &b, &pattern, "all", 2, json!({"max-length": 2})).await;
    declare_plain(&ch, &q, FieldTable::default()).await;
    for i in 0..5 {
        publish(&ch, &q, format!("{i}").as_bytes()).await;
    }
    wait_ready(&ch, &q, 2).await;
    queue_with_policy(api, &q, json!(b)).await;
    // Raising the other one's priority switches the queue over: not merged, replaced.
    set_policy(api, &a, &pattern, "queues", 3, json!({"max-length": 4})).await;
    let j = queue_with_policy(api, &q, json!(a)).await;
    assert_eq!(j["effective_policy_definition"], json!({"max-length": 4}));
    for i in 5..8 {
        publish(&ch, &q, format!("{i}").as_bytes()).await;
    }
    wait_ready(&ch, &q, 4).await;
    assert_eq!(
        drain(&ch, &q).await,
        vec![b"4".to_vec(), b"5".to_vec(), b"6".to_vec(), b"7".to_vec()]
    );
    clear_policy(api, &a).await;
    clear_policy(api, &b).await;
    delete_queue(&ch, &q).await;
    env.tb.stop().await;
}

#[tokio::test]
async fn arguments_and_policy_combine_as_in_rabbitmq() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("prec");
    let (arg_dlx, pol_dlx) = (format!("{p}-argdlx"), format!("{p}-poldlx"));
    // Not matched by the policy below (a dash after the prefix).
    let (arg_dead, pol_dead) = (format!("{p}-dead-arg"), format!("{p}-dead-pol"));
    for (x, q) in [(&arg_dlx, &arg_dead), (&pol_dlx, &pol_dead)] {
        declare_exchange(&ch, x, ExchangeKind::Fanout, FieldTable::default()).await;
        declare_plain(&ch, q, FieldTable::default()).await;
        bind(&ch, q, x, "").await;
    }
    let pol = format!("{p}-pol");
    set_policy(
        api,
        &pol,
        &format!("^{p}-[a-z]+$"),
        "queues",
        0,
        json!({"max-length": 3, "message-ttl": 100, "dead-letter-exchange": pol_dlx}),
    )
    .await;
    // The argument's limit is lower: it wins. Its dead-letter exchange wins too.
    let small = format!("{p}-small");
    declare_plain(
        &ch,
        &small,
        table(&[
            ("x-max-length", int(1)),
            ("x-message-ttl", int(600_000)),
            ("x-dead-letter-exchange", s(&arg_dlx)),
        ]),
    )
    .await;
    // The policy's limit is lower: it wins.
    let big = format!("{p}-big");
    declare_plain(
        &ch,
        &big,
        table(&[("x-max-length", int(10)), ("x-message-ttl", int(600_000))]),
    )
    .await;
    for q in [&small, &big] {
        for i in 1..=5 {
            publish(&ch, q, format!("{q}-{i}").as_bytes()).await;
        }
    }
    // small: max-length 1 (argument) -> 4 dropped to the argument's DLX; the last expires
    // after 100 ms (policy TTL) and follows them.
    let dead = take_dead(&ch, &arg_dead, 5).await;
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons, ["maxlen", "maxlen", "maxlen", "maxlen", "expired"]);
    assert_eq!(dead[4].0, format!("{small}-5"));
    // big: max-length 3 (policy) -> 2 dropped, 3 expire; all to the policy's DLX.
    let dead = take_dead(&ch, &pol_dead, 5).await;
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        reasons,
        ["maxlen", "maxlen", "expired", "expired", "expired"]
    );
    assert!(get(&ch, &arg_dead, true).await.is_none());
    assert_eq!(ready_count(&ch, &small).await, 0);
    assert_eq!(ready_count(&ch, &big).await, 0);
    clear_policy(api, &pol).await;
    for q in [&small, &big, &arg_dead, &pol_dead] {
        delete_queue(&ch, q).await;
    }
    delete_exchange(&ch, &arg_dlx).await;
    delete_exchange(&ch, &pol_dlx).await;
    env.tb.stop().await;
}

#[tokio::test]
async fn alternate_exchange_by_policy() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("ae");
    let (src, own_src) = (format!("{p}-src"), format!("{p}-src-own"));
    let (ae, own_ae) = (format!("{p}-alt"), format!("{p}-alt-own"));
    let (caught, own_caught) = (format!("{p}-caught"), format!("{p}-caught-own"));
    for (x, q) in [(&ae, &caught), (&own_ae, &own_caught)] {
        declare_exchange(&ch, x, ExchangeKind::Fanout, FieldTable::default()).await;
        declare_plain(&ch, q, FieldTable::default()).await;
        bind(&ch, q, x, "").await;
    }
    declare_exchange(&ch, &src, ExchangeKind::Direct, FieldTable::default()).await;
    declare_exchange(
        &ch,
        &own_src,
        ExchangeKind::Direct,
        table(&[("alternate-exchange", s(&own_ae))]),
    )
    .await;
    let pol = format!("{p}-pol");
    set_policy(
        api,
        &pol,
        &format!("^{p}-src"),
        "exchanges",
        0,
        json!({"alternate-exchange": ae}),
    )
    .await;
    let x = api.ok(&format!("/api/exchanges/%2F/{}", enc(&src))).await;
    assert_eq!(x["policy"], pol.as_str());
    // An existing exchange picks the policy up; one with its own argument keeps it.
    publish_props(&ch, &src, "nowhere", b"a", BasicProperties::default()).await;
    publish_props(&ch, &own_src, "nowhere", b"b", BasicProperties::default()).await;
    assert_eq!(
        poll_get(&ch, &caught, 10_000, true).await.delivery.data,
        b"a"
    );
    assert_eq!(
        poll_get(&ch, &own_caught, 10_000, true).await.delivery.data,
        b"b"
    );
    assert!(get(&ch, &caught, true).await.is_none());
    // Cleared: unroutable again.
    clear_policy(api, &pol).await;
    let x = api.ok(&format!("/api/exchanges/%2F/{}", enc(&src))).await;
    assert!(x.get("policy").is_none(), "{x}");
    publish_props(&ch, &src, "nowhere", b"c", BasicProperties::default()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get(&ch, &caught, true).await.is_none());
    for q in [&caught, &own_caught] {
        delete_queue(&ch, q).await;
    }
    for x in [&src, &own_src, &ae, &own_ae] {
        delete_exchange(&ch, x).await;
    }
    env.tb.stop().await;
}

#[tokio::test]
async fn overflow_length_bytes_and_delivery_limit_by_policy() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("limits");
    let (refusing, bytes, pol) = (
        format!("{p}-refusing"),
        format!("{p}-bytes"),
        format!("{p}-pol"),
    );
    declare_plain(&ch, &refusing, FieldTable::default()).await;
    declare_plain(&ch, &bytes, FieldTable::default()).await;
    let pol2 = format!("{p}-pol2");
    set_policy(
        api,
        &pol,
        &format!("^{refusing}$"),
        "queues",
        0,
        json!({"max-length": 1, "overflow": "reject-publish"}),
    )
    .await;
    set_policy(
        api,
        &pol2,
        &format!("^{bytes}$"),
        "queues",
        0,
        json!({"max-length-bytes": 10}),
    )
    .await;
    // reject-publish: the publish past the limit is nacked and the first message stays.
    let first = publish_props(&ch, "", &refusing, b"first", BasicProperties::default()).await;
    assert!(first.is_ack(), "{first:?}");
    let refused = publish_props(&ch, "", &refusing, b"second", BasicProperties::default()).await;
    assert!(refused.is_nack(), "{refused:?}");
    assert_eq!(drain(&ch, &refusing).await, vec![b"first".to_vec()]);
    // 10 bytes hold one 6-byte body: drop-head keeps the newest.
    for body in [b"aaaaaa", b"bbbbbb", b"cccccc"] {
        publish(&ch, &bytes, body).await;
    }
    wait_ready(&ch, &bytes, 1).await;
    assert_eq!(drain(&ch, &bytes).await, vec![b"cccccc".to_vec()]);
    clear_policy(api, &pol).await;
    clear_policy(api, &pol2).await;
    delete_queue(&ch, &refusing).await;
    delete_queue(&ch, &bytes).await;

    if external() {
        eprintln!("delivery-limit part skipped: RabbitMQ 3.10 honours it on quorum queues only");
        env.tb.stop().await;
        return;
    }
    // delivery-limit 1: the second requeue dead-letters the message.
    let (work, dlx, dead) = (format!("{p}-work"), format!("{p}-dlx"), format!("{p}-dead"));
    declare_exchange(&ch, &dlx, ExchangeKind::Fanout, FieldTable::default()).await;
    declare_plain(&ch, &dead, FieldTable::default()).await;
    bind(&ch, &dead, &dlx, "").await;
    declare_plain(&ch, &work, FieldTable::default()).await;
    set_policy(
        api,
        &pol,
        &format!("^{work}$"),
        "queues",
        0,
        json!({"delivery-limit": 1, "dead-letter-exchange": dlx}),
    )
    .await;
    publish(&ch, &work, b"poison").await;
    for _ in 0..2 {
        let m = poll_get(&ch, &work, 10_000, false).await;
        within(ch.basic_nack(
            m.delivery.delivery_tag,
            lapin::options::BasicNackOptions {
                requeue: true,
                ..Default::default()
            },
        ))
        .await
        .expect("nack");
    }
    assert_eq!(
        take_dead(&ch, &dead, 1).await,
        pairs(&[("poison", "delivery_limit")])
    );
    assert!(get(&ch, &work, true).await.is_none());
    clear_policy(api, &pol).await;
    delete_queue(&ch, &work).await;
    delete_queue(&ch, &dead).await;
    delete_exchange(&ch, &dlx).await;
    env.tb.stop().await;
}

#[tokio::test]
async fn expires_by_policy_deletes_an_idle_queue() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("exp");
    let (idle, pol) = (format!("{p}-idle"), format!("{p}-pol"));
    declare_plain(&ch, &idle, FieldTable::default()).await;
    set_policy(
        api,
        &pol,
        &format!("^{idle}$"),
        "queues",
        0,
        json!({"expires": 300}),
    )
    .await;
    let path = format!("/api/queues/%2F/{}", enc(&idle));
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.get(&path).await.status != 404 {
        assert!(
            Instant::now() < deadline,
            "{idle} was not deleted by its expires policy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    clear_policy(api, &pol).await;
    env.tb.stop().await;
}

#[tokio::test]
async fn consumer_timeout_by_policy_reaches_deliveries_already_made() {
    if external() {
        eprintln!("skipped: consumer-timeout is a policy key from RabbitMQ 3.12 on");
        return;
    }
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("ctimeout");
    let (q, pol) = (format!("{p}-q"), format!("{p}-pol"));
    declare_plain(&ch, &q, FieldTable::default()).await;
    let (_c2, cch) = env.tb.channel().await;
    let mut sub = consume_with(&cch, &q, "slow", false, FieldTable::default()).await;
    publish(&ch, &q, b"held").await;
    let held = sub.next().await;
    assert_eq!(held.data, b"held");
    // Delivered under the default 30 min timeout; the policy shortens it to 300 ms.
    set_policy(
        api,
        &pol,
        &format!("^{q}$"),
        "queues",
        0,
        json!({"consumer-timeout": 300}),
    )
    .await;
    match within(sub.rx.recv()).await {
        Some(Ok(None)) | None => {}
        other => panic!("expected the consumer to be cancelled, got {other:?}"),
    }
    // The message went back to the queue.
    let back = poll_get(&ch, &q, 10_000, true).await;
    assert_eq!(back.delivery.data, b"held");
    assert!(back.delivery.redelivered);
    clear_policy(api, &pol).await;
    env.tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// durability and definitions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn policies_survive_a_restart_and_round_trip_through_definitions() {
    if external() {
        eprintln!("skipped: restarting needs an in-process broker");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let boot = || boot_in(dir.path());
    let env = boot().await;
    let pol_path = policy_path("/", "keep-short");
    let pol = json!({"vhost": "/", "name": "keep-short", "pattern": "^dur-", "apply-to": "queues",
                     "definition": {"max-length": 1}, "priority": 7});
    let r = env.api.put(&pol_path, pol.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A policy in a vhost that is then deleted goes with it.
    assert_eq!(env.api.put("/api/vhosts/pv", json!({})).await.status, 201);
    let r = env
        .api
        .put(
            &policy_path("pv", "gone"),
            json!({"pattern": ".*", "definition": {"max-length": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(env.api.delete("/api/vhosts/pv").await.status, 204);
    assert_eq!(env.api.put("/api/vhosts/pv", json!({})).await.status, 201);
    assert_eq!(env.api.ok("/api/policies/pv").await, json!([]));
    {
        let (_c, ch) = env.channel().await;
        declare(
            &ch,
            "dur-q",
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    }
    within(env.tb.stop()).await;

    let env = boot().await;
    assert_eq!(env.api.ok(&pol_path).await, pol);
    assert_eq!(env.api.ok("/api/policies/pv").await, json!([]));
    queue_with_policy(&env.api, "dur-q", json!("keep-short")).await;
    let (_c, ch) = env.channel().await;
    for i in 0..3 {
        publish(&ch, "dur-q", format!("{i}").as_bytes()).await;
    }
    wait_ready(&ch, "dur-q", 1).await;

    // Exported in RabbitMQ's layout, whole and per vhost.
    let all = env.api.ok("/api/definitions").await;
    assert_eq!(all["policies"], json!([pol]));
    let per_vhost = env.api.ok("/api/definitions/%2F").await;
    assert_eq!(per_vhost["policies"], json!([pol]));
    // Deleted, then imported back: live again on the queue.
    assert_eq!(env.api.delete(&pol_path).await.status, 204);
    queue_with_policy(&env.api, "dur-q", Value::Null).await;
    for i in 3..6 {
        publish(&ch, "dur-q", format!("{i}").as_bytes()).await;
    }
    wait_ready(&ch, "dur-q", 4).await;
    let r = env.api.post("/api/definitions", all.clone()).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(env.api.ok(&pol_path).await, pol);
    wait_ready(&ch, "dur-q", 1).await;
    // A per-vhost import places the policy in that vhost.
    let r = env.api.post("/api/definitions/pv", per_vhost).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let in_pv = env.api.ok(&policy_path("pv", "keep-short")).await;
    assert_eq!(in_pv["vhost"], "pv");
    // A definitions document with a bad policy is refused whole.
    let mut bad = all.clone();
    bad["policies"][0]["pattern"] = json!("(");
    bad["policies"][0]["name"] = json!("broken");
    let r = env.api.post("/api/definitions", bad).await;
    assert_error(&r, 400, "bad_request");
    assert_error(
        &env.api.get(&policy_path("/", "broken")).await,
        404,
        "Object Not Found",
    );
    drop(ch);
    within(env.tb.stop()).await;

    // The import was logged too.
    let env = boot().await;
    assert_eq!(env.api.ok(&pol_path).await, pol);
    assert_eq!(env.api.ok(&policy_path("pv", "keep-short")).await, in_pv);
    within(env.tb.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// operator policies
// ---------------------------------------------------------------------------------------------

/// RabbitMQ's operator policies: a second kind, kept apart from policies, that may only set
/// limits, and whose limits cap both the policy's and the queue's own arguments.
#[tokio::test]
async fn operator_policies_cap_policies_and_arguments() {
    let env = Env::start().await;
    let api = &env.api;
    let (_c, ch) = env.channel().await;
    let p = unique("op");
    let (dlx, dead) = (format!("{p}-dlx"), format!("{p}-dead-letters"));
    declare_exchange(&ch, &dlx, ExchangeKind::Fanout, FieldTable::default()).await;
    declare_plain(&ch, &dead, FieldTable::default()).await;
    bind(&ch, &dead, &dlx, "").await;
    let pattern = format!("^{p}-q$");

    // Only the five limits (and two ignored quorum keys) are operator settings.
    let op = format!("{p}-cap");
    let op_path = operator_policy_path("/", &op);
    for def in [
        json!({"dead-letter-exchange": "x"}),
        json!({"overflow": "reject-publish"}),
        json!({"ha-mode": "all"}),
    ] {
        let r = api
            .put(&op_path, json!({"pattern": pattern, "definition": def}))
            .await;
        assert_error(&r, 400, "bad_request");
        let reason = r.body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("are not recognised policy settings"),
            "{}",
            r.body
        );
    }
    let r = api
        .put(
            &op_path,
            json!({"pattern": pattern, "definition": {"max-length": 9}, "apply-to": "queues"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body = json!({"pattern": pattern, "definition": {"max-length": 2, "message-ttl": 600000},
                      "apply-to": "queues"});
    let r = api.put(&op_path, body).await;
    assert_eq!(r.status, 204, "replacing answers 204: {}", r.body);
    let got = api.ok(&op_path).await;
    assert_eq!(
        got,
        json!({"vhost": "/", "name": op, "pattern": pattern, "apply-to": "queues",
               "definition": {"max-length": 2, "message-ttl": 600000}, "priority": 0})
    );
    let listed = |list: Value| list.as_array().expect("a list").contains(&got);
    assert!(listed(api.ok("/api/operator-policies").await));
    assert!(listed(api.ok("/api/operator-policies/%2F").await));
    assert!(!listed(api.ok("/api/policies").await));
    assert_error(
        &api.get(&policy_path("/", &op)).await,
        404,
        "Object Not Found",
    );

    // A policy on the same queue: both apply, one of each kind.
    let pol = format!("{p}-pol");
    set_policy(
        api,
        &pol,
        &pattern,
        "queues",
        0,
        json!({"max-length": 5, "message-ttl": 900000, "dead-letter-exchange": dlx}),
    )
    .await;
    let q = format!("{p}-q");
    declare_plain(&ch, &q, table(&[("x-max-length", int(4))])).await;
    queue_with_policy(api, &q, json!(pol)).await;
    let j = queue_where(api, &q, "operator_policy", json!(op)).await;
    assert_eq!(
        j["effective_policy_definition"],
        json!({"dead-letter-exchange": dlx, "max-length": 2, "message-ttl": 600000})
    );
    // The lowest of argument (4), policy (5) and operator policy (2) holds; what it drops
    // goes to the policy's dead-letter exchange.
    for i in 1..=5 {
        publish(&ch, &q, format!("m{i}").as_bytes()).await;
    }
    wait_ready(&ch, &q, 2).await;
    let dropped = take_dead(&ch, &dead, 3).await;
    assert_eq!(
        dropped,
        pairs(&[("m1", "maxlen"), ("m2", "maxlen"), ("m3", "maxlen")])
    );

    // Operator policies are for administrators: a policymaker with full permissions on the
    // vhost may list them, but not read, set or clear one.
    let maker = unique("op-maker");
    let r = api
        .put(
            &format!("/api/users/{}", enc(&maker)),
            json!({"password": "pw", "tags": "policymaker"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let perms = json!({"configure": ".*", "write": ".*", "read": ".*"});
    let r = api
        .put(&format!("/api/permissions/%2F/{}", enc(&maker)), perms)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let maker_api = api.as_user(&maker, "pw");
    assert_eq!(
        maker_api.get("/api/operator-policies/%2F").await.status,
        200
    );
    let body = json!({"pattern": pattern, "definition": {"max-length": 1}});
    for r in [
        maker_api.put(&op_path, body).await,
        maker_api.get(&op_path).await,
        maker_api.delete(&op_path).await,
    ] {
        assert_error(&r, 401, "not_authorised");
        assert_eq!(r.body["reason"], "Not administrator user");
    }
    let r = api.delete(&format!("/api/users/{}", enc(&maker))).await;
    assert_eq!(r.status, 204);

    // Cleared: back to the lower of argument and policy (4).
    assert_eq!(api.delete(&op_path).await.status, 204);
    assert_error(&api.delete(&op_path).await, 404, "Object Not Found");
    let j = queue_where(api, &q, "operator_policy", Value::Null).await;
    assert_eq!(j["policy"], json!(pol));
    for i in 6..=9 {
        publish(&ch, &q, format!("m{i}").as_bytes()).await;
    }
    wait_ready(&ch, &q, 4).await;

    // A missing vhost is 404.
    let r = api
        .put(
            &operator_policy_path("no-such-vhost", &op),
            json!({"pattern": ".*", "definition": {"max-length": 1}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    clear_policy(api, &pol).await;
    for q in [&q, &dead] {
        delete_queue(&ch, q).await;
    }
    delete_exchange(&ch, &dlx).await;
    env.tb.stop().await;
}

#[tokio::test]
async fn operator_policies_survive_a_restart_and_round_trip_through_definitions() {
    if external() {
        eprintln!("skipped: restarting needs an in-process broker");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let boot = || boot_in(dir.path());
    let env = boot().await;
    let op_path = operator_policy_path("/", "cap");
    let op = json!({"vhost": "/", "name": "cap", "pattern": "^dur-", "apply-to": "queues",
                    "definition": {"max-length": 1}, "priority": 2});
    assert_eq!(env.api.put(&op_path, op.clone()).await.status, 201);
    {
        let (_c, ch) = env.channel().await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        declare(&ch, "dur-q", durable, FieldTable::default()).await;
    }
    within(env.tb.stop()).await;

    let env = boot().await;
    assert_eq!(env.api.ok(&op_path).await, op);
    queue_where(&env.api, "dur-q", "operator_policy", json!("cap")).await;
    let (_c, ch) = env.channel().await;
    for i in 0..3 {
        publish(&ch, "dur-q", format!("{i}").as_bytes()).await;
    }
    wait_ready(&ch, "dur-q", 1).await;

    // Exported where RabbitMQ puts them: a runtime parameter of component operator_policy.
    let param = json!({"value": {"pattern": "^dur-", "definition": {"max-length": 1},
                                 "priority": 2, "apply-to": "queues"},
                       "vhost": "/", "component": "operator_policy", "name": "cap"});
    let all = env.api.ok("/api/definitions").await;
    assert_eq!(all["parameters"], json!([param]));
    assert_eq!(all["policies"], json!([]));
    let per_vhost = env.api.ok("/api/definitions/%2F").await;
    assert_eq!(per_vhost["parameters"], json!([param]));
    assert_eq!(env.api.delete(&op_path).await.status, 204);
    queue_where(&env.api, "dur-q", "operator_policy", Value::Null).await;
    let r = env.api.post("/api/definitions", all.clone()).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(env.api.ok(&op_path).await, op);
    queue_where(&env.api, "dur-q", "operator_policy", json!("cap")).await;
    // A per-vhost import places it in that vhost.
    assert_eq!(env.api.put("/api/vhosts/ov", json!({})).await.status, 201);
    let r = env.api.post("/api/definitions/ov", per_vhost).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        env.api.ok(&operator_policy_path("ov", "cap")).await["vhost"],
        "ov"
    );
    // A document with an operator policy that sets a non-operator key is refused whole.
    let mut bad = all.clone();
    bad["parameters"][0]["name"] = json!("broken");
    bad["parameters"][0]["value"]["definition"] = json!({"dead-letter-exchange": "x"});
    assert_error(
        &env.api.post("/api/definitions", bad).await,
        400,
        "bad_request",
    );
    assert_error(
        &env.api.get(&operator_policy_path("/", "broken")).await,
        404,
        "Object Not Found",
    );
    drop(ch);
    within(env.tb.stop()).await;

    // The import was logged; deleting the vhost takes its operator policies along.
    let env = boot().await;
    assert_eq!(env.api.ok(&op_path).await, op);
    assert_eq!(env.api.delete("/api/vhosts/ov").await.status, 204);
    assert_eq!(env.api.ok("/api/operator-policies").await, json!([op]));
    // A cleared one stays cleared.
    assert_eq!(env.api.delete(&op_path).await.status, 204);
    within(env.tb.stop()).await;
    let env = boot().await;
    assert_eq!(env.api.ok("/api/operator-policies").await, json!([]));
    queue_where(&env.api, "dur-q", "operator_policy", Value::Null).await;
    within(env.tb.stop()).await;
}
