//! lapin against the broker: the compatibility cases of issue 7 (see harness.rs for the runner).

mod harness;

use harness::{large_body, name, within, Case, CaseResult, Ctx};
use lapin::message::{Delivery, DeliveryResult};
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};
use std::time::Duration;
use tokio::sync::mpsc;

const LABEL: &str = "rust/lapin";

fn uri(password: &str) -> String {
    let e = harness::env();
    format!("amqp://{}:{}@{}:{}/%2f", e.user, password, e.host, e.port)
}

async fn connect() -> Result<(Connection, Channel), String> {
    let conn = within(
        10,
        "connect",
        Connection::connect(&uri(&harness::env().pass), ConnectionProperties::default()),
    )
    .await?
    .ctx("connect")?;
    let ch = conn.create_channel().await.ctx("channel.open")?;
    Ok((conn, ch))
}

fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn declare_queue(ch: &Channel, q: &str, args: FieldTable) -> Result<(), String> {
    ch.queue_declare(q.into(), QueueDeclareOptions::default(), args)
        .await
        .ctx("queue.declare")?;
    Ok(())
}

async fn depth(ch: &Channel, q: &str) -> Result<u32, String> {
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    Ok(ch
        .queue_declare(q.into(), opts, FieldTable::default())
        .await
        .ctx("passive queue.declare")?
        .message_count())
}

