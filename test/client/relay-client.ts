import t from 'tap';
import { forge, forgeUnavailable } from '../fixtures/forge';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { RelayClient } from '../../src/client/relay-client';
import { RegistrationRefusedError, RegistrationTimeoutError } from '../../src/wire/errors';
import { FakeTimers } from '../fixtures/fake-timers';
import { startRelay, until } from '../fixtures/udp';
import { sessionOf } from '../fixtures/table-check';

type Tap = { teardown(fn: () => unknown): void };

/** A scripted relay: records what arrives, answers as the test says. */
async function fakeRelay(t: Tap) {
  const socket = dgram.createSocket('udp4');
  const got: Array<{ data: string; port: number }> = [];
  let answer: string | undefined = 'ACK\n';
  socket.on('message', (m, r) => {
    got.push({ data: m.toString('latin1'), port: r.port });
    if (answer !== undefined && m.toString('latin1').startsWith('REG:')) socket.send(answer, r.port, r.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => socket.close());
  const port = (socket.address() as AddressInfo).port;
  return {
    relay: { host: '127.0.0.1', port },
    got,
    regs: () => got.filter((g) => g.data.startsWith('REG:')).length,
    answer: (a: string | undefined) => (answer = a),
    sendTo: (port2: number, data: string) => socket.send(data, port2, '127.0.0.1'),
  };
}

const session = 'client-test-session';

t.test('SPEC 5.1: retries REG with backoff until ACK, then resolves', async (t) => {
  const fake = await fakeRelay(t);
  fake.answer(undefined); // silent at first
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session }, timers);
  t.teardown(() => c.close());
  const done = c.register();
  await until(() => fake.regs() === 1);
  const at: number[] = [];
  for (const step of [249, 1, 499, 1, 999, 1, 1999, 1, 1999, 1]) {
    timers.advance(step); // timers send synchronously: the count is exact at once
    at.push(c.stats.regsSent);
  }
  await until(() => fake.regs() === 6);
  t.same(at, [1, 2, 2, 3, 3, 4, 4, 5, 5, 6], 'REG at 0, 250, 750, 1750, 3750, 5750 ms: doubling to a 2 s cap');
  fake.answer('ACK\n');
  timers.advance(2000);
  await done;
  t.ok(c.registered);
  t.equal(fake.got[0]!.data, `REG:${session}\n`);
  t.equal(new Set(fake.got.map((g) => g.port)).size, 1, 'every REG from one socket');
});

t.test('gives up after the timeout with an error naming relay and session', async (t) => {
  const fake = await fakeRelay(t);
  fake.answer(undefined);
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session, registerTimeoutMs: 5000 }, timers);
  t.teardown(() => c.close());
  const p = c.register();
  await until(() => fake.regs() === 1);
  for (let i = 0; i < 10; i++) timers.advance(1000);
  const err = await p.catch((e: unknown) => e);
  t.type(err, RegistrationTimeoutError);
  t.equal((err as RegistrationTimeoutError).code, 'QR_ERR_TIMEOUT');
  t.match((err as Error).message, `127.0.0.1:${fake.relay.port}`);
  t.match((err as Error).message, session);
  t.equal(timers.timersPending, 0, 'no timer left behind');
  t.throws(() => c.address(), { code: 'QR_ERR_CLOSED' }, 'nor a socket');
});

t.test('ERR:FULL and ERR:BAD become typed errors at once', async (t) => {
  for (const [reply, code] of [
    ['ERR:FULL\n', 'QR_ERR_FULL'],
    ['ERR:BAD\n', 'QR_ERR_BAD'],
  ] as const) {
    const fake = await fakeRelay(t);
    fake.answer(reply);
    const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session }, new FakeTimers());
    t.teardown(() => c.close());
    const err = await c.register().catch((e: unknown) => e);
    t.type(err, RegistrationRefusedError, reply);
    t.equal((err as RegistrationRefusedError).code, code);
    t.throws(() => c.address(), { code: 'QR_ERR_CLOSED' }, 'a failed register() closes the socket it opened: the program can exit');
  }
});

