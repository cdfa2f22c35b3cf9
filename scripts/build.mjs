// Builds the single-file relay (dist/quic-relay.js: everything bundled, runs
// with plain node >= 20 and no node_modules), the library (dist/index.js,
// its dependencies left to npm) and the library's type declarations
// (dist/types/). `npm pack` and an install from git run this (prepare).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmod, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { buildNative } from './build-native.mjs';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
const native = buildNative(fileURLToPath(new URL('..', import.meta.url)));
const nativeDefine = JSON.stringify(native.built.map((m) => ({ b64: m.bytes.toString('base64'), sha256: m.sha256, target: m.target })));
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs', // prom-client and debug are CommonJS
  keepNames: true,
  sourcemap: false,
  logLevel: 'warning',
  define: { QUIC_RELAY_VERSION: JSON.stringify(pkg.version), QUIC_RELAY_NATIVE: nativeDefine },
};

await build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/quic-relay.js' });
await chmod('dist/quic-relay.js', 0o755);
await build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/index.js', packages: 'external' });
await rm('dist/types', { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
const { size } = await stat('dist/quic-relay.js');
console.log(
  `dist/quic-relay.js ${(size / 1024).toFixed(0)} KiB, dist/index.js, dist/types/; native I/O: ${native.built.map((m) => `${m.target} (${(m.bytes.length / 1024).toFixed(0)} KiB)`).join(', ') || 'none'} embedded${native.missing.length ? `; not built: ${native.missing.join('; ')}` : ''}`,
);
