// SPEC 6.1-6.3: the relay's WebSocket leg, with real TCP and TLS on loopback.
// Deadlines and pings run on an injected clock (sweepStreams(now)).
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t from 'tap';
import { createRegistry } from '../../src/server/metrics-http';
import { MAX_DATAGRAM, STREAM_HANDSHAKE_TIMEOUT_MS } from '../../src/wire/constants';
import { makeTicket } from '../../src/wire/tickets';
import { ipKeyOf } from '../../src/wire/address';
import { STREAM_PORT_BASE } from '../../src/server/session-table';
import { bindPeer, register, startRelay, until } from '../fixtures/udp';
import { TEST_CA_2, TLS_DIR, connectWs, registerWs } from '../fixtures/ws';

const wsPortOf = (relay: { wsAddressInfo(): { port: number } | undefined }): number => relay.wsAddressInfo()!.port;

t.test('SPEC 6.1: off by default; --ws-port serves /quic-relay, REG gets ACK', async (t) => {
  const plain = await startRelay(t);
  t.equal(plain.relay.wsAddressInfo(), undefined, 'no WebSocket leg unless asked for');
  const { relay } = await startRelay(t, { wsPort: 0 });
  const p = await connectWs(t, wsPortOf(relay));
  t.equal(await registerWs(p, 'ws-basic'), 'ACK\n');
  t.equal(relay.table.size, 1);
});

t.test('SPEC 6.1: any other path or request is an HTTP error, and the relay carries on', async (t) => {
  const { relay } = await startRelay(t, { wsPort: 0 });
  const port = wsPortOf(relay);
  await t.rejects(connectWs(t, port, { path: '/relay' }), /HTTP 404/, 'upgrade at another path: 404');
  const get = (path: string): Promise<number> =>
    new Promise((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port, path }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        })
        .on('error', reject),
    );
  t.equal(await get('/quic-relay'), 426, 'a plain GET of the path: 426 Upgrade Required');
  t.equal(await get('/'), 404);
  // Garbage instead of HTTP: the connection is closed, nothing else happens.
  const raw = net.connect(port, '127.0.0.1');
  t.teardown(() => raw.destroy());
  raw.on('error', () => undefined);
  raw.write('\x16\x03\x01 not http at all\r\n\r\n');
  await new Promise((resolve) => raw.on('close', resolve));
  const p = await connectWs(t, port);
  t.equal(await registerWs(p, 'after-errors'), 'ACK\n', 'still serving');
});

t.test('SPEC 6.1: wss with --tls-cert/--tls-key; reloadTls() (SIGHUP) swaps the certificate without dropping a connection', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qr-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  copyFileSync(join(TLS_DIR, 'cert.pem'), cert);
  copyFileSync(join(TLS_DIR, 'key.pem'), key);
  const { relay, address } = await startRelay(t, { wsPort: 0, tlsCert: cert, tlsKey: key });
  const port = wsPortOf(relay);
  const a = await connectWs(t, port, { tls: true });
  t.equal(await registerWs(a, 'tls-reload'), 'ACK\n');
  const u = await bindPeer(t, address);
  t.equal(await register(u, 'tls-reload'), 'ACK\n');

  copyFileSync(join(TLS_DIR, 'cert2.pem'), cert);
  copyFileSync(join(TLS_DIR, 'key2.pem'), key);
  t.equal(relay.reloadTls(), true);
  const subject = await new Promise<string>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: TEST_CA_2, servername: 'localhost' }, () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.destroy();
    });
    s.on('error', reject);
  });
  t.equal(subject, 'quic-relay test 2', 'new connections get the new certificate');
  u.send('through the old connection');
  t.equal((await a.next()).toString(), 'through the old connection', 'the connection made before the reload still carries data');

  copyFileSync(join(TLS_DIR, 'README.md'), key); // not a key
  t.throws(() => relay.reloadTls(), /--tls-cert\/--tls-key/, 'a bad pair is refused...');
  const b = await connectWs(t, port, { tls: true, ca: TEST_CA_2 });
  t.equal(await registerWs(b, 'tls-after-bad'), 'ACK\n', '...and the last good one stays');
});

t.test('SPEC 6.1: unreadable or mismatched TLS files stop the start with a message naming the flag', async (t) => {
  await t.rejects(startRelay(t, { wsPort: 0, tlsCert: '/nonexistent/cert.pem', tlsKey: join(TLS_DIR, 'key.pem') }), /--tls-cert: cannot read/);
  await t.rejects(startRelay(t, { wsPort: 0, tlsCert: join(TLS_DIR, 'cert.pem'), tlsKey: join(TLS_DIR, 'key2.pem') }), /--tls-cert\/--tls-key/);
  await t.rejects(startRelay(t, { wsPort: 0, tlsCert: join(TLS_DIR, 'cert.pem') }), /--tls-key/);
});

