// The path state machine (SPEC 5.3-5.4), pure: two machines joined by a
// simulated network, with a clock that moves only when the test says so.
import t from 'tap';
import { createHash } from 'node:crypto';
import { PathMachine } from '../../src/client/path-machine';
import type { Path, PathTimings } from '../../src/client/path-machine';
import { controlKey, decodeControl, encodeControl } from '../../src/client/control';
import type { Candidate } from '../../src/client/control';

const key = controlKey('sim-session');

/** Deterministic "random" bytes, different for each seed and call. */
function randomFrom(seed: string): (n: number) => Buffer {
  let i = 0;
  return (n) => createHash('sha256').update(`${seed}:${i++}`).digest().subarray(0, n);
}

interface Packet {
  at: number;
  to: Side;
  viaRelay: boolean;
  from: Candidate;
  data: Buffer;
}

interface Side {
  name: string;
  at: Candidate;
  machine: PathMachine;
  paths: Array<{ at: number; path: Path }>;
  relayLost: number;
  attemptsDue: number;
  sentTo: Array<{ at: number; to: Candidate; data: Buffer }>;
  viaRelay: Buffer[];
}

/**
 * Two peers, A and B, each with one public address; datagrams take
 * `latencyMs`. `drop(from, to, viaRelay, data)` may lose any of them.
 * An attempt that falls due begins at once with the side's own address.
 */
class Sim {
  now = 0;
  readonly queue: Packet[] = [];
  drop: (from: Side, to: Side, viaRelay: boolean, data: Buffer) => boolean = () => false;
  readonly a: Side;
  readonly b: Side;

  constructor(
    timings: Partial<PathTimings> = {},
    readonly latencyMs = 1,
  ) {
    this.a = this.side('A', { address: '198.51.100.1', port: 40001 }, timings);
    this.b = this.side('B', { address: '198.51.100.2', port: 40002 }, timings);
  }

  side(name: string, at: Candidate, timings: Partial<PathTimings>, seed = name): Side {
    const s = { name, at, paths: [], relayLost: 0, attemptsDue: 0, sentTo: [], viaRelay: [] } as unknown as Side;
    s.machine = new PathMachine(
      key,
      {
        viaRelay: (data) => {
          s.viaRelay.push(data);
          this.send(s, this.other(s), true, data);
        },
        sendTo: (address, port, data) => {
          s.sentTo.push({ at: this.now, to: { address, port }, data });
          const to = [this.a, this.b].find((x) => x.at.address === address && x.at.port === port);
          if (to !== undefined && to !== s) this.send(s, to, false, data);
        },
        pathChanged: (path) => s.paths.push({ at: this.now, path }),
        attemptDue: () => {
          s.attemptsDue++;
          s.machine.begin(this.now, [s.at]);
        },
        relayLost: () => s.relayLost++,
      },
      randomFrom(seed),
      this.now,
      { timings },
    );
    return s;
  }

  other(s: Side): Side {
    return s === this.a ? this.b : this.a;
  }

  send(from: Side, to: Side, viaRelay: boolean, data: Buffer): void {
    if (this.drop(from, to, viaRelay, data)) return;
    this.queue.push({ at: this.now + this.latencyMs * (viaRelay ? 2 : 1), to, viaRelay, from: from.at, data });
  }

  /** Runs events and timers in time order until `until`. */
  run(until: number): void {
    for (;;) {
      const sides = [this.a, this.b];
      let next = Math.min(...sides.map((s) => s.machine.nextWake()));
      for (const p of this.queue) next = Math.min(next, p.at);
      if (next > until) break;
      this.now = Math.max(this.now, next);
      const due = this.queue.filter((p) => p.at <= this.now);
      for (const p of due) this.queue.splice(this.queue.indexOf(p), 1);
      for (const p of due) {
        if (p.viaRelay) p.to.machine.heardViaRelay();
        p.to.machine.receive(this.now, p.viaRelay, p.viaRelay ? '' : p.from.address, p.viaRelay ? 0 : p.from.port, p.data);
      }
      for (const s of sides) if (s.machine.nextWake() <= this.now) s.machine.tick(this.now);
    }
    this.now = until;
  }

  start(): void {
    this.a.machine.begin(this.now, [this.a.at]);
    this.b.machine.begin(this.now, [this.b.at]);
  }
}

