import t from 'tap';
import { ipKeyOf } from '../../src/wire/address';
import { SessionTable } from '../../src/server/session-table';
import type { Session } from '../../src/server/session-table';
import { checkConsistent } from '../fixtures/table-check';
import { seededRandom } from '../fixtures/random';

const TIMEOUT = 10_000;
const mk = (o: Partial<ConstructorParameters<typeof SessionTable>[0]> = {}): SessionTable =>
  new SessionTable({ sessionTimeoutMs: TIMEOUT, maxSessions: 1000, maxSessionsPerIp: 1000, wheelTickMs: 250, ...o });

/** reg(table, '1.2.3.4', 5000, 'S', now) */
const reg = (tb: SessionTable, addr: string, port: number, id: string, now = 0) => tb.register(ipKeyOf(addr), addr, port, id, now);
const at = (tb: SessionTable, addr: string, port: number): Session | undefined => tb.find(ipKeyOf(addr), addr, port);
/** Data from addr:port, which must be registered; returns whether it is forwarded. */
const data = (tb: SessionTable, addr: string, port: number, now: number): boolean => tb.dataFrom(ipKeyOf(addr), addr, port, now)!.paired;

t.test('SPEC 2.2: new peer, second peer, keepalive', async (t) => {
  const tb = mk();
  t.equal(reg(tb, '1.1.1.1', 1000, 'S').outcome, 'created');
  t.equal(tb.size, 1);
  t.equal(tb.pairedCount, 0);
  t.equal(reg(tb, '2.2.2.2', 2000, 'S', 5).outcome, 'joined');
  t.equal(tb.pairedCount, 1);
  const ka = reg(tb, '1.1.1.1', 1000, 'S', 7000);
  t.equal(ka.outcome, 'keepalive');
  t.equal(tb.session('S')!.lastActive, 7000, 'keepalive refreshes activity');
  t.equal(tb.session('S')!.lastFrom, 0, 'the keepalive is the latest datagram');
  checkConsistent(t, tb);
});

t.test('SPEC 2.3: data resolves to the partner, or nothing while unpaired', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S');
  t.equal(data(tb, '1.1.1.1', 1000, 100), false, 'no partner yet');
  t.equal(tb.session('S')!.lastActive, 0, 'a dropped datagram is not activity');
  reg(tb, '2.2.2.2', 2000, 'S', 200);
  t.equal(tb.session('S')!.lastFrom, 1, 'the joiner spoke last');
  t.equal(data(tb, '1.1.1.1', 1000, 300), true);
  t.equal(tb.session('S')!.toPort, 2000, 'forwarded to the partner');
  t.equal(tb.session('S')!.lastFrom, 0);
  t.equal(tb.session('S')!.lastActive, 300, 'a forwarded datagram is activity');
  t.equal(data(tb, '2.2.2.2', 2000, 400), true);
  t.equal(tb.session('S')!.toPort, 1000, 'and back');
});

t.test('SPEC 2.2: an address in another session leaves it first', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S1');
  reg(tb, '2.2.2.2', 2000, 'S1');
  const r = reg(tb, '1.1.1.1', 1000, 'S2', 10);
  t.equal(r.outcome, 'created');
  t.equal(r.left?.id, 'S1');
  t.equal(r.leftRemoved, false, 'S1 keeps its other peer');
  t.equal(tb.session('S1')!.aPort, 2000, 'the remaining peer holds slot a');
  t.equal(tb.session('S1')!.bPort, -1);
  t.equal(tb.pairedCount, 0);
  checkConsistent(t, tb);
  // and an emptied session is deleted
  const r2 = reg(tb, '2.2.2.2', 2000, 'S2', 20);
  t.equal(r2.outcome, 'joined');
  t.equal(r2.leftRemoved, true);
  t.equal(tb.session('S1'), undefined);
  t.equal(tb.size, 1);
  checkConsistent(t, tb);
});

t.test('SPEC 2.2: explicit rebind after a NAT port change', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S');
  reg(tb, '2.2.2.2', 2000, 'S');
  const r = reg(tb, '1.1.1.1', 1001, 'S', 50);
  t.equal(r.outcome, 'rebound');
  t.equal(r.previousPort, 1000);
  t.equal(at(tb, '1.1.1.1', 1000), undefined, 'old address forgotten');
  t.equal(at(tb, '1.1.1.1', 1001)?.id, 'S');
  t.ok(data(tb, '2.2.2.2', 2000, 60));
  t.equal(tb.session('S')!.toPort, 1001, 'partner now sends to the new port');
  checkConsistent(t, tb);
});

