// The registration machine (SPEC 5.1, 5.7, 6.4), pure: clients and relays
// joined by a simulated network whose clock moves only when the test says so.
// Each relay answers REG with ACK (or ERR:BUSY while draining) and ADDR? over
// UDP; each client reaches each relay over UDP and over WebSocket, or not, as
// the test sets; registered clients send data every 20 ms, which a relay
// forwards to the other peer of the session when both are registered on it
// (sim.data = true).
import t from 'tap';
import { Registration } from '../../src/client/registration';
import type { RegistrationTimings } from '../../src/client/registration';
import type { RefusalReason } from '../../src/wire/errors';

const TIMINGS: RegistrationTimings = {
  keepaliveMs: 15_000,
  registerTimeoutMs: 30_000,
  backoffInitialMs: 250,
  backoffMaxMs: 2000,
  silenceMs: 1000,
  failoverMs: 3000,
  lostRelayMs: 1000,
  partnerWaitMs: 3000,
  wsFallbackMs: 2000,
};

class SimRelay {
  up = true;
  draining = false;
  /** Who is registered here, and over which transport. */
  readonly members = new Map<SimClient, 'udp' | 'ws'>();
}

class SimClient {
  readonly machine: Registration;
  /** Per relay: does UDP get there (and back)? does a WebSocket? */
  udp: boolean[];
  ws: boolean[];
  readonly log: string[] = [];
  readonly regs: Array<{ at: number; relay: number; over: 'udp' | 'ws' }> = [];
  failed: RefusalReason | 'timeout' | undefined;

  constructor(
    readonly name: string,
    readonly sim: Sim,
    transport: 'auto' | 'udp' | 'ws' = 'auto',
    timings: Partial<RegistrationTimings> = {},
  ) {
    this.udp = sim.relays.map(() => true);
    this.ws = sim.relays.map(() => true);
    this.machine = new Registration(
      { relays: sim.relays.length, transport, timings: { ...TIMINGS, ...timings } },
      {
        sendReg: (i) => sim.reg(this, i),
        askUdp: (i) => sim.askUdp(this, i),
        useStream: (on) => this.log.push(`${sim.now} stream ${on}`),
        dropLink: (i) => this.log.push(`${sim.now} drop link ${i}`),
        registered: () => this.log.push(`${sim.now} registered ${this.machine.home}`),
        unregistered: () => this.log.push(`${sim.now} unregistered`),
        refused: (reason) => this.log.push(`${sim.now} refused ${reason}`),
        failed: ({ refused }) => {
          this.failed = refused ?? 'timeout';
          this.log.push(`${sim.now} failed ${this.failed}`);
        },
        relayChanged: (to, from, why) => this.log.push(`${sim.now} relay ${from} -> ${to} (${why})`),
        transportChanged: (transport) => this.log.push(`${sim.now} transport ${transport}`),
      },
    );
  }

  get over(): 'udp' | 'ws' {
    return this.machine.onStream ? 'ws' : 'udp';
  }

  reaches(i: number, over: 'udp' | 'ws'): boolean {
    return this.sim.relays[i]!.up && (over === 'udp' ? this.udp[i]! : this.ws[i]!);
  }
}

class Sim {
  now = 0;
  readonly relays: SimRelay[];
  readonly clients: SimClient[] = [];
  private readonly queue: Array<{ at: number; run: () => void }> = [];
  private nextData = 0;
  /** Data rounds, every 20 ms, only when a test wants traffic (a lone sender also makes a silent relay look lost). */
  data = false;

  constructor(
    relays: number,
    readonly latencyMs = 5,
  ) {
    this.relays = Array.from({ length: relays }, () => new SimRelay());
  }

  client(name: string, transport?: 'auto' | 'udp' | 'ws', timings?: Partial<RegistrationTimings>): SimClient {
    const c = new SimClient(name, this, transport, timings);
    this.clients.push(c);
    return c;
  }

  /** A round trip: the request arrives after latencyMs, the answer `latencyMs` later. */
  private later(ms: number, run: () => void): void {
    this.queue.push({ at: this.now + ms, run });
  }

  reg(c: SimClient, i: number): void {
    const over = c.over;
    c.regs.push({ at: this.now, relay: i, over });
    if (!c.reaches(i, over)) return;
    this.later(this.latencyMs, () => {
      const relay = this.relays[i]!;
      if (!relay.up) return;
      let answer: 'ack' | RefusalReason = 'ack';
      if (relay.draining && !relay.members.has(c)) answer = 'busy';
      else relay.members.set(c, over);
      this.later(this.latencyMs, () => {
        if (!c.reaches(i, over)) return;
        c.machine.heard(this.now, over === 'udp');
        if (answer === 'ack') c.machine.ack(i, this.now);
        else c.machine.refused(i, answer, this.now);
      });
    });
  }

