// validateConfig(): the library's one check of the relay's options (SPEC 3.1, 4.3).
import t from 'tap';
import { checkAuthSecrets, validateConfig } from '../../src/server/config';
import type { RelayServerOptions } from '../../src/server/config';

t.test('defaults come from constants, and each option is checked with its name', async (t) => {
  const c = validateConfig();
  t.equal(c.port, 4433);
  t.same(c.authSecrets, []);
  const bad: Array<[RelayServerOptions, RegExp]> = [
    [{ port: 70000 }, /^--port:/],
    [{ sessionTimeoutSecs: 0 }, /^--session-timeout-secs:/],
    [{ maxSessionBytesPerSec: -1 }, /^--max-session-bytes-per-sec:/],
    [{ implicitRebind: 'no' as unknown as boolean }, /^--no-implicit-rebind:/],
    [{ host: 'not a host' }, /^--host:/],
  ];
  for (const [o, re] of bad) t.throws(() => validateConfig(o), { code: 'QR_ERR_CONFIG', message: re }, JSON.stringify(o));
});

t.test('SPEC 4.3: secrets are checked without ever being shown', async (t) => {
  const secret = 'a-perfectly-good-secret';
  t.same(checkAuthSecrets([secret], '--auth-secret'), [secret]);
  const cases: Array<[unknown, RegExp]> = [
    ['just a string', /must be a list/],
    [['short'], /secret 1 of 1 is shorter than 16 bytes/],
    [[secret, 42], /secret 2 of 2 is shorter/],
    [[`${secret},x`], /commas or line breaks/],
    [[` ${secret}`], /blanks/],
    [[`${secret}\n`], /line breaks/],
  ];
  for (const [value, re] of cases) {
    try {
      checkAuthSecrets(value, '--auth-secret');
      t.fail(`${JSON.stringify(value)} accepted`);
    } catch (err) {
      const msg = (err as Error).message;
      t.match(msg, re);
      t.notMatch(msg, /perfectly-good|short'|just a string/, 'the value is not in the message');
    }
  }
  t.ok(Object.isFrozen(validateConfig({ authSecrets: [secret] }).authSecrets), 'frozen: nothing changes them behind the relay');
});
