import t from 'tap';
import { parseEndpoint, parseRelayList, pickRelay, relayEnvironment } from '../../src/client/relay-pick';

t.test('SPEC 5.2: QUIC_RELAY_IP forms', async (t) => {
  const p = (s: string) => parseEndpoint(s, 4433, 'QUIC_RELAY_IP');
  t.same(p('203.0.113.10'), { host: '203.0.113.10', port: 4433 });
  t.same(p('203.0.113.10:5000'), { host: '203.0.113.10', port: 5000 });
  t.same(p('relay.example.com'), { host: 'relay.example.com', port: 4433 });
  t.same(p('relay.example.com:7000'), { host: 'relay.example.com', port: 7000 });
  t.same(p('[2001:db8::1]:5000'), { host: '2001:db8::1', port: 5000 });
  t.same(p('[2001:db8::1]'), { host: '2001:db8::1', port: 4433 });
  t.same(p('2001:db8::1'), { host: '2001:db8::1', port: 4433 }, 'bare IPv6 without a port');
  for (const bad of ['', 'host:', 'host:0', 'host:70000', 'host:abc', '[::1', '[nope]:1', 'bad host', '1.2.3.4.5', 'a_b.com']) {
    t.throws(() => p(bad), { code: 'QR_ERR_CONFIG', message: /QUIC_RELAY_IP/ }, JSON.stringify(bad));
  }
});

t.test('the environment: variables named in errors', async (t) => {
  t.same(relayEnvironment({ QUIC_RELAY_IP: '10.0.0.1' }), { relays: [{ host: '10.0.0.1', port: 4433 }], relayOnly: false });
  t.same(relayEnvironment({ QUIC_RELAY_IP: '10.0.0.1', QUIC_RELAY_PORT: '5000' }).relays[0], { host: '10.0.0.1', port: 5000 });
  t.same(relayEnvironment({ QUIC_RELAY_IP: '10.0.0.1:6000', QUIC_RELAY_PORT: '5000' }).relays[0], { host: '10.0.0.1', port: 6000 }, 'an explicit :port wins');
  t.equal(relayEnvironment({ QUIC_RELAY_IP: 'x', QUIC_RELAY_ONLY: 'true' }).relayOnly, true);
  t.equal(relayEnvironment({ QUIC_RELAY_IP: 'x', QUIC_RELAY_ONLY: 'false' }).relayOnly, false);
  t.throws(() => relayEnvironment({}), { message: /QUIC_RELAY_IP/ });
  t.throws(() => relayEnvironment({ QUIC_RELAY_IP: 'x', QUIC_RELAY_PORT: '99999' }), { message: /QUIC_RELAY_PORT/ });
  t.throws(() => relayEnvironment({ QUIC_RELAY_IP: 'x', QUIC_RELAY_ONLY: 'maybe' }), { message: /QUIC_RELAY_ONLY/ });
  t.same(
    parseRelayList('a, b:5,[::1]:6', 4433).map((r) => `${r.host}:${r.port}`),
    ['a:4433', 'b:5', '::1:6'],
  );
});

t.test('rendezvous hashing: a fixed function of the id, so every client version agrees', async (t) => {
  const three = parseRelayList('r1.example:4433,r2.example:4433,r3.example:4433', 4433);
  // Known answers: if these change, old and new clients would meet on different relays.
  const known: Array<[string, string]> = [
    ['session-0', 'r3.example'],
    ['session-1', 'r2.example'],
    ['session-2', 'r3.example'],
    ['session-4', 'r1.example'],
    ['123e4567-e89b-12d3-a456-426614174000', 'r2.example'],
    ['q', 'r2.example'],
  ];
  t.same(
    known.map(([id]) => [id, pickRelay(three, id).host]),
    known,
  );
  t.same(
    known.map(([id]) => [id, pickRelay([...three].reverse(), id).host]),
    known,
    'the order of the list does not matter',
  );
  t.equal(pickRelay(parseRelayList('R1.EXAMPLE:4433,r2.example:4433,r3.example:4433', 4433), 'session-4').host, 'R1.EXAMPLE', 'host names compare case-free');
});

t.test('rendezvous hashing: an added relay takes about its share, all from the others, and load is even', async (t) => {
  const three = parseRelayList('r1.example:4433,r2.example:4433,r3.example:4433', 4433);
  const four = [...three, { host: 'r4.example', port: 4433 }];
  const ids = Array.from({ length: 3000 }, (_, i) => `session-${i}`);
  const before = ids.map((id) => pickRelay(three, id).host);
  const after = ids.map((id) => pickRelay(four, id).host);
  const moved = ids.filter((_, i) => before[i] !== after[i]);
  t.ok(moved.length > 3000 * 0.2 && moved.length < 3000 * 0.3, `adding a 4th relay moved ${moved.length}/3000 (about a quarter)`);
  t.same(
    moved.filter((_, i) => after[ids.indexOf(moved[i]!)] !== 'r4.example'),
    [],
    'every moved session moved to the new relay',
  );
  const load = new Map<string, number>();
  for (const h of before) load.set(h, (load.get(h) ?? 0) + 1);
  t.same(
    [...load.values()].filter((n) => n < 800 || n > 1200),
    [],
    `each of three relays takes 800-1200 of 3000 (${[...load.values()].join(', ')})`,
  );
});
