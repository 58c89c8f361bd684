#!/usr/bin/env python3
"""Direct reply-to (amq.rabbitmq.reply-to): RPC without a callback queue.

The client consumes from the pseudo-queue amq.rabbitmq.reply-to in no-ack
mode, then publishes requests with reply_to=amq.rabbitmq.reply-to; the server
sees a per-channel amq.rabbitmq.reply-to.* address and replies to it through
the default exchange. Also checks RabbitMQ's two 406 PRECONDITION_FAILED
cases: publishing with that reply_to before consuming from it, and consuming
from it with manual acks.
"""

import threading
import uuid

import pika

import _common as c

RPC_QUEUE = c.name("rpc_queue_direct")
REPLY_TO = "amq.rabbitmq.reply-to"


def server(ready, stop, seen_reply_to):
    connection = c.connect()
    channel = connection.channel()
    channel.queue_declare(queue=RPC_QUEUE)

    def on_request(ch, method, props, body):
        seen_reply_to.append(props.reply_to)
        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=body.upper(),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=RPC_QUEUE, on_message_callback=on_request)
    ready.set()
    c.consume_until(connection, channel, stop.is_set)
    connection.close()


def round_trips():
    connection = c.connect()
    channel = connection.channel()
    replies = {}

    def on_response(ch, method, props, body):
        replies[props.correlation_id] = body

    channel.basic_consume(queue=REPLY_TO, on_message_callback=on_response, auto_ack=True)
    requests = {str(uuid.uuid4()): f"request {i}".encode() for i in range(5)}
    for corr_id, request in requests.items():
        channel.basic_publish(
            exchange="",
            routing_key=RPC_QUEUE,
            properties=pika.BasicProperties(reply_to=REPLY_TO, correlation_id=corr_id),
            body=request,
        )
    c.consume_until(connection, channel, lambda: len(replies) == len(requests))
    connection.close()
    for corr_id, request in requests.items():
        c.expect(replies.get(corr_id) == request.upper(), f"reply for {request!r}: {replies.get(corr_id)!r}")


def publish_without_consumer():
    connection = c.connect()
    channel = connection.channel()
    try:
        channel.basic_publish(
            exchange="",
            routing_key=RPC_QUEUE,
            properties=pika.BasicProperties(reply_to=REPLY_TO),
            body=b"nobody will read the reply",
        )
        # basic.publish has no reply; a round trip surfaces the channel error.
        channel.queue_declare(queue=RPC_QUEUE, passive=True)
        raise AssertionError("publish with reply_to=amq.rabbitmq.reply-to without a consumer was accepted")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.expect(e.reply_code == 406, f"expected 406 PRECONDITION_FAILED, got {e!r}")
    finally:
        connection.close()


def consume_with_acks():
    connection = c.connect()
    channel = connection.channel()
    try:
        channel.basic_consume(queue=REPLY_TO, on_message_callback=lambda *a: None, auto_ack=False)
        raise AssertionError("consuming amq.rabbitmq.reply-to with manual acks was accepted")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.expect(e.reply_code == 406, f"expected 406 PRECONDITION_FAILED, got {e!r}")
    finally:
        connection.close()


def body():
    stop, seen_reply_to = threading.Event(), []
    ready = threading.Event()
    s = c.Worker(server, ready, stop, seen_reply_to, name="server")
    s.start()
    c.expect(ready.wait(10), "server never became ready")

    round_trips()
    c.expect(len(seen_reply_to) == 5, f"server saw {len(seen_reply_to)} requests")
    for reply_to in seen_reply_to:
        c.expect(
            reply_to.startswith(REPLY_TO + ".") and len(reply_to) > len(REPLY_TO) + 1,
            f"server should see a rewritten reply_to, got {reply_to!r}",
        )

    stop.set()
    s.join_checked()

    publish_without_consumer()
    consume_with_acks()

    connection = c.connect()
    ok = connection.channel().queue_delete(queue=RPC_QUEUE)
    connection.close()
    c.expect(ok.method.message_count == 0, "the rejected publish must not have been enqueued")


if __name__ == "__main__":
    c.main("direct_reply_to", body)
