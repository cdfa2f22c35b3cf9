import t from 'tap';
import { ipKeyOf } from '../../src/wire/address';
import { SessionTable } from '../../src/server/session-table';
import type { Admission, Session } from '../../src/server/session-table';
import { checkConsistent, sessionOf } from '../fixtures/table-check';
import fc from 'fast-check';

const TIMEOUT = 10_000;
const mk = (o: Partial<ConstructorParameters<typeof SessionTable>[0]> = {}): SessionTable =>
  new SessionTable({ sessionTimeoutMs: TIMEOUT, unpairedTimeoutMs: TIMEOUT, maxSessions: 1000, maxSessionsPerIp: 1000, expiryTickMs: 250, ...o });

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
  t.equal(sessionOf(tb, 'S')!.lastActive, 7000, 'keepalive refreshes activity');
  t.equal(sessionOf(tb, 'S')!.lastFrom, 0, 'the keepalive is the latest datagram');
  checkConsistent(t, tb);
});

t.test('SPEC 2.3: data resolves to the partner, or nothing while unpaired', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S');
  t.equal(data(tb, '1.1.1.1', 1000, 100), false, 'no partner yet');
  t.equal(sessionOf(tb, 'S')!.lastActive, 0, 'a dropped datagram is not activity');
  reg(tb, '2.2.2.2', 2000, 'S', 200);
  t.equal(sessionOf(tb, 'S')!.lastFrom, 1, 'the joiner spoke last');
  t.equal(data(tb, '1.1.1.1', 1000, 300), true);
  t.equal(sessionOf(tb, 'S')!.toPort, 2000, 'forwarded to the partner');
  t.equal(sessionOf(tb, 'S')!.lastFrom, 0);
  t.equal(sessionOf(tb, 'S')!.lastActive, 300, 'a forwarded datagram is activity');
  t.equal(data(tb, '2.2.2.2', 2000, 400), true);
  t.equal(sessionOf(tb, 'S')!.toPort, 1000, 'and back');
});

t.test('SPEC 2.2: an address in another session leaves it first', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S1');
  reg(tb, '2.2.2.2', 2000, 'S1');
  const r = reg(tb, '1.1.1.1', 1000, 'S2', 10);
  t.equal(r.outcome, 'created');
  t.equal(r.left?.id, 'S1');
  t.equal(r.leftRemoved, false, 'S1 keeps its other peer');
  t.equal(sessionOf(tb, 'S1')!.aPort, 2000, 'the remaining peer holds slot a');
  t.equal(sessionOf(tb, 'S1')!.bPort, -1);
  t.equal(tb.pairedCount, 0);
  checkConsistent(t, tb);
  // and an emptied session is deleted
  const r2 = reg(tb, '2.2.2.2', 2000, 'S2', 20);
  t.equal(r2.outcome, 'joined');
  t.equal(r2.leftRemoved, true);
  t.equal(sessionOf(tb, 'S1'), undefined);
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
  t.equal(sessionOf(tb, 'S')!.toPort, 1001, 'partner now sends to the new port');
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
  t.equal(sessionOf(tb, 'T'), undefined, 'T emptied and removed');
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
  t.equal(sessionOf(tb, 'S')!.lastActive, 10);
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
  t.same(
    gone.map((s) => s.id),
    ['B'],
    'B goes at its deadline',
  );
  t.equal(at(tb, '3.3.3.3', 3000), undefined, 'with its index entries');
  t.equal(tb.sessionsOnIp(ipKeyOf('3.3.3.3')), 0);
  t.equal(sessionOf(tb, 'A')?.id, 'A', 'A was active, it stays');
  const lastA = sessionOf(tb, 'A')!.lastActive;
  let removedAt = -1;
  for (let now = TIMEOUT; now <= lastA + TIMEOUT + 1000; now += 100) {
    if (tb.expire(now).length > 0) {
      removedAt = now;
      break;
    }
  }
  t.ok(removedAt >= lastA + TIMEOUT, 'not before its deadline');
  t.ok(removedAt <= lastA + TIMEOUT + 250, `within a tick of it (${removedAt - lastA - TIMEOUT} ms late)`);
  t.equal(tb.size, 0);
  checkConsistent(t, tb);
});

