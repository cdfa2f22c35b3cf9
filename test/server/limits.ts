import t from 'tap';
import { RegistrationRateLimiter } from '../../src/server/limits';
import { LogLimiter } from '../../src/server/log';

t.test('SPEC 4.1: token bucket per IP with a fake clock', async (t) => {
  const l = new RegistrationRateLimiter(10, 5); // 10/s, bursts of 5
  let ok = 0;
  for (let i = 0; i < 20; i++) if (l.take(1, 0)) ok++;
  t.equal(ok, 5, 'a burst of 5 at once');
  t.ok(l.take(2, 0), 'another IP has its own bucket');
  t.notOk(l.take(1, 50), 'half a token later: still empty');
  t.ok(l.take(1, 100), 'one token per 100 ms');
  t.notOk(l.take(1, 100));
  let later = 0;
  for (let i = 0; i < 20; i++) if (l.take(1, 10_000)) later++;
  t.equal(later, 5, 'refills to the burst size, no more');
});

t.test('sustained rate is the configured one', async (t) => {
  const l = new RegistrationRateLimiter(100, 1000);
  let ok = 0;
  for (let ms = 0; ms < 60_000; ms += 1) if (l.take('x', ms)) ok++;
  t.ok(ok >= 1000 + 5999 && ok <= 1000 + 6001, `${ok} in 60 s at 100/s with a burst of 1000`);
});

t.test('sweep forgets full buckets only', async (t) => {
  const l = new RegistrationRateLimiter(10, 5);
  l.take(1, 0);
  for (let i = 0; i < 5; i++) l.take(2, 0);
  l.sweep(100);
  t.equal(l.size, 1, 'IP 1 refilled after 100 ms; IP 2 still owes');
  l.sweep(600);
  t.equal(l.size, 0);
});

t.test('0 disables the limit', async (t) => {
  const l = new RegistrationRateLimiter(0, 0);
  for (let i = 0; i < 1000; i++) t.ok(l.take(1, 0)) || t.bailout();
  t.equal(l.size, 0);
});

t.test('LogLimiter: once per second per cause, with a count of what was held back', async (t) => {
  const l = new LogLimiter(1000, 1);
  t.equal(l.admit('full', 0), 0);
  t.equal(l.admit('full', 10), -1);
  t.equal(l.admit('full', 999), -1);
  t.equal(l.admit('busy', 10), 0, 'another cause is separate');
  t.equal(l.admit('full', 1000), 2, 'two were held back');
  const many = new LogLimiter(1000, 3);
  t.same(
    [0, 0, 0, -1].map((_, i) => many.admit('x', i)),
    [0, 0, 0, -1],
  );
});
