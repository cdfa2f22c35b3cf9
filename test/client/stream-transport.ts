// SPEC 6.4: the client on the WebSocket leg: forced, or as the fallback when
// UDP gets no answer; through an HTTP CONNECT proxy; back after a reset.
// Registration timing runs on a fake clock; the connections are real (loopback).
import dgram from 'node:dgram';
import * as http from 'node:http';
import * as net from 'node:net';
import t from 'tap';
import { PeerLink } from '../../src/client/peer-link';
import { RelayClient } from '../../src/client/relay-client';
import type { RelayClientOptions } from '../../src/client/relay-client';
import { proxyFromEnvironment, streamEnvironment } from '../../src/client/stream-environment';
import { FakeTimers } from '../fixtures/fake-timers';
import { bindPeer, register, startRelay, until } from '../fixtures/udp';
import { TEST_CA } from '../fixtures/ws';
import { TLS_DIR } from '../fixtures/ws';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const session = 'stream-client';

/** A UDP port that takes everything and answers nothing: a firewall that drops UDP. */
async function blackHole(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => s.close());
  return s.address().port;
}

async function wsRelay(t: Parameters<typeof startRelay>[0], tls = false) {
  const r = await startRelay(t, { wsPort: 0, ...(tls ? { tlsCert: join(TLS_DIR, 'cert.pem'), tlsKey: join(TLS_DIR, 'key.pem') } : {}) });
  return { ...r, wsPort: r.relay.wsAddressInfo()!.port };
}

function client(
  t: { teardown(fn: () => unknown): void },
  o: Partial<RelayClientOptions> & Pick<RelayClientOptions, 'relay'>,
  timers?: FakeTimers,
): RelayClient {
  const c = new RelayClient({ sessionId: session, ...o }, timers);
  t.teardown(() => c.close());
  return c;
}

t.test("SPEC 6.4: --transport ws: registers over the WebSocket leg, and a UDP peer's datagrams cross both ways", async (t) => {
  const { relay, address, wsPort } = await wsRelay(t);
  const c = client(t, { relay: { host: '127.0.0.1', port: address.port }, transport: 'ws', stream: { port: wsPort, tls: false } });
  await c.register();
  t.equal(c.transport, 'ws');
  t.equal(relay.streams!.connections, 1, 'the relay holds it as a WebSocket peer');
  t.ok(c.stats.sendErrors >= 1, 'the REG sent while the WebSocket connected was dropped, and counted (the REG on open registered)');
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await register(u, session), 'ACK\n');
  const got = new Promise<Buffer>((resolve) => c.once('message', resolve));
  u.send(Buffer.from([0, 1, 2, 255]));
  t.same(await got, Buffer.from([0, 1, 2, 255]));
  c.send(Buffer.from('to udp'));
  t.equal((await u.next()).toString(), 'to udp');
});

t.test("SPEC 6.4: wss with the relay's certificate trusted (ca; NODE_EXTRA_CA_CERTS does the same process-wide)", async (t) => {
  const { address, wsPort } = await wsRelay(t, true);
  const c = client(t, { relay: { host: '127.0.0.1', port: address.port }, transport: 'ws', stream: { port: wsPort, ca: TEST_CA } });
  await c.register();
  t.equal(c.transport, 'ws');
  const untrusted = client(t, { relay: { host: '127.0.0.1', port: address.port }, transport: 'ws', stream: { port: wsPort }, registerTimeoutMs: 300 });
  await t.rejects(untrusted.register(), { code: 'QR_ERR_TIMEOUT' }, 'an unknown certificate is never accepted');
});

t.test('SPEC 6.4: auto: UDP without an answer for 2 s, then the WebSocket leg', async (t) => {
  const { relay, wsPort } = await wsRelay(t);
  const dead = await blackHole(t);
  const timers = new FakeTimers();
  const c = client(t, { relay: { host: '127.0.0.1', port: dead }, stream: { port: wsPort, tls: false } }, timers);
  const switched: string[] = [];
  c.on('transport', (tr, why) => switched.push(`${tr}: ${why}`));
  const done = c.register();
  await until(() => c.stats.regsSent === 1);
  timers.advance(1999);
  t.equal(c.stats.streamConnects, 0, 'UDP alone for 2 s');
  t.equal(c.transport, 'udp');
  timers.advance(1);
  t.equal(c.stats.streamConnects, 1, 'then a WebSocket, at 2 s exactly');
  t.same(switched, [`ws: no UDP answer from 127.0.0.1:${dead} in 2000 ms`]);
  await done;
  t.equal(c.transport, 'ws');
  t.equal(relay.table.size, 1);
});