t.test('SPEC 2.5: a long clock jump expires everything due', async (t) => {
  const tb = mk();
  for (let i = 0; i < 50; i++) reg(tb, `10.0.0.${i}`, 1000, `S${i}`, i * 100);
  t.equal(tb.expire(10 * 3600_000).length, 50);
  t.equal(tb.size, 0);
  checkConsistent(t, tb);
});

t.test("a re-created session is not reaped by its predecessor's deadline", async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S', 0);
  reg(tb, '1.1.1.1', 1000, 'X', 100); // S emptied
  reg(tb, '1.1.1.1', 1000, 'S', 5000); // S again, later
  const gone = tb.expire(TIMEOUT + 100).map((s) => s.id);
  t.notOk(gone.includes('S'), 'new S is younger than the timeout');
  t.ok(sessionOf(tb, 'S'));
});

t.test('SPEC 4.1: session caps, checked before anything changes', async (t) => {
  const tb = mk({ maxSessions: 2, maxSessionsPerIp: 2 });
  t.equal(reg(tb, '1.1.1.1', 1, 'A').outcome, 'created');
  t.equal(reg(tb, '2.2.2.2', 1, 'B').outcome, 'created');
  t.equal(reg(tb, '3.3.3.3', 1, 'C').outcome, 'busy-sessions');
  t.equal(reg(tb, '3.3.3.3', 1, 'A').outcome, 'joined', 'joining is not a new session');
  // an address that leaves its only session may create another
  t.equal(reg(tb, '2.2.2.2', 1, 'C').outcome, 'created');
  t.equal(sessionOf(tb, 'B'), undefined);
  const tb2 = mk({ maxSessionsPerIp: 2 });
  reg(tb2, '5.5.5.5', 1, 'A');
  reg(tb2, '5.5.5.5', 2, 'B');
  const r = reg(tb2, '5.5.5.5', 3, 'C');
  t.equal(r.outcome, 'busy-ip');
  t.equal(tb2.size, 2, 'nothing stored');
  t.equal(reg(tb2, '5.5.5.5', 3, 'A').outcome, 'joined', 'same IP in a session it already has: no new session for the IP');
  t.equal(reg(tb2, '5.5.5.5', 1, 'C').outcome, 'busy-ip', "leaving A would not free the IP's place in A");
  t.equal(reg(tb2, '5.5.5.5', 2, 'C').outcome, 'created', 'leaving B frees a place');
  t.equal(tb2.sessionsOnIp(ipKeyOf('5.5.5.5')), 2);
  checkConsistent(t, tb2);
});

t.test('SPEC 2.5: a session removed when its last peer leaves leaves the expiry schedule at once', async (t) => {
  // The leak this guards against: one address cycling fresh ids within the
  // rate limit kept every emptied session in the schedule until its deadline.
  const tb = mk({ sessionTimeoutMs: 300_000 });
  for (let i = 0; i < 5000; i++) reg(tb, '9.9.9.9', 1000, `fresh-${i}`, i);
  t.equal(tb.size, 1, 'one session open');
  t.equal(checkConsistent(t, tb), 0, 'and the schedule holds just that one');
});

t.test('SPEC 3.6: no-create admits keepalives, joins and rebinds, and refuses new sessions without changing anything', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'OLD');
  const draining = (addr: string, port: number, id: string, now = 10) => tb.register(ipKeyOf(addr), addr, port, id, now, 'no-create');
  t.equal(draining('1.1.1.1', 1000, 'OLD').outcome, 'keepalive');
  t.equal(draining('2.2.2.2', 2000, 'OLD').outcome, 'joined', 'the partner still joins');
  t.equal(draining('2.2.2.2', 2001, 'OLD').outcome, 'rebound', 'and rebinds');
  t.equal(draining('3.3.3.3', 3000, 'NEW').outcome, 'busy-draining');
  t.equal(draining('1.1.1.1', 1000, 'NEW').outcome, 'busy-draining', 'a peer moving to a new session is refused too');
  t.equal(at(tb, '1.1.1.1', 1000)?.id, 'OLD', 'and stays where it was');
  t.equal(tb.size, 1);
  checkConsistent(t, tb);
});