t.test('ERR:BUSY is retried, and reported if it never clears', async (t) => {
  const fake = await fakeRelay(t);
  fake.answer('ERR:BUSY\n');
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session, registerTimeoutMs: 3000 }, timers);
  t.teardown(() => c.close());
  const p = c.register();
  await until(() => c.stats.refusals === 1);
  timers.advance(250);
  await until(() => c.stats.refusals === 2);
  for (let i = 0; i < 5; i++) timers.advance(1000);
  const err = await p.catch((e: unknown) => e);
  t.equal((err as RegistrationRefusedError).code, 'QR_ERR_BUSY');
});

t.test('keepalive from the data socket; ACKs swallowed; data delivered', async (t) => {
  const fake = await fakeRelay(t);
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session, keepaliveSecs: 15 }, timers);
  t.teardown(() => c.close());
  const messages: string[] = [];
  c.on('message', (m) => messages.push(m.toString()));
  let registeredEvents = 0;
  c.on('registered', () => registeredEvents++);
  await c.register();
  const port = c.address().port;
  timers.advance(14_999);
  t.equal(c.stats.regsSent, 1, 'nothing before 15 s');
  timers.advance(1);
  await until(() => fake.regs() === 2);
  t.equal(fake.got[1]!.port, port, 'the keepalive comes from the data socket');
  c.send(Buffer.from('data to the peer'));
  await until(() => fake.got.some((g) => g.data === 'data to the peer'));
  t.equal(fake.got.find((g) => g.data === 'data to the peer')!.port, port, 'data from the same socket');
  fake.sendTo(port, 'ACK\n');
  fake.sendTo(port, 'from the peer');
  await until(() => messages.length === 1);
  t.same(messages, ['from the peer'], 'ACK replies are not data');
  t.equal(registeredEvents, 1, 'a keepalive ACK is not a new registration');
});

t.test('an unanswered keepalive falls back to registering with backoff', async (t) => {
  const fake = await fakeRelay(t);
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session, keepaliveSecs: 15 }, timers);
  t.teardown(() => c.close());
  let lost = 0,
    regained = 0;
  c.on('unregistered', () => lost++);
  c.on('registered', () => regained++);
  await c.register();
  fake.answer(undefined); // the relay goes away
  timers.advance(15_000);
  await until(() => fake.regs() === 2);
  timers.advance(2000);
  t.equal(lost, 1, 'noticed within 2 s of the keepalive');
  t.notOk(c.registered);
  await until(() => fake.regs() === 3);
  fake.answer('ACK\n'); // it is back
  timers.advance(250);
  await until(() => regained === 2);
  t.ok(c.registered);
});

t.test('re-registers at once when the relay goes quiet while we keep sending', async (t) => {
  const fake = await fakeRelay(t);
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session, keepaliveSecs: 15, silenceReregisterMs: 1000 }, timers);
  t.teardown(() => c.close());
  await c.register();
  c.send(Buffer.from('a'));
  t.equal(c.stats.regsSent, 1, 'heard the ACK recently: no REG');
  timers.advance(1500);
  c.send(Buffer.from('b'));
  await until(() => fake.regs() === 2);
  t.pass('REG sent with the data after 1.5 s of silence from the relay');
  c.send(Buffer.from('c'));
  t.equal(c.stats.regsSent, 2, 'not again right away');
});

t.test('close() leaves no timer or socket behind', async (t) => {
  const fake = await fakeRelay(t);
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session }, timers);
  await c.register();
  t.equal(timers.timersPending, 1, 'the keepalive timer');
  await c.close();
  await c.close();
  t.equal(timers.timersPending, 0);
  t.throws(() => c.send(Buffer.from('x')), { code: 'QR_ERR_CLOSED' });
});

t.test('rejects a bad session id at construction', async (t) => {
  t.throws(() => new RelayClient({ transport: 'udp', relay: { host: '127.0.0.1', port: 1 }, sessionId: 'bad id' }), { code: 'QR_ERR_CONFIG' });
});

