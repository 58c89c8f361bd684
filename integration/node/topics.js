#!/usr/bin/env node
// Tutorial 5, "Topics": emit_log_topic.js and receive_logs_topic.js, with the
// tutorial's binding patterns ("#", "kern.*", "*.critical", both of those on one
// queue, "*.orange.*" and "*.*.rabbit" + "lazy.#"). Each subscriber gets exactly
// the matching messages, in order, once each even when two bindings match.

const c = require('./_common');

const exchange = c.name('topic_logs');

const MESSAGES = [
  'kern.critical',
  'anonymous.info',
  'kern.info',
  'cron.critical',
  'a.b.critical',
  'kern',
  '',
  'quick.orange.rabbit',
  'lazy.orange.elephant',
  'quick.orange.fox',
  'lazy.brown.fox',
  'lazy.pink.rabbit',
  'quick.brown.fox',
  'orange',
  'quick.orange.male.rabbit',
  'lazy.orange.male.rabbit',
  'lazy',
];

const SUBSCRIBERS = {
  all: [['#'], MESSAGES],
  kern: [['kern.*'], ['kern.critical', 'kern.info']],
  critical: [['*.critical'], ['kern.critical', 'cron.critical']],
  'kern+critical': [['kern.*', '*.critical'], ['kern.critical', 'kern.info', 'cron.critical']],
  Q1: [['*.orange.*'], ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox']],
  Q2: [
    ['*.*.rabbit', 'lazy.#'],
    ['quick.orange.rabbit', 'lazy.orange.elephant', 'lazy.brown.fox', 'lazy.pink.rabbit', 'lazy.orange.male.rabbit', 'lazy'],
  ],
};

async function emitLogTopic(keys) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: false });
  for (const key of keys) {
    channel.publish(exchange, key, Buffer.from(`message for '${key}'`));
    console.log(" [x] Sent '%s'", key);
  }
  await channel.close();
  await connection.close();
}

async function receiveLogsTopic(keys, received) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: false });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  for (const key of keys) await channel.bindQueue(queue, exchange, key);
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      const key = message.fields.routingKey;
      c.expect(message.content.toString() === `message for '${key}'`, `body ${message.content}`);
      received.push(key);
    },
    { noAck: true },
  );
  return connection;
}

c.main('topics', async () => {
  const received = {};
  const connections = [];
  for (const [label, [keys]] of Object.entries(SUBSCRIBERS)) {
    received[label] = [];
    connections.push(await receiveLogsTopic(keys, received[label]));
  }
  await emitLogTopic(MESSAGES);
  await c.waitFor(
    () => Object.entries(SUBSCRIBERS).every(([label, [, expected]]) => received[label].at(-1) === expected.at(-1)),
    'last matching message on every queue',
  );
  await c.sleep(300); // catch stray duplicates
  for (const [label, [keys, expected]] of Object.entries(SUBSCRIBERS)) {
    console.log(' [%s] %j -> %j', label, keys, received[label]);
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
