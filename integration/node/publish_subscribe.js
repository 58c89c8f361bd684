#!/usr/bin/env node
// Tutorial 3, "Publish/Subscribe": emit_log.js and receive_logs.js. A fanout
// exchange and two subscribers with exclusive server-named queues. A message
// sent before anyone is bound is dropped; both subscribers get every later
// message in order; queue names look like amq.gen-*; another connection gets
// 405 on an exclusive queue, and 404 once its owner has closed.

const c = require('./_common');

const exchange = c.name('logs');
const LAST = 'info: last';

async function emitLog(messages) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'fanout', { durable: false });
  for (const msg of messages) {
    channel.publish(exchange, '', Buffer.from(msg));
    console.log(" [x] Sent '%s'", msg);
  }
  await channel.close();
  await connection.close();
}

async function receiveLogs(label, received) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'fanout', { durable: false });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, exchange, '');
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      console.log(' [%s] %s', label, message.content.toString());
      received.push(message.content.toString());
    },
    { noAck: true },
  );
  return { connection, queue };
}

// Runs op on a fresh channel of connection; resolves to the channel error code, or null.
async function errorCode(connection, op) {
  const channel = await connection.createChannel();
  channel.on('error', () => {});
  try {
    await op(channel);
    await channel.close();
    return null;
  } catch (err) {
    return err.code;
  }
}

c.main('publish_subscribe', async () => {
  await emitLog(['info: nobody is listening']);

  const messages = ['info: one', 'warning: two', 'error: three', LAST];
  const received = { A: [], B: [] };
  const subscribers = {
    A: await receiveLogs('A', received.A),
    B: await receiveLogs('B', received.B),
  };
  await emitLog(messages);
  await c.waitFor(() => Object.values(received).every((r) => r.at(-1) === LAST), 'last message');

  for (const [label, r] of Object.entries(received)) {
    c.expect(JSON.stringify(r) === JSON.stringify(messages), `subscriber ${label} received ${JSON.stringify(r)}`);
    c.expect(subscribers[label].queue.startsWith('amq.gen-'), `server-named queue ${subscribers[label].queue}`);
  }
  c.expect(subscribers.A.queue !== subscribers.B.queue, 'queue names must differ');

  const other = await c.connect();
  const locked = await errorCode(other, (ch) => ch.checkQueue(subscribers.A.queue));
  c.expect(locked === 405, `expected 405 RESOURCE_LOCKED, got ${locked}`);

  await subscribers.A.connection.close();
  await subscribers.B.connection.close();
  let gone = null;
  for (let i = 0; i < 20 && gone === null; i++) {
    gone = await errorCode(other, (ch) => ch.checkQueue(subscribers.A.queue));
    if (gone === null) await c.sleep(100);
  }
  c.expect(gone === 404, `expected 404 NOT_FOUND after the owner closed, got ${gone}`);

  const ch = await other.createChannel();
  await ch.deleteExchange(exchange);
  await other.close();
});
