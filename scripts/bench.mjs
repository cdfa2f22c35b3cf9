#!/usr/bin/env node
// npm run bench [-- --smoke] [-- --relay-cmd "..."]
//
// A bounded benchmark of the built relay (dist/quic-relay.js) on loopback.
// It asserts nothing about speed: it prints figures, as a table and as JSON
// (also written to bench-results/). With the C load generator from
// ../shared/bench (or $QUIC_RELAY_BENCH_DIR) it measures what compare.sh
// measures; without it, a small built-in generator measures forwarding rate,
// loss and latency at fixed rates, and memory per session is measured on the
// session table in-process.
//
// The relay is pinned to CPU 1 and the generator to CPU 0 when the machine has
// two cores and taskset, as in ../shared/bench/compare.sh. Only loopback
// addresses are used. Every child is stopped on exit.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const relayCmdArg = args.indexOf('--relay-cmd');
const bundle = join(root, 'dist', 'quic-relay.js');
const relayCmd = relayCmdArg >= 0 ? args[relayCmdArg + 1].split(' ') : [process.execPath, bundle];
const benchDir = process.env.QUIC_RELAY_BENCH_DIR ?? resolve(root, '..', 'shared', 'bench');
const children = new Set();
const log = (s) => process.stderr.write(`[bench] ${s}\n`);

process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch {} });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

if (!existsSync(bundle) && relayCmdArg < 0) execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { stdio: 'inherit' });

const pin = os.cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const onCpu = (cpu, cmd) => (pin ? ['taskset', '-c', String(cpu), ...cmd] : cmd);

/** The C generator, built into a temp dir (the shared folder may be read-only). */
function buildGenerator() {
  const src = join(benchDir, 'relaybench.c');
  if (!existsSync(src) || spawnSync('cc', ['--version']).status !== 0) return undefined;
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12);
  const out = join(os.tmpdir(), `quic-relay-bench-${hash}`);
  const bin = join(out, 'relaybench');
  if (!existsSync(bin)) {
    mkdirSync(out, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-o', bin, src, '-lm'], { stdio: 'inherit' });
  }
  return bin;
}

