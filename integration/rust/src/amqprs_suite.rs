//! amqprs against the broker: the compatibility cases of issue 7 (see harness.rs for the runner).
//! Publisher confirms, returns and broker-initiated channel closes arrive through amqprs's
//! `ChannelCallback`, recorded here in a shared `Events`.

mod harness;

use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::*;
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{
    Ack, BasicProperties, ByteArray, Cancel, CloseChannel, DecimalValue, FieldArray, FieldName,
    FieldTable, FieldValue, GetOk, LongStr, Nack, Return,
};
use harness::{large_body, name, within, Case, CaseResult, Ctx};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LABEL: &str = "rust/amqprs";

/// What the broker told a channel asynchronously.
#[derive(Default, Debug)]
struct Events {
    acked: Vec<u64>,
    nacked: Vec<u64>,
    returned: Vec<u16>,
    closed: Vec<u16>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Events>>);

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut Events) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn expand(tag: u64, multiple: bool, seen: &[u64]) -> Vec<u64> {
    if !multiple {
        return vec![tag];
    }
    (1..=tag).filter(|t| !seen.contains(t)).collect()
}

#[async_trait::async_trait]
impl ChannelCallback for Recorder {
    async fn close(
        &mut self,
        _ch: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        self.with(|e| e.closed.push(close.reply_code()));
        Ok(())
    }
    async fn cancel(&mut self, _ch: &Channel, _cancel: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _ch: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _ch: &Channel, ack: Ack) {
        self.with(|e| {
            let mut seen = e.acked.clone();
            seen.extend(&e.nacked);
            let tags = expand(ack.delivery_tag(), ack.mutiple(), &seen);
            e.acked.extend(tags);
        });
    }
    async fn publish_nack(&mut self, _ch: &Channel, nack: Nack) {
        self.with(|e| {
            let mut seen = e.acked.clone();
            seen.extend(&e.nacked);
            let tags = expand(nack.delivery_tag(), nack.multiple(), &seen);
            e.nacked.extend(tags);
        });
    }
    async fn publish_return(
        &mut self,
        _ch: &Channel,
        ret: Return,
        _p: BasicProperties,
        _c: Vec<u8>,
    ) {
        self.with(|e| e.returned.push(ret.reply_code()));
    }
}

fn args(password: &str) -> OpenConnectionArguments {
    let e = harness::env();
    OpenConnectionArguments::new(&e.host, e.port, &e.user, password)
}

async fn connect() -> Result<(Connection, Channel, Recorder), String> {
    let conn = within(10, "connect", Connection::open(&args(&harness::env().pass)))
        .await?
        .ctx("connect")?;
    conn.register_callback(DefaultConnectionCallback)
        .await
        .ctx("connection callback")?;
    let (ch, rec) = channel(&conn).await?;
    Ok((conn, ch, rec))
}

async fn channel(conn: &Connection) -> Result<(Channel, Recorder), String> {
    let ch = conn.open_channel(None).await.ctx("channel.open")?;
    let rec = Recorder::default();
    ch.register_callback(rec.clone())
        .await
        .ctx("channel callback")?;
    Ok((ch, rec))
}

fn key(k: &str) -> FieldName {
    k.try_into().expect("short field name")
}

fn s(v: &str) -> FieldValue {
    FieldValue::S(LongStr::try_from(v).expect("long string"))
}

fn table(pairs: Vec<(&str, FieldValue)>) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert(key(k), v);
    }
    t
}

async fn declare(ch: &Channel, q: &str, arguments: FieldTable) -> CaseResult {
    let mut a = QueueDeclareArguments::new(q);
    a.arguments(arguments);
    ch.queue_declare(a).await.ctx("queue.declare")?;
    Ok(())
}

async fn depth(ch: &Channel, q: &str) -> Result<u32, String> {
    let mut a = QueueDeclareArguments::new(q);
    a.passive(true);
    let ok = ch.queue_declare(a).await.ctx("passive queue.declare")?;
    Ok(ok.ok_or("no declare-ok")?.1)
}

