// The native I/O module at its boundary: loading (and every way it can fail),
// and what a peer can throw at it. Any crash of this process is a failure.
import t from 'tap';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { format } from 'node:util';
import { EXPECTED_LAYOUT, NativeIo, layoutMismatch, loadNative } from '../../src/io/native-io';
import { ipKeyOf } from '../../src/wire/address';
import type { NativeBinding } from '../../src/io/native-io';
import { RelayServer } from '../../src/server/relay-server';
import { silentLoggers } from '../../src/server/log';
import { builtNativeModule, pairUp, startRelay, until } from '../fixtures/udp';

type Tap = { teardown(fn: () => unknown): void };
const built = builtNativeModule();

t.test('loading fails with a reason, never a throw', async (t) => {
  t.match(loadNative(undefined), { error: /carries no native module/ });
  if (built === undefined) return;
  t.match(loadNative({ ...built, target: 'plan9-mips' }), { error: /built for plan9-mips, this is/ }, 'another OS or CPU');
  t.match(loadNative({ ...built, sha256: '0'.repeat(64) }), { error: /checksum mismatch/ }, 'bytes that are not what was built');
  const junk = randomBytes(4096);
  t.match(
    loadNative({ bytes: junk, sha256: createHash('sha256').update(junk).digest('hex'), target: built.target }),
    { error: /./ },
    'not a shared object: the loader says why',
  );
  t.ok('binding' in loadNative(built), 'the real one loads');
});

t.test('the shared-memory layout is named once, in udp_batch.c, and checked at load', async (t) => {
  t.match(layoutMismatch({ ...EXPECTED_LAYOUT, regionShift: 16 }), /layout differs/, 'a module laid out otherwise is refused (auto: dgram, saying why)');
  t.match(layoutMismatch(undefined), /layout differs/, 'so is one that does not say');
  if (built === undefined) return;
  const loaded = loadNative(built);
  t.ok('binding' in loaded);
  if ('binding' in loaded) t.same(loaded.binding.layout, EXPECTED_LAYOUT, 'the module exports the layout native-io.ts uses');
});

t.test('--io native fails loudly without the module; auto falls back and says why', async (t) => {
  const strict = new RelayServer({ host: '127.0.0.1', port: 0, io: 'native' }, { loggers: silentLoggers(), nativeModule: null });
  await t.rejects(strict.start(), { code: 'QR_ERR_NATIVE', message: /--io native: this build carries no native module/ });
  const lines: string[] = [];
  const loggers = silentLoggers();
  const relayLog = Object.assign((fmt: string, ...args: unknown[]) => lines.push(format(fmt, ...args)), { enabled: true });
  const auto = new RelayServer(
    { host: '127.0.0.1', port: 0, io: 'auto' },
    { loggers: { ...loggers, relay: relayLog as typeof loggers.relay }, nativeModule: null },
  );
  t.teardown(() => auto.close());
  await auto.start();
  t.equal(auto.ioKind, 'dgram');
  t.match(lines.join('\n'), /native I\/O not in use \(this build carries no native module\)/);
  t.match(lines[0], /dgram I\/O/, 'the start line says which path');
  const v6 = new RelayServer({ host: '::1', port: 0, io: 'auto' }, { loggers: silentLoggers(), ...(built ? { nativeModule: built } : {}) });
  t.teardown(() => v6.close());
  await v6.start();
  t.equal(v6.ioKind, 'dgram', 'IPv6: dgram');
  t.equal(v6.ioFallbackReason, built ? 'native I/O is IPv4-only' : v6.ioFallbackReason);
});

async function sink(t: Tap, host = '127.0.0.1'): Promise<{ socket: dgram.Socket; port: number; got: Buffer[] }> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 32 << 20 });
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  await new Promise<void>((r) => socket.bind(0, host, () => r()));
  t.teardown(() => socket.close());
  return { socket, port: (socket.address() as AddressInfo).port, got };
}

