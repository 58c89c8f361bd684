#!/usr/bin/env python3
"""Tutorial 6, "RPC": rpc_server.py and rpc_client.py.

Two servers share the request queue (prefetch 1, manual ack); two clients,
each with an exclusive server-named callback queue, make calls at the same
time and match replies by correlation_id. Every call must get its own answer.
"""

import threading
import uuid

import pika

import _common as c

RPC_QUEUE = c.name("rpc_queue")


def fib(n):
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


def rpc_server(label, ready, stop, served):
    connection = c.connect()
    channel = connection.channel()
    channel.queue_declare(queue=RPC_QUEUE)

    def on_request(ch, method, props, body):
        n = int(body)
        response = fib(n)
        served.append(label)
        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=str(response),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=RPC_QUEUE, on_message_callback=on_request)
    ready.set()
    c.consume_until(connection, channel, stop.is_set)
    connection.close()


class FibonacciRpcClient:
    def __init__(self):
        self.connection = c.connect()
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(
            queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True
        )
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=RPC_QUEUE,
            properties=pika.BasicProperties(
                reply_to=self.callback_queue, correlation_id=self.corr_id
            ),
            body=str(n),
        )
        c.consume_until(self.connection, self.channel, lambda: self.response is not None)
        return int(self.response)


def client(ns, results):
    fibonacci_rpc = FibonacciRpcClient()
    for n in ns:
        results.append((n, fibonacci_rpc.call(n)))
    fibonacci_rpc.connection.close()


def body():
    stop, served = threading.Event(), []
    servers = []
    for label in ("S1", "S2"):
        ready = threading.Event()
        s = c.Worker(rpc_server, label, ready, stop, served, name=label)
        s.start()
        c.expect(ready.wait(10), f"server {label} never became ready")
        servers.append(s)

    calls = {"C1": list(range(0, 20)), "C2": list(range(20, 0, -1))}
    results = {label: [] for label in calls}
    clients = [c.Worker(client, ns, results[label], name=label) for label, ns in calls.items()]
    for t in clients:
        t.start()
    for t in clients:
        t.join_checked()
    stop.set()
    for s in servers:
        s.join_checked()

    for label, ns in calls.items():
        expected = [(n, fib(n)) for n in ns]
        c.expect(results[label] == expected, f"{label}: got {results[label]!r}")
    print(f" [.] served by {sorted(set(served))}, {len(served)} requests", flush=True)
    c.expect(len(served) == 40, f"served {len(served)} requests, want 40")

    connection = c.connect()
    connection.channel().queue_delete(queue=RPC_QUEUE)
    connection.close()


if __name__ == "__main__":
    c.main("rpc", body)
