import t from 'tap';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { formatProbe, probe, probePassed } from '../../src/client/probe';
import { startRelay } from '../fixtures/udp';

t.test('probe passes against a working relay', async (t) => {
  const { address } = await startRelay(t);
  const r = await probe({ relay: { host: '127.0.0.1', port: address.port }, count: 20, intervalMs: 1, timeoutMs: 2000 });
  t.ok(r.answered);
  t.equal(r.received, 20);
  t.equal(r.lossPct, 0);
  t.ok(probePassed(r));
  t.match(formatProbe(r), /answered, both peers registered in [\d.]+ ms; 20\/20 round trips, loss 0\.0%, RTT p50 [\d.]+ ms p99 [\d.]+ ms/);
});

t.test('probe fails, in one line, when nothing answers', async (t) => {
  const hole = dgram.createSocket('udp4'); // swallows everything
  await new Promise<void>((r) => hole.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => hole.close());
  const r = await probe({ relay: { host: '127.0.0.1', port: (hole.address() as AddressInfo).port }, count: 5, intervalMs: 1, timeoutMs: 1000 });
  t.notOk(r.answered);
  t.notOk(probePassed(r));
  t.match(formatProbe(r), /no answer .*did not acknowledge session probe-/);
});