t.test('against the real relay: pair, exchange, survive a relay restart', async (t) => {
  const first = await startRelay(t);
  const port = first.address.port;
  const timers = new FakeTimers();
  const opts = { relay: { host: '127.0.0.1', port }, sessionId: session, keepaliveSecs: 15 };
  const a = new RelayClient(opts, timers);
  const b = new RelayClient(opts, timers);
  t.teardown(() => a.close());
  t.teardown(() => b.close());
  await a.register();
  await b.register();
  const got: string[] = [];
  b.on('message', (m) => got.push(m.toString()));
  a.send(Buffer.from('hello b'));
  await until(() => got.length === 1);
  t.same(got, ['hello b']);

  await first.relay.close();
  const second = await startRelay(t, { port }); // same port: a restarted relay
  t.equal(second.relay.table.size, 0, 'the new relay knows nothing');
  timers.advance(15_000); // keepalives recreate the session
  await until(() => sessionOf(second.relay.table, session)?.paired === true);
  a.send(Buffer.from('after restart'));
  await until(() => got.length === 2);
  t.equal(got[1], 'after restart');
});

t.test('SPEC 1.5: queryAddress() asks from the registered socket; no answer (an older relay) is undefined, never data', async (t) => {
  const { address } = await startRelay(t);
  const c = new RelayClient({ transport: 'udp', relay: { host: '127.0.0.1', port: address.port }, sessionId: session });
  t.teardown(() => c.close());
  await c.register();
  t.same(await c.queryAddress(), { address: '127.0.0.1', port: c.address().port }, 'the registered socket, as the relay sees it');

  const fake = await fakeRelay(t); // answers REG with ACK, ignores ADDR? like the Rust original
  const timers = new FakeTimers();
  const old = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session }, timers);
  t.teardown(() => old.close());
  await old.register();
  const asked = old.queryAddress(1000);
  await until(() => fake.got.some((g) => g.data.startsWith('ADDR?')));
  t.equal(fake.got.find((g) => g.data.startsWith('ADDR?'))!.data.length, 64, 'a padded query');
  const data: string[] = [];
  old.on('message', (m) => data.push(m.toString()));
  // the original forwards our peer's query to us as data: swallowed, and not an answer
  fake.sendTo(old.address().port, 'ADDR?'.padEnd(64, ' '));
  fake.sendTo(old.address().port, 'after the query');
  await until(() => data.length === 1);
  t.same(data, ['after the query'], 'a query arriving as data never reaches the program');
  t.equal(old.stats.swallowed, 1);
  timers.advance(1000);
  t.equal(await asked, undefined, 'no answer within the timeout');
});

t.test('SPEC 1.6: the client drops datagrams from source port 0, and no send of its throws', { skip: forgeUnavailable() }, async (t) => {
  const fake = await fakeRelay(t);
  fake.answer('ACK\n');
  const c = new RelayClient({ transport: 'udp', relay: fake.relay, sessionId: session, bindAddress: '127.0.0.1' }, new FakeTimers());
  t.teardown(() => c.close());
  await c.register();
  const port = c.address().port;
  forge({ from: ['127.0.0.1', 0], to: ['127.0.0.1', port], data: 'from port zero' }, { from: ['127.0.0.1', 0], to: ['127.0.0.1', port], data: 'ACK\n' });
  await until(() => c.stats.droppedPortZero === 2);
  t.equal(c.stats.unrelayed + c.stats.received, 0, 'neither data nor a stray');
  t.doesNotThrow(() => c.sendTo(Buffer.from('x'), 0, '127.0.0.1'), 'a send to port 0 does not throw');
  t.equal(c.stats.sendErrors, 1, 'it is a counted send error');
});

