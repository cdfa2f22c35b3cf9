// SPEC 1.1: `--host ::` is dual-stack; an IPv4 peer arrives IPv4-mapped.
import t from 'tap';
import dgram from 'node:dgram';
import { bindPeer, register, startRelay } from '../fixtures/udp';

async function hasIPv6Loopback(): Promise<boolean> {
  const s = dgram.createSocket('udp6');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    try {
      s.close();
    } catch {
      /* not bound */
    }
  }
}

t.test('dual-stack relay on ::', async (t) => {
  if (!(await hasIPv6Loopback())) {
    t.skip('no ::1 on this machine', async () => undefined);
    return;
  }
  const { relay, address } = await startRelay(t, { host: '::' });
  t.equal(address.address, '::');
  const v6 = await bindPeer(t, { ...address, address: '::1' }, '::1');
  const v4 = await bindPeer(t, { ...address, address: '127.0.0.1' }, '127.0.0.1');
  t.equal(await register(v6, 'dual'), 'ACK\n', 'IPv6 peer');
  t.equal(await register(v4, 'dual'), 'ACK\n', 'IPv4 peer through the dual-stack socket');
  v6.send('six to four');
  t.equal((await v4.next()).toString(), 'six to four');
  v4.send('four to six');
  t.equal((await v6.next()).toString(), 'four to six');
  // the mapped IPv4 peer is keyed like plain IPv4: implicit rebind works for it too
  const v4b = await bindPeer(t, { ...address, address: '127.0.0.1' }, '127.0.0.1');
  v4b.send('new port');
  t.equal((await v6.next()).toString(), 'new port');
  t.equal(relay.counters.rebindsImplicit, 1);
  t.equal(relay.table.sessionsOnIp(0x7f000001), 1);
});

t.test('IPv6-only relay on ::1', async (t) => {
  if (!(await hasIPv6Loopback())) {
    t.skip('no ::1 on this machine', async () => undefined);
    return;
  }
  const { address } = await startRelay(t, { host: '::1' });
  const a = await bindPeer(t, address, '::1');
  const b = await bindPeer(t, address, '::1');
  await register(a, 'six');
  await register(b, 'six');
  a.send(Buffer.alloc(0));
  t.equal((await b.next()).length, 0, 'zero-length datagram over IPv6');
});