t.test('SPEC 2.2: with both slots on the IP, the one silent longest is rebound', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S', 0);
  reg(tb, '1.1.1.1', 2000, 'S', 0);
  data(tb, '1.1.1.1', 1000, 500); // 1000 spoke last; 2000 silent longest
  const r = reg(tb, '1.1.1.1', 3000, 'S', 600);
  t.equal(r.outcome, 'rebound');
  t.equal(r.previousPort, 2000);
  t.ok(at(tb, '1.1.1.1', 1000));
  checkConsistent(t, tb);
  // the other way round
  data(tb, '1.1.1.1', 3000, 900);
  t.equal(reg(tb, '1.1.1.1', 4000, 'S', 1000).previousPort, 1000);
  checkConsistent(t, tb);
});

t.test('SPEC 2.2: a third peer on another IP gets FULL and nothing is stored', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S');
  reg(tb, '2.2.2.2', 2000, 'S');
  const r = reg(tb, '3.3.3.3', 3000, 'S');
  t.equal(r.outcome, 'full');
  t.equal(at(tb, '3.3.3.3', 3000), undefined);
  t.equal(tb.sessionsOnIp(ipKeyOf('3.3.3.3')), 0);
  // having left S', X is in no session
  reg(tb, '4.4.4.4', 4000, 'T');
  const r2 = reg(tb, '4.4.4.4', 4000, 'S');
  t.equal(r2.outcome, 'full');
  t.equal(r2.left?.id, 'T');
  t.equal(tb.session('T'), undefined, 'T emptied and removed');
  t.equal(at(tb, '4.4.4.4', 4000), undefined);
  checkConsistent(t, tb);
});

t.test('SPEC 2.4: implicit rebind only with exactly one peer on the IP', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S');
  t.equal(tb.implicitRebind(ipKeyOf('1.1.1.1'), '1.1.1.1', 1001, 5).outcome, 'unpaired', 'not while unpaired');
  reg(tb, '2.2.2.2', 2000, 'S');
  t.equal(tb.implicitRebind(ipKeyOf('9.9.9.9'), '9.9.9.9', 1, 5).outcome, 'unknown');
  const r = tb.implicitRebind(ipKeyOf('1.1.1.1'), '1.1.1.1', 1001, 10);
  t.equal(r.outcome, 'rebound');
  if (r.outcome === 'rebound') {
    t.equal(r.session.toPort, 2000, 'forward to the partner');
    t.equal(r.previousPort, 1000);
  }
  t.ok(at(tb, '1.1.1.1', 1001));
  t.equal(at(tb, '1.1.1.1', 1000), undefined);
  t.equal(tb.session('S')!.lastActive, 10);
  checkConsistent(t, tb);
  // a second host behind the same NAT, in another session: now two peers share the IP
  reg(tb, '1.1.1.1', 5000, 'T');
  reg(tb, '3.3.3.3', 3000, 'T');
  t.equal(tb.implicitRebind(ipKeyOf('1.1.1.1'), '1.1.1.1', 7777, 20).outcome, 'ambiguous', 'no hijack behind a shared NAT');
  t.equal(at(tb, '1.1.1.1', 7777), undefined);
  checkConsistent(t, tb);
});

t.test('SPEC 2.5: expiry with an injected clock, within one tick of the deadline', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'A', 0);
  reg(tb, '2.2.2.2', 2000, 'A', 0);
  reg(tb, '3.3.3.3', 3000, 'B', 0);
  // A stays active; B does not
  for (let now = 250; now < TIMEOUT; now += 250) {
    t.same(tb.expire(now), [], `nothing before the deadline (${now})`);
    if (now % 2000 === 0) data(tb, '1.1.1.1', 1000, now);
  }
  const gone = tb.expire(TIMEOUT);
  t.same(gone.map((s) => s.id), ['B'], 'B goes at its deadline');
  t.equal(at(tb, '3.3.3.3', 3000), undefined, 'with its index entries');
  t.equal(tb.sessionsOnIp(ipKeyOf('3.3.3.3')), 0);
  t.equal(tb.session('A')?.id, 'A', 'A was active, it stays');
  const lastA = tb.session('A')!.lastActive;
  let removedAt = -1;
  for (let now = TIMEOUT; now <= lastA + TIMEOUT + 1000; now += 100) {
    if (tb.expire(now).length > 0) { removedAt = now; break; }
  }
  t.ok(removedAt >= lastA + TIMEOUT, 'not before its deadline');
  t.ok(removedAt <= lastA + TIMEOUT + 250, `within a tick of it (${removedAt - lastA - TIMEOUT} ms late)`);
  t.equal(tb.size, 0);
  t.equal([...tb.indexEntries()].length, 0);
  checkConsistent(t, tb);
});

