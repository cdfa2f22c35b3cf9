// An unmodified UDP "QUIC" pair (a client that sends, a server that echoes)
// talking through two sidecars and the relay.
import t from 'tap';
import type { Test } from 'tap';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Sidecar } from '../../src/client/sidecar';
import { realTimers } from '../../src/client/timers';
import { controlKey, encodeControl } from '../../src/client/control';
import { ADDRESS_QUERY_DATAGRAM } from '../../src/wire/protocol';
import { startRelay, until } from '../fixtures/udp';
import { sessionOf } from '../fixtures/table-check';

t.test('listen and forward sidecars carry an app through the relay', async (t) => {
  const { relay, address } = await startRelay(t);
  // the "QUIC server": echoes everything
  const server = dgram.createSocket('udp4');
  server.on('message', (m, r) => server.send(m, r.port, r.address));
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const serverPort = (server.address() as AddressInfo).port;

  const relayAt = { host: '127.0.0.1', port: address.port };
  const id = 'sidecar-test-1';
  const listening = new Sidecar({ relay: relayAt, sessionId: id, mode: 'forward', local: { host: '127.0.0.1', port: serverPort }, localAddresses: [] });
  t.teardown(() => listening.close());
  await listening.start();
  const dialling = new Sidecar({ relay: relayAt, sessionId: id, mode: 'listen', local: { host: '127.0.0.1', port: 0 }, localAddresses: [] });
  t.teardown(() => dialling.close());
  await dialling.start();
  t.ok(sessionOf(relay.table, id)?.paired, 'both sidecars registered');

  // the "QUIC client": knows only its local sidecar
  const client = dgram.createSocket('udp4');
  const replies: Buffer[] = [];
  client.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => client.close());
  const payloads = Array.from({ length: 50 }, (_, i) => randomBytes(1 + ((i * 97) % 1400)));
  for (const p of payloads) client.send(p, dialling.localAddress().port, '127.0.0.1');
  await until(() => replies.length === payloads.length, 5000);
  const key = (b: Buffer) => b.toString('hex');
  t.same(new Set(replies.map(key)), new Set(payloads.map(key)), 'every datagram came back, byte for byte');
  t.equal(dialling.stats.toPeer, 50);
  t.equal(listening.stats.fromPeer, 50);
  const bytes = payloads.reduce((n, p) => n + p.length, 0);
  t.equal(dialling.stats.toPeerBytes, bytes, 'bytes counted too');
  t.match(dialling.summary(), /^50 datagrams \([\d.]+ MB\) to the peer, 50 \([\d.]+ MB\) from it; .* 0 relay changes/, 'the summary line');
});

/** A relay, a forwarding sidecar with an echo server behind it, and a listening sidecar with a clock the test can move. */
async function pair(t: Test, id: string) {
  const { address } = await startRelay(t);
  const server = await udp(t, '127.0.0.1');
  server.socket.on('message', (m, r) => server.socket.send(m, r.port, r.address));
  const relayAt = { host: '127.0.0.1', port: address.port };
  const listening = new Sidecar({ relay: relayAt, sessionId: id, mode: 'forward', local: { host: '127.0.0.1', port: server.port }, localAddresses: [] });
  t.teardown(() => listening.close());
  await listening.start();
  let skew = 0;
  const timers = { ...realTimers, now: () => realTimers.now() + skew };
  const dialling = new Sidecar(
    { relay: relayAt, sessionId: id, mode: 'listen', local: { host: '127.0.0.1', port: 0 }, localAddresses: [], appIdleMs: 5000 },
    timers,
  );
  t.teardown(() => dialling.close());
  await dialling.start();
  return { server, listening, dialling, advance: (ms: number) => (skew += ms) };
}

async function udp(t: { teardown(fn: () => unknown): void }, host: string) {
  const socket = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  await new Promise<void>((r) => socket.bind(0, host, () => r()));
  t.teardown(() => socket.close());
  return { socket, got, port: (socket.address() as AddressInfo).port };
}

t.test('SPEC 5.6: listen mode serves the first QUIC client until it has been silent a while', async (t) => {
  const { dialling, advance } = await pair(t, 'local-first');
  const to = dialling.localAddress().port;
  const first = await udp(t, '127.0.0.1');
  const second = await udp(t, '127.0.0.1');
  first.socket.send('one', to, '127.0.0.1');
  await until(() => first.got.length === 1);
  second.socket.send('two', to, '127.0.0.1'); // another local program
  await until(() => dialling.stats.droppedForeign === 1);
  first.socket.send('three', to, '127.0.0.1');
  await until(() => first.got.length === 2);
  t.same(first.got.map(String), ['one', 'three'], "the peer's traffic goes to the first client only");
  t.equal(second.got.length, 0, 'the second got nothing');
  advance(5000); // the first client has gone quiet (it restarted)
  second.socket.send('four', to, '127.0.0.1');
  await until(() => second.got.length === 1);
  t.equal(second.got[0]!.toString(), 'four', 'then the new one is served');
});

t.test('SPEC 5.6: forward mode takes datagrams from the forwarded server only', async (t) => {
  const { listening, server } = await pair(t, 'local-forward');
  const stranger = await udp(t, '127.0.0.1');
  const port = (listening as unknown as { local: dgram.Socket }).local.address().port;
  stranger.socket.send('not the server', port, '127.0.0.1');
  await until(() => listening.stats.droppedForeign === 1);
  t.equal(listening.stats.toPeer, 0, 'nothing went to the peer');
  void server;
});

t.test('SPEC 5.6: nothing from the local side is taken as relay protocol', async (t) => {
  const { dialling, listening } = await pair(t, 'local-protocol');
  const to = dialling.localAddress().port;
  const app = await udp(t, '127.0.0.1');
  const regsBefore = dialling.client.stats.regsSent;
  app.socket.send('REG:another-session\n', to, '127.0.0.1'); // would move the registration
  app.socket.send(ADDRESS_QUERY_DATAGRAM, to, '127.0.0.1'); // would be answered by the relay
  app.socket.send(
    encodeControl(controlKey('local-protocol'), { type: 'probe', sender: '00'.repeat(8), nonce: '11'.repeat(12), confirmed: false }),
    to,
    '127.0.0.1',
  );
  app.socket.send('REG:not valid!', to, '127.0.0.1'); // not a registration: data like any other
  await until(() => dialling.stats.droppedProtocol === 3 && app.got.length === 1);
  t.equal(app.got[0]!.toString(), 'REG:not valid!', 'the data came back through the echo server');
  t.equal(listening.stats.fromPeer, 1, 'only that one reached the far side');
  t.equal(dialling.client.stats.regsSent, regsBefore, 'the registration was not touched');
});