t.test('SPEC 6.4: auto with UDP answering never opens a WebSocket; udp forbids the fallback', async (t) => {
  const { address, wsPort } = await wsRelay(t);
  const timers = new FakeTimers();
  const c = client(t, { relay: { host: '127.0.0.1', port: address.port }, stream: { port: wsPort, tls: false } }, timers);
  await c.register();
  timers.advance(60_000);
  t.equal(c.transport, 'udp');
  t.equal(c.stats.streamConnects, 0);

  const dead = await blackHole(t);
  const timers2 = new FakeTimers();
  const u = client(t, { relay: { host: '127.0.0.1', port: dead }, transport: 'udp', stream: { port: wsPort, tls: false }, registerTimeoutMs: 10_000 }, timers2);
  const failed = u.register().catch((e: unknown) => e);
  await until(() => u.stats.regsSent === 1);
  for (let i = 0; i < 15; i++) timers2.advance(1000);
  t.match(await failed, { code: 'QR_ERR_TIMEOUT' });
  t.equal(u.stats.streamConnects, 0, '--transport udp: never a WebSocket');
});

t.test('SPEC 6.4 with 5.7: one dead relay in the list is not blocked UDP', async (t) => {
  const { address, wsPort } = await wsRelay(t);
  const dead = await blackHole(t);
  const timers = new FakeTimers();
  const c = client(
    t,
    {
      relay: { host: '127.0.0.1', port: dead },
      relays: [
        { host: '127.0.0.1', port: dead },
        { host: '127.0.0.1', port: address.port },
      ],
      stream: { port: wsPort, tls: false },
    },
    timers,
  );
  const done = c.register();
  await until(() => c.stats.swallowed === 1); // the live relay answered ADDR?: UDP works here
  timers.advance(3000);
  await done;
  t.equal(c.transport, 'udp', 'failed over to the live relay over UDP');
  t.equal(c.relay.port, address.port);
  t.equal(c.stats.streamConnects, 0);
});

t.test('SPEC 6.4: through an HTTP CONNECT proxy (HTTPS_PROXY), NO_PROXY bypasses it', async (t) => {
  // A certificate for the relay's IP alone: through the proxy it is still checked against that IP.
  const { relay, address } = await startRelay(t, { wsPort: 0, tlsCert: join(TLS_DIR, 'ip-only-cert.pem'), tlsKey: join(TLS_DIR, 'ip-only-key.pem') });
  const wsPort = relay.wsAddressInfo()!.port;
  const IP_ONLY_CA = readFileSync(join(TLS_DIR, 'ip-only-cert.pem'));
  const tunnels: string[] = [];
  const proxy = http.createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    tunnels.push(req.url!);
    const [host, port] = [req.url!.slice(0, req.url!.lastIndexOf(':')), Number(req.url!.slice(req.url!.lastIndexOf(':') + 1))];
    const up = net.connect(port, host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    proxy.closeAllConnections();
    proxy.close();
  });
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  const env = streamEnvironment({ HTTPS_PROXY: proxyUrl, QUIC_RELAY_WS_PORT: String(wsPort), QUIC_RELAY_TRANSPORT: 'ws' });
  t.equal(env.transport, 'ws');
  const c = client(t, { relay: { host: '127.0.0.1', port: address.port }, transport: env.transport, stream: { ...env.stream, ca: IP_ONLY_CA } });
  await c.register();
  t.same(tunnels, [`127.0.0.1:${wsPort}`], 'the WebSocket went through the proxy');
  const bypass = streamEnvironment({ HTTPS_PROXY: proxyUrl, NO_PROXY: '127.0.0.1', QUIC_RELAY_WS_PORT: String(wsPort) });
  const d = client(t, { relay: { host: '127.0.0.1', port: address.port }, sessionId: 'bypass', transport: 'ws', stream: { ...bypass.stream, ca: IP_ONLY_CA } });
  await d.register();
  t.equal(tunnels.length, 1, 'NO_PROXY: straight to the relay');
});