  askUdp(c: SimClient, i: number): void {
    if (!c.reaches(i, 'udp')) return;
    this.later(2 * this.latencyMs, () => {
      if (c.reaches(i, 'udp')) c.machine.heard(this.now, true);
    });
  }

  /** Every 20 ms each registered client sends data to its home relay, which forwards it to the other member. */
  private dataRound(): void {
    for (const c of this.clients) {
      if (!c.machine.isRegistered) continue;
      const i = c.machine.home;
      const over = c.over;
      c.machine.sending(this.now);
      if (!c.reaches(i, over) || !this.relays[i]!.members.has(c)) continue;
      for (const [other, otherOver] of this.relays[i]!.members) {
        if (other === c || !other.reaches(i, otherOver)) continue;
        this.later(2 * this.latencyMs, () => {
          other.machine.heard(this.now, otherOver === 'udp');
          other.machine.partnerVia(i, this.now);
        });
      }
    }
  }

  /** Runs until `until` ms: deliveries, the machines' deadlines and the data rounds, in time order. */
  run(until: number): void {
    for (;;) {
      const next = Math.min(...this.queue.map((q) => q.at), ...this.clients.map((c) => c.machine.nextWake()), this.data ? this.nextData : Infinity);
      if (next > until) break;
      this.now = next;
      const due = this.queue.filter((q) => q.at <= next);
      for (const q of due) this.queue.splice(this.queue.indexOf(q), 1);
      for (const q of due) q.run();
      for (const c of this.clients) if (c.machine.nextWake() <= next) c.machine.tick(next);
      if (this.data && next >= this.nextData) {
        this.dataRound();
        this.nextData = next + 20;
      }
    }
    this.now = until;
  }
}

t.test('SPEC 5.1: REG with backoff doubling to 2 s until an ACK; then a keepalive every 15 s', async (t) => {
  const sim = new Sim(1);
  const a = sim.client('A', 'udp');
  sim.relays[0]!.up = false;
  a.machine.start(0);
  sim.run(6000);
  t.same(
    a.regs.map((r) => r.at),
    [0, 250, 750, 1750, 3750, 5750],
    'REG at 0, 250, 750, 1750, 3750, 5750 ms',
  );
  sim.relays[0]!.up = true;
  sim.run(8000);
  t.same(a.log, ['7760 registered 0'], 'the REG at 7750 is answered 10 ms later');
  const before = a.regs.length;
  sim.run(8000 + 45_000);
  t.same(
    a.regs.slice(before).map((r) => r.at),
    [22_760, 37_770, 52_780],
    'a keepalive 15 s after each ACK',
  );
  t.equal(a.machine.phase, 'registered');
});

t.test('SPEC 5.1: a keepalive without an ACK: registering again, with backoff from the start', async (t) => {
  const sim = new Sim(1);
  const a = sim.client('A', 'udp');
  a.machine.start(0);
  sim.run(100);
  sim.relays[0]!.up = false;
  sim.run(15_010);
  t.equal(a.machine.phase, 'confirming', 'the keepalive is out, its ACK awaited');
  sim.run(17_010);
  t.same(a.log, ['10 registered 0', '17010 unregistered']);
  t.equal(a.machine.phase, 'registering');
  const regs = a.regs.filter((r) => r.at >= 17_010).map((r) => r.at - 17_010);
  sim.run(20_000);
  t.same(
    a.regs.filter((r) => r.at >= 17_010).map((r) => r.at - 17_010),
    [0, 250, 750, 1750],
    'backoff from 250 ms again',
  );
  t.same(regs, [0]);
});

t.test('SPEC 5.1: the first registration gives up: at once on ERR:FULL, after the timeout otherwise (with the last ERR:BUSY)', async (t) => {
  const sim = new Sim(1);
  const a = sim.client('A', 'udp');
  a.machine.start(0);
  a.machine.refused(0, 'full', 5);
  t.equal(a.failed, 'full');
  t.equal(a.machine.nextWake(), Infinity, 'nothing left to do');
  const b = sim.client('B', 'udp');
  sim.relays[0]!.draining = true;
  b.machine.start(0);
  sim.run(40_000);
  t.equal(b.failed, 'busy', 'ERR:BUSY retried, and reported when it never cleared');
  t.equal(b.log.filter((l) => l.includes('failed')).length, 1);
  const c = sim.client('C', 'udp');
  sim.relays[0]!.up = false;
  c.machine.start(40_000);
  sim.run(80_000);
  t.equal(c.failed, 'timeout');
  t.ok(c.log[0]!.startsWith('71750 failed'), `after 30 s, at the first try past it (${c.log[0]})`);
});