t.test('the native boundary under what peers can send', { skip: built === undefined ? 'module not built' : false }, async (t) => {
  t.test('zero-length, 65507-byte and every size between forwarded byte for byte', async (t) => {
    const { relay, address } = await startRelay(t, { io: 'native', recvBufferBytes: 32 << 20, sendBufferBytes: 32 << 20 });
    t.equal(relay.ioKind, 'native');
    const [a, b] = await pairUp(t, address, 'native-sizes');
    const sizes = [0, 1, 1199, 1200, 9000, 65507];
    const sent = sizes.map((n) => randomBytes(n));
    for (const d of sent) a.send(d);
    const all: Buffer[] = [];
    for (let i = 0; i < sent.length; i++) all.push(await b.next());
    t.same(
      all.map((m) => m.toString('hex')),
      sent.map((m) => m.toString('hex')),
      'each arrived unchanged, in order',
    );
  });

  t.test('a burst far larger than a batch keeps every datagram and its order', async (t) => {
    const { address } = await startRelay(t, { io: 'native', recvBufferBytes: 32 << 20, sendBufferBytes: 32 << 20 });
    const s = await sink(t);
    const src = await sink(t);
    for (const [sock, port] of [
      [src.socket, src.port],
      [s.socket, s.port],
    ] as const) {
      sock.send('REG:native-burst\n', address.port, '127.0.0.1');
      await until(() => (port === src.port ? src.got : s.got).some((g) => g.toString() === 'ACK\n'));
    }
    s.got.length = 0;
    const n = 1000;
    for (let i = 0; i < n; i++) {
      const d = Buffer.alloc(100);
      d.writeUInt32BE(i, 0);
      src.socket.send(d, address.port, '127.0.0.1');
    }
    await until(() => s.got.length === n, 5000);
    t.same(
      s.got.map((d) => d.readUInt32BE(0)),
      Array.from({ length: n }, (_, i) => i),
      `${n} datagrams, in order`,
    );
  });

  t.test('a vanished peer costs errors, not the socket', async (t) => {
    const { relay, address } = await startRelay(t, { io: 'native' });
    const [a, b] = await pairUp(t, address, 'native-vanish');
    const [c, d] = await pairUp(t, address, 'native-other', '127.0.0.4', '127.0.0.5');
    b.close(); // its port now answers with ICMP port unreachable
    for (let i = 0; i < 50; i++) a.send(Buffer.from(`to nobody ${i}`));
    await new Promise((r) => setTimeout(r, 50));
    c.send('still here');
    t.equal((await d.next()).toString(), 'still here', 'other sessions carry on');
    relay.reap();
    t.ok(relay.counters.forwardedDatagrams >= 51);
  });

  t.test('close() in the middle of a batch', async (t) => {
    const loaded = loadNative(built!);
    if (!('binding' in loaded)) return t.fail(loaded.error);
    const io = new NativeIo(loaded.binding as NativeBinding);
    const bound = await io.bind('127.0.0.1', 0, 4, 1 << 20, 1 << 20);
    let seen = 0;
    let closing: Promise<void> | undefined;
    io.start(
      (_data, _len, address, _ip, port) => {
        seen++;
        io.send(Buffer.from('x'), port, address); // queued in the batch, then dropped by close
        if (seen === 10) closing = io.close();
      },
      () => undefined,
    );
    const s = await sink(t);
    for (let i = 0; i < 200; i++) s.socket.send(Buffer.alloc(10), bound.port, '127.0.0.1');
    await until(() => closing !== undefined, 3000);
    await closing;
    t.equal(seen, 10, 'nothing delivered after close(), even from the same batch');
    await io.close(); // twice is fine
    t.same(io.stats(), [], 'no stats from a closed socket');
  });

  t.test('thousands of sessions through one batch loop', async (t) => {
    const { relay, address } = await startRelay(t, { io: 'native', recvBufferBytes: 32 << 20 });
    const n = 2000;
    // one address is one peer: n sockets on two IPs, two per session
    const peers: dgram.Socket[] = [];
    const acks = { n: 0 };
    const data = { n: 0 };
    for (let i = 0; i < n; i++) {
      const p = dgram.createSocket('udp4');
      p.on('message', (m) => {
        if (m.toString() === 'ACK\n') acks.n++;
        else if (m.toString() === `d${i - 1}`) data.n++;
      });
      await new Promise<void>((r) => p.bind(0, i % 2 === 0 ? '127.0.0.6' : '127.0.0.7', () => r()));
      peers.push(p);
    }
    t.teardown(() => {
      for (const p of peers) p.close();
    });
    for (let i = 0; i < n; i++) peers[i]!.send(`REG:many-${i >> 1}\n`, address.port, '127.0.0.1');
    await until(() => acks.n === n, 10_000);
    t.equal(relay.table.size, n / 2, `${n / 2} sessions`);
    t.equal(relay.table.pairedCount, n / 2, 'all paired');
    for (let i = 0; i < n; i += 2) peers[i]!.send(`d${i}`, address.port, '127.0.0.1');
    await until(() => data.n === n / 2, 10_000);
    t.equal(data.n, n / 2, 'each session carried its datagram to its own partner');
  });
});

t.test('a batch hands the relay the same address key ipKeyOf would, above 127/8 too', async (t) => {
  // A stand-in for the module: what it would write into the shared memory for one datagram.
  let onBatch: ((n: number) => void) | undefined;
  let rxMeta: Int32Array | undefined;
  const fake = {
    batch: 64,
    slotBytes: 65536,
    scratchBytes: 256,
    open: () => [{}, 4433, 0, 0] as [unknown, number, number, number],
    start: (_h: unknown, _rx: ArrayBuffer, meta: ArrayBuffer, _tx: ArrayBuffer, _txd: ArrayBuffer, cb: (n: number) => void) => {
      rxMeta = new Int32Array(meta);
      onBatch = cb;
    },
    send: () => 0,
    stats: () => [],
    close: () => undefined,
  } satisfies NativeBinding;
  const io = new NativeIo(fake);
  await io.bind('127.0.0.1', 4433, 4, 0, 0);
  const seen: Array<[string, unknown, number, number]> = [];
  io.start(
    (_d, len, address, ip, port) => seen.push([address, ip, port, len]),
    () => undefined,
  );
  for (const [address, port] of [
    ['198.51.100.7', 40000],
    ['10.1.0.2', 1],
    ['255.255.255.254', 65535],
  ] as const) {
    const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
    rxMeta!.set([12, (a << 24) | (b << 16) | (c << 8) | d | 0, port, 0], 0);
    onBatch!(1);
    t.same(seen.pop(), [address, ipKeyOf(address), port, 12], address);
  }
});