function rssKb(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the relay on a free loopback port; resolves when it says it listens. */
async function startRelay() {
  const port = 40000 + Math.floor(Math.random() * 20000);
  const cmd = onCpu(1, [...relayCmd, '--port', String(port), '--host', '127.0.0.1']);
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBUG: 'quic-relay:relay' } });
  children.add(child);
  let err = '';
  await new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start: ${err}`)), 10000);
    child.stderr.on('data', (d) => {
      err += d;
      if (/listening on/.test(err)) {
        clearTimeout(timer);
        resolveStart();
      }
    });
    child.on('exit', (code) => reject(new Error(`relay exited (${code}): ${err}`)));
  });
  child.stderr.resume();
  await sleep(500);
  return { child, port, pid: child.pid };
}

async function stopRelay(r) {
  r.child.kill('SIGTERM');
  await new Promise((res) => (r.child.exitCode !== null ? res() : r.child.once('exit', res)));
  children.delete(r.child);
}

/** One run of the C generator; returns its RESULT json. */
function generator(bin, relay, mode, extra) {
  const cmd = onCpu(0, [bin, mode, '--relay', `127.0.0.1:${relay.port}`, '--relay-pid', String(relay.pid), ...extra]);
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 300_000 });
  const line = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('RESULT ')).pop();
  if (!line) throw new Error(`generator ${mode} gave no result: ${r.stderr}`);
  return JSON.parse(line.slice(7));
}

// ---- built-in generator (no C toolchain or no ../shared/bench) ---------------

async function builtinRun(relay, { sessions, size, rate, seconds }) {
  const sockets = [];
  const bind = async () => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    await new Promise((r) => s.bind(0, '127.0.0.1', r));
    sockets.push(s);
    return s;
  };
  const pairs = [];
  for (let i = 0; i < sessions; i++) {
    const a = await bind();
    const b = await bind();
    const id = `bench-${process.pid}-${i}`;
    for (const s of [a, b]) {
      await new Promise((res) => {
        s.once('message', res);
        s.send(`REG:${id}\n`, relay.port, '127.0.0.1');
      });
    }
    pairs.push([a, b]);
  }
  const lat = [];
  let received = 0;
  for (const [, b] of pairs) {
    b.on('message', (m) => {
      received++;
      lat.push(Number(process.hrtime.bigint() - m.readBigUInt64BE(0)) / 1000);
    });
  }
  const payload = Buffer.alloc(size);
  const total = Math.round(rate * seconds);
  const t0 = process.hrtime.bigint();
  const cpu0 = readCpu(relay.pid);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * rate));
    while (sent < due) {
      payload.writeBigUInt64BE(process.hrtime.bigint(), 0);
      const [a] = pairs[sent % pairs.length];
      a.send(payload, relay.port, '127.0.0.1');
      sent++;
    }
    await new Promise((r) => setImmediate(r));
  }
  await sleep(300);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = (readCpu(relay.pid) - cpu0) / elapsed;
  for (const s of sockets) s.close();
  lat.sort((x, y) => x - y);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
  return { sent, received, loss_pct: (100 * (sent - received)) / sent, relay_cpu_pct: cpu * 100, p50_us: q(0.5), p99_us: q(0.99), p999_us: q(0.999) };
}

/** CPU seconds (user + system) the process has used; /proc ticks are 1/100 s on Linux. */
function readCpu(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** Memory per paired session of the table itself, in-process (no raw sockets needed). */
function tableBytesPerSession(n) {
  const script = `
    const { SessionTable } = require(${JSON.stringify(join(root, 'dist', 'index.js'))});
    const N = ${n};
    global.gc(); global.gc();
    const h0 = process.memoryUsage();
    const t = new SessionTable({ sessionTimeoutMs: 300000, maxSessions: 1e9, maxSessionsPerIp: 1e9, wheelTickMs: 250 });
    for (let k = 0; k < 2 * N; k++) {
      const ip = (127 << 24 | (1 + Math.floor(k / 65024)) << 16 | (Math.floor(k / 254) % 256) << 8 | (1 + k % 254)) | 0;
      const addr = '127.' + (1 + Math.floor(k / 65024)) + '.' + (Math.floor(k / 254) % 256) + '.' + (1 + k % 254);
      t.register(ip, addr, 20000 + (k % 30000), 'session-' + (0xe00000000 + Math.floor(k / 2)).toString(16) + '-0000-0000-000000000000', k);
    }
    global.gc(); global.gc();
    const h1 = process.memoryUsage();
    console.log(JSON.stringify({ heap: (h1.heapUsed - h0.heapUsed) / N, rss: (h1.rss - h0.rss) / N }));`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
  return JSON.parse(r.stdout);
}

// ---- run ------------------------------------------------------------------------

const results = { date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length, pinned: pin, smoke, figures: {} };
const F = results.figures;
const gen = smoke ? undefined : buildGenerator();
results.generator = gen ? 'relaybench (C, ../shared/bench)' : 'built-in (node)';
log(`generator: ${results.generator}; relay: ${relayCmd.join(' ')}`);

const relay = await startRelay();
F.rss_idle_kb = rssKb(relay.pid);
try {
  if (gen) {
    const step = ['--seconds', '1.5', '--steps', '5'];
    for (const [name, sessions, size] of [['tp64_1', 1, 64], ['tp1200_1', 1, 1200], ['tp64_1k', 1000, 64], ['tp1200_1k', 1000, 1200]]) {
      const r = generator(gen, relay, 'throughput', ['--sessions', String(sessions), '--size', String(size), ...step]);
      F[name] = { zero_loss_pps: r.zero_loss_pps, delivered_pps_overload: r.delivered_pps };
      log(`${name}: zero-loss ${r.zero_loss_pps} pps, ${r.delivered_pps} under overload`);
    }
    const lat = generator(gen, relay, 'latency', ['--sessions', '100', '--size', '1200', '--rate', '20000', '--seconds', '5']);
    const cpu = lat.step?.relay_cpu_pct ?? lat.relay_cpu_pct;
    F.lat = { p50_us: lat.p50_us, p99_us: lat.p99_us, p999_us: lat.p999_us, loss_pct: lat.loss_pct, relay_cpu_pct: cpu, cpu_us_per_datagram: (cpu / 100 / 20000) * 1e6 };
    log(`latency at 20k/s: p50 ${lat.p50_us} p99 ${lat.p99_us} µs; relay CPU ${cpu}%`);
  } else {
    const runs = smoke ? [['fixed_5k', 10, 1200, 5000, 1]] : [['fixed_20k', 100, 1200, 20000, 5], ['fixed_40k', 100, 1200, 40000, 3]];
    for (const [name, sessions, size, rate, seconds] of runs) {
      const r = await builtinRun(relay, { sessions, size, rate, seconds });
      F[name] = { ...r, cpu_us_per_datagram: (r.relay_cpu_pct / 100 / rate) * 1e6 };
      log(`${name}: ${r.received}/${r.sent} delivered (loss ${r.loss_pct.toFixed(2)}%), p50 ${r.p50_us?.toFixed(0)} p99 ${r.p99_us?.toFixed(0)} µs, relay CPU ${r.relay_cpu_pct.toFixed(0)}%`);
    }
  }
} finally {
  await stopRelay(relay);
}

if (!smoke) {
  if (gen && process.getuid?.() === 0) {
    // RSS growth over 100k paired sessions registered from spoofed loopback
    // addresses (raw socket, root), on a fresh relay.
    const fresh = await startRelay();
    await sleep(1500);
    const idle = rssKb(fresh.pid);
    const r = generator(gen, fresh, 'fill', ['--count', '100000', '--rate', '50000']);
    await sleep(1000);
    const after = rssKb(fresh.pid);
    F.fill = { sessions: r.sessions_complete, forwards_ok: r.forwards_ok, rss_idle_kb: idle, rss_100k_kb: after, bytes_per_session: ((after - idle) * 1024) / 100000 };
    log(`fill: ${r.sessions_complete} sessions, RSS ${idle} -> ${after} kB: ${F.fill.bytes_per_session.toFixed(0)} B/session`);
    await stopRelay(fresh);
  }
  F.table = tableBytesPerSession(100000);
  log(`session table alone: ${F.table.heap.toFixed(0)} B/session live heap`);
}

const row = (k, v) => `| ${k} | ${v ?? 'n/a'} |`;
const k = (v) => (v === undefined || v === null ? undefined : `${(v / 1000).toFixed(1)}k`);
const lines = ['| figure | value |', '|---|---|'];
if (F.tp64_1) {
  lines.push(row('zero-loss pps, 64 B, 1 session', k(F.tp64_1.zero_loss_pps)));
  lines.push(row('zero-loss pps, 1200 B, 1 session', k(F.tp1200_1.zero_loss_pps)));
  lines.push(row('zero-loss pps, 64 B, 1000 sessions', k(F.tp64_1k.zero_loss_pps)));
  lines.push(row('zero-loss pps, 1200 B, 1000 sessions', k(F.tp1200_1k.zero_loss_pps)));
  lines.push(row('delivered pps under overload, 1200 B, 1000 sessions', k(F.tp1200_1k.delivered_pps_overload)));
  lines.push(row('latency p50 / p99 / p99.9 µs (20k pps, 100 sessions, 1200 B)', `${F.lat.p50_us} / ${F.lat.p99_us} / ${F.lat.p999_us}`));
  lines.push(row('relay CPU per forwarded datagram at 20k pps', `${F.lat.cpu_us_per_datagram.toFixed(1)} µs`));
}
for (const name of ['fixed_5k', 'fixed_20k', 'fixed_40k']) {
  const r = F[name];
  if (r) lines.push(row(`built-in generator ${name}: loss, p50/p99 µs, CPU/datagram`, `${r.loss_pct.toFixed(2)}%, ${r.p50_us?.toFixed(0)}/${r.p99_us?.toFixed(0)}, ${r.cpu_us_per_datagram.toFixed(1)} µs`));
}
lines.push(row('RSS idle', F.rss_idle_kb ? `${(F.rss_idle_kb / 1024).toFixed(1)} MiB` : undefined));
if (F.fill) lines.push(row('RSS growth per paired session (100k, fill)', `${F.fill.bytes_per_session.toFixed(0)} B (forwarding after fill: ${F.fill.forwards_ok})`));
if (F.table) lines.push(row('session table live heap per paired session', `${F.table.heap.toFixed(0)} B`));
console.log(lines.join('\n'));
console.log(`JSON ${JSON.stringify(results)}`);
const outDir = join(root, 'bench-results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `bench-${results.date.replace(/[:.]/g, '-')}.json`), `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
