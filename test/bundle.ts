// SPEC 3.5: the built file, run by plain node from a folder with no
// node_modules. Builds it first when it is missing.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bindPeer, register } from './fixtures/udp';
import { bundleCopy } from './fixtures/bundle-run';

const root = resolve(__dirname, '..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const { run } = bundleCopy(t);

t.test('start line, one forwarded datagram, metrics, SIGTERM -> exit 0 within 1 s', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1', '--metrics-port', '0']);
  const m = await r.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/);
  t.match(r.stderr(), /^\d{4}-\d\d-\d\dT[\d:.]+Z quic-relay:relay UDP relay listening on/m, 'timestamped when not a terminal');
  const io = existsSync(join(__dirname, '..', 'build', 'udp_batch.node')) ? 'native' : 'dgram';
  t.match(
    r.stderr(),
    new RegExp(`listening on 127\\.0\\.0\\.1:\\d+ \\(quic-relay ${version.replace(/\./g, '\\.')}, ${io} I/O\\)`),
    'the start line names the version and the I/O path',
  );
  const port = Number(m[1]);
  const relay = { address: '127.0.0.1', port, family: 'IPv4' };
  const a = await bindPeer(t, relay, '127.0.0.2');
  const b = await bindPeer(t, relay, '127.0.0.3');
  t.equal(await register(a, 'bundle-test'), 'ACK\n');
  t.equal(await register(b, 'bundle-test'), 'ACK\n');
  a.send('through the bundle');
  t.equal((await b.next()).toString(), 'through the bundle');
  await r.waitFor(/session bundle-test paired/);
  t.notMatch(r.stderr(), /forwarded to/, 'nothing logged per datagram by default');

  const mm = await r.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
  const metrics = await (await fetch(`http://127.0.0.1:${mm[1]}/metrics`)).text();
  t.match(metrics, /^quic_relay_forwarded_datagrams_total 1$/m);
  const health = await fetch(`http://127.0.0.1:${mm[1]}/healthz`);
  t.equal(health.status, 200);
  await health.text();

  // SPEC 3.4's one second is the relay's own hard stop (a 900 ms timer in the
  // CLI); this test waits for the exit, it does not time it.
  r.child.kill('SIGTERM');
  const { code } = await r.exit;
  t.equal(code, 0, 'exit 0');
  t.match(r.stderr(), /stopped after [\d.]+ s: 1 sessions open \(1 paired\), 1 created, 1 datagrams/, 'one-line summary');
});

t.test('run as ./quic-relay.js: the shebang starts node with --optimize-for-size', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1', '--metrics-port', '0'], {}, true);
  await r.waitFor(/UDP relay listening on/);
  const mm = await r.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
  const metrics = await (await fetch(`http://127.0.0.1:${mm[1]}/metrics`)).text();
  t.match(metrics, new RegExp(`^quic_relay_build_info\\{version="${version.replace(/\./g, '\\.')}"\\} 1$`, 'm'), 'build info names the version');
  const flags = readFileSync(`/proc/${r.child.pid}/cmdline`, 'latin1').split('\0');
  t.ok(flags.includes('--optimize-for-size'), `node was started with --optimize-for-size (${flags.join(' ')})`);
  r.child.kill('SIGTERM');
  t.equal((await r.exit).code, 0);
});

t.test('SIGUSR1 opens no inspector and SIGHUP does not kill: both are logged and the relay carries on', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1']);
  const m = await r.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/);
  r.child.kill('SIGUSR1');
  await r.waitFor(/SIGUSR1 ignored/);
  r.child.kill('SIGHUP');
  await r.waitFor(/SIGHUP: nothing to reload/);
  const a = await bindPeer(t, { address: '127.0.0.1', port: Number(m[1]), family: 'IPv4' }, '127.0.0.2');
  t.equal(await register(a, 'after-signals'), 'ACK\n', 'still serving');
  t.notMatch(r.stderr(), /Debugger listening/, 'no inspector');
  r.child.kill('SIGTERM');
  t.equal((await r.exit).code, 0);
  t.match(r.stderr(), /stopped after/, 'and the summary at the end');
});