t.test('SPEC 6.2: a UDP peer and a WebSocket peer in one session: datagrams cross unchanged', async (t) => {
  const { relay, address } = await startRelay(t, { wsPort: 0 });
  const w = await connectWs(t, wsPortOf(relay));
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await registerWs(w, 'mixed'), 'ACK\n');
  t.equal(await register(u, 'mixed'), 'ACK\n');
  for (const size of [0, 1, 1200, 1472, 9000, MAX_DATAGRAM]) {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7 + size) & 255;
    u.send(data);
    t.same(await w.next(), data, `${size} bytes UDP -> WebSocket`);
    w.send(data);
    t.same(await u.next(), data, `${size} bytes WebSocket -> UDP`);
  }
  // A registered peer's datagram that begins like a registration is data (SPEC 1.4).
  w.send('REG:not a registration');
  t.equal((await u.next()).toString(), 'REG:not a registration');
});

t.test('SPEC 6.2: two WebSocket peers; ADDR? answers the TCP source', async (t) => {
  const { relay } = await startRelay(t, { wsPort: 0 });
  const a = await connectWs(t, wsPortOf(relay));
  const b = await connectWs(t, wsPortOf(relay));
  t.equal(await registerWs(a, 'ws-ws'), 'ACK\n');
  t.equal(await registerWs(b, 'ws-ws'), 'ACK\n');
  a.send('a to b');
  t.equal((await b.next()).toString(), 'a to b');
  b.send('b to a');
  t.equal((await a.next()).toString(), 'b to a');
  a.send(Buffer.from('ADDR?'.padEnd(64, ' ')));
  const answer = (await a.next()).toString();
  const local = (a.ws as unknown as { _socket: net.Socket })._socket.localPort;
  t.equal(answer, `ADDR 127.0.0.1:${local}\n`);
});

t.test('SPEC 6.2: a REG on a new connection from the same IP is an explicit rebind', async (t) => {
  const { relay, address } = await startRelay(t, { wsPort: 0 });
  const old = await connectWs(t, wsPortOf(relay));
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await registerWs(old, 'rebind-ws'), 'ACK\n');
  t.equal(await register(u, 'rebind-ws'), 'ACK\n');
  const fresh = await connectWs(t, wsPortOf(relay));
  t.equal(await registerWs(fresh, 'rebind-ws'), 'ACK\n', 'not ERR:FULL');
  t.equal(relay.counters.rebindsExplicit, 1);
  u.send('to the new connection');
  t.equal((await fresh.next()).toString(), 'to the new connection');
  // The old connection is in no session any more: what it sends is dropped.
  old.send('stale');
  fresh.send('marker');
  t.equal((await u.next()).toString(), 'marker', 'nothing from the old connection reaches the partner');
});

t.test('SPEC 6.2: a closed connection leaves its session at once', async (t) => {
  const { relay, address } = await startRelay(t, { wsPort: 0 });
  const w = await connectWs(t, wsPortOf(relay));
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await registerWs(w, 'leave'), 'ACK\n');
  t.equal(await register(u, 'leave'), 'ACK\n');
  t.equal(relay.table.pairedCount, 1);
  w.close();
  await until(() => relay.table.pairedCount === 0);
  const third = await bindPeer(t, address, '127.0.0.3');
  t.equal(await register(third, 'leave'), 'ACK\n', 'the slot is free for someone else at once');
  w.ws.terminate();
  const solo = await connectWs(t, wsPortOf(relay));
  t.equal(await registerWs(solo, 'alone'), 'ACK\n');
  solo.close();
  await until(() => relay.table.size === 1);
  t.equal(relay.table.size, 1, "a session whose only peer closed is gone; 'leave' stays");
});

t.test("SPEC 6.2 with 2.4: a UDP datagram from a WebSocket peer's IP never takes its slot", async (t) => {
  const { relay, address } = await startRelay(t, { wsPort: 0 });
  const w = await connectWs(t, wsPortOf(relay), { host: '127.0.0.1' });
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await registerWs(w, 'no-implicit'), 'ACK\n');
  t.equal(await register(u, 'no-implicit'), 'ACK\n');
  const stranger = await bindPeer(t, address, '127.0.0.1');
  stranger.send('take over');
  u.send('still yours');
  t.equal((await w.next()).toString(), 'still yours');
  t.equal(relay.counters.droppedUnknownSource, 1);
  t.equal(relay.counters.rebindsImplicit, 0);
});

