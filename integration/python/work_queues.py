#!/usr/bin/env python3
"""Tutorial 2, "Work Queues": new_task.py and worker.py.

A durable queue, persistent messages, manual acks and prefetch_count=1:
  1. fair dispatch: while one worker is busy with a long task, every short
     task goes to the other worker; each task is processed exactly once;
  2. a worker that dies without acking gets its task redelivered (with the
     redelivered flag) to another worker.
"""

import threading
import time

import pika

import _common as c

QUEUE = c.name("task_queue")
SECONDS_PER_DOT = 0.1


def new_task(messages):
    connection = c.connect()
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE, durable=True)
    for message in messages:
        channel.basic_publish(
            exchange="",
            routing_key=QUEUE,
            body=message.encode(),
            properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
        )
        print(f" [x] Sent {message!r}", flush=True)
    connection.close()


def worker(label, ready, processed, lock, total):
    connection = c.connect()
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE, durable=True)

    def callback(ch, method, properties, body):
        print(f" [{label}] Received {body.decode()!r}", flush=True)
        time.sleep(body.count(b".") * SECONDS_PER_DOT)
        with lock:
            processed.append((label, body.decode(), method.redelivered))
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=QUEUE, on_message_callback=callback)
    ready.set()

    def done():
        with lock:
            return len(processed) >= total

    c.consume_until(connection, channel, done)
    connection.close()


def fair_dispatch():
    long_task = "long task" + "." * 15
    short_tasks = [f"short task {i}." for i in range(6)]
    processed, lock = [], threading.Lock()
    workers = []
    for label in ("A", "B"):
        ready = threading.Event()
        w = c.Worker(worker, label, ready, processed, lock, 7, name=f"worker-{label}")
        w.start()
        c.expect(ready.wait(10), f"worker {label} never became ready")
        workers.append(w)

    new_task([long_task] + short_tasks)
    for w in workers:
        w.join_checked()

    bodies = sorted(b for _, b, _ in processed)
    c.expect(bodies == sorted([long_task] + short_tasks), f"processed {processed!r}")
    long_worker = next(label for label, b, _ in processed if b == long_task)
    by_long_worker = [b for label, b, _ in processed if label == long_worker]
    c.expect(
        by_long_worker == [long_task],
        f"prefetch=1 should keep the busy worker to one task, it got {by_long_worker!r}",
    )
    c.expect(not any(r for _, _, r in processed), "nothing should be redelivered")


def redelivery():
    new_task(["crash task."])

    # A worker that takes the task and dies without acking.
    connection = c.connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    got = []
    channel.basic_consume(
        queue=QUEUE, on_message_callback=lambda ch, m, p, b: got.append((m.redelivered, b))
    )
    c.consume_until(connection, channel, lambda: got)
    c.expect(got == [(False, b"crash task.")], f"first delivery {got!r}")
    connection.close()  # unacked message goes back to the queue

    processed, lock = [], threading.Lock()
    w = c.Worker(worker, "C", threading.Event(), processed, lock, 1, name="worker-C")
    w.start()
    w.join_checked()
    c.expect(processed == [("C", "crash task.", True)], f"redelivery {processed!r}")

    connection = c.connect()
    channel = connection.channel()
    ok = channel.queue_declare(queue=QUEUE, durable=True, passive=True)
    c.expect(ok.method.message_count == 0, f"queue not empty: {ok.method.message_count}")
    channel.queue_delete(queue=QUEUE)
    connection.close()


def body():
    fair_dispatch()
    redelivery()


if __name__ == "__main__":
    c.main("work_queues", body)
