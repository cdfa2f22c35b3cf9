// The relay against a stranger (SPEC 1.6, 2.4, 4.4, 4.5), over real UDP on
// loopback. Forged sources come from a raw socket (test/fixtures/forge.c).
import t from 'tap';
import type { Test } from 'tap';
import { DgramIo } from '../../src/io/datagram-io';
import { makeTicket } from '../../src/wire/tickets';
import { ADDRESS_QUERY_DATAGRAM } from '../../src/wire/protocol';
import { bindPeer, firstAfterQuery, nothingBefore, pairUp, register, startRelay, until } from '../fixtures/udp';
import { forge, forgeUnavailable } from '../fixtures/forge';
import { checkConsistent } from '../fixtures/table-check';

const ID = '123e4567-e89b-12d3-a456-426614174000';

t.test('SPEC 1.6: a datagram from source port 0 is dropped and counted, never answered or registered', { skip: forgeUnavailable() }, async (t) => {
  const { relay, address } = await startRelay(t, { host: '0.0.0.0' });
  const [a, b] = await pairUp(t, { ...address, address: '127.0.0.1' }, ID, '127.0.0.21', '127.0.0.22');
  const to: [string, number] = ['127.0.0.1', address.port];
  forge(
    { from: ['127.0.0.30', 0], to, data: `REG:${ID}\n` }, // would be ACKed to port 0: dgram throws
    { from: ['127.0.0.30', 0], to, data: ADDRESS_QUERY_DATAGRAM },
    { from: ['127.0.0.30', 0], to, data: 'REG:bad id!' },
    { from: ['127.0.0.21', 0], to, data: 'implicit rebind of a to port 0' },
    { from: ['127.0.0.21', 0], to, data: '' },
  );
  await until(() => relay.counters.droppedPortZero === 5);
  t.equal(relay.table.size, 1, 'nothing registered');
  t.equal(await nothingBefore(b, () => a.send('marker'), 'marker'), 'nothing before the marker', 'a keeps its slot, b got nothing');
  b.send('back');
  t.equal((await a.next()).toString(), 'back');
  t.equal(relay.counters.repliesSuppressed + relay.counters.registrations.bad + relay.counters.addressQueries, 0, 'nothing answered');
  t.equal(relay.counters.droppedPortZeroBytes, `REG:${ID}\n`.length + 64 + 11 + 30, 'bytes counted');
});

t.test('SPEC 1.6: every reply and forward survives a send that throws', async (t) => {
  const io = new DgramIo();
  const { relay, address } = await startRelay(t, { io: 'dgram' }, { io });
  const a = await bindPeer(t, address, '127.0.0.2');
  const b = await bindPeer(t, address, '127.0.0.3');
  const c = await bindPeer(t, address, '127.0.0.4');
  t.equal(await register(a, ID), 'ACK\n');
  t.equal(await register(b, ID), 'ACK\n');
  const socket = (io as unknown as { socket: { send: (...args: unknown[]) => void } }).socket;
  const realSend = socket.send.bind(socket);
  let throws = 0;
  socket.send = () => {
    throws++;
    throw Object.assign(new Error('send failed'), { code: 'ERR_SOCKET_BAD_PORT' });
  };
  a.send(`REG:${ID}\n`); // ACK (keepalive)
  c.send(`REG:${ID}\n`); // ERR:FULL
  c.send('REG:bad id!'); // ERR:BAD
  c.send(ADDRESS_QUERY_DATAGRAM); // ADDR
  a.send('forwarded'); // forward
  await until(() => throws === 5);
  t.equal(io.sendErrors, 5, 'each failed send is a counted send error');
  socket.send = realSend;
  t.equal(await firstAfterQuery(c), `ADDR 127.0.0.4:${c.port}\n`, 'and the relay carries on');
  a.send('after');
  t.equal((await b.next()).toString(), 'after');
  t.equal((await relay.close()).sendErrors, 5, 'in the summary too');
});

t.test('SPEC 4.4: a forged self-loop is refused; nothing is forwarded', { skip: forgeUnavailable() }, async (t) => {
  const { relay, address } = await startRelay(t, { host: '0.0.0.0' });
  const P = address.port;
  const to: [string, number] = ['127.0.0.1', P];
  // Two of the relay's own addresses on its own port (the wildcard takes all of 127/8).
  forge(
    { from: ['127.0.0.1', P], to, data: `REG:${ID}\n` },
    { from: ['127.0.0.2', P], to, data: `REG:${ID}\n` },
    { from: ['127.0.0.1', P], to, data: Buffer.alloc(1200) },
    { from: ['127.0.0.2', P], to, data: '' },
    { from: ['127.0.0.1', P], to, data: ADDRESS_QUERY_DATAGRAM },
  );
  await until(() => relay.counters.droppedLoop === 5);
  const stranger = await bindPeer(t, { ...address, address: '127.0.0.1' }, '127.0.0.40');
  t.match(await firstAfterQuery(stranger), /^ADDR /, 'the relay still answers others');
  t.equal(relay.table.size, 0, 'nothing registered');
  t.equal(relay.counters.forwardedDatagrams, 0, 'nothing forwarded');
  t.equal(relay.counters.datagramsReceived, 6, 'no ACK came back to it');
});

