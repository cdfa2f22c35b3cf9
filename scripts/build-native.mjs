// Compiles src/io/udp_batch.c with plain `cc` against the node-api-headers
// package (node-gyp would download headers; nothing here can reach that host).
// Writes build/udp_batch.node and returns { bytes, sha256, target }, or
// { error } when there is no compiler or the build fails: the bundle is then
// built without the module and says so.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import os from 'node:os';

export function buildNative(root) {
  if (os.platform() !== 'linux') return { error: `native I/O is Linux-only (recvmmsg/sendmmsg); this is ${os.platform()}` };
  const cc = process.env.CC || 'cc';
  let include;
  try {
    include = join(dirname(createRequire(join(root, 'package.json')).resolve('node-api-headers/package.json')), 'include');
  } catch {
    return { error: 'node-api-headers is not installed' };
  }
  const out = join(root, 'build', 'udp_batch.node');
  mkdirSync(dirname(out), { recursive: true });
  try {
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-std=c11', '-shared', '-fPIC', '-fvisibility=hidden', '-I', include,
      join(root, 'src', 'io', 'udp_batch.c'), '-o', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const why = err.code === 'ENOENT' ? `no C compiler (${cc})` : `${cc} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`;
    return { error: why };
  }
  const bytes = readFileSync(out);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), target: `${os.platform()}-${os.arch()}` };
}
