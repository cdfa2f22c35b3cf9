// The expiry schedule alone (SPEC 2.5's bookkeeping): due entries come out in
// tick order, no earlier than their deadline and within a tick of it; removed
// entries never come out; nothing stays behind.
import t from 'tap';
import fc from 'fast-check';
import { ExpirySchedule } from '../../src/server/expiry';
import type { ExpiryEntry } from '../../src/server/expiry';

class Entry implements ExpiryEntry<Entry> {
  expiryTick = -1;
  expiryPrev: Entry | null = null;
  expiryNext: Entry | null = null;
  constructor(
    readonly name: string,
    public deadline = 0,
  ) {}
}

const due = (s: ExpirySchedule<Entry>, now: number): string[] => {
  const out: string[] = [];
  s.takeDue(now, Infinity, (e) => out.push(e.name));
  return out;
};

t.test('an entry comes out at the first sweep at or after its deadline, rounded up to a tick', async (t) => {
  const s = new ExpirySchedule<Entry>(250);
  s.add(new Entry('a'), 1000);
  s.add(new Entry('b'), 1001);
  t.same(due(s, 999), [], 'not before its deadline');
  t.same(due(s, 1000), ['a']);
  t.same(due(s, 1249), [], 'b is in the next tick');
  t.same(due(s, 1250), ['b'], 'at most a tick late');
  t.equal(s.size, 0);
  t.equal(s.bucketCount, 0, 'no empty bucket left behind');
});

t.test('removal is immediate, from the middle, head or tail of a bucket, and idempotent', async (t) => {
  const s = new ExpirySchedule<Entry>(100);
  const [x, y, z] = [new Entry('x'), new Entry('y'), new Entry('z')];
  for (const e of [x, y, z]) s.add(e, 500);
  s.remove(y);
  t.equal(s.size, 2);
  s.remove(y);
  t.equal(s.size, 2, 'removing twice does nothing');
  s.remove(z); // the head: added last
  t.same(due(s, 500), ['x']);
  t.equal(x.expiryTick, -1, 'taken entries are unscheduled');
  const w = new Entry('w');
  s.add(w, 900);
  s.remove(w);
  t.equal(s.bucketCount, 0, 'the last entry of a bucket takes the bucket with it');
  t.throws(
    () => {
      s.add(x, 1000);
      s.add(x, 1100);
    },
    /scheduled already/,
    'an entry sits in one bucket only',
  );
});

t.test('a visit may reschedule; the entry comes out again at its new deadline, not in the same sweep', async (t) => {
  const s = new ExpirySchedule<Entry>(100);
  const e = new Entry('e', 100);
  s.add(e, e.deadline);
  let visits = 0;
  s.takeDue(100, Infinity, (x) => {
    visits++;
    x.deadline = 350;
    s.add(x, x.deadline);
  });
  t.equal(visits, 1);
  t.same(due(s, 300), []);
  t.same(due(s, 400), ['e']);
});

t.test('a deadline already swept goes in the next sweep, and a clock jump visits only buckets that exist', async (t) => {
  const s = new ExpirySchedule<Entry>(10);
  s.add(new Entry('first'), 50);
  t.same(due(s, 100), ['first']);
  s.add(new Entry('late'), 20); // in the past
  t.same(due(s, 100), [], 'not the sweep of a tick already taken');
  t.same(due(s, 110), ['late']);
  s.add(new Entry('far'), 1e12);
  s.add(new Entry('near'), 200);
  t.same(due(s, 1e12 + 5), ['near', 'far'], 'in tick order after a jump of ten billion ticks');
});

t.test('property: whatever the adds, removes and sweeps, each entry comes out once, on time, unless removed', async (t) => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), entry: fc.nat(19), delay: fc.nat(2000) }),
    fc.record({ kind: fc.constant('remove' as const), entry: fc.nat(19) }),
    fc.record({ kind: fc.constant('sweep' as const), dt: fc.nat(700) }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.array(op, { maxLength: 200 }), (tick, ops) => {
      const s = new ExpirySchedule<Entry>(tick);
      const entries = Array.from({ length: 20 }, (_, i) => new Entry(String(i)));
      const scheduled = new Map<Entry, number>(); // entry -> deadline
      let now = 0;
      for (const o of ops) {
        if (o.kind === 'add') {
          const e = entries[o.entry]!;
          if (scheduled.has(e)) continue;
          scheduled.set(e, now + o.delay);
          s.add(e, now + o.delay);
        } else if (o.kind === 'remove') {
          const e = entries[o.entry]!;
          s.remove(e);
          scheduled.delete(e);
        } else {
          now += o.dt;
          let ok = true;
          s.takeDue(now, Infinity, (e) => {
            const deadline = scheduled.get(e);
            if (deadline === undefined || deadline > now) ok = false; // removed, or early
            scheduled.delete(e);
          });
          if (!ok) return false;
          // nothing overdue by more than a tick stays behind
          for (const d of scheduled.values()) if (d + tick <= now - (now % tick) - tick) return false;
        }
        if (s.size !== scheduled.size) return false;
      }
      return true;
    }),
    { numRuns: 500, seed: 7 },
  );
  t.pass('500 random schedules');
});

t.test('takeDue in slices: at most max entries a call, oldest first, the rest still due', async (t) => {
  const s = new ExpirySchedule<Entry>(100);
  const names: string[] = [];
  for (let i = 0; i < 7; i++) s.add(new Entry(`e${i}`), 100 * (1 + (i % 3)));
  const take = (max: number): string[] => {
    const out: string[] = [];
    s.takeDue(1000, max, (e) => out.push(e.name));
    return out;
  };
  names.push(...take(3));
  t.equal(names.length, 3);
  t.ok(s.hasDue(1000));
  names.push(...take(3), ...take(3));
  t.equal(names.length, 7, 'every entry once');
  t.same(new Set(names).size, 7);
  t.notOk(s.hasDue(1000));
  t.equal(s.size, 0);
  const late = new Entry('late');
  s.add(late, 500); // a deadline already swept: the next bucket to be taken
  t.same(take(10), [], 'not in a sweep already done');
  const out: string[] = [];
  s.takeDue(1100, 10, (e) => out.push(e.name));
  t.same(out, ['late'], 'in the next one');
});
