// Fuzz targets (issue: "nothing a stranger sends can crash the relay"): the
// relay's datagram handler and the control codec, fed random and mutated
// inputs by fast-check. `npm test` runs a short pass; `npm run fuzz` runs
// FUZZ_RUNS (default 20000) of each, with a fresh seed that a failure prints.
//
// The relay runs on FakeIo: the handler is called synchronously, exactly as a
// socket would call it, and every datagram it sends is checked.
import t from 'tap';
import type { Test } from 'tap';
import fc from 'fast-check';
import { RelayServer } from '../../src/server/relay-server';
import { silentLoggers } from '../../src/server/log';
import { controlKey, decodeControl, encodeControl, PROBE_BYTES } from '../../src/client/control';
import type { ControlMessage } from '../../src/client/control';
import { ADDRESS_QUERY_DATAGRAM } from '../../src/wire/protocol';
import { makeTicket } from '../../src/wire/tickets';
import { MAX_DATAGRAM } from '../../src/wire/constants';
import { FakeIo } from '../fixtures/fake-io';
import { checkConsistent } from '../fixtures/table-check';

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
const SECRET = 'fuzz-secret-0123456789abcdef';
const OWN = { address: '198.51.100.1', port: 4433 };
const PEER_RELAY = { address: '198.51.100.2', port: 4433 };
/** Sources: a few hosts, one behind a shared NAT (two ports), IPv6 of one /64, port 0, and addresses that lead back to a relay. */
const SOURCES: ReadonlyArray<readonly [string, number]> = [
  ['203.0.113.1', 1000],
  ['203.0.113.1', 1001],
  ['203.0.113.2', 2000],
  ['203.0.113.3', 3000],
  ['2001:db8::1', 4000],
  ['2001:db8::2', 4000],
  ['2001:db8:0:0:ffff::3', 4001],
  ['203.0.113.4', 0],
  [OWN.address, OWN.port],
  [PEER_RELAY.address, PEER_RELAY.port],
  ['0.0.0.0', OWN.port],
];
const IDS = ['a', 'session-1', 'session-2', '123e4567-e89b-12d3-a456-426614174000'];

function payloads(nowSecs: number): fc.Arbitrary<Buffer> {
  const tickets = [makeTicket(SECRET, { nowSecs }), makeTicket(SECRET, { nowSecs: nowSecs - 7200 }), makeTicket('another-secret-0123456789', { nowSecs })];
  const reg = fc
    .constantFrom(...IDS, ...tickets)
    .chain((id) => fc.constantFrom(`REG:${id}`, `REG:${id}\n`, `REG:${id}\r\n`))
    .map((s) => Buffer.from(s, 'latin1'));
  const mutate = (base: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> =>
    fc.tuple(base, fc.nat(80), fc.nat(255), fc.constantFrom('flip', 'cut', 'append')).map(([b, at, byte, how]) => {
      const out = Buffer.from(b);
      if (how === 'flip' && out.length > 0) out[at % out.length] = byte;
      if (how === 'cut') return out.subarray(0, at % (out.length + 1));
      if (how === 'append') return Buffer.concat([out, Buffer.from([byte])]);
      return out;
    });
  return fc.oneof(
    { weight: 4, arbitrary: reg },
    { weight: 3, arbitrary: mutate(reg) },
    { weight: 1, arbitrary: fc.constant(ADDRESS_QUERY_DATAGRAM) },
    { weight: 1, arbitrary: mutate(fc.constant(ADDRESS_QUERY_DATAGRAM)) },
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)) },
    { weight: 1, arbitrary: fc.constantFrom(Buffer.alloc(0), Buffer.alloc(MAX_DATAGRAM, 0x52)) },
  );
}

interface Step {
  source: number;
  data: Buffer;
  dtMs: number;
}

