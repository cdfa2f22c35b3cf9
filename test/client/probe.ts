import t from 'tap';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { formatNatCheck, formatProbe, natCheck, probe, probePassed } from '../../src/client/probe';
import { startRelay, until } from '../fixtures/udp';

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

t.test('SPEC 1.5: the probe reports the public address the relay sees', async (t) => {
  const { address } = await startRelay(t);
  const r = await probe({ relay: { host: '127.0.0.1', port: address.port }, count: 2, intervalMs: 1, timeoutMs: 2000 });
  t.equal(r.publicAddress?.address, '127.0.0.1');
  t.ok((r.publicAddress?.port ?? 0) > 0);
  t.match(formatProbe(r), new RegExp(`public address 127\\.0\\.0\\.1:${r.publicAddress?.port}$`));
});

/** A stand-in relay that answers every address query with `port` (a NAT that maps per destination). */
async function fakeRelay(t: { teardown(fn: () => unknown): void }, answer: ((rinfo: dgram.RemoteInfo) => string) | undefined): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.on('message', (_m, rinfo) => {
    if (answer) s.send(answer(rinfo), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => s.close());
  return (s.address() as AddressInfo).port;
}

t.test('NAT check: one socket, several relays: the same port means punching can work, different ports mean it cannot', async (t) => {
  const one = await startRelay(t);
  const two = await startRelay(t);
  const same = await natCheck([
    { host: '127.0.0.1', port: one.address.port },
    { host: '127.0.0.1', port: two.address.port },
  ]);
  t.equal(same.mapping, 'consistent', 'loopback has no NAT: every relay sees the same port');
  t.equal(same.seen[0]!.address?.port, same.seen[1]!.address?.port);
  t.match(formatNatCheck(same), /hole punching can work from here/);
  const symmetric = await fakeRelay(t, (rinfo) => `ADDR ${rinfo.address}:${rinfo.port + 1}\n`);
  const varies = await natCheck([
    { host: '127.0.0.1', port: one.address.port },
    { host: '127.0.0.1', port: symmetric },
  ]);
  t.equal(varies.mapping, 'varies');
  t.match(formatNatCheck(varies), /symmetric NAT/);
  const mute = await fakeRelay(t, undefined);
  const unknown = await natCheck(
    [
      { host: '127.0.0.1', port: one.address.port },
      { host: '127.0.0.1', port: mute },
    ],
    200,
  );
  t.equal(unknown.mapping, 'unknown', 'a relay without address queries leaves it open');
  t.equal(unknown.seen[1]!.address, undefined);
});

t.test('the probe leaves no paired session behind (it used to stay 300 s)', async (t) => {
  const { relay, address } = await startRelay(t);
  const r = await probe({ relay: { host: '127.0.0.1', port: address.port }, count: 2, intervalMs: 1, timeoutMs: 2000 });
  t.ok(probePassed(r));
  await until(() => relay.counters.sessionsEmptied === 1); // the second to leave empties it
  t.equal(relay.table.pairedCount, 0, 'its session was emptied and removed at once');
  t.equal(relay.table.size, 2, 'two unpaired ones, gone after --unpaired-timeout-secs');
});