const directPaths = (s: Side) => s.paths.filter((p) => p.path.kind === 'direct');
const lastPath = (s: Side) => s.paths[s.paths.length - 1]?.path;

t.test('two peers go direct once probes have crossed both ways, and each names the other', async (t) => {
  const sim = new Sim();
  sim.start();
  sim.run(1000);
  for (const [s, peer] of [
    [sim.a, sim.b],
    [sim.b, sim.a],
  ] as const) {
    const d = directPaths(s);
    t.equal(d.length, 1, `${s.name} reports one change, to direct`);
    t.match(d[0]?.path, { kind: 'direct', address: peer.at.address, port: peer.at.port }, `${s.name} goes straight to its peer`);
    t.ok(d[0]!.at < 20, `${s.name} direct after ${d[0]!.at} ms of 1 ms links`);
    t.ok(s.machine.acceptsFrom(peer.at.address, peer.at.port), "data from the peer's address is accepted");
    t.notOk(s.machine.acceptsFrom(peer.at.address, peer.at.port + 1), 'from another port of its IP it is not');
  }
  t.equal(sim.a.machine.path?.kind === 'direct' ? sim.a.machine.path.port : undefined, sim.b.at.port);
});

t.test('a first punch lost to the far NAT (it had not sent yet) only delays the path', async (t) => {
  const sim = new Sim();
  // B's NAT drops what A sends until B has sent something to A (address-dependent filtering).
  let bOpened = false;
  sim.drop = (from, _to, viaRelay) => {
    if (viaRelay) return false;
    if (from === sim.b) bOpened = true;
    return from === sim.a && !bOpened;
  };
  sim.b.machine.begin(0, [sim.b.at]); // B is late: A punches alone first
  sim.a.machine.begin(0, [sim.a.at]);
  sim.run(1000);
  t.equal(lastPath(sim.a)?.kind, 'direct');
  t.equal(lastPath(sim.b)?.kind, 'direct');
});

t.test('one answered direction is not enough: never direct, the relay is reported', async (t) => {
  const sim = new Sim();
  // B -> A straight datagrams are lost: A's probes are answered into the void
  sim.drop = (from, _to, viaRelay) => !viaRelay && from === sim.b;
  sim.start();
  sim.run(3500);
  t.equal(directPaths(sim.a).length + directPaths(sim.b).length, 0, 'neither side went direct');
  t.match(lastPath(sim.a), { kind: 'relay', reason: /no answer/ }, 'A says why');
  t.match(lastPath(sim.b), { kind: 'relay' }, 'B reports the relay too');
  t.equal(sim.a.machine.path, undefined);
  t.notOk(sim.a.machine.acceptsFrom(sim.b.at.address, sim.b.at.port), 'nothing confirmed: no address is accepted as the peer');
});

t.test('a broken direct path goes back to the relay within 2.5 s, and direct again after it heals', async (t) => {
  const sim = new Sim();
  sim.start();
  sim.run(1000);
  t.equal(lastPath(sim.a)?.kind, 'direct');
  let blocked = true;
  sim.drop = (_f, _t, viaRelay) => blocked && !viaRelay;
  const brokeAt = sim.now;
  sim.run(brokeAt + 3000);
  for (const s of [sim.a, sim.b]) {
    const p = s.paths[s.paths.length - 1]!;
    t.match(p.path, { kind: 'relay', reason: /no answer on the direct path for 2\.\d s/ }, `${s.name} falls back, saying why`);
    t.ok(p.at - brokeAt <= 2500, `${s.name} back on the relay ${p.at - brokeAt} ms after the break`);
  }
  t.equal(sim.a.machine.path, undefined, 'data goes through the relay');
  t.ok(sim.a.machine.acceptsFrom(sim.b.at.address, sim.b.at.port), 'but data from the old direct address is still accepted');
  blocked = false;
  const healedAt = sim.now;
  sim.run(healedAt + 5000);
  t.equal(lastPath(sim.a)?.kind, 'direct', 'direct again after the retry');
  t.equal(lastPath(sim.b)?.kind, 'direct');
  t.ok(sim.a.attemptsDue >= 1, 'through a new attempt');
});