async fn publish(
    ch: &Channel,
    ex: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), String> {
    ch.basic_publish(
        ex.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .ctx("basic.publish")?;
    Ok(())
}

async fn get_one(ch: &Channel, q: &str, no_ack: bool) -> Result<Delivery, String> {
    for _ in 0..500 {
        if let Some(m) = ch
            .basic_get(q.into(), BasicGetOptions { no_ack })
            .await
            .ctx("basic.get")?
        {
            return Ok(m.delivery);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("no message on {q}"))
}

/// A consumer whose deliveries are forwarded in order into a tokio channel.
async fn consume(
    ch: &Channel,
    q: &str,
    no_ack: bool,
) -> Result<mpsc::UnboundedReceiver<DeliveryResult>, String> {
    let opts = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    let consumer = ch
        .basic_consume(q.into(), "".into(), opts, FieldTable::default())
        .await
        .ctx("basic.consume")?;
    let (tx, rx) = mpsc::unbounded_channel();
    consumer.set_delegate(move |d: DeliveryResult| {
        let _ = tx.send(d);
        async {}
    });
    Ok(rx)
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<DeliveryResult>,
    secs: u64,
) -> Result<Delivery, String> {
    match within(secs, "a delivery", rx.recv()).await? {
        Some(Ok(Some(d))) => Ok(d),
        other => Err(format!("expected a delivery, got {other:?}")),
    }
}

async fn case_connect() -> CaseResult {
    let (conn, ch) = connect().await?;
    ensure!(
        conn.status().connected(),
        "connection status {:?}",
        conn.status()
    );
    ensure!(ch.status().connected(), "channel status {:?}", ch.status());
    conn.close(200, "bye".into()).await.ctx("connection.close")
}

async fn case_auth_failure() -> CaseResult {
    let res = within(
        10,
        "connect",
        Connection::connect(&uri("definitely-wrong"), ConnectionProperties::default()),
    )
    .await?;
    match res {
        Ok(_) => Err("connection with a wrong password succeeded".into()),
        Err(e) => {
            ensure_eq!(
                reply_code(&e),
                Some(403),
                format!("auth failure reply code ({e})")
            );
            Ok(())
        }
    }
}

async fn case_declare() -> CaseResult {
    let (conn, ch) = connect().await?;
    let (ex, q) = (name("declare.ex"), name("declare.q"));
    ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .ctx("exchange.declare")?;
    declare_queue(
        &ch,
        &q,
        table(&[("x-max-length", AMQPValue::LongInt(1000))]),
    )
    .await?;
    ch.queue_bind(
        q.as_str().into(),
        ex.as_str().into(),
        "a.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .ctx("queue.bind")?;
    publish(&ch, &ex, "a.b.c", b"routed", BasicProperties::default()).await?;
    publish(&ch, &ex, "b.a", b"dropped", BasicProperties::default()).await?;
    let mut n = 0;
    for _ in 0..250 {
        n = depth(&ch, &q).await?;
        if n == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure_eq!(n, 1, "routed messages");
    let ch2 = conn.create_channel().await.ctx("channel.open")?;
    let missing = name("missing");
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch2
        .queue_declare(missing.as_str().into(), opts, FieldTable::default())
        .await
    {
        Ok(_) => return Err("passive declare of a missing queue succeeded".into()),
        Err(e) => ensure_eq!(
            reply_code(&e),
            Some(404),
            "passive declare of a missing queue"
        ),
    }
    let ch3 = conn.create_channel().await.ctx("channel.open")?;
    match ch3
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            table(&[("x-max-length", AMQPValue::LongInt(5))]),
        )
        .await
    {
        Ok(_) => return Err("redeclare with different arguments succeeded".into()),
        Err(e) => ensure_eq!(
            reply_code(&e),
            Some(406),
            "redeclare with different arguments"
        ),
    }
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .ctx("queue.delete")?;
    ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .ctx("exchange.delete")?;
    conn.close(200, "bye".into()).await.ctx("connection.close")
}

async fn case_publish_confirms() -> CaseResult {
    let (conn, ch) = connect().await?;
    let q = name("confirms.q");
    declare_queue(&ch, &q, FieldTable::default()).await?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ctx("confirm.select")?;
    let mut pending = Vec::new();
    for i in 0..50 {
        let props = BasicProperties::default().with_delivery_mode(2);
        let body = format!("m{i}");
        pending.push(
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .ctx("basic.publish")?,
        );
    }
    for (i, p) in pending.into_iter().enumerate() {
        let c = within(10, "a confirm", p).await?.ctx("confirm")?;
        ensure!(c.is_ack(), "publish {i} was not acked: {c:?}");
    }
    ensure_eq!(depth(&ch, &q).await?, 50, "confirmed messages in queue");
    let opts = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let nowhere = name("nowhere");
    let c = ch
        .basic_publish(
            "".into(),
            nowhere.as_str().into(),
            opts,
            b"x",
            BasicProperties::default(),
        )
        .await
        .ctx("basic.publish")?;
    let c = within(10, "a confirm", c).await?.ctx("confirm")?;
    ensure!(c.is_ack(), "unroutable mandatory publish not acked: {c:?}");
    let returned = c
        .take_message()
        .ok_or("unroutable mandatory publish was not returned")?;
    ensure_eq!(returned.reply_code, 312, "basic.return reply code");
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .ctx("queue.delete")?;
    conn.close(200, "bye".into()).await.ctx("connection.close")
}

async fn case_consume_prefetch_ack() -> CaseResult {
    let (conn, ch) = connect().await?;
    let q = name("prefetch.q");
    declare_queue(&ch, &q, FieldTable::default()).await?;
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
    ch.basic_qos(3, BasicQosOptions::default())
        .await
        .ctx("basic.qos")?;
    let mut rx = consume(&ch, &q, false).await?;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut rx, 10).await?);
    }
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        return Err(format!(
            "a 4th delivery with prefetch 3 and no acks: {extra:?}"
        ));
    }
    for i in 0..10 {
        if i >= 3 {
            got.push(next(&mut rx, 10).await?);
        }
        ch.basic_ack(got[i].delivery_tag, BasicAckOptions::default())
            .await
            .ctx("basic.ack")?;
    }
    let bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(&d.data).into_owned())
        .collect();
    ensure_eq!(
        bodies,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "bodies in order"
    );
    ensure!(
        got.iter().all(|d| !d.redelivered),
        "a first delivery was flagged redelivered"
    );
    publish(&ch, "", &q, b"again", BasicProperties::default()).await?;
    let d = next(&mut rx, 10).await?;
    ch.basic_nack(
        d.delivery_tag,
        BasicNackOptions {
            requeue: true,
            multiple: false,
        },
    )
    .await
    .ctx("basic.nack")?;
    let d = next(&mut rx, 10).await?;
    ensure!(d.redelivered, "requeued message not flagged redelivered");
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .ctx("basic.ack")?;
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .ctx("queue.delete")?;
    conn.close(200, "bye".into()).await.ctx("connection.close")
}

