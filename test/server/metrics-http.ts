// SPEC 3.3, 3.6: /metrics, /healthz and /readyz over HTTP, attached to a relay from outside, port 0.
import t from 'tap';
import { MetricsHttpServer } from '../../src/server/metrics-http';
import type { RelayServer } from '../../src/server/relay-server';
import { ADDRESS_QUERY_DATAGRAM } from '../../src/wire/protocol';
import { bindPeer, register, startRelay } from '../fixtures/udp';

type Tap = { teardown(fn: () => unknown): void };

async function serve(t: Tap, relay: RelayServer, host = '127.0.0.1'): Promise<number> {
  const http = new MetricsHttpServer(relay);
  t.teardown(() => http.close());
  const a = await http.listen(host, 0);
  return a.port;
}

async function get(port: number, path: string, host = '127.0.0.1'): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://${host}:${port}${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

t.test('metrics reflect what the relay did', async (t) => {
  const { relay, address } = await startRelay(t);
  const port = await serve(t, relay);
  const a = await bindPeer(t, address, '127.0.0.2');
  const b = await bindPeer(t, address, '127.0.0.3');
  await register(a, 'metrics-session');
  await register(b, 'metrics-session');
  a.send('12345');
  await b.next();
  const c = await bindPeer(t, address, '127.0.0.4');
  t.equal(await register(c, 'metrics-session'), 'ERR:FULL\n');
  c.send(ADDRESS_QUERY_DATAGRAM);
  await c.next();

  const r = await get(port, '/metrics');
  t.equal(r.status, 200);
  t.match(r.type, /^text\/plain/);
  const metric = (line: string): void => {
    t.ok(r.body.split('\n').includes(line), line);
  };
  metric(`quic_relay_build_info{version="${relay.version}"} 1`);
  metric(`quic_relay_io_info{path="${relay.ioKind}"} 1`);
  t.match(r.body, /^quic_relay_receive_errors_total 0$/m, 'kernel receive errors');
  t.match(r.body, /^quic_relay_sends_queued_total \d+$/m, 'sends that waited');
  metric('quic_relay_sessions 1');
  metric('quic_relay_sessions_paired 1');
  metric('quic_relay_draining 0');
  t.match(r.body, /^quic_relay_rate_limited_ips [0-3]$/m, "the rate limiter's memory (at most the three IPs that registered)");
  metric('quic_relay_registrations_total{result="created"} 1');
  metric('quic_relay_registrations_total{result="joined"} 1');
  metric('quic_relay_registrations_total{result="full"} 1');
  metric('quic_relay_registrations_total{result="auth"} 0');
  metric('quic_relay_registrations_total{result="busy_draining"} 0');
  metric('quic_relay_address_queries_total 1');
  metric('quic_relay_forwarded_datagrams_total 1');
  metric('quic_relay_forwarded_bytes_total 5');
  metric('quic_relay_dropped_datagrams_total{reason="unpaired"} 0');
  metric('quic_relay_dropped_datagrams_total{reason="rate"} 0');
  metric('quic_relay_rebinds_total{kind="implicit"} 0');
  metric('quic_relay_sessions_reaped_total 0');
  metric('quic_relay_sessions_emptied_total 0');
  t.match(r.body, /^process_resident_memory_bytes \d+/m, 'process figures');
  t.match(r.body, /# TYPE quic_relay_forwarded_datagrams_total counter/);
  t.match(r.body, /# TYPE quic_relay_sessions gauge/);

  const h = await get(port, '/healthz');
  t.equal(h.status, 200);
  const health = JSON.parse(h.body);
  t.equal(health.status, 'ok');
  t.equal(health.version, relay.version, 'the running version');
  t.equal(health.sessionsOpen, 1);
  t.equal((await get(port, '/nope')).status, 404);
});

t.test('SPEC 3.6: /readyz is 503 while draining, /healthz stays 200', async (t) => {
  const { relay, address } = await startRelay(t);
  const port = await serve(t, relay);
  await register(await bindPeer(t, address), 'keeps-it-open');
  t.equal((await get(port, '/readyz')).status, 200, 'ready before the drain');
  void relay.drain();
  t.equal((await get(port, '/readyz')).status, 503, 'not ready while draining');
  t.equal((await get(port, '/healthz')).status, 200, 'still healthy');
  t.ok((await get(port, '/metrics')).body.split('\n').includes('quic_relay_draining 1'));
});

t.test('the host it is given is honoured', async (t) => {
  const { relay } = await startRelay(t);
  const port = await serve(t, relay, '127.0.0.2');
  t.equal((await get(port, '/healthz', '127.0.0.2')).status, 200);
});

t.test('scraping flat out renders /metrics at most once per gap, never stale', async (t) => {
  const { relay, address } = await startRelay(t);
  let renders = 0;
  const counters = relay.counters;
  // Count renderings through a counter every rendering reads once.
  const source = Object.create(relay, { counters: { get: () => counters } });
  Object.defineProperty(source, 'rateTrackedIps', {
    get: () => {
      renders++;
      return 0;
    },
  });
  const http = new MetricsHttpServer(source, { minRenderGapMs: 200 });
  t.teardown(() => http.close());
  const { port } = await http.listen('127.0.0.1', 0);
  await get(port, '/metrics');
  t.equal(renders, 1);
  const a = await bindPeer(t, address, '127.0.0.2');
  await register(a, 'fresh');
  const burst = await Promise.all(Array.from({ length: 10 }, () => get(port, '/metrics')));
  t.equal(renders, 2, 'ten scrapes inside the gap share one rendering');
  for (const r of burst) t.match(r.body, /^quic_relay_registrations_total\{result="created"\} 1$/m, 'made after they arrived: it shows the registration');
});

t.test('the metrics server bounds its connections and closes slow requests', async (t) => {
  const { relay } = await startRelay(t);
  const http = new MetricsHttpServer(relay, { maxConnections: 2, headersTimeoutMs: 300, requestTimeoutMs: 300 });
  t.teardown(() => http.close());
  const { port } = await http.listen('127.0.0.1', 0);
  const net = await import('node:net');
  const open = (): Promise<import('node:net').Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.resume(); // read what the server says, so that its close reaches us
      s.on('error', reject);
      t.teardown(() => s.destroy());
    });
  const closed = (s: import('node:net').Socket): Promise<string> =>
    new Promise((resolve) => {
      if (s.destroyed) resolve('closed');
      s.on('close', () => resolve('closed'));
    });
  const slow = await open();
  slow.write('GET /metrics HTTP/1.1\r\nHost: x\r\n'); // and never the end of the headers
  const second = await open();
  const third = await open();
  t.equal(await closed(third), 'closed', 'a connection past the cap is closed at once');
  t.equal(await closed(slow), 'closed', 'headers that never end are cut off');
  second.destroy();
  t.equal((await get(port, '/healthz')).status, 200, 'and the server serves on');
});