t.test('lost answers while data flows do not flap the path', async (t) => {
  const sim = new Sim();
  sim.start();
  sim.run(1000);
  // two answers in three lost, each way, for a minute
  const n = new Map<Side, number>();
  sim.drop = (from, _t, viaRelay, data) => {
    if (viaRelay || decodeControl(key, data)?.type !== 'answer') return false;
    n.set(from, (n.get(from) ?? 0) + 1);
    return n.get(from)! % 3 !== 0;
  };
  sim.run(61_000);
  t.equal(sim.a.paths.length, 1, 'A: still the one change to direct');
  t.equal(sim.b.paths.length, 1, 'B: likewise');
});

t.test('a path that keeps breaking is retried less and less often; probing stays bounded', async (t) => {
  const sim = new Sim({}, 1);
  sim.start();
  sim.run(1000);
  sim.drop = (_f, _t, viaRelay) => !viaRelay; // dead for ten minutes
  const from = sim.now;
  const sentBefore = sim.a.sentTo.length;
  sim.run(from + 600_000);
  const probes = sim.a.sentTo.length - sentBefore;
  t.ok(probes < 400, `${probes} probes from A in ten minutes of a dead path`);
  const attemptTimes = sim.a.sentTo.filter((s) => s.at > from + 3000).map((s) => s.at);
  const gaps: number[] = [];
  for (let i = 1; i < attemptTimes.length; i++) if (attemptTimes[i]! - attemptTimes[i - 1]! > 5000) gaps.push(attemptTimes[i]! - attemptTimes[i - 1]!);
  t.ok(gaps.length > 3, 'it keeps trying');
  t.ok(Math.max(...gaps) <= 30_000 + 3000, 'at least every 30 s (plus an attempt)');
  t.ok(gaps[gaps.length - 1]! > gaps[0]!, `gaps grow: ${gaps.slice(0, 5).join(', ')} ms ...`);
  t.equal(sim.a.paths.filter((p) => p.path.kind === 'relay').length, 1, 'failed retries are not reported again');
});

t.test('a peer that sends no candidates (relay-only, or an older client): the relay, bounded asking', async (t) => {
  const sim = new Sim();
  sim.drop = (from) => from === sim.b; // B says nothing at all
  sim.a.machine.begin(0, [sim.a.at]);
  sim.run(3500);
  t.match(lastPath(sim.a), { kind: 'relay', reason: /no candidates from the peer/ });
  t.equal(sim.a.viaRelay.length, 4, 'candidates sent 4 times in the attempt');
  t.equal(sim.a.sentTo.length, 0, 'nothing sent straight to anyone');
});

t.test('forged, reflected, replayed and misdirected control datagrams change nothing', async (t) => {
  const sim = new Sim();
  sim.start();
  sim.run(1000);
  const a = sim.a;
  const before = { paths: a.paths.length, sent: a.sentTo.length };
  const attacker = { address: '203.0.113.66', port: 6666 };
  const other = controlKey('another-session');
  const forged = encodeControl(other, { type: 'probe', sender: 'ffffffffffffffff', nonce: '00'.repeat(12), confirmed: true });
  t.equal(a.machine.receive(sim.now, false, attacker.address, attacker.port, forged), 'invalid', 'wrong key: invalid');
  t.equal(
    a.machine.receive(
      sim.now,
      true,
      '',
      0,
      encodeControl(other, { type: 'candidates', sender: 'ffffffffffffffff', nonce: '01'.repeat(12), haveYours: false, candidates: [attacker] }),
    ),
    'invalid',
    'candidates under another key',
  );
  // An answer the attacker cannot have: a right key but no probe of ours carried its nonce.
  const peerId = sim.b.machine.id;
  t.equal(
    a.machine.receive(
      sim.now,
      false,
      attacker.address,
      attacker.port,
      encodeControl(key, { type: 'answer', sender: peerId, nonce: '02'.repeat(12), confirmed: true }),
    ),
    'ignored',
    'unsolicited answer',
  );
  // Our own probe reflected back at us.
  const ours = encodeControl(key, { type: 'probe', sender: a.machine.id, nonce: '03'.repeat(12), confirmed: true });
  t.equal(a.machine.receive(sim.now, false, attacker.address, attacker.port, ours), 'ignored', 'reflected');
  // Candidates straight from an address rather than through the relay.
  t.equal(
    a.machine.receive(
      sim.now,
      false,
      attacker.address,
      attacker.port,
      encodeControl(key, { type: 'candidates', sender: peerId, nonce: '04'.repeat(12), haveYours: true, candidates: [attacker] }),
    ),
    'ignored',
    'candidates off the relay',
  );
  t.equal(a.paths.length, before.paths, 'no path change');
  t.equal(a.sentTo.length, before.sent, 'nothing sent to the attacker');
  t.notOk(a.machine.acceptsFrom(attacker.address, attacker.port), 'the attacker is not accepted as the peer');
  t.ok(a.machine.acceptsFrom(sim.b.at.address, sim.b.at.port), 'the peer still is');
  t.match(a.machine.path, { kind: 'direct', address: sim.b.at.address });

  // A real probe replayed from elsewhere: answered once, where it first came from.
  const probe = encodeControl(key, { type: 'probe', sender: peerId, nonce: '05'.repeat(12), confirmed: true });
  t.equal(a.machine.receive(sim.now, false, sim.b.at.address, sim.b.at.port, probe), 'peer');
  t.equal(a.machine.receive(sim.now, false, attacker.address, attacker.port, probe), 'ignored', 'the replay is ignored');
  t.equal(a.sentTo.filter((s) => s.to.address === attacker.address).length, 0, 'and not answered');
});

