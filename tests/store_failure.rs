//! A segment write that fails while publishes are batched (many per socket read, one write per
//! queue at the end of the read): the publishes whose records it may have lost are nacked, never
//! acked, later ones are nacked too, and everything that was acked survives a restart.
//!
//! The failure is real: the test lowers this process's file-size limit (RLIMIT_FSIZE, with
//! SIGXFSZ ignored) so the queue's segment stops growing with EFBIG part-way through a batch's
//! write, leaving a torn record at its tail. The limit is per process, so this file holds a
//! single test and shares its process with no other (cargo test runs one binary per file,
//! nextest one process per test).

mod common;

use common::within;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};

const LIMIT: u64 = 256 * 1024;
const BODY: usize = 2048;

fn set_file_size_limit(soft: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack value; SIGXFSZ ignored makes an over-limit write fail
    // with EFBIG instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = soft.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

fn body(i: usize) -> Vec<u8> {
    let mut b = format!("message {i:05} ").into_bytes();
    b.resize(BODY, b'x');
    b
}

#[tokio::test]
async fn a_failed_batch_write_nacks_its_confirms_and_acked_messages_survive() {
    if common::amqp::external() {
        eprintln!("skipped: needs an in-process broker whose writes can be made to fail");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let tb = within(common::start_with(move |cfg| cfg.data_dir = path)).await;
    let (_conn, ch) = within(tb.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let q = "store-failure";
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    within(ch.queue_declare(q.into(), durable, FieldTable::default()))
        .await
        .expect("queue.declare");

    set_file_size_limit(LIMIT);
    // Bursts of pipelined publishes: each burst spans a few socket reads, so most records are
    // written by a batch's end-of-read flush; the limit falls inside one of those writes.
    let total = 3 * LIMIT as usize / BODY;
    let mut results: Vec<bool> = Vec::with_capacity(total);
    for burst in 0..total / 64 {
        let mut confirms = Vec::new();
        for i in burst * 64..(burst + 1) * 64 {
            let props = BasicProperties::default().with_delivery_mode(2);
            let c = within(ch.basic_publish(
                "".into(),
                q.into(),
                BasicPublishOptions::default(),
                &body(i),
                props,
            ))
            .await
            .expect("basic.publish");
            confirms.push(c);
        }
        for c in confirms {
            results.push(matches!(
                within(c).await.expect("confirm"),
                Confirmation::Ack(_)
            ));
        }
    }
    let acked = results.iter().take_while(|a| **a).count();
    assert!(acked > 0, "publishes below the limit are acked");
    assert!(acked < results.len(), "the failed write nacked publishes");
    assert!(
        results[acked..].iter().all(|a| !*a),
        "after the failure every publish is nacked (acked: {acked}, then {:?})",
        results[acked..].iter().position(|a| *a)
    );
    // Every acked record is in the segment file: nothing was confirmed that the failed write
    // lost.
    let on_disk = common::segment_bodies(dir.path());
    for i in 0..acked {
        assert_eq!(
            on_disk.get(&body(i)),
            Some(&1),
            "acked message {i} is not on disk"
        );
    }

    within(tb.stop()).await;
    set_file_size_limit(libc::RLIM_INFINITY);
    let path = dir.path().to_path_buf();
    let tb = within(common::start_with(move |cfg| cfg.data_dir = path)).await;
    let (_conn, ch) = within(tb.channel()).await;
    let mut back = Vec::new();
    while let Some(m) = within(ch.basic_get(q.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
    {
        back.push(m.delivery.data);
    }
    assert!(
        back.len() >= acked,
        "{} back, {acked} were acked",
        back.len()
    );
    for (i, b) in back.iter().enumerate().take(acked) {
        assert_eq!(b, &body(i), "message {i} after the restart");
    }
    within(ch.queue_delete(q.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    within(tb.stop()).await;
}