t.test('SPEC 4.3: rebind-only (an expired ticket) may keep alive and rebind, never create or join', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'T');
  const expired = (addr: string, port: number, id: string) => tb.register(ipKeyOf(addr), addr, port, id, 10, 'rebind-only');
  t.equal(expired('2.2.2.2', 2000, 'T').outcome, 'expired', 'cannot join');
  t.equal(expired('3.3.3.3', 3000, 'U').outcome, 'expired', 'cannot create');
  t.equal(expired('1.1.1.1', 1000, 'U').outcome, 'expired', 'a registered peer stays where it was');
  t.equal(at(tb, '1.1.1.1', 1000)?.id, 'T');
  reg(tb, '2.2.2.2', 2000, 'T');
  t.equal(expired('1.1.1.1', 1000, 'T').outcome, 'keepalive');
  t.equal(expired('1.1.1.1', 1001, 'T').outcome, 'rebound', 'a NAT port change rebinds with the expired ticket');
  t.equal(expired('4.4.4.4', 4000, 'T').outcome, 'expired', 'a stranger gets no ERR:FULL either: nothing about it changes');
  checkConsistent(t, tb);
});

t.test('property: any sequence of register, move, leave, data, rebind and expire keeps every index and the schedule in step', async (t) => {
  const ips = ['1.0.0.1', '1.0.0.2', '1.0.0.3', '::1', '::ffff:1.0.0.1'];
  const address = fc.record({ ip: fc.integer({ min: 0, max: ips.length - 1 }), port: fc.integer({ min: 1000, max: 1005 }) });
  const step = fc.oneof(
    fc.record({
      op: fc.constant('register' as const),
      at: address,
      id: fc.integer({ min: 0, max: 11 }),
      admission: fc.constantFrom<Admission>('any', 'any', 'any', 'no-create', 'rebind-only'),
      dt: fc.nat(40),
    }),
    fc.record({ op: fc.constant('data' as const), at: address, dt: fc.nat(40) }),
    fc.record({ op: fc.constant('expire' as const), dt: fc.nat(3000) }),
  );
  let runs = 0;
  fc.assert(
    fc.property(fc.array(step, { maxLength: 120 }), (steps) => {
      runs++;
      const tb = mk({ maxSessions: 30, maxSessionsPerIp: 5, sessionTimeoutMs: 2000 });
      let now = 0;
      for (const s of steps) {
        now += s.dt;
        if (s.op === 'expire') {
          tb.expire(now);
        } else {
          const addr = ips[s.at.ip]!;
          const ip = ipKeyOf(addr);
          if (s.op === 'register')
            tb.register(ip, addr, s.at.port, `S${s.id}`, now, s.admission); // registers, moves (leaving), refusals
          else if (tb.dataFrom(ip, addr, s.at.port, now) === undefined) tb.implicitRebind(ip, addr, s.at.port, now);
        }
        if (checkConsistent(t, tb) > 0) return false;
      }
      // and in the end everything expires, leaving nothing behind
      tb.expire(now + 10_000);
      return tb.size === 0 && checkConsistent(t, tb) === 0;
    }),
    { numRuns: 300, seed: 20261201 },
  );
  t.equal(runs, 300, '300 random sequences');
});