t.test('SPEC 6.1: SIGHUP re-reads --tls-cert/--tls-key; a bad pair is reported and the old one kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qr-bundle-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tls = join(__dirname, 'fixtures', 'tls');
  copyFileSync(join(tls, 'cert.pem'), join(dir, 'cert.pem'));
  copyFileSync(join(tls, 'key.pem'), join(dir, 'key.pem'));
  const r = run(t, ['--port', '0', '--host', '127.0.0.1', '--ws-port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
  await r.waitFor(/WebSocket leg \(wss\) listening on 127\.0\.0\.1:\d+/);
  r.child.kill('SIGHUP');
  await r.waitFor(/SIGHUP: TLS certificate and key reloaded/);
  copyFileSync(join(tls, 'key2.pem'), join(dir, 'key.pem')); // no longer the certificate's key
  r.child.kill('SIGHUP');
  await r.waitFor(/SIGHUP: TLS reload failed, the old certificate stays: --tls-cert\/--tls-key/);
  r.child.kill('SIGTERM');
  t.equal((await r.exit).code, 0);
  const bad = run(t, ['--port', '0', '--host', '127.0.0.1', '--ws-port', '0', '--tls-cert', join(dir, 'cert.pem')]);
  t.equal((await bad.exit).code, 1, '--tls-cert without --tls-key: exit 1');
  t.match(bad.stderr().trim(), /^quic-relay: --tls-key: /);
  t.equal(bad.stderr().trim().split('\n').length, 1, 'one line');
});

t.test('SPEC 3.6: SIGUSR2 drains: the session flows on, a new one is refused, exit 0 once none is left', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1', '--metrics-port', '0', '--session-timeout-secs', '1']);
  const m = await r.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/);
  const mm = await r.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
  const readyz = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${mm[1]}/readyz`);
    await res.text();
    return res.status;
  };
  const relay = { address: '127.0.0.1', port: Number(m[1]), family: 'IPv4' };
  const a = await bindPeer(t, relay, '127.0.0.2');
  const b = await bindPeer(t, relay, '127.0.0.3');
  t.equal(await register(a, 'draining-session'), 'ACK\n');
  t.equal(await readyz(), 200);
  r.child.kill('SIGUSR2');
  await r.waitFor(/draining: new sessions refused/);
  t.equal(await readyz(), 503, '/readyz says draining');
  t.equal(await register(b, 'draining-session'), 'ACK\n', 'the partner still joins the session it holds');
  a.send('during the drain');
  t.equal((await b.next()).toString(), 'during the drain', 'data flows');
  t.equal(await register(a, 'draining-session'), 'ACK\n', 'keepalives too');
  const c = await bindPeer(t, relay, '127.0.0.4');
  t.equal(await register(c, 'a-new-session'), 'ERR:BUSY\n', 'a new session is refused');
  // the peers fall silent: the session is reaped after 1 s, and the relay exits by itself
  const { code } = await r.exit;
  t.equal(code, 0, 'exit 0 once no session is left');
  t.match(r.stderr(), /drained: no session left/);
  t.match(r.stderr(), /stopped after [\d.]+ s: 0 sessions open/, 'with the summary line');
});

t.test('SPEC 3.6: the drain ends at --drain-timeout-secs, and SIGTERM during a drain stops at once', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1', '--drain-timeout-secs', '1']);
  const m = await r.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/);
  const a = await bindPeer(t, { address: '127.0.0.1', port: Number(m[1]), family: 'IPv4' }, '127.0.0.2');
  t.equal(await register(a, 'outlives-the-drain'), 'ACK\n');
  r.child.kill('SIGUSR2');
  t.equal((await r.exit).code, 0);
  t.match(r.stderr(), /drain timeout \(1 s\): stopping with 1 sessions open/);
  t.match(r.stderr(), /stopped after [\d.]+ s: 1 sessions open/);
  const r2 = run(t, ['--port', '0', '--host', '127.0.0.1']);
  await r2.waitFor(/UDP relay listening/);
  r2.child.kill('SIGUSR2');
  await r2.waitFor(/draining/);
  r2.child.kill('SIGTERM');
  t.equal((await r2.exit).code, 0, 'SIGTERM in a drain: exit 0');
  t.match(r2.stderr(), /stopped after/);
});

t.test('SPEC 4.3: a relay with --auth-secret takes tickets from `quic-relay ticket`, and nothing else', async (t) => {
  const secret = { QUIC_RELAY_AUTH_SECRET: 'bundle-secret-0123456789abcdef' };
  const tk = run(t, ['ticket', '--ttl-secs', '600'], secret);
  let out = '';
  tk.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  t.equal((await tk.exit).code, 0);
  t.match(out, /^q1[0-9a-f]{8}[A-Za-z0-9_-]{38}\n$/, 'one ticket, alone on one line');
  const r = run(t, ['--port', '0', '--host', '127.0.0.1'], secret);
  const m = await r.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/);
  await r.waitFor(/tickets required \(1 secret\)/);
  t.notMatch(r.stderr(), /bundle-secret/, 'the secret is not logged');
  const relay = { address: '127.0.0.1', port: Number(m[1]), family: 'IPv4' };
  const a = await bindPeer(t, relay, '127.0.0.2');
  const b = await bindPeer(t, relay, '127.0.0.3');
  t.equal(await register(a, 'not-a-ticket'), 'ERR:AUTH\n');
  t.equal(await register(a, out.trim()), 'ACK\n');
  t.equal(await register(b, out.trim()), 'ACK\n');
  a.send('ticketed');
  t.equal((await b.next()).toString(), 'ticketed');
  r.child.kill('SIGTERM');
  await r.exit;
});

t.test('SIGINT stops it too', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1']);
  await r.waitFor(/UDP relay listening/);
  r.child.kill('SIGINT');
  t.equal((await r.exit).code, 0);
});

t.test('DEBUG=quic-relay:* adds per-datagram detail', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1'], { DEBUG: 'quic-relay:*' });
  const m = await r.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/);
  const relay = { address: '127.0.0.1', port: Number(m[1]), family: 'IPv4' };
  const a = await bindPeer(t, relay, '127.0.0.2');
  const b = await bindPeer(t, relay, '127.0.0.3');
  await register(a, 'debug-test');
  await register(b, 'debug-test');
  a.send('x');
  await b.next();
  await r.waitFor(/quic-relay:datagram 1 bytes forwarded to 127\.0\.0\.3:/);
  r.child.kill('SIGTERM');
  await r.exit;
});

t.test('bad flags and variables: one line, non-zero', async (t) => {
  for (const [args, env, re] of [
    [['--port', '70000'], {}, /--port/],
    [['--session-timeout-secs', '-1'], {}, /--session-timeout-secs/],
    [['--frobnicate'], {}, /--frobnicate/],
    [[], { QUIC_RELAY_PORT: 'x' }, /--port.*QUIC_RELAY_PORT/],
  ] as Array<[string[], Record<string, string>, RegExp]>) {
    const r = run(t, args, env);
    const { code } = await r.exit;
    t.not(code, 0, `${args.join(' ')} ${JSON.stringify(env)} exits non-zero`);
    t.match(r.stderr(), re);
    t.equal(r.stderr().trim().split('\n').length, 1, 'one line');
  }
});

t.test('a port in use is one clear line, exit 1', async (t) => {
  const first = run(t, ['--port', '0', '--host', '127.0.0.1']);
  const m = await first.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  const second = run(t, ['--port', m[1]!, '--host', '127.0.0.1']);
  t.equal((await second.exit).code, 1);
  t.match(second.stderr(), /cannot bind UDP 127\.0\.0\.1:\d+: EADDRINUSE/);
  first.child.kill('SIGTERM');
  await first.exit;
});

t.test('--help and --version', async (t) => {
  const h = run(t, ['--help']);
  let out = '';
  h.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  t.equal((await h.exit).code, 0);
  for (const flag of [
    '--port',
    '--host',
    '--session-timeout-secs',
    '--metrics-port',
    '--metrics-host',
    '--max-sessions',
    '--max-sessions-per-ip',
    '--registrations-per-sec-per-ip',
    '--no-implicit-rebind',
    '--auth-secret',
    '--drain-timeout-secs',
    '--max-session-bytes-per-sec',
    '--unpaired-timeout-secs',
    '--max-session-datagrams-per-sec',
    '--public-address',
    '--peer-relays',
    '--implicit-rebind',
  ]) {
    t.match(out, flag, `help lists ${flag}`);
  }
  t.match(out, /QUIC_RELAY_PORT/, 'help names the variables');
});

t.test('Ctrl-C while the sidecar is still registering exits 0', async (t) => {
  const silent = await bindPeer(t, { address: '127.0.0.1', port: 9, family: 'IPv4' }, '127.0.0.1'); // a "relay" that never answers
  const p = run(t, ['peer', '--session', 'never-acked', '--relay', `127.0.0.1:${silent.port}`, '--forward', '127.0.0.1:9'], { DEBUG: 'quic-relay:*' });
  t.match((await silent.next(5000)).toString(), /^REG:never-acked/, 'it is registering');
  await p.waitFor(/quic-relay:peer REG never-acked to 127\.0\.0\.1:\d+ \(registering\)/); // DEBUG traces each attempt
  p.child.kill('SIGINT');
  t.equal((await p.exit).code, 0);
  t.notMatch(p.stderr(), /closed/i, 'and says nothing of a closed client');
});

t.test('peer and probe from the same bundle', async (t) => {
  const r = run(t, ['--port', '0', '--host', '127.0.0.1']);
  const m = await r.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/);
  const relay = `127.0.0.1:${m[1]}`;
  // listening side forwards to a port nobody uses; we only need it registered
  const fwd = run(t, ['peer', '--session', 'bundle-peer', '--relay', relay, '--forward', '127.0.0.1:9', '--candidates', 'none']);
  await fwd.waitFor(new RegExp(`registered bundle-peer via ${relay.replace(/\./g, '\\.')}`));
  const lis = run(t, ['peer', '--session', 'bundle-peer', '--listen', '127.0.0.1:0'], { QUIC_RELAY_IP: relay, QUIC_RELAY_CANDIDATES: 'none' });
  await lis.waitFor(/registered bundle-peer via/);
  await lis.waitFor(/point your QUIC client at 127\.0\.0\.1:\d+/);
  // SPEC 5.3-5.4 from the bundle: the two find each other and go direct over loopback
  await lis.waitFor(/peer bundle-peer reachable via relay/);
  await fwd.waitFor(/peer bundle-peer reachable via relay/);
  await lis.waitFor(/path direct 127\.0\.0\.1:\d+ rtt \d+\.\d\d/);
  await fwd.waitFor(/path direct 127\.0\.0\.1:\d+ rtt \d+\.\d\d/);
  // SPEC 5.5 from the bundle: QUIC_RELAY_ONLY=true says so, and never goes direct
  const only = run(t, ['peer', '--session', 'bundle-only', '--relay', relay, '--forward', '127.0.0.1:9', '--status-secs', '1'], { QUIC_RELAY_ONLY: 'true' });
  await only.waitFor(/path relay relay-only/);
  await only.waitFor(/status: path relay via 127\.0\.0\.1:\d+; 0 datagrams \(0\.0 MB\) to the peer/);
  only.child.kill('SIGTERM');
  t.equal((await only.exit).code, 0);
  fwd.child.kill('SIGTERM');
  lis.child.kill('SIGTERM');
  t.equal((await fwd.exit).code, 0, 'sidecar exits 0 on SIGTERM');
  t.match(
    fwd.stderr(),
    /stopped: \d+ datagrams \([\d.]+ MB\) to the peer, .*direct for [\d.]+ s of [\d.]+ s; 0 relay changes/,
    'with a summary of what it carried',
  );
  t.equal((await lis.exit).code, 0);

  const p = run(t, ['probe', '--relay', relay, '--count', '10', '--interval-ms', '1']);
  let out = '';
  p.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  t.equal((await p.exit).code, 0, 'probe exits 0 against a working relay');
  t.match(out, /10\/10 round trips, loss 0\.0%/);
  r.child.kill('SIGTERM');
  await r.exit;

  const dead = run(t, ['probe', '--relay', relay, '--count', '1', '--timeout-secs', '1']);
  t.equal((await dead.exit).code, 1, 'probe exits 1 when nothing answers');
});

t.test(
  'native I/O that cannot load: auto says why and uses dgram; --io native exits naming it',
  { skip: existsSync(join(__dirname, '..', 'build', 'udp_batch.node')) ? false : 'built without the native module' },
  async (t) => {
    // --no-addons is one of the failures to expect (also: a noexec temp dir, the permission model)
    const auto = run(t, ['--port', '0', '--host', '127.0.0.1'], { NODE_OPTIONS: '--no-addons' });
    await auto.waitFor(/UDP relay listening on 127\.0\.0\.1:\d+ \(quic-relay [^,]+, dgram I\/O\)/);
    await auto.waitFor(/native I\/O not in use \(.*\): datagrams go through node:dgram/);
    auto.child.kill('SIGTERM');
    t.equal((await auto.exit).code, 0);
    if (process.getuid?.() === 0) {
      // a noexec temp dir, as on hardened hosts: mounted here, inside our own temp dir, and unmounted in teardown
      const noexec = mkdtempSync(join(tmpdir(), 'quic-relay-noexec-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'noexec,size=16m', 'tmpfs', noexec]);
      t.teardown(() => {
        execFileSync('umount', [noexec]);
        rmSync(noexec, { recursive: true, force: true });
      });
      const ne = run(t, ['--port', '0', '--host', '127.0.0.1'], { TMPDIR: noexec });
      await ne.waitFor(/native I\/O not in use \(ERR_DLOPEN_FAILED: .*failed to map segment/);
      await ne.waitFor(/dgram I\/O/);
      ne.child.kill('SIGTERM');
      t.equal((await ne.exit).code, 0, 'noexec TMPDIR: falls back, runs, exits cleanly');
      t.same(readdirSync(noexec), [], 'and leaves nothing behind there');
    }
    const strict = run(t, ['--port', '0', '--host', '127.0.0.1', '--io', 'native'], { NODE_OPTIONS: '--no-addons' });
    const { code } = await strict.exit;
    t.not(code, 0, 'exits non-zero');
    t.match(strict.stderr(), /--io native: /, 'naming the option and why');
    const bad = run(t, ['--io', 'fast']);
    t.not((await bad.exit).code, 0);
    t.match(bad.stderr(), /--io.*fast.*Allowed choices are auto, native, dgram/);
  },
);
