#!/usr/bin/env ruby
# frozen_string_literal: true

# Bunny (Debian's ruby-bunny) against the broker: the compatibility cases of issue 7.
# Each case has its own timeout (CASE_TIMEOUT seconds, default 30) and the process a watchdog
# (SUITE_TIMEOUT, default 240). Prints PASS/FAIL per case, then one line
# "ruby/bunny: N/M passed"; exits 0 only if every case passed.

require 'bunny'
require 'bigdecimal'
require 'digest'
require 'securerandom'
require 'timeout'

$stdout.sync = true

HOST = ENV.fetch('AMQP_HOST', '127.0.0.1')
PORT = Integer(ENV.fetch('AMQP_PORT', '5672'))
USER = ENV.fetch('AMQP_USER', 'guest')
PASS = ENV.fetch('AMQP_PASS', 'guest')
CASE_TIMEOUT = Float(ENV.fetch('CASE_TIMEOUT', '30'))
SUITE_TIMEOUT = Float(ENV.fetch('SUITE_TIMEOUT', '240'))
LABEL = 'ruby/bunny'
RUN_ID = SecureRandom.hex(4)
LARGE_SIZE = 16 * 1024 * 1024

def name(base) = "compat.#{base}.#{RUN_ID}"

def connect(password: PASS)
  Bunny.new(host: HOST, port: PORT, user: USER, pass: password, automatically_recover: false,
            connection_timeout: 10, read_timeout: 20, write_timeout: 20, logger: Logger.new(nil)).tap(&:start)
end

def with_conn
  conn = connect
  yield conn
ensure
  conn&.close rescue nil
end

def expect(cond, message)
  raise message unless cond
end

def expect_eq(got, want, what)
  raise "#{what}: got #{got.inspect}, want #{want.inspect}" unless got == want
end

def wait_until(what, timeout: 10)
  deadline = Time.now + timeout
  until yield
    raise "timed out waiting for #{what}" if Time.now > deadline

    sleep 0.02
  end
end

def get_one(ch, queue, manual_ack: false)
  result = nil
  wait_until("a message on #{queue}") do
    di, props, body = ch.basic_get(queue, manual_ack: manual_ack)
    result = [di, props, body] if di
  end
  result
end

def check_x_death(headers, queue, exchange, routing_key)
  expect(headers, 'dead-lettered message has no headers')
  deaths = headers['x-death']
  expect(deaths.is_a?(Array) && deaths.size == 1, "x-death should be a 1-element array, got #{deaths.inspect}")
  d = deaths[0]
  expect_eq(d['reason'], 'rejected', 'x-death reason')
  expect_eq(d['queue'], queue, 'x-death queue')
  expect_eq(d['exchange'], exchange, 'x-death exchange')
  expect_eq(d['routing-keys'], [routing_key], 'x-death routing-keys')
  expect_eq(d['count'], 1, 'x-death count')
  expect(d['time'].is_a?(Time), "x-death time is not a timestamp: #{d['time'].inspect}")
  expect_eq(headers['x-first-death-reason'], 'rejected', 'x-first-death-reason')
  expect_eq(headers['x-first-death-queue'], queue, 'x-first-death-queue')
  expect_eq(headers['x-first-death-exchange'], exchange, 'x-first-death-exchange')
end

CASES = []
def test(case_name, &blk) = CASES << [case_name, blk]

test('connect') do
  with_conn do |conn|
    caps = conn.server_capabilities
    %w[publisher_confirms basic.nack consumer_cancel_notify exchange_exchange_bindings connection.blocked
       authentication_failure_close per_consumer_qos direct_reply_to].each do |cap|
      expect(caps[cap] == true, "server capability #{cap} is #{caps[cap].inspect}")
    end
    expect(conn.server_properties['product'], 'server properties have no product')
    expect(conn.open?, 'connection not open')
  end
end

test('auth_failure') do
  begin
    conn = connect(password: 'definitely-wrong')
  rescue Bunny::AuthenticationFailureError
    next # raised for connection.close 403 ACCESS_REFUSED during the handshake
  end
  conn.close
  raise 'connection with a wrong password succeeded'
end

