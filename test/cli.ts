// SPEC 3.1: flags, variables, precedence and one-line errors, in-process.
import t from 'tap';
import { CommanderError } from 'commander';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/main';
import { relayOptionsFrom } from '../src/cli/relay';
import { parseEndpointArg } from '../src/cli/client-options';
import type { RelayServerOptions } from '../src/server/config';
import { validateConfig } from '../src/server/config';
import { DEFAULT_PORT, DEFAULT_SESSION_TIMEOUT_SECS } from '../src/wire/constants';

/** Parses argv with `env` as process.env; returns the relay options or the error line. */
async function parse(args: string[], env: Record<string, string> = {}): Promise<{ options?: RelayServerOptions; error?: string; exitCode?: number }> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('QUIC_RELAY_')) delete process.env[k];
  Object.assign(process.env, env);
  let err = '';
  let options: RelayServerOptions | undefined;
  const program = buildProgram(process.env, (cmd: Command) => {
    options = relayOptionsFrom(cmd, process.env);
  });
  const all = [program, ...program.commands];
  for (const c of all) c.exitOverride().configureOutput({ writeErr: (s) => (err += s), writeOut: () => undefined });
  try {
    await program.parseAsync(['node', 'quic-relay', ...args]);
    return { options };
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    return { error: err, exitCode: e.exitCode };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

t.test('no flags: the original\'s defaults', async (t) => {
  const { options } = await parse([]);
  const c = validateConfig(options);
  t.equal(c.port, DEFAULT_PORT);
  t.equal(c.host, '0.0.0.0');
  t.equal(c.sessionTimeoutSecs, DEFAULT_SESSION_TIMEOUT_SECS);
  t.equal(c.metricsPort, undefined);
  t.equal(c.implicitRebind, true);
});

t.test('the original\'s command line works as it did', async (t) => {
  const { options } = await parse(['--port', '5000', '--session-timeout-secs', '60']);
  t.equal(options?.port, 5000);
  t.equal(options?.sessionTimeoutSecs, 60);
});

t.test('every option is read, from its flag and from its variable', async (t) => {
  const table: Array<[string, string, string, keyof RelayServerOptions, unknown]> = [
    ['--port', 'QUIC_RELAY_PORT', '4500', 'port', 4500],
    ['--host', 'QUIC_RELAY_HOST', '::', 'host', '::'],
    ['--session-timeout-secs', 'QUIC_RELAY_SESSION_TIMEOUT_SECS', '42', 'sessionTimeoutSecs', 42],
    ['--metrics-port', 'QUIC_RELAY_METRICS_PORT', '9100', 'metricsPort', 9100],
    ['--metrics-host', 'QUIC_RELAY_METRICS_HOST', '10.0.0.1', 'metricsHost', '10.0.0.1'],
    ['--max-sessions', 'QUIC_RELAY_MAX_SESSIONS', '7', 'maxSessions', 7],
    ['--max-sessions-per-ip', 'QUIC_RELAY_MAX_SESSIONS_PER_IP', '8', 'maxSessionsPerIp', 8],
    ['--registrations-per-sec-per-ip', 'QUIC_RELAY_REGISTRATIONS_PER_SEC_PER_IP', '9', 'registrationsPerSecPerIp', 9],
    ['--recv-buffer-bytes', 'QUIC_RELAY_RECV_BUFFER_BYTES', '65536', 'recvBufferBytes', 65536],
    ['--send-buffer-bytes', 'QUIC_RELAY_SEND_BUFFER_BYTES', '65536', 'sendBufferBytes', 65536],
  ];
  for (const [flag, env, value, key, want] of table) {
    t.equal((await parse([flag, value])).options?.[key], want, flag);
    t.equal((await parse([], { [env]: value })).options?.[key], want, env);
  }
  t.equal((await parse(['--no-implicit-rebind'])).options?.implicitRebind, false, '--no-implicit-rebind');
  t.equal((await parse([], { QUIC_RELAY_NO_IMPLICIT_REBIND: 'true' })).options?.implicitRebind, false, 'QUIC_RELAY_NO_IMPLICIT_REBIND=true');
  t.equal((await parse([], { QUIC_RELAY_NO_IMPLICIT_REBIND: 'false' })).options?.implicitRebind, true, 'QUIC_RELAY_NO_IMPLICIT_REBIND=false');
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
    [['--host', 'not a host'], {}, /--host/],
    [['--bogus'], {}, /--bogus/],
    [['extra-argument'], {}, /argument/],
    [[], { QUIC_RELAY_PORT: '70000' }, /--port.*QUIC_RELAY_PORT/],
    [[], { QUIC_RELAY_SESSION_TIMEOUT_SECS: '-1' }, /--session-timeout-secs.*QUIC_RELAY_SESSION_TIMEOUT_SECS/],
    [[], { QUIC_RELAY_NO_IMPLICIT_REBIND: 'maybe' }, /--no-implicit-rebind.*QUIC_RELAY_NO_IMPLICIT_REBIND/],
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
  ] as Array<[string[], RegExp]>) {
    const r = await parse(args);
    t.not(r.exitCode, 0, args.join(' '));
    t.match(r.error, re, args.join(' '));
    t.equal(r.error?.trim().split('\n').length, 1, 'one line');
  }
});
