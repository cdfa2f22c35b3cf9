// A program built on RelayClient and Sidecar, with no 'error' listener, must
// survive anything the network does: its relay vanishing (sends into ICMP port
// unreachable), a datagram too big to send, a socket error the kernel reports.
// Run as a child process of its own, so an uncaught exception shows as a crash.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startRelay } from '../fixtures/udp';

const root = resolve(__dirname, '..', '..');
const lib = join(root, 'dist', 'index.js');
if (!existsSync(lib)) execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });

// The child: registers through the relay, says so, then waits for "gone" on
// stdin (the relay has been closed) and keeps working against nothing.
const program = `
const { RelayClient, Sidecar } = require(${JSON.stringify(lib)});
const relay = { host: '127.0.0.1', port: Number(process.argv[1]) };
const client = new RelayClient({ relay, sessionId: 'no-throw', keepaliveSecs: 1, backoffInitialMs: 20, backoffMaxMs: 50 });
const sidecar = new Sidecar({ relay, sessionId: 'no-throw', mode: 'forward', local: { host: '127.0.0.1', port: 9 }, keepaliveSecs: 1, localAddresses: [] });
Promise.all([client.register(), sidecar.start()]).then(() => {
  process.stdout.write('registered\\n');
  process.stdin.once('data', () => {
    process.stdin.destroy(); // only the client and the sidecar may keep the process alive now
    let n = 0;
    const timer = setInterval(() => {
      client.send(Buffer.from('into the void ' + n));
      sidecar.client.send(Buffer.from('also into the void'));
      if (++n === 100) {
        clearInterval(timer);
        client.send(Buffer.alloc(65508)); // EMSGSIZE, through the send callback
        client['carrier']['socket'].emit('error', Object.assign(new Error('injected ECONNREFUSED'), { code: 'ECONNREFUSED' }));
        sidecar['local'].emit('error', new Error('injected on the local side'));
        setTimeout(async () => {
          const s = client.stats;
          process.stdout.write('survived ' + JSON.stringify({ sendErrors: s.sendErrors, socketErrors: s.socketErrors + sidecar.client.stats.socketErrors, sent: s.sent }) + '\\n');
          await client.close();
          await sidecar.close();
        }, 200);
      }
    }, 5);
  });
});
`;

t.test('no error listener: the relay vanishes, sends fail, the socket reports errors; the program carries on', async (t) => {
  const { relay, address } = await startRelay(t);
  const child = spawn(process.execPath, ['-e', program, String(address.port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '' }, // plain node: not instrumented for coverage, no NODE_OPTIONS
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((res) =>
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('registered')) res();
    }),
  );
  await relay.close(); // the relay vanishes
  child.stdin.write('gone\n');
  const code = await exited;
  t.equal(err, '', 'no uncaught exception');
  t.equal(code, 0, 'it ran to the end and exited by itself: no timer or socket left behind');
  const m = /survived (\{.*\})/.exec(out);
  t.ok(m, 'it survived');
  const stats = JSON.parse(m?.[1] ?? '{}') as { sendErrors: number; socketErrors: number; sent: number };
  t.ok(stats.sendErrors >= 1, `the failed send was counted (${stats.sendErrors})`);
  t.equal(stats.socketErrors, 2, 'both socket errors were counted');
  t.equal(stats.sent, 101, 'every send after the relay went was made');
});
