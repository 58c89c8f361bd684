#!/usr/bin/env node
// amqplib (promise API) against the broker: the compatibility cases of issue 7.
// Each case has its own timeout (CASE_TIMEOUT seconds, default 30) and the process a watchdog
// (SUITE_TIMEOUT, default 240). Prints PASS/FAIL per case, then one line
// "node/amqplib: N/M passed"; exits 0 only if every case passed.
// amqplib has no transaction API (tx.select), so there is no transactions case.

'use strict';

const amqp = require('amqplib');
const crypto = require('node:crypto');

const HOST = process.env.AMQP_HOST || '127.0.0.1';
const PORT = Number(process.env.AMQP_PORT || 5672);
const USER = process.env.AMQP_USER || 'guest';
const PASS = process.env.AMQP_PASS || 'guest';
const CASE_TIMEOUT_MS = Number(process.env.CASE_TIMEOUT || 30) * 1000;
const SUITE_TIMEOUT_MS = Number(process.env.SUITE_TIMEOUT || 240) * 1000;
const LABEL = 'node/amqplib';
const RUN_ID = crypto.randomBytes(4).toString('hex');
const LARGE_SIZE = 16 * 1024 * 1024;

const name = (base) => `compat.${base}.${RUN_ID}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function url(password = PASS) {
  return `amqp://${encodeURIComponent(USER)}:${encodeURIComponent(password)}@${HOST}:${PORT}`;
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

function expectEq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