test('declare') do
  with_conn do |conn|
    ch = conn.create_channel
    ex = ch.topic(name('declare.ex'), durable: false)
    q = ch.queue(name('declare.q'), durable: false, arguments: { 'x-max-length' => 1000 })
    q.bind(ex, routing_key: 'a.*')
    ex.publish('routed', routing_key: 'a.b')
    ex.publish('dropped', routing_key: 'b.a')
    wait_until('1 routed message') { q.message_count == 1 }
    named = ch.queue('', exclusive: true)
    expect(named.name.start_with?('amq.gen-'), "server-named queue #{named.name}")
    begin
      conn.create_channel.queue(name('missing'), passive: true)
      raise 'passive declare of a missing queue succeeded'
    rescue Bunny::NotFound => e
      expect_eq(e.channel_close.reply_code, 404, 'passive declare of a missing queue reply code')
    end
    begin
      conn.create_channel.queue(q.name, durable: false, arguments: { 'x-max-length' => 5 })
      raise 'redeclare with different arguments succeeded'
    rescue Bunny::PreconditionFailed => e
      expect_eq(e.channel_close.reply_code, 406, 'redeclare with different arguments reply code')
    end
    q.delete
    ex.delete
  end
end

test('publish_confirms') do
  with_conn do |conn|
    ch = conn.create_channel
    ch.confirm_select
    q = ch.queue(name('confirms.q'))
    50.times { |i| ch.default_exchange.publish("m#{i}", routing_key: q.name, persistent: true) }
    expect(ch.wait_for_confirms, "nacked publishes: #{ch.nacked_set.to_a}")
    expect_eq(q.message_count, 50, 'confirmed messages in queue')
    returned = []
    ex = ch.direct(name('confirms.ex'))
    ex.on_return { |info, _props, _body| returned << info }
    ex.publish('x', routing_key: 'nowhere', mandatory: true)
    expect(ch.wait_for_confirms, 'unroutable mandatory publish was nacked')
    wait_until('basic.return') { returned.size == 1 }
    expect_eq(returned[0].reply_code, 312, 'basic.return reply code')
    q.delete
    ex.delete
  end
end

test('consume_prefetch_ack') do
  with_conn do |conn|
    ch = conn.create_channel
    q = ch.queue(name('prefetch.q'))
    10.times { |i| ch.default_exchange.publish("m#{i}", routing_key: q.name) }
    ch.prefetch(3)
    got = Queue.new
    all = []
    q.subscribe(manual_ack: true) { |di, _p, body| got << [di, body] }
    wait_until('3 deliveries') { got.size >= 3 }
    sleep 0.5
    expect_eq(got.size, 3, 'deliveries in flight with prefetch 3 and no acks')
    10.times do
      di, body = Timeout.timeout(10) { got.pop }
      all << [di, body]
      ch.ack(di.delivery_tag)
    end
    expect_eq(all.map { |_, b| b }, (0...10).map { |i| "m#{i}" }, 'bodies in order')
    expect(all.none? { |di, _| di.redelivered? }, 'a first delivery was flagged redelivered')
    ch.default_exchange.publish('again', routing_key: q.name)
    di, = Timeout.timeout(10) { got.pop }
    ch.nack(di.delivery_tag, false, true)
    di2, = Timeout.timeout(10) { got.pop }
    expect(di2.redelivered?, 'requeued message not flagged redelivered')
    ch.ack(di2.delivery_tag)
    q.delete
  end
end

test('nack_dead_letter') do
  with_conn do |conn|
    ch = conn.create_channel
    dlx = ch.direct(name('dlx'))
    dlq = ch.queue(name('dlq')).bind(dlx, routing_key: 'dead')
    q = ch.queue(name('work'), arguments: { 'x-dead-letter-exchange' => dlx.name,
                                            'x-dead-letter-routing-key' => 'dead' })
    ch.default_exchange.publish('doomed', routing_key: q.name, headers: { 'orig' => 'kept' }, message_id: 'd1')
    di, = get_one(ch, q.name, manual_ack: true)
    ch.nack(di.delivery_tag, false, false)
    _, props, body = get_one(ch, dlq.name)
    expect_eq(body, 'doomed', 'dead-lettered body')
    expect_eq(props[:message_id], 'd1', 'dead-lettered message_id')
    expect_eq(props[:headers]['orig'], 'kept', 'original header after dead-lettering')
    check_x_death(props[:headers], q.name, '', q.name)
    expect_eq(q.message_count, 0, 'work queue depth after nack')
    q.delete
    dlq.delete
    dlx.delete
  end
end

test('transactions') do
  with_conn do |conn|
    ch = conn.create_channel
    q = ch.queue(name('tx.q'))
    ch.tx_select
    ch.default_exchange.publish('rolled back', routing_key: q.name)
    ch.tx_rollback
    ch.default_exchange.publish('committed', routing_key: q.name)
    expect_eq(q.message_count, 0, 'depth before commit')
    ch.tx_commit
    expect_eq(q.message_count, 1, 'depth after commit')
    di, _, body = ch.basic_get(q.name, manual_ack: true)
    expect_eq(body, 'committed', 'committed body')
    ch.ack(di.delivery_tag)
    ch.tx_commit
    expect_eq(q.message_count, 0, 'depth after committed ack')
    q.delete
  end