t.test('SPEC 6.2: tickets, drain and the limits apply to WebSocket peers unchanged', async (t) => {
  const secret = 'a-secret-of-at-least-16-bytes';
  const { relay } = await startRelay(t, { wsPort: 0, authSecrets: [secret], maxSessionsPerIp: 1 });
  const p = await connectWs(t, wsPortOf(relay));
  t.equal(await registerWs(p, 'no-ticket'), 'ERR:AUTH\n');
  const ticket = makeTicket(secret);
  t.equal(await registerWs(p, ticket), 'ACK\n');
  const q = await connectWs(t, wsPortOf(relay));
  const other = makeTicket(secret);
  t.equal(await registerWs(q, other), 'ERR:BUSY\n', '--max-sessions-per-ip counts WebSocket peers');
  void relay.drain();
  const r = await connectWs(t, wsPortOf(relay), { localAddress: '127.0.0.2' });
  t.equal(await registerWs(r, makeTicket(secret)), 'ERR:BUSY\n', 'draining: no new session');
});

t.test('SPEC 6.3: connections count against the per-IP and global limits', async (t) => {
  const { relay } = await startRelay(t, { wsPort: 0, maxSessionsPerIp: 1 });
  const port = wsPortOf(relay);
  await connectWs(t, port);
  await connectWs(t, port); // a session may hold two peers from one IP
  await t.rejects(connectWs(t, port), /closed|socket hang up|ECONNRESET/, 'a third from the same IP is refused');
  t.equal(relay.streams!.closedBy.limit_ip, 1);
  await connectWs(t, port, { localAddress: '127.0.0.2' });

  const small = await startRelay(t, { wsPort: 0, wsMaxConnections: 1 });
  await connectWs(t, wsPortOf(small.relay));
  await t.rejects(connectWs(t, wsPortOf(small.relay), { localAddress: '127.0.0.3' }), /closed|socket hang up|ECONNRESET/);
  t.equal(small.relay.streams!.closedBy.limit_total, 1);
});

t.test('SPEC 6.3: no upgrade, or no REG, within 10 s: closed', async (t) => {
  let now = 1_000_000;
  const { relay } = await startRelay(t, { wsPort: 0 }, { clock: () => now, streamSweepMs: 0 });
  const port = wsPortOf(relay);
  const silent = net.connect(port, '127.0.0.1');
  silent.on('error', () => undefined);
  t.teardown(() => silent.destroy());
  await until(() => relay.streams!.tcpConnections === 1);
  const upgraded = await connectWs(t, port);
  const registered = await connectWs(t, port);
  t.equal(await registerWs(registered, 'in-time'), 'ACK\n');
  now += STREAM_HANDSHAKE_TIMEOUT_MS - 1;
  relay.sweepStreams();
  t.equal(relay.streams!.tcpConnections, 3, 'nothing closed before the deadline');
  now += 1;
  relay.sweepStreams();
  await new Promise((resolve) => silent.on('close', resolve));
  t.equal(await upgraded.closed, 1008, 'upgraded but never registered: closed (policy)');
  t.equal(relay.streams!.closedBy.timeout, 2);
  registered.send('REG:in-time\n');
  t.equal((await registered.next()).toString(), 'ACK\n', 'the one that registered stays');
});

t.test('SPEC 6.3: a text message or one over 65507 bytes closes the connection', async (t) => {
  const { relay } = await startRelay(t, { wsPort: 0 });
  const a = await connectWs(t, wsPortOf(relay));
  a.ws.send('REG:text\n'); // text, not binary
  a.send('REG:after-the-close\n'); // read by ws with the text, handed over after the relay closed
  t.equal(await a.closed, 1003);
  t.equal(relay.table.size, 0, 'what a closed connection had in flight registers nothing');
  const b = await connectWs(t, wsPortOf(relay));
  t.equal(await registerWs(b, 'big'), 'ACK\n');
  b.send(Buffer.alloc(MAX_DATAGRAM + 1));
  t.equal(await b.closed, 1009);
  t.equal(relay.streams!.closedBy.text_message, 1);
  t.equal(relay.streams!.closedBy.too_big, 1);
  await until(() => relay.table.size === 0);
});