async function waitFor(pred, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// A connection that is closed at the end of fn, whatever happens.
async function withConn(fn) {
  const conn = await amqp.connect(url());
  conn.on('error', () => {});
  try {
    return await fn(conn);
  } finally {
    await conn.close().catch(() => {});
  }
}

async function channel(conn, confirm = false) {
  const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
  ch.on('error', () => {}); // failures surface through the rejected operation
  return ch;
}

async function getOne(ch, queue, noAck = true) {
  let msg = false;
  await waitFor(async () => {
    msg = await ch.get(queue, { noAck });
    return msg !== false;
  }, `a message on ${queue}`);
  return msg;
}

const s = (v) => (Buffer.isBuffer(v) ? v.toString() : v);

function checkXDeath(headers, queue, exchange, routingKey) {
  expect(headers, 'dead-lettered message has no headers');
  const deaths = headers['x-death'];
  expect(Array.isArray(deaths) && deaths.length === 1, `x-death should be a 1-element array, got ${JSON.stringify(deaths)}`);
  const d = deaths[0];
  expectEq(s(d.reason), 'rejected', 'x-death reason');
  expectEq(s(d.queue), queue, 'x-death queue');
  expectEq(s(d.exchange), exchange, 'x-death exchange');
  expectEq((d['routing-keys'] || []).map(s), [routingKey], 'x-death routing-keys');
  expectEq(d.count, 1, 'x-death count');
  expect(d.time && d.time['!'] === 'timestamp', `x-death time is not a timestamp: ${JSON.stringify(d.time)}`);
  expectEq(s(headers['x-first-death-reason']), 'rejected', 'x-first-death-reason');
  expectEq(s(headers['x-first-death-queue']), queue, 'x-first-death-queue');
  expectEq(s(headers['x-first-death-exchange']), exchange, 'x-first-death-exchange');
}

const cases = [];
const test = (n, fn) => cases.push([n, fn]);

test('connect', () => withConn(async (conn) => {
  const props = conn.connection.serverProperties;
  const caps = props.capabilities || {};
  for (const cap of ['publisher_confirms', 'basic.nack', 'consumer_cancel_notify', 'exchange_exchange_bindings',
    'connection.blocked', 'authentication_failure_close', 'per_consumer_qos', 'direct_reply_to']) {
    expect(caps[cap] === true, `server capability ${cap} is ${caps[cap]}`);
  }
  expect(props.product, 'server properties have no product');
}));

test('auth_failure', async () => {
  let conn;
  try {
    conn = await amqp.connect(url('definitely-wrong'));
  } catch (err) {
    expect(/403|ACCESS[-_]REFUSED/.test(err.message), `auth error without 403 ACCESS_REFUSED: ${err.message}`);
    return;
  }
  await conn.close();
  throw new Error('connection with a wrong password succeeded');
});

test('declare', () => withConn(async (conn) => {
  let ch = await channel(conn);
  const ex = name('declare.ex');
  const q = name('declare.q');
  await ch.assertExchange(ex, 'topic', { durable: false });
  const ok = await ch.assertQueue(q, { durable: false, arguments: { 'x-max-length': 1000 } });
  expectEq(ok.queue, q, 'declare-ok queue');
  expectEq(ok.messageCount, 0, 'declare-ok message count');
  await ch.bindQueue(q, ex, '*.b.#');
  ch.publish(ex, 'a.b.c', Buffer.from('routed'));
  ch.publish(ex, 'a.c', Buffer.from('dropped'));
  await waitFor(async () => (await ch.checkQueue(q)).messageCount === 1, '1 routed message');
  const named = await ch.assertQueue('', { exclusive: true });
  expect(named.queue.startsWith('amq.gen-'), `server-named queue ${named.queue}`);
  try {
    await ch.checkQueue(name('missing'));
    throw new Error('passive declare of a missing queue succeeded');
  } catch (err) {
    expectEq(err.code, 404, 'passive declare of a missing queue reply code');
  }
  ch = await channel(conn);
  try {
    await ch.assertQueue(q, { durable: false, arguments: { 'x-max-length': 5 } });
    throw new Error('redeclare with different arguments succeeded');
  } catch (err) {
    expectEq(err.code, 406, 'redeclare with different arguments reply code');
  }
  ch = await channel(conn);
  await ch.deleteQueue(q);
  await ch.deleteExchange(ex);
}));

test('publish_confirms', () => withConn(async (conn) => {
  const ch = await channel(conn, true);
  const q = name('confirms.q');
  await ch.assertQueue(q);
  const acked = [];
  for (let i = 0; i < 50; i++) {
    ch.sendToQueue(q, Buffer.from(`m${i}`), { persistent: true }, (err) => acked.push(err));
  }
  await ch.waitForConfirms();
  expectEq(acked.length, 50, 'confirm callbacks');
  expect(acked.every((e) => e === null || e === undefined), `nacked publishes: ${acked}`);
  const returned = [];
  ch.on('return', (m) => returned.push(m));
  ch.publish('', name('nowhere'), Buffer.from('x'), { mandatory: true });
  await ch.waitForConfirms();
  await waitFor(() => returned.length === 1, 'basic.return');
  expectEq(returned[0].fields.replyCode, 312, 'basic.return reply code');
  expectEq((await ch.checkQueue(q)).messageCount, 50, 'confirmed messages in queue');
  await ch.deleteQueue(q);
}));

test('consume_prefetch_ack', () => withConn(async (conn) => {
  const ch = await channel(conn);
  const q = name('prefetch.q');
  await ch.assertQueue(q);
  for (let i = 0; i < 10; i++) ch.sendToQueue(q, Buffer.from(`m${i}`));
  await ch.prefetch(3);
  const got = [];
  await ch.consume(q, (m) => got.push(m), { noAck: false });
  await waitFor(() => got.length >= 3, '3 deliveries');
  await sleep(500);
  expectEq(got.length, 3, 'deliveries in flight with prefetch 3 and no acks');
  for (let acked = 0; acked < 10; acked++) {
    await waitFor(() => got.length > acked, `delivery ${acked}`);
    ch.ack(got[acked]);
  }
  expectEq(got.map((m) => m.content.toString()), [...Array(10).keys()].map((i) => `m${i}`), 'bodies in order');
  expect(got.every((m) => !m.fields.redelivered), 'a first delivery was flagged redelivered');
  ch.sendToQueue(q, Buffer.from('again'));
  await waitFor(() => got.length === 11, '11th delivery');
  ch.nack(got[10], false, true);
  await waitFor(() => got.length === 12, 'redelivery');
  expect(got[11].fields.redelivered, 'requeued message not flagged redelivered');
  ch.ack(got[11]);
  await ch.deleteQueue(q);
}));

test('nack_dead_letter', () => withConn(async (conn) => {
  const ch = await channel(conn);
  const dlx = name('dlx');
  const dlq = name('dlq');
  const q = name('work');
  await ch.assertExchange(dlx, 'fanout');
  await ch.assertQueue(dlq);
  await ch.bindQueue(dlq, dlx, '');
  await ch.assertQueue(q, { deadLetterExchange: dlx });
  ch.sendToQueue(q, Buffer.from('doomed'), { headers: { orig: 'kept' }, messageId: 'd1' });
  const m = await getOne(ch, q, false);
  ch.nack(m, false, false);
  const dead = await getOne(ch, dlq);
  expectEq(dead.content.toString(), 'doomed', 'dead-lettered body');
  expectEq(dead.properties.messageId, 'd1', 'dead-lettered messageId');
  expectEq(dead.properties.headers.orig, 'kept', 'original header after dead-lettering');
  checkXDeath(dead.properties.headers, q, '', q);
  expectEq((await ch.checkQueue(q)).messageCount, 0, 'work queue depth after nack');
  await ch.deleteQueue(q);
  await ch.deleteQueue(dlq);
  await ch.deleteExchange(dlx);
}));

test('large_message', () => withConn(async (conn) => {
  const ch = await channel(conn, true);
  const q = name('large.q');
  await ch.assertQueue(q);
  const block = crypto.createHash('sha256').update(RUN_ID).digest();
  const body = Buffer.alloc(LARGE_SIZE);
  for (let off = 0; off < LARGE_SIZE; off += block.length) block.copy(body, off);
  body.write('TAIL-42', LARGE_SIZE - 7);
  ch.sendToQueue(q, body, { contentType: 'application/octet-stream' });
  await ch.waitForConfirms();
  let got = null;
  await ch.consume(q, (m) => { got = m; }, { noAck: false });
  await waitFor(() => got !== null, '16 MiB delivery', 20000);
  expectEq(got.content.length, body.length, 'large body length');
  expect(got.content.equals(body), 'large body content differs');
  ch.ack(got);
  await ch.deleteQueue(q);
}));

// amqplib can write every field type with {'!': type, value}: b B s u I i l f d D T S x F A t V.
const HEADERS = {
  int8: { '!': 'int8', value: -5 },
  uint8: { '!': 'uint8', value: 200 },
  int16: { '!': 'int16', value: -300 },
  uint16: { '!': 'uint16', value: 40000 },
  int32: { '!': 'int32', value: -70000 },
  uint32: { '!': 'uint32', value: 3000000000 },
  int64: { '!': 'int64', value: -1099511627776 },
  float: { '!': 'float', value: 1.5 },
  double: { '!': 'double', value: 2.25 },
  decimal: { '!': 'decimal', value: { places: 2, digits: 314 } },
  timestamp: { '!': 'timestamp', value: 1700000000 },
  str: 'héllo wörld',
  bytes: Buffer.from([0, 1, 0xfe, 0xff]),
  table: { nested: 'yes', deeper: { n: 7 } },
  array: ['a', 1, true, null, { k: 'v' }, ['inner']],
  true: true,
  false: false,
  void: null,
};
// What amqplib decodes those to: plain numbers, except D and T which keep their tag.
const DECODED = {
  int8: -5, uint8: 200, int16: -300, uint16: 40000, int32: -70000, uint32: 3000000000, int64: -1099511627776,
  float: 1.5, double: 2.25, decimal: HEADERS.decimal, timestamp: HEADERS.timestamp, str: 'héllo wörld',
  bytes: [0, 1, 254, 255], table: HEADERS.table, array: HEADERS.array, true: true, false: false, void: null,
};

const PROPS = {
  contentType: 'application/x-warren-test',
  contentEncoding: 'identity',
  deliveryMode: 2,
  priority: 7,
  correlationId: 'corr-42',
  replyTo: 'reply.queue',
  expiration: '600000',
  messageId: 'msg-42',
  timestamp: 1700000000,
  type: 'compat.test',
  userId: USER,
  appId: 'warren-compat',
};

test('properties_and_headers', () => withConn(async (conn) => {
  const ch = await channel(conn);
  const q = name('props.q');
  await ch.assertQueue(q);
  ch.sendToQueue(q, Buffer.from('props'), { ...PROPS, headers: HEADERS });
  const m = await getOne(ch, q);
  expectEq(m.content.toString(), 'props', 'body');
  for (const [k, v] of Object.entries(PROPS)) expectEq(m.properties[k], v, `property ${k}`);
  const h = m.properties.headers;
  const bad = [];
  for (const [k, v] of Object.entries(DECODED)) {
    const got = Buffer.isBuffer(h[k]) ? [...h[k]] : h[k];
    if (JSON.stringify(got) !== JSON.stringify(v)) bad.push(`${k}: got ${JSON.stringify(got)}, want ${JSON.stringify(v)}`);
  }
  if (bad.length) throw new Error(`headers differ: ${bad.join('; ')}`);
  await ch.deleteQueue(q);
}));

async function main() {
  console.log(`[${LABEL}] broker ${HOST}:${PORT}, run id ${RUN_ID}`);
  const watchdog = setTimeout(() => {
    console.log(`${LABEL}: FAILED, suite timed out after ${SUITE_TIMEOUT_MS} ms`);
    process.exit(2);
  }, SUITE_TIMEOUT_MS);
  let passed = 0;
  for (const [caseName, fn] of cases) {
    const started = Date.now();
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
        }),
      ]);
      passed++;
      console.log(`PASS ${caseName} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    } catch (err) {
      console.log(err && err.stack ? err.stack : err);
      console.log(`FAIL ${caseName} (${((Date.now() - started) / 1000).toFixed(1)}s): ${err && err.message}`);
    } finally {
      clearTimeout(timer);
    }
  }
  clearTimeout(watchdog);
  console.log(`${LABEL}: ${passed}/${cases.length} passed`);
  process.exit(passed === cases.length ? 0 : 1);
}

process.on('unhandledRejection', (err) => console.log(`unhandled rejection: ${err && err.stack}`));
main();
