#!/usr/bin/env python3
"""Tutorial 1's send.py, for docker-compose: publishes a greeting every few seconds."""

import os
import time

import pika

credentials = pika.PlainCredentials(os.environ.get("AMQP_USER", "guest"), os.environ.get("AMQP_PASS", "guest"))
parameters = pika.ConnectionParameters(
    host=os.environ.get("AMQP_HOST", "127.0.0.1"),
    port=int(os.environ.get("AMQP_PORT", "5672")),
    credentials=credentials,
    connection_attempts=30,
    retry_delay=2,
)
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.queue_declare(queue="hello")

count = int(os.environ.get("COUNT", "0"))  # 0: forever
i = 0
while count == 0 or i < count:
    i += 1
    body = f"Hello World! #{i}"
    channel.basic_publish(exchange="", routing_key="hello", body=body)
    print(f" [x] Sent {body!r}", flush=True)
    connection.sleep(float(os.environ.get("INTERVAL", "2")))
connection.close()
