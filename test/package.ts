// The package as a user gets it: `npm pack`, installed from the tarball into
// an empty project, and the README's TypeScript example compiled (strict)
// against its declarations and run against a relay on loopback.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RelayClient } from '../src/client/relay-client';
import { startRelay } from './fixtures/udp';

const root = resolve(__dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The first ```ts block of the README. */
function readmeExample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const m = /```ts\n([\s\S]*?)```/.exec(readme);
  if (m === null) throw new Error('no ```ts block in README.md');
  return m[1]!;
}

t.test('every TypeScript block in docs/ is the README example (which is run below) or says it is a fragment', async (t) => {
  const example = readmeExample();
  let compared = 0;
  for (const file of readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(join(root, 'docs', file), 'utf8');
    for (const m of text.matchAll(/(<!-- a fragment[^\n]*-->\n)?```ts\n([\s\S]*?)```/g)) {
      if (m[1] !== undefined) continue;
      compared++;
      t.equal(m[2], example, `docs/${file}: a ts block that is not the README example drifts unseen`);
    }
  }
  t.ok(compared >= 1, 'docs/client.md repeats the example');
});

t.test('npm pack -> npm install -> the README example compiles and runs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'quic-relay-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const quiet = {
    cwd: dir,
    stdio: 'pipe' as const,
    encoding: 'utf8' as const,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
  };
  // pack runs `prepare` (the build, with declarations) from the sources
  execFileSync(npm, ['pack', '--pack-destination', dir, root], { ...quiet, cwd: root });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  t.ok(tarball, 'a tarball');
  const listing = execFileSync('tar', ['-tzf', join(dir, tarball!)], { encoding: 'utf8' }).split('\n');
  for (const f of ['package/dist/index.js', 'package/dist/quic-relay.js', 'package/dist/types/index.d.ts']) t.ok(listing.includes(f), `ships ${f}`);
  t.notOk(
    listing.some((f) => f.startsWith('package/src/') || f.startsWith('package/test/')),
    'no sources or tests',
  );
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'example-app', private: true }));
  execFileSync(npm, ['install', '--prefer-offline', '--no-save', join(dir, tarball!)], quiet);
  writeFileSync(join(dir, 'example.ts'), readmeExample());
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        target: 'es2022',
        module: 'node16',
        moduleResolution: 'node16',
        outDir: 'out',
        skipLibCheck: false,
        // what a project without esModuleInterop sees: our declarations must not need it
        esModuleInterop: false,
        allowSyntheticDefaultImports: false,
        types: ['node'],
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['example.ts'],
    }),
  );
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', dir], quiet);
    t.pass('the README example compiles against the installed package (no TS7016)');
  } catch (err) {
    t.fail(`tsc: ${(err as { stdout?: string }).stdout ?? String(err)}`);
    return;
  }

  const { address } = await startRelay(t);
  const session = 'readme-example-session';
  const peer = new RelayClient({ relay: { host: '127.0.0.1', port: address.port }, sessionId: session });
  t.teardown(() => peer.close());
  await peer.register();
  peer.on('message', (m) => peer.send(Buffer.from(`${m.toString()} back`)));
  const child = spawn(process.execPath, [join(dir, 'out', 'example.js'), session], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', QUIC_RELAY_IP: `127.0.0.1:${address.port}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((res) => child.on('exit', res));
  t.equal(err, '');
  t.equal(code, 0, 'the example exits 0 by itself');
  t.match(out, `registered ${session}`);
  t.match(out, /peer says: hello from \d+ back/);

  // Two copies of the example, as the two peers: neither may wait forever,
  // whichever registers first (what it says first is dropped by the relay).
  const pair = await Promise.all(
    [0, 1].map(async () => {
      const c = spawn(process.execPath, [join(dir, 'out', 'example.js'), 'readme-example-pair'], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', QUIC_RELAY_IP: `127.0.0.1:${address.port}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      t.teardown(() => {
        if (c.exitCode === null) c.kill('SIGKILL');
      });
      let o = '';
      c.stdout.on('data', (d: Buffer) => (o += d.toString()));
      const exit = await new Promise<number | null>((res) => c.on('exit', res));
      return { exit, o };
    }),
  );
  for (const [i, r] of pair.entries()) {
    t.equal(r.exit, 0, `peer ${i + 1} exits 0 by itself`);
    t.match(r.o, /peer says: hello from \d+\n/, `peer ${i + 1} heard the other`);
  }
});