t.test('an answer from an address other than the one probed confirms nothing', async (t) => {
  const sim = new Sim();
  // A probes B; B's answer is rewritten to arrive from another address (a spoofer racing it).
  const spoof = { address: '203.0.113.9', port: 9999 };
  sim.drop = (from, to, viaRelay, data) => {
    if (!viaRelay && from === sim.b && decodeControl(key, data)?.type === 'answer') {
      sim.queue.push({ at: sim.now + 1, to, viaRelay: false, from: spoof, data });
      return true;
    }
    return false;
  };
  sim.start();
  sim.run(3500);
  t.equal(directPaths(sim.a).length, 0, 'A never goes direct');
  t.notOk(sim.a.machine.acceptsFrom(spoof.address, spoof.port), 'the spoofed source is never accepted');
});

t.test('a restarted peer: back to the relay, then direct with the new one', async (t) => {
  const sim = new Sim();
  sim.start();
  sim.run(1000);
  // B restarts: a new machine (new id) at the same address
  const timings = {};
  const b2 = sim.side('B', sim.b.at, timings, 'B-restarted');
  (sim as unknown as { b: Side }).b = b2;
  b2.machine.begin(sim.now, [b2.at]);
  sim.run(sim.now + 1000);
  t.match(
    sim.a.paths.map((p) => p.path.kind),
    ['direct', 'relay', 'direct'],
    'A: direct, relay (peer restarted), direct',
  );
  t.match(sim.a.paths[1]?.path, { reason: 'the peer restarted' });
  t.equal(lastPath(b2)?.kind, 'direct');
});

t.test('end to end through the relay: a silent peer is probed there, and no answer means register again', async (t) => {
  const sim = new Sim({ relayCheckMs: 2000 });
  // No direct path at all (symmetric NAT), so the session lives on the relay.
  sim.drop = (_f, _t, viaRelay) => !viaRelay;
  sim.start();
  sim.run(20_000);
  t.equal(sim.a.relayLost + sim.b.relayLost, 0, 'an idle peer that answers through the relay: nothing to do');
  const relayProbes = sim.a.viaRelay.filter((d) => decodeControl(key, d)?.type === 'probe').length;
  t.ok(relayProbes >= 3 && relayProbes <= 10, `idle: ${relayProbes} probes through the relay in 20 s`);
  // The relay restarts and forgets us: nothing gets through it any more.
  sim.drop = () => true;
  const lostAt = sim.now;
  sim.run(lostAt + 6000);
  t.ok(sim.a.relayLost >= 1, 'A registers again');
  t.ok(sim.b.relayLost >= 1, 'B registers again, though it had nothing to send');
  // bounded: it backs off while the peer stays away
  sim.run(lostAt + 120_000);
  t.ok(sim.a.relayLost <= 12, `${sim.a.relayLost} re-registrations in two minutes of silence`);
});

