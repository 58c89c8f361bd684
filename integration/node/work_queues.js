#!/usr/bin/env node
// Tutorial 2, "Work Queues": new_task.js and worker.js. A durable queue,
// persistent messages, manual acks, prefetch(1):
//  1. fair dispatch: while one worker is busy with a long task, every short task
//     goes to the other; each task is processed exactly once;
//  2. a worker that dies without acking gets its task redelivered (redelivered
//     flag set) to another worker.

const c = require('./_common');

const queue = c.name('task_queue');
const MS_PER_DOT = 100;

async function newTask(messages) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: true });
  for (const text of messages) {
    channel.sendToQueue(queue, Buffer.from(text), { persistent: true });
    console.log(" [x] Sent '%s'", text);
  }
  await channel.close();
  await connection.close();
}

async function worker(label, processed) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: true });
  await channel.prefetch(1);
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      const text = message.content.toString();
      console.log(" [%s] Received '%s'", label, text);
      const seconds = text.split('.').length - 1;
      setTimeout(() => {
        processed.push({ label, text, redelivered: message.fields.redelivered });
        channel.ack(message);
      }, seconds * MS_PER_DOT);
    },
    { noAck: false },
  );
  return connection;
}

async function fairDispatch() {
  const longTask = `long task${'.'.repeat(15)}`;
  const shortTasks = [0, 1, 2, 3, 4, 5].map((i) => `short task ${i}.`);
  const processed = [];
  const workers = [await worker('A', processed), await worker('B', processed)];

  await newTask([longTask, ...shortTasks]);
  await c.waitFor(() => processed.length >= 7, 'seven tasks');
  await c.sleep(100);
  for (const w of workers) await w.close();

  const texts = processed.map((p) => p.text).sort();
  c.expect(
    JSON.stringify(texts) === JSON.stringify([longTask, ...shortTasks].sort()),
    `processed ${JSON.stringify(processed)}`,
  );
  const longWorker = processed.find((p) => p.text === longTask).label;
  const byLongWorker = processed.filter((p) => p.label === longWorker).map((p) => p.text);
  c.expect(
    byLongWorker.length === 1,
    `prefetch(1) should keep the busy worker to one task, it got ${JSON.stringify(byLongWorker)}`,
  );
  c.expect(!processed.some((p) => p.redelivered), 'nothing should be redelivered');
}

async function redelivery() {
  await newTask(['crash task.']);

  // A worker that takes the task and dies without acking.
  const crashing = await c.connect();
  const channel = await crashing.createChannel();
  await channel.prefetch(1);
  const got = [];
  await channel.consume(queue, (message) => message && got.push(message), { noAck: false });
  await c.waitFor(() => got.length > 0, 'first delivery');
  c.expect(!got[0].fields.redelivered, 'first delivery must not be flagged redelivered');
  await crashing.close(); // the unacked message goes back to the queue

  const processed = [];
  const w = await worker('C', processed);
  await c.waitFor(() => processed.length >= 1, 'redelivery');
  await c.sleep(100);
  await w.close();
  c.expect(
    JSON.stringify(processed) === JSON.stringify([{ label: 'C', text: 'crash task.', redelivered: true }]),
    `redelivery ${JSON.stringify(processed)}`,
  );

  const connection = await c.connect();
  const ch = await connection.createChannel();
  const ok = await ch.checkQueue(queue);
  c.expect(ok.messageCount === 0, `queue not empty: ${ok.messageCount}`);
  await ch.deleteQueue(queue);
  await connection.close();
}

c.main('work_queues', async () => {
  await fairDispatch();
  await redelivery();
});
