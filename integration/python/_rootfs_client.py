#!/usr/bin/env python3
"""Used by rootfs_check.sh: the host-side client of a broker running the way the Docker image
runs it. AMQP_* name the broker and the user the container was given.

  _rootfs_client.py publish QUEUE BODY   declare QUEUE durable, publish BODY persistent with
                                         a publisher confirm
  _rootfs_client.py get QUEUE BODY       the message on QUEUE must be BODY (and the only one)
  _rootfs_client.py tls CAFILE           an AMQPS connection (AMQP_PORT is the TLS port) that
                                         verifies the server's certificate against CAFILE
  _rootfs_client.py http URL KIND        GET URL (basic auth as the AMQP user); KIND api: JSON
                                         overview, ui: the web UI's page, metrics: Prometheus
"""

import base64
import json
import ssl
import sys
import urllib.request

import pika

import _common as c


def publish(queue, body):
    connection = c.connect()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue=queue, durable=True)
    # With confirms on, basic_publish raises if the broker nacks or returns the message.
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=body.encode(),
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
        mandatory=True,
    )
    connection.close()


def get(queue, body):
    connection = c.connect()
    channel = connection.channel()
    # passive: the queue must have come back from the data dir, not be declared anew.
    ok = channel.queue_declare(queue=queue, passive=True)
    c.expect(ok.method.message_count == 1, f"expected 1 message in {queue}, found {ok.method.message_count}")
    method, props, got = channel.basic_get(queue=queue, auto_ack=False)
    c.expect(method is not None, f"{queue} is empty")
    c.expect(got == body.encode(), f"expected {body!r}, got {got!r}")
    c.expect(props.delivery_mode == 2, f"delivery_mode {props.delivery_mode} after restart, expected 2")
    channel.basic_ack(method.delivery_tag)
    connection.close()


def tls(cafile):
    params = c.params()
    params.ssl_options = pika.SSLOptions(ssl.create_default_context(cafile=cafile), server_hostname="localhost")
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    c.expect(queue.startswith("amq.gen-"), f"server-named queue {queue!r}")
    connection.close()


def http(url, kind):
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{c.USER}:{c.PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        c.expect(response.status == 200, f"GET {url}: {response.status}")
        text = response.read().decode()
    if kind == "api":
        overview = json.loads(text)
        c.expect("object_totals" in overview, f"no object_totals in {url}: {text[:200]}")
    elif kind == "ui":
        c.expect("<html" in text.lower(), f"no HTML page at {url}: {text[:200]}")
    elif kind == "metrics":
        c.expect("rabbitmq_connections" in text, f"no rabbitmq_connections metric at {url}")
    else:
        raise AssertionError(f"unknown kind {kind}")


if __name__ == "__main__":
    action, args = sys.argv[1], sys.argv[2:]
    c.main(f"rootfs_client {action}", lambda: {"publish": publish, "get": get, "tls": tls, "http": http}[action](*args))
