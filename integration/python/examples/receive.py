#!/usr/bin/env python3
"""Tutorial 1's receive.py, for docker-compose: prints every greeting it gets."""

import os

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


def callback(ch, method, properties, body):
    print(f" [x] Received {body!r}", flush=True)


channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)
print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
channel.start_consuming()