t.test('/debug/sessions: the oldest sessions, bounded, ids cut short', async (t) => {
  const { relay, address } = await startRelay(t);
  const port = await serve(t, relay);
  const a = await bindPeer(t, address, '127.0.0.2');
  const b = await bindPeer(t, address, '127.0.0.3');
  await register(a, 'debug-session-one');
  await register(b, 'debug-session-one');
  a.send('12345');
  await b.next();
  const c = await bindPeer(t, address, '127.0.0.4');
  await register(c, 'debug-session-two');
  const r = await get(port, '/debug/sessions');
  t.equal(r.status, 200);
  const v = JSON.parse(r.body) as {
    sessions: number;
    paired: number;
    shown: number;
    truncated: boolean;
    list: Array<{ id: string; paired: boolean; datagrams: number; bytes: number; transport: string }>;
  };
  t.match(v, { sessions: 2, paired: 1, shown: 2, truncated: false });
  t.match(v.list[0], { id: 'debug-...(17)', paired: true, datagrams: 1, bytes: 5, transport: 'udp' }, 'the oldest first, with what it carried');
  t.notMatch(r.body, /session-one|session-two/, 'never a whole id');
  const one = JSON.parse((await get(port, '/debug/sessions?limit=1')).body) as { shown: number; truncated: boolean };
  t.match(one, { shown: 1, truncated: true }, '?limit= bounds it');
  t.equal((await get(port, '/debug/sessions?limit=x&%%')).status, 200, 'a strange query is the default');
});
