// SPEC 3.3: /metrics and /healthz over HTTP, port 0.
import t from 'tap';
import { bindPeer, register, startRelay } from '../fixtures/udp';

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

t.test('metrics reflect what the relay did', async (t) => {
  const { relay, address } = await startRelay(t, { metricsPort: 0 });
  const m = relay.metricsAddress()!;
  t.equal(m.address, '127.0.0.1', 'loopback by default');
  const a = await bindPeer(t, address, '127.0.0.2');
  const b = await bindPeer(t, address, '127.0.0.3');
  await register(a, 'metrics-session');
  await register(b, 'metrics-session');
  a.send('12345');
  await b.next();
  const c = await bindPeer(t, address, '127.0.0.4');
  t.equal(await register(c, 'metrics-session'), 'ERR:FULL\n');

  const r = await get(m.port, '/metrics');
  t.equal(r.status, 200);
  t.match(r.type, /^text\/plain/);
  const metric = (line: string): void => {
    t.ok(r.body.split('\n').includes(line), line);
  };
  metric('quic_relay_sessions 1');
  metric('quic_relay_sessions_paired 1');
  metric('quic_relay_registrations_total{result="created"} 1');
  metric('quic_relay_registrations_total{result="joined"} 1');
  metric('quic_relay_registrations_total{result="full"} 1');
  metric('quic_relay_forwarded_datagrams_total 1');
  metric('quic_relay_forwarded_bytes_total 5');
  metric('quic_relay_dropped_datagrams_total{reason="unpaired"} 0');
  metric('quic_relay_rebinds_total{kind="implicit"} 0');
  metric('quic_relay_sessions_reaped_total 0');
  metric('quic_relay_sessions_emptied_total 0');
  t.match(r.body, /^process_resident_memory_bytes \d+/m, 'process figures');
  t.match(r.body, /# TYPE quic_relay_forwarded_datagrams_total counter/);
  t.match(r.body, /# TYPE quic_relay_sessions gauge/);

  const h = await get(m.port, '/healthz');
  t.equal(h.status, 200);
  const health = JSON.parse(h.body);
  t.equal(health.status, 'ok');
  t.equal(health.sessionsOpen, 1);
  t.equal((await get(m.port, '/nope')).status, 404);
});

t.test('--metrics-host is honoured', async (t) => {
  const { relay } = await startRelay(t, { metricsPort: 0, metricsHost: '127.0.0.2' });
  t.equal(relay.metricsAddress()!.address, '127.0.0.2');
  const res = await fetch(`http://127.0.0.2:${relay.metricsAddress()!.port}/healthz`);
  t.equal(res.status, 200);
  await res.text();
});

t.test('no metrics server unless asked', async (t) => {
  const { relay } = await startRelay(t);
  t.equal(relay.metricsAddress(), undefined);
});