t.test('SPEC 5.7: both peers rank the same relays; the first is dead; they meet on the second at 3 s', async (t) => {
  const sim = new Sim(3);
  sim.data = true;
  sim.relays[0]!.up = false;
  const a = sim.client('A', 'udp');
  const b = sim.client('B', 'udp');
  a.machine.start(0);
  b.machine.start(0);
  sim.run(5000);
  for (const c of [a, b]) t.same(c.log.slice(0, 2), ['3000 relay 0 -> 1 (no-ack)', '3010 registered 1'], c.name);
  t.ok(sim.relays[1]!.members.has(a) && sim.relays[1]!.members.has(b));
});

t.test('SPEC 5.7: each peer reaches a different relay first: the standby registration finds the partner', async (t) => {
  const sim = new Sim(2);
  sim.data = true;
  const a = sim.client('A', 'udp');
  const b = sim.client('B', 'udp');
  b.udp[0] = false; // B cannot reach relay 0: it fails over to 1; A sits on 0
  a.machine.start(0);
  b.machine.start(0);
  sim.run(10_000);
  t.same(a.log, ['10 registered 0', '3030 relay 0 -> 1 (partner)'], 'A registers on 1 too after 3 s alone, hears B there, and moves');
  t.equal(b.machine.home, 1);
  t.same(b.log.slice(0, 2), ['3000 relay 0 -> 1 (no-ack)', '3010 registered 1']);
});

t.test('SPEC 5.7: ERR:BUSY (draining) moves on at once', async (t) => {
  const sim = new Sim(2);
  sim.relays[0]!.draining = true;
  const a = sim.client('A', 'udp');
  a.machine.start(0);
  sim.run(100);
  t.same(a.log, ['10 relay 0 -> 1 (busy)', '20 registered 1']);
});

t.test('SPEC 5.7: the relay carrying a flowing session dies: silent for 1 s, a keepalive; no ACK for 1 s, the next relay', async (t) => {
  const sim = new Sim(2);
  sim.data = true;
  const a = sim.client('A', 'udp', { keepaliveMs: 5000 });
  const b = sim.client('B', 'udp', { keepaliveMs: 5000 });
  a.machine.start(0);
  b.machine.start(0);
  sim.run(1000);
  sim.relays[0]!.up = false;
  sim.run(10_000);
  for (const c of [a, b]) {
    t.same(c.log, ['10 registered 0', '3020 unregistered', '3020 relay 0 -> 1 (no-ack)', '3030 registered 1'], c.name);
    t.equal(c.machine.home, 1);
    t.equal(c.machine.isRegistered, true);
  }
});

t.test('SPEC 6.4: UDP blocked: the WebSocket leg at 2 s; UDP answering later brings the session back', async (t) => {
  const sim = new Sim(1);
  const a = sim.client('A');
  a.udp[0] = false;
  a.machine.start(0);
  sim.run(1999);
  t.equal(a.machine.onStream, false, 'UDP alone for 2 s');
  sim.run(3000);
  t.same(a.log, ['2000 stream true', '2000 transport ws', '2010 registered 0']);
  t.same(a.regs.at(-1), { at: 2000, relay: 0, over: 'ws' });
  a.udp[0] = true; // the firewall opens (or the relay's UDP port comes back)
  sim.run(40_000);
  t.same(a.log.slice(3), ['17020 stream false', '17020 transport udp'], 'the keepalive (17010) asks UDP too; its answer moves the session back');
  t.equal(a.regs.at(-1)!.over, 'udp');
  t.equal(sim.relays[0]!.members.get(a), 'udp');
});

t.test('SPEC 6.4: udp never falls back; ws starts there; with several relays one dead relay is not blocked UDP', async (t) => {
  const sim = new Sim(2);
  const u = sim.client('U', 'udp');
  u.udp = [false, false];
  u.machine.start(0);
  const w = sim.client('W', 'ws');
  w.machine.start(0);
  sim.relays[0]!.up = false;
  const a = sim.client('A');
  a.machine.start(0);
  sim.run(10_000);
  t.equal(u.machine.onStream, false);
  t.ok(u.regs.every((r) => r.over === 'udp'));
  t.same(w.regs[0], { at: 0, relay: 0, over: 'ws' });
  t.equal(a.machine.onStream, false, 'relay 1 answered ADDR? over UDP: no fallback');
  t.same(a.log, ['3000 relay 0 -> 1 (no-ack)', '3010 registered 1']);
});