end

test('large_message') do
  with_conn do |conn|
    ch = conn.create_channel
    ch.confirm_select
    q = ch.queue(name('large.q'))
    block = Digest::SHA256.digest(RUN_ID) * 32
    body = (block * (LARGE_SIZE / block.bytesize))[0, LARGE_SIZE - 7] + 'TAIL-42'
    body = body.b
    ch.default_exchange.publish(body, routing_key: q.name, content_type: 'application/octet-stream')
    expect(ch.wait_for_confirms, '16 MiB publish nacked')
    got = Queue.new
    q.subscribe(manual_ack: true) { |di, _p, b| got << [di, b] }
    di, b = Timeout.timeout(20) { got.pop }
    expect_eq(b.bytesize, body.bytesize, 'large body length')
    expect(b.b == body, 'large body content differs')
    ch.ack(di.delivery_tag)
    q.delete
  end
end

# amq-protocol encodes S l f d D t T F A V (String, Integer, Float32Bit, Float, BigDecimal, ...).
HEADERS = {
  'str' => 'héllo wörld',
  'int64' => -1_099_511_627_776,
  'small' => 7,
  'float' => AMQ::Protocol::Float32Bit.new(1.5),
  'double' => 2.25,
  # amq-protocol 2.3.2 truncates a fractional BigDecimal on encode (it tests the exponent of
  # 0.314e1), so only an integral decimal can round-trip through this client.
  'decimal' => BigDecimal('1234'),
  'true' => true,
  'false' => false,
  'timestamp' => Time.at(1_700_000_000),
  'table' => { 'nested' => 'yes', 'deeper' => { 'n' => 7 } },
  'array' => ['a', 1, true, nil, { 'k' => 'v' }, ['inner']],
  'void' => nil,
}.freeze
DECODED = HEADERS.merge('float' => 1.5).freeze

PROPS = {
  content_type: 'application/x-warren-test',
  content_encoding: 'identity',
  delivery_mode: 2,
  priority: 7,
  correlation_id: 'corr-42',
  reply_to: 'reply.queue',
  expiration: '600000',
  message_id: 'msg-42',
  timestamp: 1_700_000_000,
  type: 'compat.test',
  user_id: USER,
  app_id: 'warren-compat',
  cluster_id: 'cluster-7',
}.freeze

test('properties_and_headers') do
  with_conn do |conn|
    ch = conn.create_channel
    q = ch.queue(name('props.q'))
    ch.default_exchange.publish('props', **PROPS, routing_key: q.name, headers: HEADERS)
    _, props, body = get_one(ch, q.name)
    expect_eq(body, 'props', 'body')
    PROPS.each do |k, v|
      v = Time.at(v) if k == :timestamp # Bunny decodes the timestamp property to a Time
      expect_eq(props[k], v, "property #{k}")
    end
    bad = DECODED.filter_map do |k, v|
      got = props[:headers][k]
      got = got.dup.force_encoding(Encoding::UTF_8) if got.is_a?(String) # decoded as binary
      "#{k}: got #{got.inspect}, want #{v.inspect}" unless got == v && got.class == v.class
    end
    raise "headers differ: #{bad.join('; ')}" unless bad.empty?

    q.delete
  end
end

puts "[#{LABEL}] broker #{HOST}:#{PORT}, run id #{RUN_ID}, bunny #{Bunny::VERSION}"

Thread.new do
  sleep SUITE_TIMEOUT
  puts "#{LABEL}: FAILED, suite timed out after #{SUITE_TIMEOUT}s"
  exit!(2)
end
passed = 0
CASES.each do |case_name, blk|
  started = Time.now
  begin
    Timeout.timeout(CASE_TIMEOUT) { blk.call }
    passed += 1
    puts format('PASS %s (%.1fs)', case_name, Time.now - started)
  rescue Exception => e # rubocop:disable Lint/RescueException -- any failure fails the case
    puts "#{e.class}: #{e.message}"
    puts e.backtrace.first(8).map { |l| "    #{l}" }
    puts format('FAIL %s (%.1fs): %s: %s', case_name, Time.now - started, e.class, e.message)
  end
end
puts "#{LABEL}: #{passed}/#{CASES.size} passed"
exit!(passed == CASES.size ? 0 : 1)
