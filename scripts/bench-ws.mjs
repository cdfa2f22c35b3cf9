// The WebSocket leg's figures (SPEC 6), for `npm run bench` (part "ws"):
//   - relay CPU per forwarded datagram, UDP->UDP against UDP->WebSocket and
//     WebSocket->UDP (wss, the test certificate), at a fixed rate;
//   - relay memory per idle WebSocket connection: N registered wss
//     connections held open (RSS and V8 heap of the relay, before and after).
// Loopback only; source IPs spread over 127.0.0.x so the per-IP limit is not
// what is measured. Prints figures, asserts nothing.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import { join } from 'node:path';

export async function wsBench({ root, smoke, log, cpuSecs, rssKb, children, freePort, onCpu }) {
  const require = createRequire(join(root, 'package.json'));
  const WebSocket = require('ws');
  const tls = join(root, 'test', 'fixtures', 'tls');
  const ca = readFileSync(join(tls, 'cert.pem'));
  const udpPort = await freePort();
  const wsPort = await freePort();
  const argv = onCpu(1, [
    process.execPath,
    '--optimize-for-size',
    'dist/quic-relay.js',
    '--host',
    '127.0.0.1',
    '--port',
    String(udpPort),
    '--ws-port',
    String(wsPort),
    '--tls-cert',
    join(tls, 'cert.pem'),
    '--tls-key',
    join(tls, 'key.pem'),
    '--max-session-datagrams-per-sec',
    '0',
    '--ws-max-connections',
    '100000',
    '--metrics-port',
    String(await freePort()),
  ]);
  const relay = spawn(argv[0], argv.slice(1), { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBUG: '-quic-relay:*' } });
  children.add(relay);
  let stderr = '';
  relay.stderr.on('data', (d) => {
    stderr += d;
  });
  for (const end = Date.now() + 10_000; !(await listening(wsPort)); ) {
    if (Date.now() > end || relay.exitCode !== null) throw new Error(`relay did not start: ${stderr.slice(-300)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const out = {};
  try {
    // ---- CPU per datagram, by leg
    const rate = smoke ? 5_000 : 20_000;
    const secs = smoke ? 1 : 3;
    for (const kind of ['udp-udp', 'udp-ws', 'ws-udp']) {
      const session = `bench-${kind}`;
      const sender = kind === 'ws-udp' ? await wsPeer(WebSocket, wsPort, ca, '127.0.0.2') : await udpPeer(udpPort, '127.0.0.2');
      const receiver = kind === 'udp-ws' ? await wsPeer(WebSocket, wsPort, ca, '127.0.0.3') : await udpPeer(udpPort, '127.0.0.3');
      await sender.register(session);
      await receiver.register(session);
      let got = 0;
      receiver.onData(() => got++);
      const payload = Buffer.alloc(1200, 7);
      const cpu0 = cpuSecs(relay.pid);
      const total = rate * secs;
      const start = performance.now();
      for (let sent = 0; sent < total; ) {
        const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
        for (; sent < due; sent++) sender.send(payload);
        await new Promise((r) => setTimeout(r, 2));
      }
      await until(
        () => got >= total,
        5000,
        () => '',
      ).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 200));
      const cpu = cpuSecs(relay.pid) - cpu0;
      out[kind] = { datagrams: total, received: got, relayCpuSecs: round(cpu, 3), cpuMicrosPerDatagram: round((cpu * 1e6) / total, 2) };
      log(`ws: ${kind} ${total} x 1200 B at ${rate}/s: ${got} arrived; relay CPU ${((cpu * 1e6) / total).toFixed(2)} us per datagram`);
      sender.close();
      receiver.close();
    }
    // ---- memory per idle connection
    const n = smoke ? 1000 : 10_000;
    await new Promise((r) => setTimeout(r, 500));
    const rss0 = rssKb(relay.pid);
    const conns = [];
    const batch = 200;
    for (let i = 0; i < n; i += batch) {
      const opened = await Promise.all(
        Array.from({ length: Math.min(batch, n - i) }, (_, k) => wsPeer(WebSocket, wsPort, ca, `127.0.1.${1 + ((i + k) % 200)}`)),
      );
      await Promise.all(opened.map((p, k) => p.register(`idle-${Math.floor((i + k) / 2)}`)));
      conns.push(...opened);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const rss1 = rssKb(relay.pid);
    const perConn = ((rss1 - rss0) * 1024) / n;
    out.idle = { connections: n, rssBeforeKiB: rss0, rssAfterKiB: rss1, bytesPerConnection: Math.round(perConn) };
    log(
      `ws: ${n} idle wss connections (registered, ${n / 2} sessions): relay RSS ${Math.round(rss0 / 1024)} -> ${Math.round(rss1 / 1024)} MiB, ${(perConn / 1024).toFixed(1)} KiB per connection`,
    );
    for (const c of conns) c.close();
  } finally {
    relay.kill('SIGTERM');
    await new Promise((r) => relay.once('exit', r));
    children.delete(relay);
  }
  return out;
}

const listening = (port) =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

const round = (v, d) => Math.round(v * 10 ** d) / 10 ** d;

async function until(cond, ms, why) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(why());
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A bench peer over any transport: `send` one datagram, `emitter` emits each
 * one that arrives as 'message'. register() waits for its ACK; the rest goes
 * to onData.
 */
function benchPeer(emitter, send, close) {
  let onData = () => {};
  let ack;
  emitter.on('message', (m) => {
    if (ack !== undefined && m.length === 4 && m.toString() === 'ACK\n') {
      ack();
      ack = undefined;
    } else {
      onData(m);
    }
  });
  return {
    register: (id) =>
      new Promise((resolve) => {
        ack = resolve;
        send(Buffer.from(`REG:${id}\n`));
      }),
    send,
    onData: (f) => {
      onData = f;
    },
    close,
  };
}

/** A UDP peer of the relay, from `host`. */
async function udpPeer(port, host) {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  await new Promise((r) => s.bind(0, host, r));
  return benchPeer(
    s,
    (b) => s.send(b, port, '127.0.0.1'),
    () => s.close(),
  );
}

/** A WebSocket peer of the relay (wss), from `host`. */
async function wsPeer(WebSocket, port, ca, host) {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/quic-relay`, { ca, localAddress: host, perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return benchPeer(
    ws,
    (b) => ws.send(b),
    () => ws.terminate(),
  );
}
