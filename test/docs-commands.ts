// The shell blocks of the README and docs/, held to what the bundle does.
// Every `quic-relay.js` command they show uses only flags its --help lists
// (a renamed flag fails here, not on a user's host). The README's worked
// example is run as written, its documentation addresses mapped to loopback:
// the relay host 203.0.113.10 is 127.0.0.1, each fixed port is port 0, and
// the forwarding side's QUIC server is a UDP echo; nothing else is changed.
// So are the operator's nohup start and its drain through the pid file.
import t from 'tap';
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { bundleCopy } from './fixtures/bundle-run';
import { until } from './fixtures/udp';

const root = resolve(__dirname, '..');
const { dir, run } = bundleCopy(t);

/** The ```sh blocks of a markdown file, each as its logical lines (backslash continuations joined). */
function shellBlocks(file: string): string[][] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.replace(/\\\n\s*/g, ' ').split('\n'));
}

/** Words of a command line, quotes removed, up to its comment. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(#.*$)|(\S+)/g)) {
    if (m[3] !== undefined) break;
    out.push(m[1] ?? m[2] ?? m[4]!);
  }
  return out;
}

const SUBCOMMANDS = ['peer', 'probe', 'ticket'];

/** The quic-relay.js invocations of a line: the subcommand ('' for the relay) and the flags given. */
function invocations(line: string): Array<{ sub: string; flags: string[] }> {
  const w = words(line);
  const at = w.indexOf('quic-relay.js');
  if (at < 0 || !w.slice(0, at).includes('node')) return [];
  const args = w.slice(at + 1);
  const sub = SUBCOMMANDS.includes(args[0] ?? '') ? args[0]! : '';
  return [{ sub, flags: args.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]!) }];
}

const docs = ['README.md', ...readdirSync(join(root, 'docs')).map((f) => join('docs', f))].filter((f) => f.endsWith('.md'));

t.test('every quic-relay.js command in the README and docs/ uses flags its --help lists', async (t) => {
  const help = new Map<string, string>();
  const helpOf = (sub: string): string => {
    if (!help.has(sub)) help.set(sub, execFileSync(process.execPath, [join(dir, 'quic-relay.js'), ...(sub ? [sub] : []), '--help'], { encoding: 'utf8' }));
    return help.get(sub)!;
  };
  let commands = 0;
  for (const file of docs) {
    for (const block of shellBlocks(join(root, file))) {
      for (const line of block) {
        for (const { sub, flags } of invocations(line.replace(/^\$ /, ''))) {
          commands++;
          for (const flag of flags)
            t.ok(new RegExp(`(^|[\\s,])${flag}(?=[\\s,=]|$)`, 'm').test(helpOf(sub)), `${file}: \`${sub || 'relay'} ${flag}\` is a flag of the bundle`);
        }
      }
    }
  }
  t.ok(commands >= 10, `${commands} commands checked`);
});