fn str_of(v: Option<&AMQPValue>) -> Option<String> {
    match v? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn check_x_death(h: &FieldTable, queue: &str, exchange: &str, key: &str) -> CaseResult {
    let h = h.inner();
    let Some(AMQPValue::FieldArray(deaths)) = h.get("x-death") else {
        return Err(format!("no x-death array in {h:?}"));
    };
    ensure_eq!(deaths.as_slice().len(), 1, "x-death entries");
    let AMQPValue::FieldTable(d) = &deaths.as_slice()[0] else {
        return Err(format!("x-death entry is not a table: {deaths:?}"));
    };
    let d = d.inner();
    ensure_eq!(
        str_of(d.get("reason")).as_deref(),
        Some("rejected"),
        "x-death reason"
    );
    ensure_eq!(
        str_of(d.get("queue")).as_deref(),
        Some(queue),
        "x-death queue"
    );
    ensure_eq!(
        str_of(d.get("exchange")).as_deref(),
        Some(exchange),
        "x-death exchange"
    );
    ensure_eq!(
        d.get("count"),
        Some(&AMQPValue::LongLongInt(1)),
        "x-death count"
    );
    ensure!(
        matches!(d.get("time"), Some(AMQPValue::Timestamp(_))),
        "x-death time: {:?}",
        d.get("time")
    );
    match d.get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => {
            let keys: Vec<Option<String>> =
                keys.as_slice().iter().map(|k| str_of(Some(k))).collect();
            ensure_eq!(keys, vec![Some(key.to_string())], "x-death routing-keys");
        }
        other => return Err(format!("x-death routing-keys: {other:?}")),
    }
    ensure_eq!(
        str_of(h.get("x-first-death-reason")).as_deref(),
        Some("rejected"),
        "x-first-death-reason"
    );
    ensure_eq!(
        str_of(h.get("x-first-death-queue")).as_deref(),
        Some(queue),
        "x-first-death-queue"
    );
    ensure_eq!(
        str_of(h.get("x-first-death-exchange")).as_deref(),
        Some(exchange),
        "x-first-death-exchange"
    );
    Ok(())
}

