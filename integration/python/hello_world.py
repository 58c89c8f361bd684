#!/usr/bin/env python3
"""Tutorial 1, "Hello World!": send.py and receive.py on a named queue.

The first message is sent before any consumer exists (it must wait in the
queue); the second one is sent while the consumer is running.
"""

import threading

import _common as c

QUEUE = c.name("hello")


def send(body):
    connection = c.connect()
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE)
    channel.basic_publish(exchange="", routing_key=QUEUE, body=body)
    print(f" [x] Sent {body!r}", flush=True)
    connection.close()


def receive(ready, received, expected):
    connection = c.connect()
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE)

    def callback(ch, method, properties, body):
        print(f" [x] Received {body!r}", flush=True)
        received.append(body)
        if len(received) == expected:
            ch.stop_consuming()

    channel.basic_consume(queue=QUEUE, on_message_callback=callback, auto_ack=True)
    connection.call_later(c.TIMEOUT - 5, channel.stop_consuming)
    ready.set()
    channel.start_consuming()
    channel.queue_delete(queue=QUEUE)
    connection.close()


def body():
    send(b"Hello World!")

    ready, received = threading.Event(), []
    consumer = c.Worker(receive, ready, received, 2, name="receive")
    consumer.start()
    c.expect(ready.wait(10), "consumer never became ready")
    send(b"Hello again!")
    consumer.join_checked()

    c.expect(received == [b"Hello World!", b"Hello again!"], f"received {received!r}")


if __name__ == "__main__":
    c.main("hello_world", body)
