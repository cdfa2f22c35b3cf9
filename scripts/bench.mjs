#!/usr/bin/env node
// npm run bench [-- options]: bounded loopback benchmarks of relays, driven by
// the project's own load generator (bench/loadgen.c, built here with cc).
// It asserts nothing about speed: it prints figures, as a markdown table and
// as JSON (bench-results/).
//
//   --compare 'name|command {port}' ...   relays to run side by side, interleaved
//                                        rep by rep; ratios are to the first.
//                                        Default: 'quic-relay|node --optimize-for-size dist/quic-relay.js --port {port}'
//   --reps N        repetitions (medians are reported; default 1)
//   --smoke         a few seconds, fixed low rates (what CI runs)
//   --soak          memory under churn instead: 1M registrations from 1000
//                   addresses plus one address cycling fresh ids at the rate
//                   limit; RSS at every 100k (root: raw sockets)
//   --soak-total N  registrations in the soak (default 1000000)
//   --only a,b      run only these parts: rate (zero-loss searches), latency
//                   (with CPU per datagram), registrations, fill, ws (the
//                   WebSocket leg: CPU per datagram by leg, memory per idle
//                   wss connection; this project's relay only, scripts/bench-ws.mjs)
//
// The relay runs on CPU 1 and the generator on CPU 0 when taskset and two
// cores are there. Only loopback addresses are used; every child is stopped
// on exit, and every step has a bound.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name, dflt) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : dflt);
const smoke = flag('--smoke');
const soak = flag('--soak');
const reps = Number(value('--reps', '1'));
const soakTotal = Number(value('--soak-total', '1000000'));
const only = value('--only', 'rate,latency,registrations,fill,ws').split(',');
const part = (name) => only.includes(name);
const compare = [];
for (let i = 0; i < args.length; i++) if (args[i] === '--compare') while (args[i + 1] !== undefined && !args[i + 1].startsWith('--')) compare.push(args[++i]);
const relays = (compare.length > 0 ? compare : [`quic-relay|${process.execPath} --optimize-for-size dist/quic-relay.js --port {port}`]).map((spec) => {
  const bar = spec.indexOf('|');
  if (bar < 0 || !spec.includes('{port}')) throw new Error(`--compare wants 'name|command {port}', got ${JSON.stringify(spec)}`);
  return { name: spec.slice(0, bar), command: spec.slice(bar + 1) };
});
const log = (s) => process.stderr.write(`[bench] ${s}\n`);
// A failure is one line that says what failed, not a stack trace (the children are killed on exit).
const fail = (err) => {
  log(
    `failed: ${String(err?.message ?? err)
      .split('\n')
      .filter(Boolean)
      .slice(0, 2)
      .join(' | ')}`,
  );
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
const children = new Set();
process.on('exit', () => {
  for (const c of children)
    try {
      c.kill('SIGKILL');
    } catch {}
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const pin = os.cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const onCpu = (cpu, cmd) => (pin ? ['taskset', '-c', String(cpu), ...cmd] : cmd);
const isRoot = process.getuid?.() === 0;

if (!existsSync(join(root, 'dist', 'quic-relay.js'))) execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });

/** bench/loadgen.c, built once per source version into the temp dir. */
function buildGenerator() {
  const src = join(root, 'bench', 'loadgen.c');
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12);
  const bin = join(os.tmpdir(), `quic-relay-loadgen-${hash}`);
  if (!existsSync(bin)) execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', bin, src], { stdio: 'inherit' });
  return bin;
}

function rssKb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
  return m ? Number(m[1]) : NaN;
}

/** CPU seconds (user + system) of a process. */
function cpuSecs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

