// The probe: two RelayClients on a random session, datagrams round-tripped
// through the relay; how a user checks a freshly deployed relay.
import { randomBytes } from 'node:crypto';
import { RelayClient } from './relay-client';
import type { RelayEndpoint } from './relay-client';
import { realTimers } from './timers';

export interface ProbeOptions {
  relay: RelayEndpoint;
  count: number;
  intervalMs: number;
  /** How long to wait for registration, and for the last replies. */
  timeoutMs: number;
}

export interface ProbeResult {
  relay: string;
  answered: boolean;
  registerMs: number | undefined;
  sent: number;
  received: number;
  lossPct: number;
  rttP50Ms: number | undefined;
  rttP99Ms: number | undefined;
  error: string | undefined;
}

const quantile = (sorted: number[], q: number): number | undefined =>
  sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];

export async function probe(o: ProbeOptions): Promise<ProbeResult> {
  const session = `probe-${randomBytes(12).toString('hex')}`;
  const opts = { relay: o.relay, sessionId: session, registerTimeoutMs: o.timeoutMs, keepaliveSecs: 15 };
  const a = new RelayClient(opts);
  const b = new RelayClient(opts);
  const result: ProbeResult = {
    relay: a.relayName, answered: false, registerMs: undefined, sent: 0, received: 0, lossPct: 100,
    rttP50Ms: undefined, rttP99Ms: undefined, error: undefined,
  };
  try {
    const t0 = realTimers.now();
    await a.register();
    result.answered = true;
    await b.register();
    result.registerMs = realTimers.now() - t0;
    b.on('message', (m) => b.send(m)); // the far side echoes
    const rtts: number[] = [];
    const sentAt = new Map<number, number>();
    let lastReply: () => void = () => undefined;
    a.on('message', (m) => {
      if (m.length < 8 || m.readUInt32BE(0) !== 0x51525052) return; // 'QRPR'
      const seq = m.readUInt32BE(4);
      const at = sentAt.get(seq);
      if (at === undefined) return;
      sentAt.delete(seq);
      rtts.push(realTimers.now() - at);
      if (sentAt.size === 0 && result.sent === o.count) lastReply();
    });
    for (let seq = 0; seq < o.count; seq++) {
      const ping = Buffer.alloc(64);
      ping.writeUInt32BE(0x51525052, 0);
      ping.writeUInt32BE(seq, 4);
      sentAt.set(seq, realTimers.now());
      a.send(ping);
      result.sent++;
      if (seq < o.count - 1) await new Promise((r) => setTimeout(r, o.intervalMs));
    }
    if (sentAt.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        lastReply = resolve;
        timer = setTimeout(resolve, Math.min(o.timeoutMs, 2000));
      });
      clearTimeout(timer); // nothing left running once the probe returns
    }
    rtts.sort((x, y) => x - y);
    result.received = rtts.length;
    result.lossPct = (100 * (result.sent - result.received)) / Math.max(1, result.sent);
    result.rttP50Ms = quantile(rtts, 0.5);
    result.rttP99Ms = quantile(rtts, 0.99);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  return result;
}

export function formatProbe(r: ProbeResult): string {
  const ms = (v: number | undefined): string => (v === undefined ? 'n/a' : `${v.toFixed(2)} ms`);
  if (!r.answered) return `relay ${r.relay}: no answer (${r.error ?? 'no ACK'})`;
  if (r.error !== undefined && r.registerMs === undefined) return `relay ${r.relay}: answered, but the second peer could not register (${r.error})`;
  return (
    `relay ${r.relay}: answered, both peers registered in ${ms(r.registerMs)}; ` +
    `${r.received}/${r.sent} round trips, loss ${r.lossPct.toFixed(1)}%, RTT p50 ${ms(r.rttP50Ms)} p99 ${ms(r.rttP99Ms)}`
  );
}

/** The probe passes when the relay answered and at most 10% of round trips were lost. */
export function probePassed(r: ProbeResult): boolean {
  return r.answered && r.registerMs !== undefined && r.sent > 0 && r.lossPct <= 10;
}
