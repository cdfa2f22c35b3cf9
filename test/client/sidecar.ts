// An unmodified UDP "QUIC" pair (a client that sends, a server that echoes)
// talking through two sidecars and the relay.
import t from 'tap';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Sidecar } from '../../src/client/sidecar';
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
});
