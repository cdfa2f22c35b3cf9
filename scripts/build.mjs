// Builds the single-file relay (dist/quic-relay.js: everything bundled, runs
// with plain node >= 20 and no node_modules) and the library (dist/index.js).
import { build } from 'esbuild';
import { chmod, readFile, stat } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs', // prom-client and debug are CommonJS
  keepNames: true,
  sourcemap: false,
  logLevel: 'warning',
  define: { QUIC_RELAY_VERSION: JSON.stringify(pkg.version) },
};

await build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/quic-relay.js' });
await chmod('dist/quic-relay.js', 0o755);
await build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/index.js', packages: 'external' });
const { size } = await stat('dist/quic-relay.js');
console.log(`dist/quic-relay.js ${(size / 1024).toFixed(0)} KiB`);