t.test('SPEC 4.5: the per-IP session cap counts an IPv6 /64 as one IP', async (t) => {
  const tb = mk({ maxSessionsPerIp: 2 });
  t.equal(reg(tb, '2001:db8:0:1::a', 1, 'S1').outcome, 'created');
  t.equal(reg(tb, '2001:db8:0:1::b', 1, 'S2').outcome, 'created', 'another host of the same /64');
  t.equal(reg(tb, '2001:db8:0:1:ffff::c', 1, 'S3').outcome, 'busy-ip', 'a third session from the /64 is refused');
  t.equal(reg(tb, '2001:db8:0:2::a', 1, 'S3').outcome, 'created', 'the next /64 is not');
  t.equal(reg(tb, '2001:db8:0:1::c', 1, 'S1').outcome, 'joined', 'joining a session its /64 is in already costs nothing');
  t.equal(tb.sessionsOnIp('2001:db8:0:1::dead'), 2);
  checkConsistent(t, tb);
  reg(tb, '2001:db8:0:1::a', 1, 'S2'); // a moves to S2: S1 keeps c, still the same /64
  t.equal(tb.sessionsOnIp('2001:db8:0:1::a'), 2);
  tb.expire(TIMEOUT * 10);
  t.equal(tb.sessionsOnIp('2001:db8:0:1::a'), 0, 'expiry gives the /64 its sessions back');
  checkConsistent(t, tb);
});

t.test('SPEC 4.5: a session that never paired expires after the unpaired timeout', async (t) => {
  const tb = mk({ unpairedTimeoutMs: 1000 });
  reg(tb, '1.1.1.1', 1, 'lone');
  reg(tb, '1.1.1.1', 2, 'pair');
  reg(tb, '2.2.2.2', 2, 'pair');
  t.same(
    tb.expire(1000).map((s) => s.id),
    ['lone'],
  );
  t.equal(tb.size, 1, 'a paired session has the session timeout');
  reg(tb, '2.2.2.2', 2, 'other'); // b leaves: 'pair' is alone now, but it paired once
  t.same(
    tb.expire(TIMEOUT - 1).map((s) => s.id),
    ['other'],
    'the new lone session goes after the short timeout',
  );
  t.same(
    tb.expire(TIMEOUT).map((s) => s.id),
    ['pair'],
    'the one that paired once after the long one',
  );
  checkConsistent(t, tb);
});

t.test('SPEC 2.2: the partner takes a slot left silent by a same-IP rejoin, and only that', async (t) => {
  const tb = mk();
  reg(tb, '1.1.1.1', 1000, 'S');
  t.equal(reg(tb, '1.1.1.1', 1001, 'S').outcome, 'joined', 'the same peer from a new NAT port');
  t.equal(sessionOf(tb, 'S')!.quietSlot, 0);
  const r = reg(tb, '2.2.2.2', 2000, 'S');
  t.equal(r.outcome, 'replaced-quiet');
  t.same([r.previousAddress, r.previousPort], ['1.1.1.1', 1000]);
  t.equal(at(tb, '1.1.1.1', 1000), undefined, 'the stale mapping is gone');
  t.equal(at(tb, '1.1.1.1', 1001), sessionOf(tb, 'S'));
  t.equal(at(tb, '2.2.2.2', 2000), sessionOf(tb, 'S'));
  checkConsistent(t, tb);

  const shared = mk();
  reg(shared, '1.1.1.1', 1000, 'S');
  reg(shared, '1.1.1.1', 1001, 'S');
  t.ok(data(shared, '1.1.1.1', 1000, 5), 'the first host speaks: it is alive');
  t.equal(sessionOf(shared, 'S')!.quietSlot, -1);
  t.equal(reg(shared, '2.2.2.2', 2000, 'S').outcome, 'full', 'two live hosts behind one NAT keep their session');
  const ka = mk();
  reg(ka, '1.1.1.1', 1000, 'S');
  reg(ka, '1.1.1.1', 1001, 'S');
  reg(ka, '1.1.1.1', 1000, 'S', 7);
  t.equal(reg(ka, '2.2.2.2', 2000, 'S').outcome, 'full', 'a keepalive counts as speaking');
  checkConsistent(t, ka);
});
