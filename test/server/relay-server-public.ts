// The relay's public-facing rules over real UDP: address queries (SPEC 1.5),
// drain (3.6), tickets (4.3) and the per-session bandwidth cap.
import t from 'tap';
import { makeTicket } from '../../src/wire/tickets';
import { ADDRESS_QUERY_DATAGRAM } from '../../src/wire/protocol';
import { bindPeer, firstAfterQuery, nothingBefore, pairUp, register, startRelay, until } from '../fixtures/udp';
import type { TestPeer } from '../fixtures/udp';
import { sessionOf } from '../fixtures/table-check';

const SECRET = 'test-secret-0123456789abcdef';

/** How many datagrams reach `peer` before `marker`. */
async function countUntil(peer: TestPeer, marker: string): Promise<number> {
  for (let n = 0; ; n++) if ((await peer.next()).toString() === marker) return n;
}
const OLD_SECRET = 'old-secret-0123456789abcdef';

t.test('SPEC 1.5: any address learns its address; nothing registered, forwarded or refreshed', async (t) => {
  let now = 0;
  const { relay, address } = await startRelay(t, { sessionTimeoutSecs: 10 }, { clock: () => now, reapIntervalMs: 0 });
  const stranger = await bindPeer(t, address, '127.0.0.7');
  t.equal(await firstAfterQuery(stranger), `ADDR 127.0.0.7:${stranger.port}\n`, 'an unregistered address');
  t.equal(relay.table.size, 0, 'registers nothing');
  const [a, b] = await pairUp(t, address, 'query-session');
  now += 9_000;
  t.equal(await firstAfterQuery(a), `ADDR 127.0.0.2:${a.port}\n`, 'a registered peer');
  t.equal(await nothingBefore(b, () => a.send('marker'), 'marker'), 'nothing before the marker', 'the query is never forwarded as data');
  t.equal(sessionOf(relay.table, 'query-session')!.lastActive, 9_000, 'the marker is activity');
  now += 9_500;
  a.send(ADDRESS_QUERY_DATAGRAM);
  await a.next();
  t.equal(sessionOf(relay.table, 'query-session')!.lastActive, 9_000, 'a query is not');
  now += 600;
  relay.reap();
  t.equal(relay.table.size, 0, 'so queries alone do not keep a session');
  t.equal(relay.counters.addressQueries, 3, 'counted');
  const short = await bindPeer(t, address, '127.0.0.8');
  short.send('ADDR?'.padEnd(63, ' '));
  t.match(await firstAfterQuery(short), /^ADDR /, 'a 63-byte "query" gets no answer: the next answer is the real query\'s');
});

t.test(
  'SPEC 1.5: an IPv4-mapped or IPv6 source is answered in its own form',
  { skip: process.platform !== 'linux' && 'IPv6 loopback assumed on Linux only' },
  async (t) => {
    const { address } = await startRelay(t, { host: '::' });
    const v4 = await bindPeer(t, { ...address, address: '127.0.0.1' }, '127.0.0.1');
    t.equal(await firstAfterQuery(v4), `ADDR 127.0.0.1:${v4.port}\n`, 'mapped: a dotted quad');
    const v6 = await bindPeer(t, { ...address, address: '::1' }, '::1');
    t.equal(await firstAfterQuery(v6), `ADDR [::1]:${v6.port}\n`, 'IPv6 in brackets');
  },
);

t.test('SPEC 4.3: only tickets made with our secrets register; anything else is ERR:AUTH and changes nothing', async (t) => {
  const { relay, address } = await startRelay(t, { authSecrets: [SECRET, OLD_SECRET] });
  const a = await bindPeer(t, address, '127.0.0.2');
  const b = await bindPeer(t, address, '127.0.0.3');
  t.equal(await register(a, 'plain-session-id'), 'ERR:AUTH\n', 'a plain id');
  t.equal(await register(a, makeTicket('someone else entirely', {})), 'ERR:AUTH\n', 'a ticket made with another secret');
  t.equal(relay.table.size, 0);
  const ticket = makeTicket(SECRET);
  t.equal(await register(a, ticket), 'ACK\n');
  t.equal(await register(b, ticket), 'ACK\n', 'both peers use the same ticket');
  t.equal(await register(b, makeTicket(OLD_SECRET)), 'ACK\n', 'a ticket of the old secret still works while listed (rotation)');
  t.equal(await register(b, ticket), 'ACK\n', 'and b can come back');
  t.equal(await register(a, 'forged-move'), 'ERR:AUTH\n', 'a registered peer asking for an unticketed session');
  t.equal(sessionOf(relay.table, ticket)?.paired, true, 'stays where it was');
  a.send('still here');
  t.equal((await b.next()).toString(), 'still here');
  a.send('REG:bad id!\n'.padEnd(20));
  t.equal((await b.next()).toString().trim(), 'REG:bad id!', 'from a registered peer a malformed REG: is still data');
  const c = await bindPeer(t, address, '127.0.0.4');
  t.equal(await register(c, 'bad id!'), 'ERR:BAD\n', 'a datagram breaking SPEC 1.2 is still ERR:BAD');
  t.equal(relay.counters.registrations.auth, 3);
  c.send('REG:x'); // 5 bytes: ERR:AUTH (9) would be longer than the request
  t.match(await firstAfterQuery(c), /^ADDR /, 'no amplification: no ERR:AUTH to a 5-byte request');
});