t.test('SPEC 2.5: a long clock jump expires everything due', async (t) => {
  const tb = mk();
  for (let i = 0; i < 50; i++) reg(tb, `10.0.0.${i}`, 1000, `S${i}`, i * 100);
  t.equal(tb.expire(10 * 3600_000).length, 50);
  t.equal(tb.size, 0);
  checkConsistent(t, tb);
});

t.test('a re-created session is not reaped by its predecessor\'s deadline', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S', 0);
  reg(tb, '1.1.1.1', 1000, 'X', 100); // S emptied
  reg(tb, '1.1.1.1', 1000, 'S', 5000); // S again, later
  const gone = tb.expire(TIMEOUT + 100).map((s) => s.id);
  t.notOk(gone.includes('S'), 'new S is younger than the timeout');
  t.ok(tb.session('S'));
});

t.test('SPEC 4.1: session caps, checked before anything changes', async (t) => {
  const tb = mk({ maxSessions: 2, maxSessionsPerIp: 2 });
  t.equal(reg(tb, '1.1.1.1', 1, 'A').outcome, 'created');
  t.equal(reg(tb, '2.2.2.2', 1, 'B').outcome, 'created');
  t.equal(reg(tb, '3.3.3.3', 1, 'C').outcome, 'busy-sessions');
  t.equal(reg(tb, '3.3.3.3', 1, 'A').outcome, 'joined', 'joining is not a new session');
  // an address that leaves its only session may create another
  t.equal(reg(tb, '2.2.2.2', 1, 'C').outcome, 'created');
  t.equal(tb.session('B'), undefined);
  const tb2 = mk({ maxSessionsPerIp: 2 });
  reg(tb2, '5.5.5.5', 1, 'A');
  reg(tb2, '5.5.5.5', 2, 'B');
  const r = reg(tb2, '5.5.5.5', 3, 'C');
  t.equal(r.outcome, 'busy-ip');
  t.equal(tb2.size, 2, 'nothing stored');
  t.equal(reg(tb2, '5.5.5.5', 3, 'A').outcome, 'joined', 'same IP in a session it already has: no new session for the IP');
  t.equal(reg(tb2, '5.5.5.5', 1, 'C').outcome, 'busy-ip', 'leaving A would not free the IP\'s place in A');
  t.equal(reg(tb2, '5.5.5.5', 2, 'C').outcome, 'created', 'leaving B frees a place');
  t.equal(tb2.sessionsOnIp(ipKeyOf('5.5.5.5')), 2);
  checkConsistent(t, tb2);
});

t.test('fuzz: random registrations, data, rebinds and expiry keep the indexes consistent', async (t) => {
  const rnd = seededRandom(12345);
  const tb = mk({ maxSessions: 40, maxSessionsPerIp: 6 });
  const ips = ['1.0.0.1', '1.0.0.2', '1.0.0.3', '::1', '::ffff:1.0.0.1'];
  let now = 0;
  for (let step = 0; step < 20000; step++) {
    now += rnd(40);
    const addr = ips[rnd(ips.length)]!;
    const port = 1000 + rnd(6);
    const op = rnd(10);
    if (op < 6) reg(tb, addr, port, `S${rnd(12)}`, now);
    else if (op < 8) {
      if (tb.dataFrom(ipKeyOf(addr), addr, port, now) === undefined) tb.implicitRebind(ipKeyOf(addr), addr, port, now);
    } else tb.expire(now);
    if (step % 50 === 0) checkConsistent(t, tb);
  }
  checkConsistent(t, tb);
  t.pass('20000 random steps');
});
