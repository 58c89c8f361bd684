#!/usr/bin/env node
// Tutorial 6, "RPC": rpc_server.js and rpc_client.js. Two servers share the
// request queue (prefetch 1, manual ack); two clients, each with an exclusive
// server-named callback queue, call concurrently and match replies by
// correlationId. Every call must get its own answer.

const crypto = require('node:crypto');
const c = require('./_common');

const queue = c.name('rpc_queue');

function fibonacci(n) {
  if (n === 0 || n === 1) return n;
  return fibonacci(n - 1) + fibonacci(n - 2);
}

async function rpcServer(label, served) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: false });
  await channel.prefetch(1);
  await channel.consume(queue, (message) => {
    if (!message) return;
    const n = parseInt(message.content.toString(), 10);
    served.push(label);
    channel.sendToQueue(message.properties.replyTo, Buffer.from(fibonacci(n).toString()), {
      correlationId: message.properties.correlationId,
    });
    channel.ack(message);
  });
  return connection;
}

async function rpcClient(ns) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  const { queue: replyTo } = await channel.assertQueue('', { exclusive: true });
  const pending = new Map();
  await channel.consume(
    replyTo,
    (message) => {
      if (!message) return;
      const resolve = pending.get(message.properties.correlationId);
      if (resolve) {
        pending.delete(message.properties.correlationId);
        resolve(parseInt(message.content.toString(), 10));
      }
    },
    { noAck: true },
  );
  const results = [];
  for (const n of ns) {
    const correlationId = crypto.randomUUID();
    const reply = new Promise((resolve) => pending.set(correlationId, resolve));
    channel.sendToQueue(queue, Buffer.from(n.toString()), { correlationId, replyTo });
    results.push([n, await reply]);
  }
  await connection.close();
  return results;
}

c.main('rpc', async () => {
  const served = [];
  const servers = [await rpcServer('S1', served), await rpcServer('S2', served)];
  const calls = {
    C1: Array.from({ length: 20 }, (_, i) => i),
    C2: Array.from({ length: 20 }, (_, i) => 20 - i),
  };
  const [r1, r2] = await Promise.all([rpcClient(calls.C1), rpcClient(calls.C2)]);
  for (const [label, results] of [['C1', r1], ['C2', r2]]) {
    const expected = calls[label].map((n) => [n, fibonacci(n)]);
    c.expect(JSON.stringify(results) === JSON.stringify(expected), `${label}: got ${JSON.stringify(results)}`);
  }
  console.log(' [.] served by %j, %d requests', [...new Set(served)].sort(), served.length);
  c.expect(served.length === 40, `served ${served.length} requests, want 40`);
  for (const s of servers) await s.close();
  const connection = await c.connect();
  await (await connection.createChannel()).deleteQueue(queue);
  await connection.close();
});
