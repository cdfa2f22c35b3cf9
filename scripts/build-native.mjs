// Compiles src/io/udp_batch.c with plain `cc` against the node-api-headers
// package (node-gyp would download headers; nothing here can reach that host),
// for this machine's CPU and, where Debian's cross compiler is installed
// (gcc-aarch64-linux-gnu), for linux-arm64 too (Graviton). Writes
// build/udp_batch-<target>.node (and build/udp_batch.node for this machine,
// which the tests load). Returns the modules built and, for each target that
// could not be built, why: the bundle is then built without it and says so.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import os from 'node:os';

const CROSS = { x64: 'x86_64-linux-gnu-gcc', arm64: 'aarch64-linux-gnu-gcc' };

function compile(cc, include, source, out) {
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-std=c11', '-shared', '-fPIC', '-fvisibility=hidden', '-I', include, source, '-o', out], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

export function buildNative(root) {
  const built = [];
  const missing = [];
  if (os.platform() !== 'linux') return { built, missing: [`native I/O is Linux-only (recvmmsg/sendmmsg); this is ${os.platform()}`] };
  let include;
  try {
    include = join(dirname(createRequire(join(root, 'package.json')).resolve('node-api-headers/package.json')), 'include');
  } catch {
    return { built, missing: ['node-api-headers is not installed'] };
  }
  mkdirSync(join(root, 'build'), { recursive: true });
  const source = join(root, 'src', 'io', 'udp_batch.c');
  for (const arch of [os.arch(), ...Object.keys(CROSS).filter((a) => a !== os.arch())]) {
    const target = `linux-${arch}`;
    const cc = arch === os.arch() ? process.env.CC || 'cc' : CROSS[arch];
    if (cc === undefined) continue;
    const out = join(root, 'build', `udp_batch-${target}.node`);
    try {
      compile(cc, include, source, out);
    } catch (err) {
      missing.push(
        `${target}: ${
          err.code === 'ENOENT'
            ? `no ${cc}`
            : `${cc} failed: ${
                String(err.stderr ?? err.message)
                  .trim()
                  .split('\n')[0]
              }`
        }`,
      );
      continue;
    }
    if (arch === os.arch()) copyFileSync(out, join(root, 'build', 'udp_batch.node'));
    const bytes = readFileSync(out);
    built.push({ bytes, sha256: createHash('sha256').update(bytes).digest('hex'), target });
  }
  return { built, missing };
}
