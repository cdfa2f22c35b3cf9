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
  t.same(parseRelayList('a, b:5,[::1]:6', 4433).map((r) => `${r.host}:${r.port}`), ['a:4433', 'b:5', '::1:6']);
});

t.test('rendezvous hashing: stable, order-free, and moves few sessions', async (t) => {
  const three = parseRelayList('r1.example:4433,r2.example:4433,r3.example:4433', 4433);
  const reversed = [...three].reverse();
  const four = [...three, { host: 'r4.example', port: 4433 }];
  const ids = Array.from({ length: 3000 }, (_, i) => `session-${i}`);
  let moved = 0;
  const load = new Map<string, number>();
  for (const id of ids) {
    const a = pickRelay(three, id);
    t.equal(pickRelay(three, id), a) || t.bailout('unstable');
    if (pickRelay(reversed, id) !== three.find((r) => r.host === a.host) && pickRelay(reversed, id).host !== a.host) t.fail('order matters');
    const b = pickRelay(four, id);
    if (b.host !== a.host) {
      moved++;
      if (b.host !== 'r4.example') t.fail(`${id} moved between old relays`);
    }
    load.set(a.host, (load.get(a.host) ?? 0) + 1);
  }
  t.ok(moved > 3000 * 0.2 && moved < 3000 * 0.3, `adding a 4th relay moved ${moved}/3000 (about a quarter), all to it`);
  for (const [host, n] of load) t.ok(n > 800 && n < 1200, `${host} takes ${n}/3000`);
});