t.test('SPEC 4.4: --public-address is ours too; another port on it is not', { skip: forgeUnavailable() }, async (t) => {
  const { relay, address } = await startRelay(t, { host: '127.0.0.1', publicAddresses: ['127.0.0.50', '127.0.0.51:7'] });
  const to: [string, number] = ['127.0.0.1', address.port];
  forge(
    { from: ['127.0.0.1', address.port], to, data: `REG:${ID}\n` }, // the bound address itself
    { from: ['127.0.0.50', address.port], to, data: `REG:${ID}\n` },
    { from: ['127.0.0.51', 7], to, data: `REG:${ID}\n` },
  );
  await until(() => relay.counters.droppedLoop === 3);
  const other = await bindPeer(t, address, '127.0.0.50');
  t.equal(await register(other, ID), 'ACK\n', 'another port on the public address is a peer');
  t.equal(relay.table.size, 1);
});

/** Three relays on 127.0.0.61-63, one port; each knows the others when `fleet`. */
async function threeRelays(t: Test, fleet: boolean, budget?: number) {
  const hosts = ['127.0.0.61', '127.0.0.62', '127.0.0.63'];
  const relays = [];
  let port = 0;
  for (const host of hosts) {
    const peerRelays = fleet ? hosts.filter((h) => h !== host) : []; // no port: the relay's own
    const r = await startRelay(t, { host, port, peerRelays, ...(budget !== undefined ? { maxSessionDatagramsPerSec: budget } : {}) }, { clock: () => 0 });
    port = r.address.port;
    relays.push(r.relay);
  }
  return { relays, hosts, port };
}

/** Each relay's session pairs the other two: one datagram would then circle forever. */
function forgeFleetLoop(hosts: string[], port: number): void {
  const regs = [];
  for (const [i, host] of hosts.entries()) {
    for (const other of hosts)
      if (other !== host) regs.push({ from: [other, port] as [string, number], to: [host, port] as [string, number], data: `REG:loop-${i}\n` });
  }
  forge(...regs, { from: [hosts[1]!, port], to: [hosts[0]!, port], data: 'round and round' });
}

t.test('SPEC 4.4: a three-relay fleet loop is refused with --peer-relays', { skip: forgeUnavailable() }, async (t) => {
  const { relays, hosts, port } = await threeRelays(t, true);
  forgeFleetLoop(hosts, port);
  await until(() => relays.reduce((n, r) => n + r.counters.droppedLoop, 0) === 7);
  for (const [i, r] of relays.entries()) {
    const probe = await bindPeer(t, { address: hosts[i]!, port, family: 'IPv4' }, '127.0.0.70');
    t.match(await firstAfterQuery(probe), /^ADDR /, `relay ${i + 1} carries on`);
    t.equal(r.table.size, 0, `relay ${i + 1} registered none of the others`);
    t.equal(r.counters.forwardedDatagrams, 0, `relay ${i + 1} forwarded nothing`);
  }
});

t.test('SPEC 4.4: without --peer-relays, the packet budget ends a fleet loop', { skip: forgeUnavailable() }, async (t) => {
  // The clock stands still: the budget never refills, so the loop dies once it is spent.
  const { relays, hosts, port } = await threeRelays(t, false, 20);
  forgeFleetLoop(hosts, port);
  await until(() => relays.some((r) => r.counters.droppedRate > 0));
  const total = (): number => relays.reduce((n, r) => n + r.counters.datagramsReceived, 0);
  // Markers through each relay: anything still circling would arrive before them.
  for (const [i] of relays.entries()) {
    const probe = await bindPeer(t, { address: hosts[i]!, port, family: 'IPv4' }, '127.0.0.71');
    t.match(await firstAfterQuery(probe), /^ADDR /);
  }
  const settled = total();
  for (const [i, r] of relays.entries())
    t.ok(r.counters.forwardedDatagrams <= 20, `relay ${i + 1} forwarded ${r.counters.forwardedDatagrams}, at most its budget of 20`);
  const probe = await bindPeer(t, { address: hosts[0]!, port, family: 'IPv4' }, '127.0.0.72');
  await firstAfterQuery(probe);
  t.equal(total(), settled + 1, 'the loop has stopped: only the last query arrived since');
});

t.test('SPEC 4.4: the packet budget counts zero-length datagrams', async (t) => {
  const { relay, address } = await startRelay(t, { maxSessionDatagramsPerSec: 5 }, { clock: () => 0 });
  const [a, b] = await pairUp(t, address, ID);
  for (let i = 0; i < 12; i++) a.send(Buffer.alloc(0));
  for (let i = 0; i < 5; i++) t.equal((await b.next()).length, 0);
  await until(() => relay.counters.droppedRate === 7);
  t.equal(relay.counters.forwardedDatagrams, 5, 'a second of budget, then dropped as reason="rate"');
});