const freePort = () =>
  new Promise((res) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

/** Resolves once the relay answers a registration, or rejects after 10 s. */
function relayAnswers(port) {
  return new Promise((res, rej) => {
    const s = dgram.createSocket('udp4');
    const deadline = setTimeout(() => {
      clearInterval(t);
      s.close();
      rej(new Error(`relay on ${port} did not answer within 10 s`));
    }, 10_000);
    const t = setInterval(() => s.send('REG:bench-ready-probe\n', port, '127.0.0.1'), 100);
    s.on('message', () => {
      clearTimeout(deadline);
      clearInterval(t);
      s.close();
      res();
    });
    s.send('REG:bench-ready-probe\n', port, '127.0.0.1');
  });
}

/** A relay on a free port; a port taken between the probe and the bind (a race with anything else on the host) gets two more tries. */
async function startRelay(relay) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRelayOnce(relay);
    } catch (err) {
      if (attempt === 3) throw err;
      log(`${relay.name} did not start (${err.message.split('\n')[0]}); trying another port`);
    }
  }
}

async function startRelayOnce(relay) {
  const port = await freePort();
  const argv = relay.command.replaceAll('{port}', String(port)).split(/\s+/).filter(Boolean);
  const child = spawn(onCpu(1, argv)[0], onCpu(1, argv).slice(1), {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DEBUG: '-quic-relay:*' },
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise((_, rej) =>
    child.on('exit', (code) => rej(new Error(`relay exited (${code}) before answering: ${stderr.trim().split('\n').pop() ?? ''}`))),
  );
  exited.catch(() => {}); // only raced against the answer
  await Promise.race([relayAnswers(port), exited]).catch((e) => {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\n${stderr}`);
  });
  // the taskset wrapper execs, so the pid is the relay's
  return { child, port, pid: child.pid };
}

async function stopRelay(r) {
  r.child.kill('SIGTERM');
  await new Promise((res) => {
    if (r.child.exitCode !== null) res();
    else r.child.on('exit', res);
    setTimeout(res, 3000).unref();
  });
  children.delete(r.child);
}

/** Runs the generator; resolves to its RESULT object. `onLine` sees every stdout line. */
function generate(bin, mode, port, extra, onLine = () => {}) {
  return new Promise((res, rej) => {
    const argv = onCpu(0, [bin, mode, '--relay', `127.0.0.1:${port}`, ...extra.map(String)]);
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop();
      for (const l of lines) {
        onLine(l);
        if (l.startsWith('RESULT ')) child.result = JSON.parse(l.slice(7));
      }
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) => {
      children.delete(child);
      if (code === 0 && child.result) res(child.result);
      else rej(Object.assign(new Error(`loadgen ${mode} exited ${code}: ${err.trim()}`), { code }));
    });
  });
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

/**
 * The highest rate with under 0.5% loss: doubling, then bisection. A trial
 * passes only if the generator really sent 98% of its target: a relay faster
 * than the generator must not pass rates nobody offered it. `generatorBound`
 * says the search stopped there, so the figure is a floor.
 */
async function zeroLossRate(bin, port, sessions, size) {
  let generatorBound = false;
  const trial = async (pps) => {
    const r = await generate(bin, 'rate', port, ['--sessions', sessions, '--size', size, '--pps', pps, '--secs', 1]);
    if (r.sent < 0.98 * pps) {
      generatorBound = true;
      return false;
    }
    return r.loss_pct < 0.5;
  };
  let lo = 0;
  let hi = 20_000;
  while (hi <= 1_600_000 && (await trial(hi))) {
    lo = hi;
    hi *= 2;
  }
  for (let i = 0; i < 5; i++) {
    const mid = Math.round((lo + hi) / 2);
    if (await trial(mid)) lo = mid;
    else hi = mid;
  }
  return { pps: lo, generatorBound };
}

/** Registrations answered per second, plain ids or tickets made with the relay's secret. */
async function registrationRate(bin, port, relay) {
  const secret = /--auth-secret\s+(\S+)/.exec(relay.command)?.[1];
  const n = smoke ? 5_000 : 200_000;
  let ids;
  if (secret) {
    const { makeTicket } = createRequire(import.meta.url)(join(root, 'dist', 'index.js'));
    ids = Array.from({ length: n }, () => makeTicket(secret, { ttlSecs: 3600 }));
  } else {
    const tag = Math.random().toString(36).slice(2, 8);
    ids = Array.from({ length: n }, (_, i) => `reg-${tag}-${i}`);
  }
  const file = join(os.tmpdir(), `quic-relay-bench-ids-${process.pid}`);
  writeFileSync(file, ids.join('\n'));
  const r = await generate(bin, 'regrate', port, ['--ids', file, '--secs', smoke ? 1 : 2, '--sockets', 64]);
  return { perSec: r.per_sec, acked: r.acks, refused: r.refused };
}

async function suite(bin, relay) {
  const r = await startRelay(relay);
  const f = { rss_idle_mib: rssKb(r.pid) / 1024 };
  try {
    if (!/--auth-secret/.test(relay.command)) await generate(bin, 'rate', r.port, ['--sessions', 10, '--size', 1200, '--pps', 20_000, '--secs', 1]); // warm-up: JIT, buffers
    for (const [sessions, size] of part('rate')
      ? [
          [1, 64],
          [1, 1200],
          [1000, 64],
          [1000, 1200],
        ]
      : []) {
      const key = `zero_loss_pps_${size}B_${sessions}s`;
      if (smoke) {
        const t = await generate(bin, 'rate', r.port, ['--sessions', sessions, '--size', size, '--pps', 5000, '--secs', 1]);
        f[key.replace('zero_loss_pps', 'loss_pct_at_5k')] = t.loss_pct;
      } else {
        const z = await zeroLossRate(bin, r.port, sessions, size);
        f[key] = z.pps;
        if (z.generatorBound) f[`${key}_generator_bound`] = true;
      }
      log(
        `${relay.name}: ${smoke ? `loss at 5k/s, ${size} B, ${sessions} sessions: ${f[key.replace('zero_loss_pps', 'loss_pct_at_5k')]}%` : `${key} ${f[key]}${f[`${key}_generator_bound`] ? ' (the generator could offer no more: a floor)' : ''}`}`,
      );
    }
    if (part('latency')) {
      if (part('rate')) await new Promise((res) => setTimeout(res, 1000)); // let the last overload trial's backlog drain
      const pps = smoke ? 5_000 : 20_000;
      const secs = smoke ? 1 : 3;
      const cpu0 = cpuSecs(r.pid);
      const lat = await generate(bin, 'rate', r.port, ['--sessions', 100, '--size', 1200, '--pps', pps, '--secs', secs]);
      const cpu = cpuSecs(r.pid) - cpu0;
      Object.assign(f, {
        latency_pps: pps,
        p50_us: lat.p50_us,
        p99_us: lat.p99_us,
        p999_us: lat.p999_us,
        latency_loss_pct: lat.loss_pct,
        cpu_us_per_datagram: (cpu * 1e6) / Math.max(1, lat.received),
      });
    }
    if (part('registrations')) {
      const reg = await registrationRate(bin, r.port, relay);
      f.registrations_per_sec = reg.perSec;
      f.registrations_refused = reg.refused;
    }
    if (isRoot && !smoke && part('fill')) {
      const before = rssKb(r.pid);
      // paced below the slowest relay's registration rate, so every registration lands
      await generate(bin, 'fill', r.port, ['--sessions', 100_000, '--pps', 15_000]);
      await new Promise((res) => setTimeout(res, 500)); // let the socket drain
      const after = rssKb(r.pid);
      f.rss_100k_mib = after / 1024;
      f.bytes_per_session = ((after - before) * 1024) / 100_000;
      const still = await generate(bin, 'rate', r.port, ['--sessions', 10, '--size', 1200, '--pps', 2000, '--secs', 1]);
      f.forwards_after_fill = still.loss_pct < 1;
    }
  } finally {
    await stopRelay(r);
  }
  return f;
}

async function soakRun(bin, relay) {
  const r = await startRelay(relay);
  const curve = [{ registrations: 0, rss_mib: rssKb(r.pid) / 1024 }];
  try {
    await generate(bin, 'soak', r.port, ['--total', soakTotal, '--addresses', 1000, '--pps', 40_000, '--cycler-pps', 2000], (line) => {
      const m = /^progress (\d+)/.exec(line);
      if (m) {
        curve.push({ registrations: Number(m[1]), rss_mib: rssKb(r.pid) / 1024 });
        log(`${relay.name}: ${m[1]} registrations, RSS ${curve.at(-1).rss_mib.toFixed(1)} MiB`);
      }
    });
  } finally {
    await stopRelay(r);
  }
  return curve;
}

const fmt = (v) =>
  typeof v === 'boolean' ? String(v) : !Number.isFinite(v) ? 'n/a' : Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(v < 10 ? 2 : 0);

const bin = buildGenerator();
const results = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: os.cpus()[0]?.model,
  cores: os.cpus().length,
  pinned: pin,
  root: isRoot,
  smoke,
  soak,
  reps,
  relays,
  runs: {},
};
for (const relay of relays) results.runs[relay.name] = [];

if (soak) {
  if (!isRoot) {
    log('--soak needs root (raw sockets send from 1000 loopback addresses)');
    process.exit(3);
  }
  for (let rep = 0; rep < reps; rep++) for (const relay of relays) results.runs[relay.name].push(await soakRun(bin, relay));
  const lines = [`| registrations | ${relays.map((r) => `${r.name} RSS MiB`).join(' | ')} |`, `|---|${relays.map(() => '---|').join('')}`];
  const first = results.runs[relays[0].name][0];
  first.forEach(
    (point, i) =>
      void lines.push(`| ${point.registrations} | ${relays.map((r) => median(results.runs[r.name].map((c) => c[i]?.rss_mib)).toFixed(1)).join(' | ')} |`),
  );
  console.log(lines.join('\n'));
} else {
  // interleaved: rep 1 of every relay, then rep 2, so drift hits all alike
  for (let rep = 0; rep < reps; rep++) for (const relay of relays) results.runs[relay.name].push(await suite(bin, relay));
  const keys = [...new Set(relays.flatMap((r) => results.runs[r.name].flatMap((f) => Object.keys(f))))];
  const med = (name, key) => {
    const v = results.runs[name].map((f) => f[key]);
    return typeof v[0] === 'boolean' ? v.every(Boolean) : median(v);
  };
  const header = `| figure | ${relays.map((r) => r.name).join(' | ')}${
    relays.length > 1
      ? ` | ${relays
          .slice(1)
          .map((r) => `${r.name}/${relays[0].name}`)
          .join(' | ')}`
      : ''
  } |`;
  const lines = [
    header,
    `|---|${relays.map(() => '---|').join('')}${relays
      .slice(1)
      .map(() => '---|')
      .join('')}`,
  ];
  for (const key of keys) {
    const base = med(relays[0].name, key);
    const ratios = relays.slice(1).map((r) => {
      const v = med(r.name, key);
      return typeof v === 'number' && Number.isFinite(v) && typeof base === 'number' && base ? `${(v / base).toFixed(2)}x` : '';
    });
    lines.push(`| ${key} | ${relays.map((r) => fmt(med(r.name, key))).join(' | ')}${ratios.length ? ` | ${ratios.join(' | ')}` : ''} |`);
  }
  console.log(lines.join('\n'));
  if (part('ws') && compare.length === 0) {
    const { wsBench } = await import('./bench-ws.mjs');
    results.ws = await wsBench({ root, smoke, log, cpuSecs, rssKb, children, freePort, onCpu });
    const w = results.ws;
    console.log(
      [
        '',
        '| WebSocket leg (wss) | figure |',
        '|---|---|',
        ...['udp-udp', 'udp-ws', 'ws-udp'].map(
          (k) => `| relay CPU per 1200 B datagram, ${k} | ${w[k].cpuMicrosPerDatagram} us (${w[k].received}/${w[k].datagrams} arrived) |`,
        ),
        `| relay memory per idle connection (${w.idle.connections} registered) | ${(w.idle.bytesPerConnection / 1024).toFixed(1)} KiB |`,
      ].join('\n'),
    );
  }
}
mkdirSync(join(root, 'bench-results'), { recursive: true });
const out = join(root, 'bench-results', `${soak ? 'soak' : 'bench'}-${results.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify(results, null, 2));
log(`raw results: ${out}`);
