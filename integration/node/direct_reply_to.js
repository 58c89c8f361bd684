#!/usr/bin/env node
// Direct reply-to (amq.rabbitmq.reply-to): the client consumes the pseudo-queue
// with noAck, sends requests with replyTo=amq.rabbitmq.reply-to, and the server
// replies to the per-channel amq.rabbitmq.reply-to.* address it sees.

const crypto = require('node:crypto');
const c = require('./_common');

const queue = c.name('rpc_queue_direct');
const REPLY_TO = 'amq.rabbitmq.reply-to';

c.main('direct_reply_to', async () => {
  const seenReplyTo = [];
  const server = await c.connect();
  const sch = await server.createChannel();
  await sch.assertQueue(queue, { durable: false });
  await sch.consume(queue, (message) => {
    if (!message) return;
    seenReplyTo.push(message.properties.replyTo);
    sch.sendToQueue(message.properties.replyTo, Buffer.from(message.content.toString().toUpperCase()), {
      correlationId: message.properties.correlationId,
    });
    sch.ack(message);
  });

  const connection = await c.connect();
  const channel = await connection.createChannel();
  const replies = new Map();
  await channel.consume(
    REPLY_TO,
    (message) => message && replies.set(message.properties.correlationId, message.content.toString()),
    { noAck: true },
  );
  const requests = new Map(Array.from({ length: 5 }, (_, i) => [crypto.randomUUID(), `request ${i}`]));
  for (const [correlationId, text] of requests) {
    channel.sendToQueue(queue, Buffer.from(text), { replyTo: REPLY_TO, correlationId });
  }
  await c.waitFor(() => replies.size === requests.size, 'all replies');
  for (const [correlationId, text] of requests) {
    c.expect(replies.get(correlationId) === text.toUpperCase(), `reply for ${text}: ${replies.get(correlationId)}`);
  }
  c.expect(seenReplyTo.length === 5, `server saw ${seenReplyTo.length} requests`);
  for (const r of seenReplyTo) {
    c.expect(r.startsWith(`${REPLY_TO}.`) && r.length > REPLY_TO.length + 1, `rewritten reply_to, got ${r}`);
  }
  await connection.close();
  await sch.deleteQueue(queue);
  await server.close();
});