t.test('SPEC 2.4: with tickets, implicit rebind is off unless asked for: a same-IP stranger gets nothing', async (t) => {
  const secret = 'hardening-secret-0123456789';
  const ticket = makeTicket(secret);
  const { relay, address } = await startRelay(t, { authSecrets: [secret] });
  t.equal(relay.config.implicitRebind, false);
  const [a, b] = await pairUp(t, address, ticket);
  const stranger = await bindPeer(t, address, '127.0.0.2'); // a's IP, another port: behind the same CGNAT
  stranger.send('take over');
  await until(() => relay.counters.droppedUnknownSource === 1);
  t.equal(await nothingBefore(b, () => a.send('marker'), 'marker'), 'nothing before the marker', 'b got nothing from the stranger');
  b.send('for a');
  t.equal((await a.next()).toString(), 'for a', 'a keeps its slot');
  t.equal(relay.counters.rebindsImplicit, 0);
  t.equal(await register(stranger, ticket), 'ACK\n', 'a new port proves itself with the ticket (an explicit rebind)');

  const { relay: opted } = await startRelay(t, { authSecrets: [secret], implicitRebind: true });
  t.equal(opted.config.implicitRebind, true, '--implicit-rebind turns it back on');
});

t.test('SPEC 2.2: a NAT port change before the partner arrives does not lock the session', async (t) => {
  const { relay, address } = await startRelay(t);
  const stale = await bindPeer(t, address, '127.0.0.2');
  t.equal(await register(stale, ID), 'ACK\n');
  stale.close(); // the NAT forgot this mapping
  const moved = await bindPeer(t, address, '127.0.0.2'); // the same peer, a new public port
  t.equal(await register(moved, ID), 'ACK\n', 'its keepalive from the new port joins its own session');
  const partner = await bindPeer(t, address, '127.0.0.3');
  t.equal(await register(partner, ID), 'ACK\n', 'the partner takes the stale slot, not ERR:FULL');
  partner.send('hello');
  t.equal((await moved.next()).toString(), 'hello');
  moved.send('hi');
  t.equal((await partner.next()).toString(), 'hi');
  t.equal(relay.counters.registrations.full, 0);
  t.equal(checkConsistent(t, relay.table), 0);
});

t.test('SPEC 2.2: two hosts behind one NAT keep their session once both have spoken', async (t) => {
  const { relay, address } = await startRelay(t);
  const h1 = await bindPeer(t, address, '127.0.0.2');
  const h2 = await bindPeer(t, address, '127.0.0.2');
  t.equal(await register(h1, ID), 'ACK\n');
  t.equal(await register(h2, ID), 'ACK\n');
  h1.send('from h1');
  t.equal((await h2.next()).toString(), 'from h1');
  const third = await bindPeer(t, address, '127.0.0.3');
  t.equal(await register(third, ID), 'ERR:FULL\n', 'a third peer from elsewhere is refused');
  h2.send('still');
  t.equal((await h1.next()).toString(), 'still');
  t.equal(relay.counters.registrations.full, 1);
});

t.test('SPEC 4.5: a table filled with forged registrations empties within the unpaired timeout', async (t) => {
  let now = 0;
  const { relay, address } = await startRelay(t, { maxSessions: 40, unpairedTimeoutSecs: 60 }, { clock: () => now, reapIntervalMs: 0 });
  // (Sockets of one IP: an address that registers again leaves its last session, SPEC 2.2.)
  for (let i = 0; i < 40; i++) t.equal(await register(await bindPeer(t, address, '127.0.0.80'), `forged-${i}`), 'ACK\n');
  const lone = await bindPeer(t, address, '127.0.0.81');
  t.equal(await register(lone, 'waiting-for-partner'), 'ERR:BUSY\n', 'full');
  now = 59_000;
  relay.reap();
  t.equal(relay.table.size, 40, 'nothing goes before its time');
  now = 60_000;
  relay.reap();
  t.equal(relay.table.size, 0, 'a minute, not the session timeout');
  t.equal(await register(lone, 'waiting-for-partner'), 'ACK\n', 'room again');
  for (let s = 1; s <= 4; s++) {
    now += 15_000;
    t.equal(await register(lone, 'waiting-for-partner'), 'ACK\n');
    relay.reap();
  }
  t.equal(relay.table.size, 1, 'a lone peer that keeps its keepalives keeps its session');
  now += 61_000;
  relay.reap();
  t.equal(relay.table.size, 0, 'and loses it a minute after they stop');
});

t.test('SPEC 2.5: a mass expiry is reaped in slices', async (t) => {
  let now = 0;
  const { relay, address } = await startRelay(t, { sessionTimeoutSecs: 10, unpairedTimeoutSecs: 10 }, { clock: () => now, reapIntervalMs: 0 });
  for (let i = 0; i < 25; i++) await register(await bindPeer(t, address, '127.0.0.90'), `s-${i}`);
  now = 10_000;
  t.equal(relay.reap(now, 10), 10);
  t.ok(relay.table.expiryDue(now), 'more are due');
  t.equal(relay.reap(now, 10), 10);
  t.equal(relay.reap(now, 10), 5);
  t.notOk(relay.table.expiryDue(now));
  t.equal(relay.table.size, 0);
});