/** Runs `steps` against a fresh relay and returns the first broken promise, or undefined. */
async function drive(options: ConstructorParameters<typeof RelayServer>[0], steps: Step[], startSecs: number): Promise<string | undefined> {
  let now = 0;
  const io = new FakeIo({ address: OWN.address, port: OWN.port, family: 'IPv4' });
  const relay = new RelayServer(
    { host: OWN.address, port: OWN.port, peerRelays: [`${PEER_RELAY.address}:${PEER_RELAY.port}`], ...options },
    { io, clock: () => now, wallClock: () => startSecs * 1000 + now, reapIntervalMs: 0, loggers: silentLoggers(), hostAddresses: () => [] },
  );
  await relay.start();
  try {
    const failures: string[] = [];
    const checker = { fail: (why: string) => failures.push(why) } as unknown as Test;
    for (const step of steps) {
      const [address, port] = SOURCES[step.source]!;
      now += step.dtMs;
      const before = io.sent.length;
      relay.reap(now, 64);
      try {
        io.deliver(step.data, address, port);
      } catch (err) {
        return `the handler threw on ${step.data.length} bytes from ${address}:${port}: ${(err as Error).stack}`;
      }
      for (const s of io.sent.slice(before)) {
        if (s.to.port === 0) return `sent to port 0 (${s.to.address})`;
        if ((s.to.address === OWN.address || s.to.address === PEER_RELAY.address || s.to.address === '0.0.0.0') && s.to.port === OWN.port)
          return `sent to a relay: ${s.to.address}:${s.to.port}`;
        const isForward = s.data === step.data || (s.data.length === step.data.length && s.data.equals(step.data) && s.to.address !== address);
        if (!isForward && s.data.length > step.data.length) return `a ${s.data.length}-byte reply to a ${step.data.length}-byte request`;
        if (isForward && !s.data.equals(step.data)) return 'a forward changed the bytes';
      }
      if (io.sent.length - before > 1) return `${io.sent.length - before} datagrams out for one in`;
      if (relay.table.size > relay.config.maxSessions) return `${relay.table.size} sessions, over --max-sessions`;
      checkConsistent(checker, relay.table);
      if (failures.length > 0) return failures.join('; ');
    }
    relay.reap(now + 10_000_000);
    if (relay.table.size !== 0) return `${relay.table.size} sessions outlive every timeout`;
    return undefined;
  } finally {
    await relay.close();
  }
}

const steps = (nowSecs: number): fc.Arbitrary<Step[]> =>
  fc.array(fc.record({ source: fc.nat(SOURCES.length - 1), data: payloads(nowSecs), dtMs: fc.oneof(fc.constant(0), fc.nat(2000), fc.nat(400_000)) }), {
    maxLength: 60,
  });

const START_SECS = 1_800_000_000;

for (const [name, options] of [
  ['an open relay', {}],
  [
    'a public relay at its limits',
    {
      authSecrets: [SECRET],
      maxSessions: 3,
      maxSessionsPerIp: 2,
      registrationsPerSecPerIp: 5,
      maxSessionDatagramsPerSec: 4,
      maxSessionBytesPerSec: 2000,
      unpairedTimeoutSecs: 5,
      sessionTimeoutSecs: 30,
    },
  ],
  ['a relay with implicit rebind and a short timeout', { implicitRebind: true, sessionTimeoutSecs: 2 }],
] as const) {
  t.test(`fuzz: ${name} survives anything, keeps its table consistent, never amplifies or loops`, async (t) => {
    await fc.assert(
      fc.asyncProperty(steps(START_SECS), async (s) => {
        const broken = await drive(options, s, START_SECS);
        if (broken !== undefined) throw new Error(broken);
      }),
      { numRuns: RUNS },
    );
    t.pass(`${RUNS} random sequences`);
  });
}

t.test('fuzz: the control codec never throws, and a changed byte never decodes', async (t) => {
  const key = controlKey('fuzz-session');
  const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a).toString('hex'));
  const candidate = fc.record({ address: fc.ipV4(), port: fc.integer({ min: 1, max: 65535 }) });
  const message: fc.Arbitrary<ControlMessage> = fc.oneof(
    fc.record({
      type: fc.constant('candidates' as const),
      sender: hex(8),
      nonce: hex(12),
      haveYours: fc.boolean(),
      candidates: fc.array(candidate, { maxLength: 8 }),
    }),
    fc.record({
      type: fc.constantFrom('probe' as const, 'answer' as const),
      sender: hex(8),
      nonce: hex(12),
      confirmed: fc.boolean(),
      dataSeen: fc.option(fc.boolean(), { nil: undefined }),
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      decodeControl(key, Buffer.from(bytes)); // must not throw
    }),
    { numRuns: RUNS * 10 },
  );
  fc.assert(
    fc.property(message, fc.nat(), fc.integer({ min: 1, max: 255 }), (m, at, xor) => {
      const good = encodeControl(key, m);
      const decoded = decodeControl(key, good);
      if (decoded === undefined || decoded.type !== m.type || decoded.nonce !== m.nonce) throw new Error('a valid datagram did not decode');
      const bad = Buffer.from(good);
      bad[at % bad.length]! ^= xor;
      if (decodeControl(key, bad) !== undefined) throw new Error(`a flipped byte at ${at % bad.length} still decoded`);
      if (decodeControl(key, good.subarray(0, Math.max(0, good.length - 1 - (at % PROBE_BYTES)))) !== undefined)
        throw new Error('a truncated datagram decoded');
    }),
    { numRuns: RUNS * 10 },
  );
  t.pass('no throw; every mutation rejected');
});