t.test('SPEC 6.4: proxy and transport variables', async (t) => {
  const p = proxyFromEnvironment({ HTTPS_PROXY: 'http://proxy:3128', http_proxy: 'proxy2:8080', NO_PROXY: '.internal, relay.example.com:443,[::1]' });
  t.equal(p('wss://1.2.3.4:443/quic-relay'), 'http://proxy:3128', 'wss: HTTPS_PROXY');
  t.equal(p('ws://1.2.3.4:80/quic-relay'), 'http://proxy2:8080', 'ws: http_proxy (lower case too), scheme added');
  t.equal(p('wss://a.b.internal/quic-relay'), undefined, '.suffix');
  t.equal(p('wss://relay.example.com/quic-relay'), undefined, 'host:port on its port');
  t.equal(p('wss://relay.example.com:8443/quic-relay'), 'http://proxy:3128', '...and not on another');
  t.equal(p('wss://[::1]:443/quic-relay'), undefined, 'IPv6 in brackets');
  t.equal(proxyFromEnvironment({ NO_PROXY: '*', HTTPS_PROXY: 'http://x:1' })('wss://r/quic-relay'), undefined);
  t.equal(proxyFromEnvironment({})('wss://r/quic-relay'), undefined, 'no variable: direct');
  t.throws(() => proxyFromEnvironment({ HTTPS_PROXY: 'socks5://x:1' }), /HTTPS_PROXY/);
  t.throws(() => streamEnvironment({ QUIC_RELAY_TRANSPORT: 'tcp' }), /QUIC_RELAY_TRANSPORT/);
  t.throws(() => streamEnvironment({ QUIC_RELAY_WS_PORT: '0' }), /QUIC_RELAY_WS_PORT/);
  t.throws(() => streamEnvironment({ QUIC_RELAY_WS_TLS: 'maybe' }), /QUIC_RELAY_WS_TLS/);
  t.same(streamEnvironment({ QUIC_RELAY_WS_TLS: 'false' }).stream.tls, false);
  t.same(streamEnvironment({}).stream.port, 443);
});

t.test('SPEC 6.4: a connection cut while registered (a TCP reset): the client reconnects and registers again', async (t) => {
  const { relay, address, wsPort } = await wsRelay(t);
  const c = client(t, { relay: { host: '127.0.0.1', port: address.port }, transport: 'ws', stream: { port: wsPort, tls: false } });
  await c.register();
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await register(u, session), 'ACK\n');
  const again = new Promise<void>((resolve) => c.once('registered', () => resolve()));
  // The relay's side of the connection is reset.
  for (const s of (relay.streams as unknown as { admission: { sockets: Map<net.Socket, number> } }).admission.sockets.keys()) s.resetAndDestroy();
  await again;
  t.equal(c.stats.streamConnects, 2, 'a new connection');
  t.equal(await register(u, session), 'ACK\n', 'the partner still holds its slot');
  const got = new Promise<Buffer>((resolve) => c.once('message', resolve));
  u.send('after the reset');
  t.equal((await got).toString(), 'after the reset');
});

t.test('SPEC 6.4: PeerLink on the WebSocket leg looks for no direct path', async (t) => {
  const { address, wsPort } = await wsRelay(t);
  const link = new PeerLink({
    relay: { host: '127.0.0.1', port: address.port },
    sessionId: 'peer-ws',
    transport: 'ws',
    stream: { port: wsPort, tls: false },
    localAddresses: [],
  });
  t.teardown(() => link.close());
  const path = new Promise<unknown>((resolve) => link.once('path', resolve));
  await link.start();
  t.same(await path, { kind: 'relay', reason: 'UDP gets no answer here: over WebSocket' });
  t.equal(link.client.stats.sentDirect, 0);
});

t.test('SPEC 6.4: after a fallback UDP is still asked; when it answers, the session goes back to UDP', async (t) => {
  const { wsPort } = await wsRelay(t);
  // A UDP relay that is down at first (silent), then up: it answers ADDR? and REG.
  const fake = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => fake.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => fake.close());
  let up = false;
  fake.on('message', (m, r) => {
    if (!up) return;
    const text = m.toString('latin1');
    if (text.startsWith('ADDR?')) fake.send(`ADDR ${r.address}:${r.port}\n`, r.port, r.address);
    else if (text.startsWith('REG:')) fake.send('ACK\n', r.port, r.address);
  });
  const timers = new FakeTimers();
  const c = client(t, { relay: { host: '127.0.0.1', port: fake.address().port }, stream: { port: wsPort, tls: false } }, timers);
  const moves: string[] = [];
  c.on('transport', (tr) => moves.push(tr));
  const done = c.register();
  await until(() => c.stats.regsSent === 1);
  timers.advance(2000);
  await done;
  t.equal(c.transport, 'ws', 'registered over the WebSocket leg while UDP was silent');
  up = true;
  const back = new Promise<void>((resolve) => c.once('transport', () => resolve()));
  timers.advance(15_000); // the keepalive asks UDP too
  await back;
  t.equal(c.transport, 'udp');
  await until(() => c.stats.acks >= 2);
  t.same(moves, ['ws', 'udp']);
  t.equal(c.registered, true, 'registered over UDP');
});