t.test('two answering candidates at equal latency: data is accepted from every address that answered, whichever the peer picked', async (t) => {
  // Each side is reachable at two addresses (two interfaces, a VPN, a hairpinning router).
  const sim = new Sim();
  const a2 = { address: '10.0.0.1', port: sim.a.at.port };
  const b2 = { address: '10.0.0.2', port: sim.b.at.port };
  const sideAt = (c: Candidate): Side | undefined =>
    [sim.a, sim.b].find((x) => (x.at.address === c.address && x.at.port === c.port) || (x === sim.a ? a2 : b2).address === c.address);
  for (const s of [sim.a, sim.b]) {
    const machine = s.machine as unknown as { actions: { sendTo: (address: string, port: number, data: Buffer) => void } };
    machine.actions.sendTo = (address, port, data) => {
      s.sentTo.push({ at: sim.now, to: { address, port }, data });
      const to = sideAt({ address, port });
      // A reply leaves from the address it was sent to: the route back names it.
      if (to !== undefined && to !== s)
        sim.queue.push({ at: sim.now + 1, to, viaRelay: false, from: address.startsWith('10.') ? (s === sim.a ? a2 : b2) : s.at, data });
    };
  }
  sim.a.machine.begin(0, [sim.a.at, a2]);
  sim.b.machine.begin(0, [sim.b.at, b2]);
  sim.run(1000);
  for (const [s, peer, peer2] of [
    [sim.a, sim.b, b2],
    [sim.b, sim.a, a2],
  ] as const) {
    t.equal(lastPath(s)?.kind, 'direct', `${s.name} is direct`);
    t.ok(
      s.machine.acceptsFrom(peer.at.address, peer.at.port) && s.machine.acceptsFrom(peer2.address, peer2.port),
      `${s.name} accepts data from both of the peer's addresses`,
    );
  }
  // Whichever target each side picked, the other accepts what arrives from it.
  for (const [s, peer] of [
    [sim.a, sim.b],
    [sim.b, sim.a],
  ] as const) {
    const target = s.machine.path as Extract<Path, { kind: 'direct' }>;
    const arrivesFrom = target.address.startsWith('10.') ? (s === sim.a ? a2 : b2) : s.at;
    t.ok(peer.machine.acceptsFrom(arrivesFrom.address, arrivesFrom.port), `${s.name}'s data to ${target.address} is ${peer.name}'s to take`);
  }
});

t.test('a direct path that answers probes but loses all data goes back to the relay', async (t) => {
  const sim = new Sim();
  sim.start();
  sim.run(1000);
  t.equal(lastPath(sim.a)?.kind, 'direct');
  // A sends data every 50 ms; nothing of it reaches B (B notes nothing), probes still cross.
  const start = sim.now;
  for (let at = start; at < start + 4000; at += 50) {
    sim.a.machine.noteDirectDataSent();
    sim.run(at + 50);
  }
  const p = lastPath(sim.a)!;
  t.match(p, { kind: 'relay', reason: /the peer got none of our direct data/ }, 'A falls back, saying why');
  t.ok(sim.a.paths[sim.a.paths.length - 1]!.at - start <= 3000, 'within about the direct timeout');
});

t.test('direct data that arrives keeps the path; a lost datagram, or silence, does not end it', async (t) => {
  const sim = new Sim();
  sim.start();
  sim.run(1000);
  const start = sim.now;
  for (let at = start; at < start + 5000; at += 50) {
    sim.a.machine.noteDirectDataSent();
    if (at % 1000 !== 0) sim.b.machine.noteDirectDataReceived(); // one in twenty lost
    sim.run(at + 50);
  }
  sim.a.machine.noteDirectDataSent(); // one last datagram, lost, then nothing for a while
  sim.run(sim.now + 5000);
  t.equal(directPaths(sim.a).length, 1);
  t.equal(lastPath(sim.a)?.kind, 'direct', 'still direct');
});

t.test('the data report travels in the flags; a peer of an older version sends none', async (t) => {
  const probe = decodeControl(key, encodeControl(key, { type: 'probe', sender: '0'.repeat(16), nonce: '1'.repeat(24), confirmed: false }));
  t.equal(probe?.type === 'probe' ? probe.dataSeen : 'x', undefined, 'no report in the flags');
  const reported = decodeControl(key, encodeControl(key, { type: 'answer', sender: '0'.repeat(16), nonce: '1'.repeat(24), confirmed: true, dataSeen: false }));
  t.match(reported, { type: 'answer', confirmed: true, dataSeen: false }, 'a report survives the codec');
});
