// PeerLink on loopback (SPEC 5.3-5.5): real sockets on 127.x addresses only.
// Candidates are set to loopback addresses: tests never send to this
// machine's interface addresses.
import t from 'tap';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { PeerLink } from '../../src/client/peer-link';
import type { Path, PeerLinkOptions } from '../../src/client/peer-link';
import { controlKey, encodeControl, looksLikeControl } from '../../src/client/control';
import { startRelay, until } from '../fixtures/udp';

type Tap = { teardown(fn: () => unknown): void };

function link(t: Tap, options: PeerLinkOptions): PeerLink {
  const l = new PeerLink(options);
  t.teardown(() => l.close());
  return l;
}

function nextPath(l: PeerLink, kind: Path['kind']): Promise<Path> {
  return new Promise((resolve) => {
    const on = (p: Path): void => {
      if (p.kind !== kind) return;
      l.off('path', on);
      resolve(p);
    };
    l.on('path', on);
  });
}

/** A socket that records what reaches it and can play a relay: ACK to every REG, nothing else. */
async function spyRelay(t: Tap): Promise<{ socket: dgram.Socket; port: number; got: Buffer[]; from: Array<{ address: string; port: number }> }> {
  const socket = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  const from: Array<{ address: string; port: number }> = [];
  socket.on('message', (m, r) => {
    got.push(m);
    from.push({ address: r.address, port: r.port });
    if (m.subarray(0, 4).toString() === 'REG:') socket.send('ACK\n', r.port, r.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => socket.close());
  return { socket, port: (socket.address() as AddressInfo).port, got, from };
}

t.test('two peers on 127.x go direct, and then the relay carries none of their data', async (t) => {
  const { relay, address } = await startRelay(t);
  const relayAt = { host: '127.0.0.1', port: address.port };
  const id = 'direct-loopback';
  const a = link(t, { relay: relayAt, sessionId: id, bindAddress: '127.0.0.2' });
  const b = link(t, { relay: relayAt, sessionId: id, bindAddress: '127.0.0.3' });
  const peerHeard = new Promise<string>((resolve) => a.once('peer', resolve));
  const aDirect = nextPath(a, 'direct');
  const bDirect = nextPath(b, 'direct');
  await a.start();
  await b.start();
  t.equal(await peerHeard, 'relay', 'A hears B first through the relay');
  const [pa, pb] = await Promise.all([aDirect, bDirect]);
  t.match(pa, { kind: 'direct', address: '127.0.0.3', port: b.client.address().port }, 'A goes straight to B');
  t.match(pb, { kind: 'direct', address: '127.0.0.2', port: a.client.address().port }, 'B goes straight to A');

  const forwardedBefore = relay.counters.forwardedDatagrams;
  const got: string[] = [];
  b.on('message', (m) => got.push(m.toString()));
  for (let i = 0; i < 20; i++) a.send(Buffer.from(`d${i}`));
  await until(() => got.length === 20);
  t.same(
    got,
    Array.from({ length: 20 }, (_, i) => `d${i}`),
    'every datagram arrived, in order',
  );
  t.equal(b.stats.receivedDirect, 20, 'all of them straight from A');
  t.equal(relay.counters.forwardedDatagrams, forwardedBefore, 'the relay forwarded none of them');
  t.ok(a.client.registered && b.client.registered, 'both stay registered on the relay as the fallback');
});

t.test('relay-only sends nothing but relay traffic, and answers nothing else', async (t) => {
  const spy = await spyRelay(t);
  const id = 'relay-only-spy';
  const a = link(t, { relay: { host: '127.0.0.1', port: spy.port }, sessionId: id, relayOnly: true, bindAddress: '127.0.0.2' });
  const paths: Path[] = [];
  a.on('path', (p) => paths.push(p));
  const app: Buffer[] = [];
  a.on('message', (m) => app.push(m));
  await a.start();
  t.same(paths, [{ kind: 'relay', reason: 'relay-only' }], 'the path is reported once: relay-only');
  const aPort = a.client.address().port;
  // What a punching peer would send it: candidates through the relay, a probe straight to it.
  const key = controlKey(id);
  const sender = '1111111111111111';
  spy.socket.send(
    encodeControl(key, { type: 'candidates', sender, nonce: 'aa'.repeat(12), haveYours: false, candidates: [{ address: '127.0.0.3', port: 5000 }] }),
    aPort,
    '127.0.0.2',
  );
  const stranger = dgram.createSocket('udp4');
  const strangerGot: Buffer[] = [];
  stranger.on('message', (m) => strangerGot.push(m));
  await new Promise<void>((r) => stranger.bind(0, '127.0.0.3', () => r()));
  t.teardown(() => stranger.close());
  stranger.send(encodeControl(key, { type: 'probe', sender, nonce: 'bb'.repeat(12), confirmed: false }), aPort, '127.0.0.2');
  // Marker: data through the relay, which A hands to the app.
  spy.socket.send('marker', aPort, '127.0.0.2');
  await until(() => app.length === 1);
  await until(() => a.stats.strays === 1); // the probe arrived and was dropped
  t.equal(app[0]!.toString(), 'marker', 'the control datagrams never reached the app');
  a.send(Buffer.from('from-app'));
  await until(() => spy.got.some((g) => g.toString() === 'from-app'));
  t.equal(a.client.stats.sentDirect, 0, 'nothing sent to anyone but the relay');
  t.ok(
    spy.from.every((f) => f.port === aPort),
    'everything the spy got came from the registered socket',
  );
  for (const g of spy.got) {
    const text = g.toString('latin1');
    if (!text.startsWith('REG:') && text !== 'from-app') t.fail(`relay-only sent ${JSON.stringify(text.slice(0, 20))}`);
    if (looksLikeControl(g)) t.fail('relay-only sent a control datagram');
  }
  t.notOk(
    spy.got.some((g) => g.toString('latin1').startsWith('ADDR?')),
    'no address query',
  );
  t.equal(strangerGot.length, 0, 'the probe was not answered');
});

t.test('against a relay that does not answer address queries: the relay alone, no candidates', async (t) => {
  const spy = await spyRelay(t); // acknowledges REG, ignores ADDR? (as the original would not answer it)
  const a = link(t, { relay: { host: '127.0.0.1', port: spy.port }, sessionId: 'no-addr-relay', bindAddress: '127.0.0.2', addressQueryTimeoutMs: 30 });
  const path = nextPath(a, 'relay');
  await a.start();
  t.match(await path, { kind: 'relay', reason: 'the relay does not answer address queries' });
  t.equal(spy.got.filter((g) => g.toString('latin1').startsWith('ADDR?')).length, 3, 'asked three times');
  t.notOk(
    spy.got.some((g) => looksLikeControl(g)),
    'sent no candidates',
  );
  t.equal(a.client.stats.sentDirect, 0, 'probed nothing');
});

t.test("a forged probe and a stranger's data change nothing", async (t) => {
  const { address } = await startRelay(t);
  const relayAt = { host: '127.0.0.1', port: address.port };
  const id = 'forged-probe';
  const a = link(t, { relay: relayAt, sessionId: id, bindAddress: '127.0.0.2' });
  const b = link(t, { relay: relayAt, sessionId: id, bindAddress: '127.0.0.3' });
  await a.start();
  await b.start();
  await nextPath(a, 'direct');
  const aPort = a.client.address().port;
  const stranger = dgram.createSocket('udp4');
  const strangerGot: Buffer[] = [];
  stranger.on('message', (m) => strangerGot.push(m));
  await new Promise<void>((r) => stranger.bind(0, '127.0.0.4', () => r()));
  t.teardown(() => stranger.close());
  const wrongKey = controlKey('some-other-session');
  const app: Buffer[] = [];
  a.on('message', (m) => app.push(m));
  const pathChanges: Path[] = [];
  a.on('path', (p) => pathChanges.push(p));
  stranger.send(encodeControl(wrongKey, { type: 'probe', sender: '2222222222222222', nonce: 'cc'.repeat(12), confirmed: true }), aPort, '127.0.0.2');
  stranger.send(encodeControl(wrongKey, { type: 'answer', sender: '2222222222222222', nonce: 'dd'.repeat(12), confirmed: true }), aPort, '127.0.0.2');
  stranger.send('not from the peer', aPort, '127.0.0.2');
  await until(() => a.stats.invalidControl === 2 && a.stats.strays === 1);
  b.send(Buffer.from('marker'));
  await until(() => app.length >= 1);
  t.same(
    app.map((m) => m.toString()),
    ['marker'],
    "the stranger's data never reached the app",
  );
  t.same(pathChanges, [], 'the path did not change');
  t.match(a.path, { kind: 'direct', address: '127.0.0.3' }, 'still direct to B');
  t.equal(strangerGot.length, 0, 'nothing answered the stranger');
});

/**
 * A router that hairpins: `front` (an address of B's, on B's port) carries A's
 * datagrams to B from a port of its own, and B's replies back to A from
 * `front`. B then answers at two addresses, as with two interfaces or a VPN.
 */
async function hairpin(t: Tap, frontAddress: string, target: { address: string; port: () => number }): Promise<number> {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  await new Promise<void>((r) => front.bind(0, frontAddress, () => r()));
  await new Promise<void>((r) => back.bind(0, frontAddress, () => r()));
  t.teardown(() => {
    front.close();
    back.close();
  });
  let client: { address: string; port: number } | undefined;
  front.on('message', (m, r) => {
    client = { address: r.address, port: r.port };
    back.send(m, target.port(), target.address);
  });
  back.on('message', (m) => {
    if (client !== undefined) front.send(m, client.port, client.address);
  });
  return (front.address() as AddressInfo).port;
}

t.test('two answering candidates per side at equal latency: every datagram arrives both ways', async (t) => {
  const { address } = await startRelay(t);
  const relayAt = { host: '127.0.0.1', port: address.port };
  const id = 'two-candidates';
  let aPort = 0;
  let bPort = 0;
  // Each side's second address is a hairpin to it, on its own port.
  const pa = await hairpin(t, '127.0.0.8', { address: '127.0.0.2', port: () => aPort });
  const pb = await hairpin(t, '127.0.0.9', { address: '127.0.0.3', port: () => bPort });
  const a = link(t, { relay: relayAt, sessionId: id, bindAddress: '127.0.0.2', bindPort: pa, localAddresses: ['127.0.0.2', '127.0.0.8'] });
  const b = link(t, { relay: relayAt, sessionId: id, bindAddress: '127.0.0.3', bindPort: pb, localAddresses: ['127.0.0.3', '127.0.0.9'] });
  aPort = pa;
  bPort = pb;
  const directs = Promise.all([nextPath(a, 'direct'), nextPath(b, 'direct')]);
  await a.start();
  await b.start();
  await directs;
  const gotA: string[] = [];
  const gotB: string[] = [];
  a.on('message', (m) => gotA.push(m.toString()));
  b.on('message', (m) => gotB.push(m.toString()));
  for (let i = 0; i < 40; i++) {
    a.send(Buffer.from(`a${i}`));
    b.send(Buffer.from(`b${i}`));
  }
  await until(() => gotA.length === 40 && gotB.length === 40, 5000);
  t.same(
    gotB,
    Array.from({ length: 40 }, (_, i) => `a${i}`),
    "B got all of A's datagrams",
  );
  t.same(
    gotA,
    Array.from({ length: 40 }, (_, i) => `b${i}`),
    "A got all of B's",
  );
  t.equal(a.stats.strays + b.stats.strays, 0, 'none was dropped as a stray');
});