async fn case_nack_dead_letter() -> CaseResult {
    let (conn, ch) = connect().await?;
    let (dlx, dlq, q) = (name("dlx"), name("dlq"), name("work"));
    ch.exchange_declare(
        dlx.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .ctx("exchange.declare")?;
    declare_queue(&ch, &dlq, FieldTable::default()).await?;
    ch.queue_bind(
        dlq.as_str().into(),
        dlx.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .ctx("queue.bind")?;
    declare_queue(&ch, &q, table(&[("x-dead-letter-exchange", s(&dlx))])).await?;
    let props = BasicProperties::default()
        .with_message_id("d1".into())
        .with_headers(table(&[("orig", s("kept"))]));
    publish(&ch, "", &q, b"doomed", props).await?;
    let d = get_one(&ch, &q, false).await?;
    ch.basic_nack(
        d.delivery_tag,
        BasicNackOptions {
            requeue: false,
            multiple: false,
        },
    )
    .await
    .ctx("basic.nack")?;
    let dead = get_one(&ch, &dlq, true).await?;
    ensure_eq!(dead.data, b"doomed".to_vec(), "dead-lettered body");
    ensure_eq!(
        dead.properties.message_id().as_ref().map(|m| m.as_str()),
        Some("d1"),
        "dead-lettered message_id"
    );
    let h = dead
        .properties
        .headers()
        .clone()
        .ok_or("dead-lettered message has no headers")?;
    ensure_eq!(
        str_of(h.inner().get("orig")).as_deref(),
        Some("kept"),
        "original header after dead-lettering"
    );
    check_x_death(&h, &q, "", &q)?;
    ensure_eq!(depth(&ch, &q).await?, 0, "work queue depth after nack");
    for x in [&q, &dlq] {
        ch.queue_delete(x.as_str().into(), QueueDeleteOptions::default())
            .await
            .ctx("queue.delete")?;
    }
    ch.exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .ctx("exchange.delete")?;
    conn.close(200, "bye".into()).await.ctx("connection.close")
}

async fn case_transactions() -> CaseResult {
    let (conn, ch) = connect().await?;
    let q = name("tx.q");
    declare_queue(&ch, &q, FieldTable::default()).await?;
    ch.tx_select().await.ctx("tx.select")?;
    publish(&ch, "", &q, b"rolled back", BasicProperties::default()).await?;
    ch.tx_rollback().await.ctx("tx.rollback")?;
    publish(&ch, "", &q, b"committed", BasicProperties::default()).await?;
    ensure_eq!(depth(&ch, &q).await?, 0, "depth before commit");
    ch.tx_commit().await.ctx("tx.commit")?;
    ensure_eq!(depth(&ch, &q).await?, 1, "depth after commit");
    let d = get_one(&ch, &q, false).await?;
    ensure_eq!(d.data, b"committed".to_vec(), "committed body");
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .ctx("basic.ack")?;
    ch.tx_commit().await.ctx("tx.commit")?;
    ensure_eq!(depth(&ch, &q).await?, 0, "depth after committed ack");
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .ctx("queue.delete")?;
    conn.close(200, "bye".into()).await.ctx("connection.close")
}

async fn case_large_message() -> CaseResult {
    let (conn, ch) = connect().await?;
    let q = name("large.q");
    declare_queue(&ch, &q, FieldTable::default()).await?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ctx("confirm.select")?;
    let body = large_body();
    let c = ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .ctx("basic.publish")?;
    ensure!(
        within(20, "the 16 MiB confirm", c)
            .await?
            .ctx("confirm")?
            .is_ack(),
        "16 MiB publish nacked"
    );
    let mut rx = consume(&ch, &q, false).await?;
    let d = next(&mut rx, 20).await?;
    ensure_eq!(d.data.len(), body.len(), "large body length");
    ensure!(d.data == body, "large body content differs");
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .ctx("basic.ack")?;
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .ctx("queue.delete")?;
    conn.close(200, "bye".into()).await.ctx("connection.close")
}

/// Every field type RabbitMQ knows: t b B s u I i l f d D S x T F A V.
fn all_types() -> FieldTable {
    let nested = table(&[
        ("inner-str", s("deep")),
        ("inner-int", AMQPValue::LongInt(-7)),
    ]);
    let array = FieldArray::from(vec![
        s("a"),
        AMQPValue::ShortShortInt(1),
        AMQPValue::Boolean(false),
        AMQPValue::Void,
        AMQPValue::FieldTable(nested.clone()),
        AMQPValue::FieldArray(FieldArray::from(vec![s("inner")])),
    ]);
    table(&[
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-64_000_000_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        ("string", s("héllo wörld")),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        ("array", AMQPValue::FieldArray(array)),
        ("void", AMQPValue::Void),
        ("empty-table", AMQPValue::FieldTable(FieldTable::default())),
        ("empty-array", AMQPValue::FieldArray(FieldArray::default())),
    ])
}

fn all_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/x-warren-test".into())
        .with_content_encoding("identity".into())
        .with_headers(all_types())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("reply.queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-42".into())
        .with_timestamp(1_700_000_000)
        .with_type("compat.test".into())
        .with_user_id(harness::env().user.as_str().into())
        .with_app_id("warren-compat".into())
        .with_cluster_id("cluster-7".into())
}

async fn case_properties_and_headers() -> CaseResult {
    let (conn, ch) = connect().await?;
    let q = name("props.q");
    declare_queue(&ch, &q, FieldTable::default()).await?;
    publish(&ch, "", &q, b"props", all_properties()).await?;
    let d = get_one(&ch, &q, true).await?;
    ensure_eq!(d.data, b"props".to_vec(), "body");
    let (got, want) = (d.properties.clone(), all_properties());
    if got != want {
        let (gh, wh) = (
            got.headers().clone().unwrap_or_default(),
            want.headers().clone().unwrap_or_default(),
        );
        let mut diffs = Vec::new();
        for (k, v) in wh.inner() {
            if gh.inner().get(k) != Some(v) {
                diffs.push(format!("{k}: got {:?}, want {v:?}", gh.inner().get(k)));
            }
        }
        let (gp, wp) = (
            got.with_headers(FieldTable::default()),
            want.with_headers(FieldTable::default()),
        );
        if gp != wp {
            diffs.push(format!("properties: got {gp:?}, want {wp:?}"));
        }
        return Err(format!("round trip differs: {}", diffs.join("; ")));
    }
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .ctx("queue.delete")?;
    conn.close(200, "bye".into()).await.ctx("connection.close")
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
