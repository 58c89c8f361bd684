#!/usr/bin/env node
// Tutorial 4, "Routing": emit_log_direct.js and receive_logs_direct.js. One
// subscriber binds "error" only, the other "info", "warning" and "error". Each
// gets exactly the severities it bound, once each, in order.

const c = require('./_common');

const exchange = c.name('direct_logs');
const LAST = ['error', 'last error'];

async function emitLogDirect(messages) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'direct', { durable: false });
  for (const [severity, msg] of messages) {
    channel.publish(exchange, severity, Buffer.from(msg));
    console.log(" [x] Sent %s: '%s'", severity, msg);
  }
  await channel.close();
  await connection.close();
}

async function receiveLogsDirect(label, severities, received) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'direct', { durable: false });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  for (const severity of severities) await channel.bindQueue(queue, exchange, severity);
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      console.log(" [%s] %s: '%s'", label, message.fields.routingKey, message.content.toString());
      received.push([message.fields.routingKey, message.content.toString()]);
    },
    { noAck: true },
  );
  return connection;
}

c.main('routing', async () => {
  const messages = [
    ['info', 'starting'],
    ['debug', 'nobody wants this'],
    ['warning', 'disk at 80%'],
    ['error', 'disk full'],
    ['critical', 'not bound either'],
    ['info', 'recovered'],
    LAST,
  ];
  const subscribers = { errors: ['error'], all: ['info', 'warning', 'error'] };
  const received = { errors: [], all: [] };
  const connections = [];
  for (const [label, severities] of Object.entries(subscribers)) {
    connections.push(await receiveLogsDirect(label, severities, received[label]));
  }
  await emitLogDirect(messages);
  await c.waitFor(
    () => Object.values(received).every((r) => r.length && r.at(-1)[1] === LAST[1]),
    'last message',
  );
  await c.sleep(100);
  for (const [label, severities] of Object.entries(subscribers)) {
    const expected = messages.filter(([s]) => severities.includes(s));
    c.expect(
      JSON.stringify(received[label]) === JSON.stringify(expected),
      `${label}: got ${JSON.stringify(received[label])}, want ${JSON.stringify(expected)}`,
    );
  }
  for (const conn of connections) await conn.close();
  const connection = await c.connect();
  await (await connection.createChannel()).deleteExchange(exchange);
  await connection.close();
});
