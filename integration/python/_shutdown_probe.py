#!/usr/bin/env python3
"""Used by run.sh around SIGTERM: holds a connection open (with a consumer on
an exclusive queue) and exits 0 only if the broker closes it with 320
CONNECTION_FORCED. Prints "connected" once it is ready."""

import os
import sys

import pika

import _common as c


def body():
    params = c.params()
    params.client_properties = {"connection_name": os.environ.get("PROBE_NAME", "warren-shutdown-probe")}
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.basic_consume(queue=queue, on_message_callback=lambda *a: None, auto_ack=True)
    print("connected", flush=True)
    try:
        while True:
            connection.process_data_events(time_limit=1)
    except pika.exceptions.ConnectionClosedByBroker as e:
        print(f"closed by broker: {e.reply_code} {e.reply_text}", flush=True)
        c.expect(e.reply_code == 320, f"expected 320 CONNECTION_FORCED, got {e.reply_code}")


if __name__ == "__main__":
    c.main("shutdown_probe", body)
