"""The Celery app and tasks run by celery_suite.py's worker (imported as `-A celery_app`).

Broker and queue come from the environment so the worker and the suite agree on them.
"""

import os

from celery import Celery

BROKER = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("CELERY_QUEUE", "compat.celery")

app = Celery("celery_app", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=2,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=3,
    worker_hijack_root_logger=False,
)


@app.task
def add(x, y):
    return x + y


@app.task
def fail(message):
    raise ValueError(message)


@app.task(bind=True, max_retries=3)
def flaky(self, succeed_on):
    """Fails (and is retried through the broker) until attempt `succeed_on`."""
    attempt = self.request.retries + 1
    if attempt < succeed_on:
        raise self.retry(countdown=0, exc=RuntimeError(f"attempt {attempt}"))
    return attempt


@app.task
def echo(payload):
    return {"len": len(payload), "tail": payload[-16:], "headers": None}