t.test('SPEC 5.7: a relay that does not ACK within failoverMs, or says ERR:BUSY, hands over to the next', async (t) => {
  const dead = await fakeRelay(t);
  dead.answer(undefined);
  const busy = await fakeRelay(t);
  busy.answer('ERR:BUSY\n');
  const good = await fakeRelay(t);
  const timers = new FakeTimers();
  const c = new RelayClient(
    { transport: 'udp', relay: dead.relay, relays: [dead.relay, busy.relay, good.relay], sessionId: session, failoverMs: 3000 },
    timers,
  );
  t.teardown(() => c.close());
  const moves: string[] = [];
  c.on('relay', (r, why) => moves.push(`${r.port === busy.relay.port ? 'busy' : r.port === good.relay.port ? 'good' : 'dead'}: ${why}`));
  const done = c.register();
  await until(() => dead.regs() === 1);
  timers.advance(2999);
  t.equal(busy.regs(), 0, 'the first relay has its 3 s');
  timers.advance(1);
  await until(() => busy.regs() === 1);
  await until(() => good.regs() === 1); // ERR:BUSY: at once
  await done;
  t.equal(c.relay.port, good.relay.port, 'registered on the third');
  t.same(
    moves.map((m) => m.split(':')[0]),
    ['busy', 'good'],
  );
  t.match(moves[1], /ERR:BUSY/);
});

t.test('SPEC 5.7: with the partner silent, the next relay too; the one the partner speaks through becomes home', async (t) => {
  const first = await fakeRelay(t);
  const second = await fakeRelay(t);
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: first.relay, relays: [first.relay, second.relay], sessionId: session, partnerWaitMs: 3000 }, timers);
  t.teardown(() => c.close());
  const got: string[] = [];
  c.on('message', (m) => got.push(m.toString()));
  await c.register();
  timers.advance(2999);
  t.equal(second.regs(), 0, 'the partner has partnerWaitMs');
  timers.advance(1);
  await until(() => second.regs() === 1);
  // The partner could reach only the second relay: its data comes through it.
  second.sendTo(c.address().port, 'hello from the partner');
  await until(() => got.length === 1);
  t.equal(c.relay.port, second.relay.port, 'the second relay is home now');
  c.send(Buffer.from('reply'));
  await until(() => second.got.some((g) => g.data === 'reply'));
  t.notOk(
    first.got.some((g) => g.data === 'reply'),
    'data goes where the partner is',
  );
  const before = first.regs();
  timers.advance(12_000); // the keepalive, 15 s after the first ACK
  await until(() => second.regs() === 2 && c.stats.acks === 2);
  t.equal(first.regs(), before, 'the first relay is let go: no more keepalives');
  second.sendTo(c.address().port, 'flowing');
  await until(() => got.length === 2);
  first.sendTo(c.address().port, 'late, through the old relay');
  await until(() => got.length === 3);
  t.equal(c.relay.port, second.relay.port, 'and the session does not flap back while it flows');
});

/** A client on two fake relays, registered on the first, whose partner has spoken through it. */
async function registeredWithPartner(t: Tap) {
  const first = await fakeRelay(t);
  const second = await fakeRelay(t);
  const timers = new FakeTimers();
  const c = new RelayClient({ transport: 'udp', relay: first.relay, relays: [first.relay, second.relay], sessionId: session }, timers);
  t.teardown(() => c.close());
  const heard = new Promise((resolve) => c.once('message', resolve));
  await c.register();
  first.sendTo(c.address().port, 'partner');
  await heard;
  return { first, second, timers, c };
}

t.test('SPEC 5.7: all relays healthy and the partner there: no needless moves', async (t) => {
  const { second, timers, c } = await registeredWithPartner(t);
  const moves: unknown[] = [];
  c.on('relay', (r) => moves.push(r));
  for (let k = 1; k <= 4; k++) {
    timers.advance(15_000); // a keepalive, answered before the next
    await until(() => c.stats.acks === k + 1);
  }
  t.equal(second.regs(), 0, 'the second relay never hears of this session');
  t.same(moves, []);
});

t.test('SPEC 5.7: the relay carrying the session stops answering: the next one, 1 s after the unanswered keepalive', async (t) => {
  const { first, second, timers, c } = await registeredWithPartner(t);
  first.answer(undefined); // the relay dies
  c.refresh(); // what PeerLink does when the partner goes quiet through it: a keepalive now
  await until(() => first.regs() === 2);
  timers.advance(999);
  t.equal(second.regs(), 0);
  timers.advance(1);
  await until(() => second.regs() === 1 && c.registered);
  t.equal(c.relay.port, second.relay.port, 'registered on the next relay');
});