t.test("the README's worked example, run as written against loopback", async (t) => {
  const block = shellBlocks(join(root, 'README.md')).find((b) => b.some((l) => l.includes('peer --session')));
  if (block === undefined) throw new Error('README.md: no shell block with the sidecar example');
  const id = /^ID=(\S+)/.exec(block.find((l) => l.startsWith('ID='))!)![1]!;
  const commands = block.filter((l) => /^node quic-relay\.js/.test(l)).map(words);
  t.equal(commands.length, 3, 'a relay and two sidecars');
  const [relayCmd, forwardCmd, listenCmd] = commands as [string[], string[], string[]];
  const toLoopback = (args: string[], relay: string, local: string): string[] =>
    args.slice(2).map((a) => (a === '$ID' ? id : a.replace('203.0.113.10:4433', relay).replace('127.0.0.1:4443', local)));

  // The relay, its documented port made port 0 and its host loopback.
  const relayArgs = relayCmd.slice(2).map((a) => (a === '4433' ? '0' : a));
  const relayRun = run(t, [...relayArgs, '--host', '127.0.0.1']);
  const relay = `127.0.0.1:${(await relayRun.waitFor(/UDP relay listening on 127\.0\.0\.1:(\d+)/))[1]}`;

  // The listening side's QUIC server: an echo.
  const server = dgram.createSocket('udp4');
  t.teardown(() => server.close());
  server.on('message', (m, r) => server.send(Buffer.concat([Buffer.from('echo: '), m]), r.port, r.address));
  await new Promise<void>((res) => server.bind(0, '127.0.0.1', res));
  // Candidates: loopback only, so the direct path never targets this host's interfaces.
  const env = { QUIC_RELAY_CANDIDATES: '127.0.0.1' };
  t.match(forwardCmd.join(' '), /peer --session \$ID --relay 203\.0\.113\.10:4433 --forward 127\.0\.0\.1:4443/);
  const fwd = run(t, toLoopback(forwardCmd, relay, `127.0.0.1:${(server.address() as { port: number }).port}`), env);
  t.match(listenCmd.join(' '), /peer --session \$ID --relay 203\.0\.113\.10:4433 --listen 127\.0\.0\.1:4443/);
  const lis = run(t, toLoopback(listenCmd, relay, '127.0.0.1:0'), env);
  const at = await lis.waitFor(/point your QUIC client at 127\.0\.0\.1:(\d+)/);
  await fwd.waitFor(new RegExp(`registered ${id} via`));

  // "point the QUIC client at 127.0.0.1:4443": a datagram there comes back from the server behind the other sidecar.
  const client = dgram.createSocket('udp4');
  t.teardown(() => client.close());
  await new Promise<void>((res) => client.bind(0, '127.0.0.1', res));
  const reply = new Promise<string>((res) => client.on('message', (m) => res(m.toString())));
  // The relay drops what comes before the partner: first both sides say the other is there.
  await lis.waitFor(new RegExp(`peer ${id} reachable`));
  await fwd.waitFor(new RegExp(`peer ${id} reachable`));
  client.send('initial', Number(at[1]), '127.0.0.1');
  t.equal(await reply, 'echo: initial');
  for (const r of [lis, fwd, relayRun]) r.child.kill('SIGTERM');
  for (const r of [lis, fwd, relayRun]) t.equal((await r.exit).code, 0, 'each exits 0 on SIGTERM');
});

t.test('docs/operations.md: started with nohup as written, drained through its pid file as written', async (t) => {
  const blocks = shellBlocks(join(root, 'docs', 'operations.md')).map((b) => b.map((l) => l.trim()).filter((l) => l !== ''));
  const start = blocks.find((b) => b.some((l) => l.startsWith('nohup node')));
  const drain = blocks.flat().find((l) => l.startsWith('kill -USR2'));
  if (start === undefined || drain === undefined) throw new Error('docs/operations.md: no nohup start or no drain line');
  t.match(drain, /^kill -USR2 "\$\(cat quic-relay\.pid\)"/, 'the drain signals the pid the start wrote, and nothing it has to search for');
  // Loopback: the documented ports are port 0, on 127.0.0.1.
  const script = start.map((l) => l.replace('--port 4433', '--port 0 --host 127.0.0.1').replace('--metrics-port 9464', '--metrics-port 0')).join('\n');
  const shell = { cwd: dir, env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` }, encoding: 'utf8' as const };
  execFileSync('bash', ['-c', script], shell);
  const pid = Number(readFileSync(join(dir, 'quic-relay.pid'), 'utf8'));
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.teardown(() => {
    if (alive()) process.kill(pid, 'SIGKILL');
  });
  const log = (): string => readFileSync(join(dir, 'quic-relay.log'), 'utf8');
  await until(() => /UDP relay listening on 127\.0\.0\.1:\d+/.test(log()), 5000);
  execFileSync('bash', ['-c', drain], shell); // a shell the signal would kill fails here
  await until(() => !alive(), 5000);
  t.match(log(), /draining: new sessions refused/);
  t.match(log(), /drained: no session left/);
  t.match(log(), /stopped after [\d.]+ s/, 'and it stopped with its summary');
});