t.test('SPEC 6.3: pings keep a live connection and close a dead one', async (t) => {
  let now = 5_000_000;
  const { relay, address } = await startRelay(t, { wsPort: 0, wsPingSecs: 15 }, { clock: () => now, streamSweepMs: 0 });
  const live = await connectWs(t, wsPortOf(relay));
  const dead = await connectWs(t, wsPortOf(relay));
  t.equal(await registerWs(live, 'pings'), 'ACK\n');
  t.equal(await registerWs(dead, 'pings'), 'ACK\n');
  const pinged = new Promise((resolve) => live.ws.once('ping', resolve));
  (dead.ws as unknown as { _socket: net.Socket })._socket.pause(); // reads nothing: never answers
  now += 15_000;
  relay.sweepStreams();
  await pinged;
  // The pong left before this REG (one TCP stream): its ACK means the relay has both.
  t.equal(await registerWs(live, 'pings'), 'ACK\n');
  now += 15_000;
  relay.sweepStreams();
  t.equal(relay.streams!.closedBy.dead, 1, 'the one that did not answer is closed');
  t.equal(relay.streams!.connections, 1);
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await register(u, 'pings'), 'ACK\n', 'its slot was freed');
  u.send('alive?');
  t.equal((await live.next()).toString(), 'alive?');
});

t.test('SPEC 6.3: a peer that does not read has a bounded queue; the rest is dropped as backpressure', async (t) => {
  const { relay, address } = await startRelay(t, { wsPort: 0, wsQueueBytes: MAX_DATAGRAM });
  const w = await connectWs(t, wsPortOf(relay));
  const u = await bindPeer(t, address, '127.0.0.2');
  t.equal(await registerWs(w, 'slow'), 'ACK\n');
  t.equal(await register(u, 'slow'), 'ACK\n');
  (w.ws as unknown as { _socket: net.Socket })._socket.pause();
  const chunk = Buffer.alloc(60_000, 1);
  // Loopback TCP buffers take some megabytes before the queue fills.
  for (let round = 0; round < 200 && relay.counters.droppedBackpressure === 0; round++) {
    for (let i = 0; i < 50; i++) u.send(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await until(() => relay.counters.droppedBackpressure > 0, 5000);
  t.ok(relay.counters.droppedBackpressure > 0, 'dropped, counted as backpressure');
  t.ok(relay.counters.droppedBackpressureBytes >= 60_000);
  const text = await createRegistry(relay).metrics();
  t.match(text, /quic_relay_dropped_datagrams_total\{reason="backpressure"\} [1-9]/);
  t.match(text, /quic_relay_ws_connections 1/);
  t.match(text, /quic_relay_received_datagrams_by_transport_total\{transport="ws"\} 1\b/, 'its REG');
  t.match(text, /quic_relay_ws_connections_accepted_total 1/);
});

t.test("behind a reverse proxy: a trusted proxy's connection is the peer X-Forwarded-For names last", async (t) => {
  const { relay } = await startRelay(t, { wsPort: 0, wsTrustedProxies: ['127.0.0.1'], maxSessionsPerIp: 1 });
  const port = wsPortOf(relay);
  const a = await connectWs(t, port, { headers: { 'x-forwarded-for': '192.0.2.99, 198.51.100.7' } });
  t.equal(await registerWs(a, 'proxied'), 'ACK\n');
  const peer = relay.streams!.peer(STREAM_PORT_BASE)!;
  t.equal(peer.address, '198.51.100.7', 'the last hop, not the proxy');
  t.equal(relay.table.find(ipKeyOf('198.51.100.7'), '198.51.100.7', peer.port)?.id, 'proxied', 'registered under that IP');
  // Per-IP limits count the forwarded IP: two per IP here (a session may hold two peers from one IP).
  await connectWs(t, port, { headers: { 'x-forwarded-for': '198.51.100.7' } });
  await t.rejects(connectWs(t, port, { headers: { 'x-forwarded-for': '198.51.100.7' } }), /HTTP 503/);
  await connectWs(t, port, { headers: { 'x-forwarded-for': '198.51.100.8' } });
  await t.rejects(connectWs(t, port), /HTTP 400/, 'a trusted proxy that names nobody: 400');

  const plain = await startRelay(t, { wsPort: 0 });
  const b = await connectWs(t, wsPortOf(plain.relay), { headers: { 'x-forwarded-for': '198.51.100.7' } });
  t.equal(await registerWs(b, 'not-proxied'), 'ACK\n');
  t.equal(plain.relay.streams!.peer(STREAM_PORT_BASE)!.address, '127.0.0.1', 'from anyone else the header means nothing');
});