async fn publish(
    ch: &Channel,
    ex: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> CaseResult {
    ch.basic_publish(props, body.to_vec(), BasicPublishArguments::new(ex, key))
        .await
        .ctx("basic.publish")
}

async fn get_one(
    ch: &Channel,
    q: &str,
    no_ack: bool,
) -> Result<(GetOk, BasicProperties, Vec<u8>), String> {
    for _ in 0..500 {
        let mut a = BasicGetArguments::new(q);
        a.no_ack(no_ack);
        if let Some(m) = ch.basic_get(a).await.ctx("basic.get")? {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("no message on {q}"))
}

async fn wait_for(what: &str, mut pred: impl FnMut() -> bool) -> CaseResult {
    for _ in 0..500 {
        if pred() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("timed out waiting for {what}"))
}

async fn close(conn: Connection, ch: Channel) -> CaseResult {
    ch.close().await.ctx("channel.close")?;
    conn.close().await.ctx("connection.close")
}

async fn case_connect() -> CaseResult {
    let (conn, ch, _) = connect().await?;
    let caps = conn.server_properties().capabilities();
    let flags = [
        ("publisher_confirms", caps.publisher_confirms()),
        ("basic.nack", caps.basic_nack()),
        ("consumer_cancel_notify", caps.consumer_cancel_notify()),
        (
            "authentication_failure_close",
            caps.authentication_failure_close(),
        ),
        ("per_consumer_qos", caps.per_consumer_qos()),
        ("connection.blocked", caps.connection_blocked()),
        (
            "exchange_exchange_bindings",
            caps.exchange_exchange_bindings(),
        ),
        ("direct_reply_to", caps.direct_reply_to()),
    ];
    for (cap, on) in flags {
        ensure!(on, "server capability {cap} is not advertised");
    }
    ensure!(conn.is_open(), "connection not open");
    close(conn, ch).await
}

async fn case_auth_failure() -> CaseResult {
    match within(10, "connect", Connection::open(&args("definitely-wrong"))).await? {
        Ok(_) => Err("connection with a wrong password succeeded".into()),
        // amqprs does not advertise the authentication_failure_close capability, so RabbitMQ
        // just drops the socket (the client sees a network error) instead of a 403 close.
        Err(e) => {
            let text = e.to_string();
            let refused = text.contains("403") || text.contains("ACCESS_REFUSED");
            let dropped = matches!(e, amqprs::error::Error::NetworkError(_));
            ensure!(refused || dropped, "unexpected auth failure: {text}");
            println!("    auth failure seen as: {text}");
            Ok(())
        }
    }
}

async fn case_declare() -> CaseResult {
    let (conn, ch, _) = connect().await?;
    let (ex, q) = (name("declare.ex"), name("declare.q"));
    ch.exchange_declare(ExchangeDeclareArguments::new(&ex, "direct"))
        .await
        .ctx("exchange.declare")?;
    declare(&ch, &q, table(vec![("x-max-length", FieldValue::I(1000))])).await?;
    ch.queue_bind(QueueBindArguments::new(&q, &ex, "k"))
        .await
        .ctx("queue.bind")?;
    publish(&ch, &ex, "k", b"routed", BasicProperties::default()).await?;
    publish(&ch, &ex, "other", b"dropped", BasicProperties::default()).await?;
    let mut n = 0;
    for _ in 0..250 {
        n = depth(&ch, &q).await?;
        if n == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure_eq!(n, 1, "routed messages");
    let (ch2, rec2) = channel(&conn).await?;
    let mut a = QueueDeclareArguments::new(&name("missing"));
    a.passive(true);
    ensure!(
        ch2.queue_declare(a).await.is_err(),
        "passive declare of a missing queue succeeded"
    );
    wait_for("channel.close", || !rec2.with(|e| e.closed.is_empty())).await?;
    ensure_eq!(
        rec2.with(|e| e.closed.clone()),
        vec![404],
        "passive declare of a missing queue reply code"
    );
    let (ch3, rec3) = channel(&conn).await?;
    let mut a = QueueDeclareArguments::new(&q);
    a.arguments(table(vec![("x-max-length", FieldValue::I(5))]));
    ensure!(
        ch3.queue_declare(a).await.is_err(),
        "redeclare with different arguments succeeded"
    );
    wait_for("channel.close", || !rec3.with(|e| e.closed.is_empty())).await?;
    ensure_eq!(
        rec3.with(|e| e.closed.clone()),
        vec![406],
        "redeclare with different arguments reply code"
    );
    ch.queue_delete(QueueDeleteArguments::new(&q))
        .await
        .ctx("queue.delete")?;
    ch.exchange_delete(ExchangeDeleteArguments::new(&ex))
        .await
        .ctx("exchange.delete")?;
    close(conn, ch).await
}

async fn case_publish_confirms() -> CaseResult {
    let (conn, ch, rec) = connect().await?;
    let q = name("confirms.q");
    declare(&ch, &q, FieldTable::new()).await?;
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .ctx("confirm.select")?;
    for i in 0..50 {
        let mut p = BasicProperties::default();
        p.with_delivery_mode(2);
        publish(&ch, "", &q, format!("m{i}").as_bytes(), p).await?;
    }
    wait_for("50 confirms", || {
        rec.with(|e| e.acked.len() + e.nacked.len() >= 50)
    })
    .await?;
    ensure!(
        rec.with(|e| e.nacked.is_empty()),
        "nacked publishes: {:?}",
        rec.with(|e| e.nacked.clone())
    );
    ensure_eq!(depth(&ch, &q).await?, 50, "confirmed messages in queue");
    let mut a = BasicPublishArguments::new("", &name("nowhere"));
    a.mandatory(true);
    ch.basic_publish(BasicProperties::default(), b"x".to_vec(), a)
        .await
        .ctx("basic.publish")?;
    wait_for("confirm of the unroutable publish", || {
        rec.with(|e| e.acked.contains(&51))
    })
    .await?;
    wait_for("basic.return", || rec.with(|e| !e.returned.is_empty())).await?;
    ensure_eq!(
        rec.with(|e| e.returned.clone()),
        vec![312],
        "basic.return reply codes"
    );
    ch.queue_delete(QueueDeleteArguments::new(&q))
        .await
        .ctx("queue.delete")?;
    close(conn, ch).await
}

async fn case_consume_prefetch_ack() -> CaseResult {
    let (conn, ch, _) = connect().await?;
    let q = name("prefetch.q");
    declare(&ch, &q, FieldTable::new()).await?;
    for i in 0..10 {
        publish(
            &ch,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await?;
    }
    ch.basic_qos(BasicQosArguments::new(0, 3, false))
        .await
        .ctx("basic.qos")?;
    let (_tag, mut rx) = ch
        .basic_consume_rx(BasicConsumeArguments::new(&q, ""))
        .await
        .ctx("basic.consume")?;
    let mut got = Vec::new();
    let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<ConsumerMessage>| -> Result<ConsumerMessage, String> {
        within(10, "a delivery", rx.recv()).await?.ok_or_else(|| "consumer ended".to_string())
    };
    for _ in 0..3 {
        got.push(next(&mut rx).await?);
    }
    if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        return Err("a 4th delivery with prefetch 3 and no acks".into());
    }
    for i in 0..10 {
        if i >= 3 {
            got.push(next(&mut rx).await?);
        }
        let tag = got[i].deliver.as_ref().ok_or("no deliver")?.delivery_tag();
        ch.basic_ack(BasicAckArguments::new(tag, false))
            .await
            .ctx("basic.ack")?;
    }
    let bodies: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.content.as_deref().unwrap_or_default()).into_owned())
        .collect();
    ensure_eq!(
        bodies,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "bodies in order"
    );
    ensure!(
        got.iter()
            .all(|m| !m.deliver.as_ref().is_some_and(|d| d.redelivered())),
        "a first delivery was flagged redelivered"
    );
    publish(&ch, "", &q, b"again", BasicProperties::default()).await?;
    let m = next(&mut rx).await?;
    let tag = m.deliver.as_ref().ok_or("no deliver")?.delivery_tag();
    ch.basic_nack(BasicNackArguments::new(tag, false, true))
        .await
        .ctx("basic.nack")?;
    let m = next(&mut rx).await?;
    let d = m.deliver.as_ref().ok_or("no deliver")?;
    ensure!(d.redelivered(), "requeued message not flagged redelivered");
    ch.basic_ack(BasicAckArguments::new(d.delivery_tag(), false))
        .await
        .ctx("basic.ack")?;
    ch.queue_delete(QueueDeleteArguments::new(&q))
        .await
        .ctx("queue.delete")?;
    close(conn, ch).await
}

fn str_of(v: Option<&FieldValue>) -> Option<String> {
    match v? {
        FieldValue::S(s) => Some(s.as_ref().to_string()),
        _ => None,
    }
}

fn check_x_death(h: &FieldTable, queue: &str, exchange: &str, rk: &str) -> CaseResult {
    let Some(FieldValue::A(deaths)) = h.get(&key("x-death")) else {
        return Err(format!("no x-death array in {h:?}"));
    };
    let deaths: Vec<FieldValue> = deaths.clone().into();
    ensure_eq!(deaths.len(), 1, "x-death entries");
    let FieldValue::F(d) = &deaths[0] else {
        return Err(format!("x-death entry is not a table: {deaths:?}"));
    };
    ensure_eq!(
        str_of(d.get(&key("reason"))).as_deref(),
        Some("rejected"),
        "x-death reason"
    );
    ensure_eq!(
        str_of(d.get(&key("queue"))).as_deref(),
        Some(queue),
        "x-death queue"
    );
    ensure_eq!(
        str_of(d.get(&key("exchange"))).as_deref(),
        Some(exchange),
        "x-death exchange"
    );
    ensure!(
        matches!(d.get(&key("count")), Some(FieldValue::l(1))),
        "x-death count: {:?}",
        d.get(&key("count"))
    );
    ensure!(
        matches!(d.get(&key("time")), Some(FieldValue::T(_))),
        "x-death time: {:?}",
        d.get(&key("time"))
    );
    match d.get(&key("routing-keys")) {
        Some(FieldValue::A(keys)) => {
            let keys: Vec<FieldValue> = keys.clone().into();
            let keys: Vec<Option<String>> = keys.iter().map(|k| str_of(Some(k))).collect();
            ensure_eq!(keys, vec![Some(rk.to_string())], "x-death routing-keys");
        }
        other => return Err(format!("x-death routing-keys: {other:?}")),
    }
    ensure_eq!(
        str_of(h.get(&key("x-first-death-reason"))).as_deref(),
        Some("rejected"),
        "x-first-death-reason"
    );
    ensure_eq!(
        str_of(h.get(&key("x-first-death-queue"))).as_deref(),
        Some(queue),
        "x-first-death-queue"
    );
    ensure_eq!(
        str_of(h.get(&key("x-first-death-exchange"))).as_deref(),
        Some(exchange),
        "x-first-death-exchange"
    );
    Ok(())
}

async fn case_nack_dead_letter() -> CaseResult {
    let (conn, ch, _) = connect().await?;
    let (dlx, dlq, q) = (name("dlx"), name("dlq"), name("work"));
    ch.exchange_declare(ExchangeDeclareArguments::new(&dlx, "topic"))
        .await
        .ctx("exchange.declare")?;
    declare(&ch, &dlq, FieldTable::new()).await?;
    ch.queue_bind(QueueBindArguments::new(&dlq, &dlx, "#"))
        .await
        .ctx("queue.bind")?;
    declare(&ch, &q, table(vec![("x-dead-letter-exchange", s(&dlx))])).await?;
    let mut p = BasicProperties::default();
    p.with_message_id("d1")
        .with_headers(table(vec![("orig", s("kept"))]));
    publish(&ch, "", &q, b"doomed", p).await?;
    let (ok, _, _) = get_one(&ch, &q, false).await?;
    ch.basic_nack(BasicNackArguments::new(ok.delivery_tag(), false, false))
        .await
        .ctx("basic.nack")?;
    let (_, props, body) = get_one(&ch, &dlq, true).await?;
    ensure_eq!(body, b"doomed".to_vec(), "dead-lettered body");
    ensure_eq!(
        props.message_id().map(|s| s.as_str()),
        Some("d1"),
        "dead-lettered message_id"
    );
    let h = props
        .headers()
        .ok_or("dead-lettered message has no headers")?;
    ensure_eq!(
        str_of(h.get(&key("orig"))).as_deref(),
        Some("kept"),
        "original header after dead-lettering"
    );
    check_x_death(h, &q, "", &q)?;
    ensure_eq!(depth(&ch, &q).await?, 0, "work queue depth after nack");
    for x in [&q, &dlq] {
        ch.queue_delete(QueueDeleteArguments::new(x))
            .await
            .ctx("queue.delete")?;
    }
    ch.exchange_delete(ExchangeDeleteArguments::new(&dlx))
        .await
        .ctx("exchange.delete")?;
    close(conn, ch).await
}

async fn case_transactions() -> CaseResult {
    let (conn, ch, _) = connect().await?;
    let q = name("tx.q");
    declare(&ch, &q, FieldTable::new()).await?;
    ch.tx_select().await.ctx("tx.select")?;
    publish(&ch, "", &q, b"rolled back", BasicProperties::default()).await?;
    ch.tx_rollback().await.ctx("tx.rollback")?;
    publish(&ch, "", &q, b"committed", BasicProperties::default()).await?;
    ensure_eq!(depth(&ch, &q).await?, 0, "depth before commit");
    ch.tx_commit().await.ctx("tx.commit")?;
    ensure_eq!(depth(&ch, &q).await?, 1, "depth after commit");
    let (ok, _, body) = get_one(&ch, &q, false).await?;
    ensure_eq!(body, b"committed".to_vec(), "committed body");
    ch.basic_ack(BasicAckArguments::new(ok.delivery_tag(), false))
        .await
        .ctx("basic.ack")?;
    ch.tx_commit().await.ctx("tx.commit")?;
    ensure_eq!(depth(&ch, &q).await?, 0, "depth after committed ack");
    ch.queue_delete(QueueDeleteArguments::new(&q))
        .await
        .ctx("queue.delete")?;
    close(conn, ch).await
}

async fn case_large_message() -> CaseResult {
    let (conn, ch, rec) = connect().await?;
    let q = name("large.q");
    declare(&ch, &q, FieldTable::new()).await?;
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .ctx("confirm.select")?;
    let body = large_body();
    publish(&ch, "", &q, &body, BasicProperties::default()).await?;
    wait_for("the 16 MiB confirm", || rec.with(|e| e.acked.contains(&1))).await?;
    let (_tag, mut rx) = ch
        .basic_consume_rx(BasicConsumeArguments::new(&q, ""))
        .await
        .ctx("basic.consume")?;
    let m = within(20, "the 16 MiB delivery", rx.recv())
        .await?
        .ok_or("consumer ended")?;
    let got = m.content.as_deref().unwrap_or_default();
    ensure_eq!(got.len(), body.len(), "large body length");
    ensure!(got == body.as_slice(), "large body content differs");
    let tag = m.deliver.as_ref().ok_or("no deliver")?.delivery_tag();
    ch.basic_ack(BasicAckArguments::new(tag, false))
        .await
        .ctx("basic.ack")?;
    ch.queue_delete(QueueDeleteArguments::new(&q))
        .await
        .ctx("queue.delete")?;
    close(conn, ch).await
}

/// Every field type RabbitMQ knows: t b B s u I i l f d D S x T F A V.
fn all_types() -> FieldTable {
    let nested = table(vec![
        ("inner-str", s("deep")),
        ("inner-int", FieldValue::I(-7)),
    ]);
    let array = FieldArray::try_from(vec![
        s("a"),
        FieldValue::b(1),
        FieldValue::t(false),
        FieldValue::V,
        FieldValue::F(nested.clone()),
    ])
    .expect("array");
    table(vec![
        ("bool", FieldValue::t(true)),
        ("i8", FieldValue::b(-8)),
        ("u8", FieldValue::B(200)),
        ("i16", FieldValue::s(-1600)),
        ("u16", FieldValue::u(60000)),
        ("i32", FieldValue::I(-320_000)),
        ("u32", FieldValue::i(4_000_000_000)),
        ("i64", FieldValue::l(-64_000_000_000_000)),
        ("f32", FieldValue::f(1.5)),
        ("f64", FieldValue::d(-2.25)),
        ("decimal", FieldValue::D(DecimalValue::new(2, 12345))),
        ("string", s("héllo wörld")),
        (
            "bytes",
            FieldValue::x(ByteArray::try_from(vec![0u8, 1, 254, 255]).expect("bytes")),
        ),
        ("timestamp", FieldValue::T(1_700_000_000)),
        ("table", FieldValue::F(nested)),
        ("array", FieldValue::A(array)),
        ("void", FieldValue::V),
    ])
}

fn all_properties() -> BasicProperties {
    let mut p = BasicProperties::default();
    p.with_content_type("application/x-warren-test")
        .with_content_encoding("identity")
        .with_headers(all_types())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42")
        .with_reply_to("reply.queue")
        .with_expiration("600000")
        .with_message_id("msg-42")
        .with_timestamp(1_700_000_000)
        .with_message_type("compat.test")
        .with_user_id(&harness::env().user)
        .with_app_id("warren-compat")
        .with_cluster_id("cluster-7");
    p
}

async fn case_properties_and_headers() -> CaseResult {
    let (conn, ch, _) = connect().await?;
    let q = name("props.q");
    declare(&ch, &q, FieldTable::new()).await?;
    publish(&ch, "", &q, b"props", all_properties()).await?;
    let (_, got, body) = get_one(&ch, &q, true).await?;
    ensure_eq!(body, b"props".to_vec(), "body");
    let want = all_properties();
    let (gh, wh) = (
        got.headers().cloned().unwrap_or_default(),
        want.headers().cloned().unwrap_or_default(),
    );
    let mut diffs = Vec::new();
    for k in [
        "bool",
        "i8",
        "u8",
        "i16",
        "u16",
        "i32",
        "u32",
        "i64",
        "f32",
        "f64",
        "decimal",
        "string",
        "bytes",
        "timestamp",
        "table",
        "array",
        "void",
    ] {
        if gh.get(&key(k)) != wh.get(&key(k)) {
            diffs.push(format!(
                "{k}: got {:?}, want {:?}",
                gh.get(&key(k)),
                wh.get(&key(k))
            ));
        }
    }
    let (mut gp, mut wp) = (got.clone(), want.clone());
    gp.with_headers(FieldTable::new());
    wp.with_headers(FieldTable::new());
    if format!("{gp:?}") != format!("{wp:?}") {
        diffs.push(format!("properties: got {gp:?}, want {wp:?}"));
    }
    ensure!(diffs.is_empty(), "round trip differs: {}", diffs.join("; "));
    ch.queue_delete(QueueDeleteArguments::new(&q))
        .await
        .ctx("queue.delete")?;
    close(conn, ch).await
}

macro_rules! case {
    ($name:literal, $f:ident) => {
        ($name, || Box::pin($f()))
    };
}

fn main() {
    let cases: &[Case] = &[
        case!("connect", case_connect),
        case!("auth_failure", case_auth_failure),
        case!("declare", case_declare),
        case!("publish_confirms", case_publish_confirms),
        case!("consume_prefetch_ack", case_consume_prefetch_ack),
        case!("nack_dead_letter", case_nack_dead_letter),
        case!("transactions", case_transactions),
        case!("large_message", case_large_message),
        case!("properties_and_headers", case_properties_and_headers),
    ];
    harness::run(LABEL, cases)
}