t.test('SPEC 4.3: an expired ticket may keep its session alive and rebind, never create or join', async (t) => {
  let wall = 1_000_000_000_000;
  let now = 0;
  const { relay, address } = await startRelay(
    t,
    { authSecrets: [SECRET], sessionTimeoutSecs: 30 },
    { wallClock: () => wall, clock: () => now, reapIntervalMs: 0 },
  );
  const ticket = makeTicket(SECRET, { nowSecs: wall / 1000, ttlSecs: 60 });
  const a = await bindPeer(t, address, '127.0.0.2');
  t.equal(await register(a, ticket), 'ACK\n');
  wall += 60_000; // the expiry second
  const b = await bindPeer(t, address, '127.0.0.3');
  t.equal(await register(b, ticket), 'ERR:AUTH\n', 'cannot join once expired');
  t.equal(await register(b, makeTicket(SECRET, { nowSecs: wall / 1000 - 120, ttlSecs: 60 })), 'ERR:AUTH\n', 'nor create');
  now += 20_000;
  t.equal(await register(a, ticket), 'ACK\n', 'the address in the session keeps it alive');
  t.equal(sessionOf(relay.table, ticket)!.lastActive, 20_000);
  // pair it with a fresh ticket's session? no: a second peer that joined before expiry
  wall -= 60_000;
  t.equal(await register(b, ticket), 'ACK\n', '(b joins while the ticket is valid)');
  wall += 60_000;
  const a2 = await bindPeer(t, address, '127.0.0.2'); // a's NAT moved it to a new port
  t.equal(await register(a2, ticket), 'ACK\n', 'and may rebind with it');
  b.send('to the new port');
  t.equal((await a2.next()).toString(), 'to the new port');
  t.equal(relay.counters.registrations.auth, 2);
});

t.test('SPEC 3.6: while draining, a new session gets ERR:BUSY; the ones held carry on; drain() resolves when the last goes', async (t) => {
  let now = 0;
  const { relay, address } = await startRelay(t, { sessionTimeoutSecs: 10 }, { clock: () => now, reapIntervalMs: 0 });
  const a = await bindPeer(t, address, '127.0.0.2');
  const b = await bindPeer(t, address, '127.0.0.3');
  t.equal(await register(a, 'held'), 'ACK\n');
  let drained = false;
  void relay.drain().then(() => {
    drained = true;
  });
  t.equal(relay.draining, true);
  t.equal(await register(b, 'held'), 'ACK\n', 'joins the held session');
  a.send('data');
  t.equal((await b.next()).toString(), 'data');
  const b2 = await bindPeer(t, address, '127.0.0.3');
  t.equal(await register(b2, 'held'), 'ACK\n', 'rebinds');
  const c = await bindPeer(t, address, '127.0.0.4');
  t.equal(await register(c, 'brand-new'), 'ERR:BUSY\n', 'a new session');
  t.equal(await register(a, 'brand-new'), 'ERR:BUSY\n', 'also for a held peer moving to a new session');
  t.equal(sessionOf(relay.table, 'held')?.paired, true, 'which stays where it was');
  t.equal(relay.counters.registrations.busy_draining, 2);
  t.equal(relay.table.size, 1);
  now += 10_000;
  relay.reap();
  await until(() => drained);
  t.pass('drain() resolved once no session was left');
});

t.test('bandwidth cap: over-rate datagrams are dropped as reason rate; others flow', async (t) => {
  let now = 0;
  const { relay, address } = await startRelay(t, { maxSessionBytesPerSec: 10_000 }, { clock: () => now, reapIntervalMs: 0 });
  const [a, b] = await pairUp(t, address, 'capped');
  const [c, d] = await pairUp(t, address, 'uncapped-neighbour', '127.0.0.4', '127.0.0.5');
  const kb = Buffer.alloc(1000, 0x61);
  for (let i = 0; i < 15; i++) a.send(kb); // 15 kB at one instant: a second's worth (10 kB) passes
  await until(() => relay.counters.datagramsReceived >= 15 + 4); // + the four registrations
  now += 1000; // room for the marker
  a.send('marker');
  t.equal(await countUntil(b, 'marker'), 10, '10 kB pass, then the burst allowance is spent');
  t.equal(relay.counters.droppedRate, 5);
  t.equal(relay.counters.droppedRateBytes, 5000);
  c.send(kb);
  t.same(await d.next(), kb, 'another session has its own budget');
  // the cap is per session, both directions: b's answer spends a's budget
  for (let i = 0; i < 10; i++) b.send(kb);
  b.send('marker');
  t.equal(await countUntil(a, 'marker'), 9, 'what a sent (the 6-byte marker) left room for 9 kB, not 10, coming back');
});
