// SPEC 3.1: flags, variables, precedence and one-line errors, in-process.
import t from 'tap';
import createDebug from 'debug';
import { CommanderError } from 'commander';
import { buildProgram } from '../src/cli/main';
import type { RelayRun } from '../src/cli/relay';
import { parseEndpointArg } from '../src/cli/client-options';
import type { RelayServerOptions } from '../src/server/config';
import { validateConfig } from '../src/server/config';
import { logNamespaces } from '../src/server/log';
import { DEFAULT_DRAIN_TIMEOUT_SECS, DEFAULT_PORT, DEFAULT_SESSION_TIMEOUT_SECS } from '../src/wire/constants';
import { checkTicket, makeTicket } from '../src/wire/tickets';
import { startRelay } from './fixtures/udp';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Parsed {
  options?: RelayServerOptions;
  run?: RelayRun;
  error?: string;
  exitCode?: number;
  out: string[];
  help: string;
}

/** Parses argv with `env` as process.env (commander reads process.env itself); returns what the relay would run with, or the error. */
async function parse(args: string[], env: Record<string, string> = {}): Promise<Parsed> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('QUIC_RELAY_')) delete process.env[k];
  Object.assign(process.env, env);
  let err = '';
  let help = '';
  const out: string[] = [];
  let run: RelayRun | undefined;
  let exitCode: number | undefined;
  const program = buildProgram({
    env: process.env,
    runRelay: (r) => {
      run = r;
    },
    print: (l) => out.push(l),
    exitCode: (c) => {
      exitCode = c;
    },
  });
  const all = [program, ...program.commands];
  for (const c of all) c.exitOverride().configureOutput({ writeErr: (s) => (err += s), writeOut: (s) => (help += s) });
  try {
    await program.parseAsync(['node', 'quic-relay', ...args]);
    return { options: run?.server, run, out, help, ...(exitCode !== undefined ? { exitCode } : {}) };
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    return { error: err, exitCode: e.exitCode, out, help };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

t.test("no flags: the original's defaults", async (t) => {
  const { options } = await parse([]);
  const c = validateConfig(options);
  t.equal(c.port, DEFAULT_PORT);
  t.equal(c.host, '0.0.0.0');
  t.equal(c.sessionTimeoutSecs, DEFAULT_SESSION_TIMEOUT_SECS);
  t.equal(c.implicitRebind, true);
  t.same(c.authSecrets, []);
  t.equal(c.maxSessionBytesPerSec, 0);
  const { run } = await parse([]);
  t.equal(run?.metrics, undefined, 'no metrics server unless asked');
  t.equal(run?.drainTimeoutSecs, DEFAULT_DRAIN_TIMEOUT_SECS);
});

t.test("the original's command line works as it did", async (t) => {
  const { options } = await parse(['--port', '5000', '--session-timeout-secs', '60']);
  t.equal(options?.port, 5000);
  t.equal(options?.sessionTimeoutSecs, 60);
});

t.test('every option is read, from its flag and from its variable', async (t) => {
  const table: Array<[string, string, string, keyof RelayServerOptions, unknown]> = [
    ['--port', 'QUIC_RELAY_PORT', '4500', 'port', 4500],
    ['--host', 'QUIC_RELAY_HOST', '::', 'host', '::'],
    ['--session-timeout-secs', 'QUIC_RELAY_SESSION_TIMEOUT_SECS', '42', 'sessionTimeoutSecs', 42],
    ['--max-session-bytes-per-sec', 'QUIC_RELAY_MAX_SESSION_BYTES_PER_SEC', '125000', 'maxSessionBytesPerSec', 125000],
    ['--max-sessions', 'QUIC_RELAY_MAX_SESSIONS', '7', 'maxSessions', 7],
    ['--max-sessions-per-ip', 'QUIC_RELAY_MAX_SESSIONS_PER_IP', '8', 'maxSessionsPerIp', 8],
    ['--registrations-per-sec-per-ip', 'QUIC_RELAY_REGISTRATIONS_PER_SEC_PER_IP', '9', 'registrationsPerSecPerIp', 9],
    ['--recv-buffer-bytes', 'QUIC_RELAY_RECV_BUFFER_BYTES', '65536', 'recvBufferBytes', 65536],
    ['--send-buffer-bytes', 'QUIC_RELAY_SEND_BUFFER_BYTES', '65536', 'sendBufferBytes', 65536],
    ['--unpaired-timeout-secs', 'QUIC_RELAY_UNPAIRED_TIMEOUT_SECS', '90', 'unpairedTimeoutSecs', 90],
    ['--max-session-datagrams-per-sec', 'QUIC_RELAY_MAX_SESSION_DATAGRAMS_PER_SEC', '1000', 'maxSessionDatagramsPerSec', 1000],
  ];
  for (const [flag, env, value, key, want] of table) {
    t.equal((await parse([flag, value])).options?.[key], want, flag);
    t.equal((await parse([], { [env]: value })).options?.[key], want, env);
  }
  t.equal((await parse(['--no-implicit-rebind'])).options?.implicitRebind, false, '--no-implicit-rebind');
  t.equal((await parse([], { QUIC_RELAY_NO_IMPLICIT_REBIND: 'true' })).options?.implicitRebind, false, 'QUIC_RELAY_NO_IMPLICIT_REBIND=true');
  t.equal((await parse([], { QUIC_RELAY_NO_IMPLICIT_REBIND: 'false' })).options?.implicitRebind, true, 'QUIC_RELAY_NO_IMPLICIT_REBIND=false');
  t.same(
    (await parse(['--metrics-port', '9100', '--metrics-host', '10.0.0.1'])).run?.metrics,
    { host: '10.0.0.1', port: 9100 },
    '--metrics-port, --metrics-host',
  );
  t.same(
    (await parse([], { QUIC_RELAY_METRICS_PORT: '9100' })).run?.metrics,
    { host: '127.0.0.1', port: 9100 },
    'QUIC_RELAY_METRICS_PORT, loopback by default',
  );
  t.equal((await parse(['--drain-timeout-secs', '30'])).run?.drainTimeoutSecs, 30, '--drain-timeout-secs');
  t.equal((await parse([], { QUIC_RELAY_DRAIN_TIMEOUT_SECS: '31' })).run?.drainTimeoutSecs, 31, 'QUIC_RELAY_DRAIN_TIMEOUT_SECS');
  t.equal((await parse(['relay', '--port', '4501'])).options?.port, 4501, 'the relay is also `quic-relay relay`');
  // SPEC 4.4
  t.same(
    (await parse(['--public-address', '203.0.113.7, 203.0.113.8:5000'])).options?.publicAddresses,
    ['203.0.113.7', '203.0.113.8:5000'],
    '--public-address',
  );
  t.same((await parse([], { QUIC_RELAY_PUBLIC_ADDRESS: '203.0.113.7' })).options?.publicAddresses, ['203.0.113.7'], 'QUIC_RELAY_PUBLIC_ADDRESS');
  t.same(
    (await parse(['--peer-relays', 'relay-b.example.com,198.51.100.9:4434'])).options?.peerRelays,
    ['relay-b.example.com', '198.51.100.9:4434'],
    '--peer-relays',
  );
  t.same((await parse([], { QUIC_RELAY_PEER_RELAYS: '198.51.100.9' })).options?.peerRelays, ['198.51.100.9'], 'QUIC_RELAY_PEER_RELAYS');
  // SPEC 2.4: unset leaves the library's default (on, or off with tickets); a flag beats a variable
  t.equal((await parse([])).options?.implicitRebind, undefined, 'neither: the default');
  t.equal((await parse(['--implicit-rebind'])).options?.implicitRebind, true, '--implicit-rebind');
  t.equal((await parse([], { QUIC_RELAY_IMPLICIT_REBIND: 'true' })).options?.implicitRebind, true, 'QUIC_RELAY_IMPLICIT_REBIND=true');
  t.equal((await parse(['--implicit-rebind'], { QUIC_RELAY_NO_IMPLICIT_REBIND: 'true' })).options?.implicitRebind, true, 'the flag beats the variable');
});

const SECRET_A = 'alpha-secret-0123456789';
const SECRET_B = 'bravo-secret-0123456789';

t.test('SPEC 4.3: secrets from the flag, the variable (a list) or a file; never echoed', async (t) => {
  t.same((await parse(['--auth-secret', SECRET_A])).options?.authSecrets, [SECRET_A]);
  t.same((await parse([], { QUIC_RELAY_AUTH_SECRET: `${SECRET_B},${SECRET_A}` })).options?.authSecrets, [SECRET_B, SECRET_A], 'a list, for rotation');
  const dir = mkdtempSync(join(tmpdir(), 'quic-relay-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'secrets');
  writeFileSync(file, `${SECRET_B}\r\n\n${SECRET_A}\n`);
  t.same((await parse(['--auth-secret-file', file])).options?.authSecrets, [SECRET_B, SECRET_A], 'one a line, blank lines skipped');
  t.same((await parse([], { QUIC_RELAY_AUTH_SECRET_FILE: file })).options?.authSecrets, [SECRET_B, SECRET_A], 'QUIC_RELAY_AUTH_SECRET_FILE');
  const short = await parse(['--auth-secret', 'tooshort-x']);
  t.not(short.exitCode, 0, 'a short secret is refused');
  t.match(short.error, /--auth-secret.*shorter than 16 bytes/);
  t.notMatch(short.error, /tooshort-x/, 'the refused secret is not echoed');
  t.equal(short.error?.trim().split('\n').length, 1);
  const missing = await parse(['--auth-secret-file', join(dir, 'nope')]);
  t.match(missing.error, /--auth-secret-file.*ENOENT/);
  const both = await parse(['--auth-secret', SECRET_A, '--auth-secret-file', file]);
  t.match(both.error, /cannot be used with/);
  const help = await parse(['--help'], { QUIC_RELAY_AUTH_SECRET: SECRET_A });
  t.match(help.help, /--auth-secret <list>/, 'help lists the option');
  t.notMatch(help.help, new RegExp(SECRET_A), 'help never shows the secret, even with the variable set');
});

t.test('SPEC 4.3: quic-relay ticket prints one ticket made with the first secret', async (t) => {
  const r = await parse(['ticket', '--ttl-secs', '60'], { QUIC_RELAY_AUTH_SECRET: `${SECRET_A},${SECRET_B}` });
  t.equal(r.out.length, 1, 'one line');
  const ticket = r.out[0]!;
  t.match(ticket, /^q1[0-9a-f]{8}[A-Za-z0-9_-]{38}$/);
  const now = Math.floor(Date.now() / 1000);
  t.equal(checkTicket(ticket, [SECRET_A], now), 'valid', 'made with the first secret');
  t.equal(checkTicket(ticket, [SECRET_B], now), 'invalid', 'not with the second');
  t.equal(checkTicket(ticket, [SECRET_A], now + 61), 'expired', '--ttl-secs is its lifetime');
  const none = await parse(['ticket']);
  t.not(none.exitCode, 0);
  t.match(none.error, /--auth-secret/, 'no secret: says which option is needed');
});

t.test('--help shows the relay options, as the original does', async (t) => {
  const r = await parse(['--help']);
  for (const flag of ['--port', '--session-timeout-secs', '--metrics-port', '--drain-timeout-secs']) t.match(r.help, flag);
  t.match(r.help, /peer/, 'and the commands');
});

t.test('each command reads only its own variables; QUIC_RELAY_PORT means the relay port on both sides', async (t) => {
  const client = ['probe', '--count', '1'];
  // relay variables, even bad ones, do not reach the client commands
  for (const env of [{ QUIC_RELAY_SESSION_TIMEOUT_SECS: '0' }, { QUIC_RELAY_MAX_SESSIONS: 'x' }, { QUIC_RELAY_HOST: 'not a host' }] as Array<
    Record<string, string>
  >) {
    const r = await parse(['peer', '--session', 'abcde', '--listen', '1', '--relay', 'bad host!'], env);
    t.match(r.error, /--relay/, `${JSON.stringify(env)}: the client's own error, not the relay's`);
  }
  const badPort = await parse(['peer', '--session', 'abcde', '--listen', '1'], { QUIC_RELAY_PORT: 'abc', QUIC_RELAY_IP: '127.0.0.1' });
  t.match(badPort.error, /QUIC_RELAY_PORT/, 'QUIC_RELAY_PORT=abc: named as the variable');
  t.notMatch(badPort.error, /--port/, "not as the relay's --port");
  const zero = await parse([...client], { QUIC_RELAY_PORT: '0', QUIC_RELAY_IP: '127.0.0.1' });
  t.match(zero.error, /QUIC_RELAY_PORT.*any free port/, 'QUIC_RELAY_PORT=0: what 0 means, and why a client cannot use it');
  t.equal((await parse([], { QUIC_RELAY_PORT: '0' })).options?.port, 0, 'while the relay takes 0 as any free port');
  // the relay's variables do apply to the relay command
  t.match((await parse([], { QUIC_RELAY_PORT: 'abc' })).error, /--port.*QUIC_RELAY_PORT/);
});

t.test('SPEC 3.2: info and warnings stay on whatever else DEBUG names', async (t) => {
  t.equal(logNamespaces(undefined), 'quic-relay:relay,quic-relay:session,quic-relay:limits');
  t.equal(logNamespaces(''), 'quic-relay:relay,quic-relay:session,quic-relay:limits');
  t.equal(logNamespaces('express:*'), 'express:*,quic-relay:relay,quic-relay:session,quic-relay:limits');
  t.equal(logNamespaces('quic-relay:*'), 'quic-relay:*,quic-relay:relay,quic-relay:session,quic-relay:limits', 'asking for everything includes datagrams');
  // What debug makes of it: exclusions win, and turn off only what they name.
  const on = (debug: string, ns: string): boolean => {
    const d = createDebug.disable();
    createDebug.enable(logNamespaces(debug));
    const enabled = createDebug.enabled(ns);
    createDebug.enable(d);
    return enabled;
  };
  t.notOk(on('express:*,-quic-relay:*', 'quic-relay:relay'), 'excluding all of ours is obeyed');
  t.notOk(on('-quic-relay:session', 'quic-relay:session'), 'excluding one namespace turns it off');
  t.ok(on('-quic-relay:session', 'quic-relay:relay'), 'and only it: the start line and the rest stay on');
  t.ok(on('-quic-relay:session', 'quic-relay:limits'));
  t.ok(on('quic-relay:*,-quic-relay:session', 'quic-relay:datagram'));
  t.notOk(on('quic-relay:*,-quic-relay:session', 'quic-relay:session'));
});

t.test('a flag beats its variable', async (t) => {
  t.equal((await parse(['--port', '6000'], { QUIC_RELAY_PORT: '5000' })).options?.port, 6000);
  t.equal((await parse(['--session-timeout-secs', '5'], { QUIC_RELAY_SESSION_TIMEOUT_SECS: '-1' })).options?.sessionTimeoutSecs, 5, 'even over a bad variable');
});

t.test('bad values exit non-zero with one line naming the option', async (t) => {
  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [['--port', '70000'], {}, /--port/],
    [['--port', 'abc'], {}, /--port/],
    [['--port', '-1'], {}, /--port/],
    [['--session-timeout-secs', '-5'], {}, /--session-timeout-secs/],
    [['--session-timeout-secs=-5'], {}, /--session-timeout-secs/],
    [['--session-timeout-secs', '0'], {}, /--session-timeout-secs/],
    [['--session-timeout-secs', '1.5'], {}, /--session-timeout-secs/],
    [['--max-sessions', '0'], {}, /--max-sessions/],
    [['--metrics-port', '65536'], {}, /--metrics-port/],
    [['--drain-timeout-secs', '0'], {}, /--drain-timeout-secs/],
    [['--max-session-bytes-per-sec', '-1'], {}, /--max-session-bytes-per-sec/],
    [['--host', 'not a host'], {}, /--host/],
    [['--bogus'], {}, /--bogus/],
    [['extra-argument'], {}, /argument/],
    [[], { QUIC_RELAY_PORT: '70000' }, /--port.*QUIC_RELAY_PORT/],
    [[], { QUIC_RELAY_SESSION_TIMEOUT_SECS: '-1' }, /--session-timeout-secs.*QUIC_RELAY_SESSION_TIMEOUT_SECS/],
    [[], { QUIC_RELAY_NO_IMPLICIT_REBIND: 'maybe' }, /--no-implicit-rebind.*QUIC_RELAY_NO_IMPLICIT_REBIND/],
    [[], { QUIC_RELAY_IMPLICIT_REBIND: 'maybe' }, /--implicit-rebind.*QUIC_RELAY_IMPLICIT_REBIND/],
    [['--unpaired-timeout-secs', '0'], {}, /--unpaired-timeout-secs/],
    [['--max-session-datagrams-per-sec', '-1'], {}, /--max-session-datagrams-per-sec/],
    [['--public-address', 'relay.example.com'], {}, /--public-address/],
    [['--public-address', '203.0.113.7:99999'], {}, /--public-address/],
    [['--peer-relays', 'not a host'], {}, /--peer-relays/],
    [[], { QUIC_RELAY_PEER_RELAYS: ',,' }, /--peer-relays.*QUIC_RELAY_PEER_RELAYS/],
    [['--ws-port', '70000'], {}, /--ws-port/],
    [[], { QUIC_RELAY_WS_PORT: 'x' }, /--ws-port.*QUIC_RELAY_WS_PORT/],
    [['--ws-queue-bytes', '100'], {}, /--ws-queue-bytes/],
    [['--ws-ping-secs', '0'], {}, /--ws-ping-secs/],
    [['--ws-max-connections', '0'], {}, /--ws-max-connections/],
    [['--ws-trusted-proxies', 'proxy.example.com'], {}, /--ws-trusted-proxies/],
    [['--ws-host', 'not a host'], {}, /--ws-host/],
  ];
  for (const [args, env, re] of bad) {
    const r = await parse(args, env);
    const what = `${args.join(' ')} ${JSON.stringify(env)}`;
    t.not(r.exitCode, 0, `${what}: exits non-zero`);
    t.match(r.error, re, `${what}: names the option`);
    t.equal(r.error?.trim().split('\n').length, 1, `${what}: one line`);
  }
});

t.test('peer: local addresses, a bare port meaning loopback', async (t) => {
  t.same(parseEndpointArg('4443'), { host: '127.0.0.1', port: 4443 });
  t.same(parseEndpointArg('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  t.same(parseEndpointArg('[::1]:4443'), { host: '::1', port: 4443 });
  t.throws(() => parseEndpointArg('host:99999'), { code: 'commander.invalidArgument' });
});

t.test('peer: exactly one of --listen and --forward, and a session', async (t) => {
  for (const [args, re] of [
    [['peer', '--relay', '127.0.0.1:4433', '--listen', '4443'], /--session/],
    [['peer', '--session', 'abcde', '--relay', '127.0.0.1:4433'], /--listen.*--forward/],
    [['peer', '--session', 'abcde', '--relay', '127.0.0.1:4433', '--listen', '1', '--forward', '2'], /cannot be used with/],
    [['peer', '--session', 'bad id', '--listen', '1'], /--session/],
    [['peer', '--session', 'abcde', '--listen', '1'], /QUIC_RELAY_IP/],
    [['peer', '--session', 'abcde', '--listen', '1', '--keepalive-secs', '0'], /--keepalive-secs/],
    [
      ['peer', '--session', 'abcde', '--relay', '127.0.0.1:4433', '--listen', '1', '--candidates', '10.0.0.1,eth0'],
      /--candidates.*"eth0" is not an IP address/,
    ],
  ] as Array<[string[], RegExp]>) {
    const r = await parse(args);
    t.not(r.exitCode, 0, args.join(' '));
    t.match(r.error, re, args.join(' '));
    t.equal(r.error?.trim().split('\n').length, 1, 'one line');
  }
});

t.test('peer: QUIC_RELAY_ONLY and QUIC_RELAY_CANDIDATES are checked, and named when wrong', async (t) => {
  const args = ['peer', '--session', 'abcde', '--relay', '127.0.0.1:4433', '--listen', '1'];
  for (const [env, re] of [
    [{ QUIC_RELAY_ONLY: 'yes please' }, /QUIC_RELAY_ONLY/],
    [{ QUIC_RELAY_CANDIDATES: '10.0.0.1,,' }, /from env 'QUIC_RELAY_CANDIDATES' is invalid\. "" is not an IP address/],
    [{ QUIC_RELAY_TRANSPORT: 'tcp' }, /QUIC_RELAY_TRANSPORT/],
    [{ QUIC_RELAY_WS_TLS: 'maybe' }, /QUIC_RELAY_WS_TLS/],
    [{ QUIC_RELAY_WS_PORT: '0' }, /QUIC_RELAY_WS_PORT/],
    [{ HTTPS_PROXY: 'socks5://proxy:1080' }, /HTTPS_PROXY/],
  ] as Array<[Record<string, string>, RegExp]>) {
    const r = await parse(args, env);
    t.not(r.exitCode, 0, JSON.stringify(env));
    t.match(r.error, re);
    t.equal(r.error?.trim().split('\n').length, 1, 'one line');
  }
});

t.test('probe with several relays: a netcheck of each, the NAT check, and exit 1 when any is down', async (t) => {
  const one = await startRelay(t);
  const two = await startRelay(t);
  const list = `127.0.0.1:${one.address.port},127.0.0.1:${two.address.port}`;
  const r = await parse(['probe', '--transport', 'udp', '--relay', list, '--count', '2', '--interval-ms', '1']);
  t.equal(r.out.length, 4, 'a line per relay, the NAT check, the verdict');
  t.match(r.out[0], new RegExp(`^relay 127\\.0\\.0\\.1:${one.address.port}: .*2/2 round trips.*public address 127\\.0\\.0\\.1:\\d+$`));
  t.match(r.out[1], new RegExp(`^relay 127\\.0\\.0\\.1:${two.address.port}: .*2/2 round trips`));
  t.match(r.out[2], /^NAT check: .*hole punching can work from here$/);
  t.equal(r.out[3], '2 of 2 relays work');
  t.equal(r.exitCode, 0);
  const single = await parse(['probe', '--transport', 'udp', '--count', '1', '--interval-ms', '1'], { QUIC_RELAY_IP: `127.0.0.1:${one.address.port}` });
  t.equal(single.out.length, 1, 'one relay: one line');

  const hole = await startRelay(t);
  const holePort = hole.address.port;
  await hole.relay.close(); // nothing listens there any more
  const down = await parse([
    'probe',
    '--transport',
    'udp',
    '--relay',
    `127.0.0.1:${one.address.port},127.0.0.1:${holePort}`,
    '--count',
    '1',
    '--interval-ms',
    '1',
    '--timeout-secs',
    '1',
  ]);
  t.not(down.exitCode, 0, 'one relay down: exit non-zero');
  t.match(down.out.join('\n'), new RegExp(`relay 127\\.0\\.0\\.1:${holePort}: no answer`));
  t.match(down.out.at(-1), /^1 of 2 relays work/);
  const json = await parse(['probe', '--transport', 'udp', '--relay', list, '--count', '1', '--interval-ms', '1', '--json']);
  const parsed = JSON.parse(json.out.join('')) as { ok: boolean; relays: Array<{ ok: boolean; received: number }>; nat: { mapping: string } };
  t.equal(parsed.ok, true);
  t.same(
    parsed.relays.map((x) => [x.ok, x.received]),
    [
      [true, 1],
      [true, 1],
    ],
    '--json: one object for scripts',
  );
  t.equal(parsed.nat.mapping, 'consistent');
});

t.test('SPEC 6.4: probe says which transports answer from here', async (t) => {
  const withWs = await startRelay(t, { wsPort: 0 });
  const udpOnly = await startRelay(t);
  const env = { QUIC_RELAY_WS_PORT: String(withWs.relay.wsAddressInfo()!.port), QUIC_RELAY_WS_TLS: 'false' };
  const both = await parse(['probe', '--relay', `127.0.0.1:${withWs.address.port}`, '--count', '2', '--interval-ms', '1'], env);
  t.equal(both.exitCode, 0);
  t.match(both.out[0], /^relay 127\.0\.0\.1:\d+: .*2\/2 round trips/);
  t.match(both.out[1], /^relay 127\.0\.0\.1:\d+ over WebSocket: .*2\/2 round trips.*the WebSocket leg works from here$/);
  t.same(both.out.slice(2), ['UDP: 1 of 1 relays answer from here', 'WebSocket: 1 of 1 relays answer from here']);
  const noWs = await parse(['probe', '--relay', `127.0.0.1:${udpOnly.address.port}`, '--count', '1', '--interval-ms', '1'], {
    QUIC_RELAY_WS_PORT: '1',
    QUIC_RELAY_WS_TLS: 'false',
  });
  t.equal(noWs.exitCode, 0, 'UDP works: the relay works');
  t.match(noWs.out[1], /over WebSocket: no answer \(WebSocket leg: ws:\/\/127\.0\.0\.1:1\/quic-relay: .*ECONNREFUSED/);
  t.equal(noWs.out[3], 'WebSocket: 0 of 1 relays answer from here');
  const wsOnly = await parse(['probe', '--transport', 'ws', '--relay', `127.0.0.1:${udpOnly.address.port}`, '--count', '1'], {
    QUIC_RELAY_WS_PORT: '1',
    QUIC_RELAY_WS_TLS: 'false',
  });
  t.equal(wsOnly.exitCode, 1, '--transport ws and no WebSocket leg: exit 1');
});

t.test('probe of a relay that wants tickets: ERR:AUTH said as such, and a ticket passes', async (t) => {
  const secret = 'probe-secret-0123456789abc';
  const { address } = await startRelay(t, { authSecrets: [secret] });
  const without = await parse(['probe', '--transport', 'udp', '--relay', `127.0.0.1:${address.port}`, '--count', '1', '--interval-ms', '1']);
  t.not(without.exitCode, 0);
  t.match(without.out[0], /answered ERR:AUTH: it wants a ticket/);
  const withTicket = await parse(['probe', '--transport', 'udp', '--relay', `127.0.0.1:${address.port}`, '--count', '1', '--interval-ms', '1'], {
    QUIC_RELAY_TICKET: makeTicket(secret),
  });
  t.equal(withTicket.exitCode, 0, 'QUIC_RELAY_TICKET');
  t.match(withTicket.out[0], /1\/1 round trips/);
});
