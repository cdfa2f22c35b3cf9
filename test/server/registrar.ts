// The registration policy in one place (SPEC 2.2, 3.6, 4.1, 4.3), pure: a
// table, a limiter and a clock that the test turns.
import t from 'tap';
import { ipKeyOf } from '../../src/wire/address';
import { ACK, ERR_AUTH, ERR_BUSY } from '../../src/wire/protocol';
import { makeTicket } from '../../src/wire/tickets';
import { OUTCOMES, Registrar } from '../../src/server/registrar';
import { RegistrationRateLimiter } from '../../src/server/limits';
import { REGISTRATION_RESULTS } from '../../src/server/counters';
import { SessionTable } from '../../src/server/session-table';

const SECRET = 'registrar-secret-0123456789';
const NOW_SECS = 1_800_000_000;

function make(authSecrets: string[] = [], perSec = 0) {
  const table = new SessionTable({ sessionTimeoutMs: 10_000, unpairedTimeoutMs: 10_000, maxSessions: 10, maxSessionsPerIp: 10, expiryTickMs: 250 });
  return { table, registrar: new Registrar(table, new RegistrationRateLimiter(perSec, Math.max(1, perSec)), { authSecrets }) };
}
const reg = (r: Registrar, addr: string, port: number, id: string, draining = false, nowSecs = NOW_SECS) =>
  r.register(ipKeyOf(addr), addr, port, id, 0, nowSecs, draining).outcome;

t.test('one table: every outcome has a reply, a metric label that exists, and a log line', async (t) => {
  for (const [outcome, spec] of Object.entries(OUTCOMES)) {
    t.ok(REGISTRATION_RESULTS.includes(spec.result), `${outcome} counts under result="${spec.result}"`);
    t.equal(spec.reply.equals(ACK), ['keepalive', 'created', 'joined', 'replaced-quiet', 'rebound'].includes(outcome), `${outcome}: ACK only when registered`);
  }
  t.same(OUTCOMES['busy-rate'].reply, ERR_BUSY);
  t.same(OUTCOMES['bad-ticket'].reply, ERR_AUTH);
  t.same([...new Set(Object.values(OUTCOMES).map((o) => o.result))].sort(), [...REGISTRATION_RESULTS].sort(), 'and every label has an outcome');
});

t.test('SPEC 4.1: the rate is spent before a ticket is checked; keepalives spend nothing', async (t) => {
  const { registrar } = make([], 2);
  t.equal(reg(registrar, '1.1.1.1', 1, 'a'), 'created');
  t.equal(reg(registrar, '1.1.1.1', 2, 'b'), 'created');
  t.equal(reg(registrar, '1.1.1.1', 3, 'c'), 'busy-rate');
  t.equal(reg(registrar, '1.1.1.1', 1, 'a'), 'keepalive', 'a keepalive is never refused');
});

t.test('SPEC 4.3: tickets, expired tickets and drain', async (t) => {
  const { registrar } = make([SECRET]);
  t.equal(reg(registrar, '1.1.1.1', 1, 'plain-id'), 'bad-ticket');
  const ticket = makeTicket(SECRET, { nowSecs: NOW_SECS, ttlSecs: 60 });
  t.equal(reg(registrar, '1.1.1.1', 1, ticket), 'created');
  t.equal(reg(registrar, '2.2.2.2', 1, ticket, false, NOW_SECS + 60), 'expired', 'an expired ticket may not join');
  t.equal(reg(registrar, '2.2.2.2', 1, ticket), 'joined');
  t.equal(reg(registrar, '2.2.2.2', 2, ticket, false, NOW_SECS + 3600), 'rebound', 'but may rebind in its own session');
  t.equal(reg(registrar, '3.3.3.3', 1, makeTicket(SECRET, { nowSecs: NOW_SECS }), true), 'busy-draining', 'draining: no new session');
  t.equal(reg(registrar, '1.1.1.1', 1, ticket, true, NOW_SECS + 3600), 'keepalive', 'draining: keepalives go on');
});
