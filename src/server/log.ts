// Log namespaces (SPEC 3.2), through `debug` on stderr; debug timestamps each
// line when stderr is not a terminal. Info and warnings are on by default
// (see logNamespaces); per-datagram detail lives under quic-relay:datagram
// and is guarded by `.enabled` at each call. Rate limiting of lines lives
// here too, so the socket edge only asks "may I write this now?".

import createDebug from 'debug';
import { REFUSAL_LOG_INTERVAL_MS } from '../wire/constants';
import type { RelayConfig } from './config';

export const LOG_PREFIX = 'quic-relay';
/** The info and warning namespaces: on unless DEBUG turns them off by name. */
export const INFO_LOG_NAMESPACES = ['relay', 'session', 'limits'].map((n) => `${LOG_PREFIX}:${n}`);

/**
 * SPEC 3.2: what to enable for a given DEBUG: what it names, plus our info
 * and warnings. Excluding us (`-quic-relay:*`, or one of ours by name) is
 * obeyed, and turns off only what it names.
 */
export function logNamespaces(debug: string | undefined): string {
  const parts = (debug ?? '').split(/[\s,]+/).filter((p) => p !== '');
  // debug weighs exclusions first, whatever the order: `-quic-relay:session`
  // silences that one namespace and `-quic-relay:*` all of ours, while the
  // rest of the info and warnings stay on.
  return [...parts, ...INFO_LOG_NAMESPACES].join(',');
}

/** A debug instance, or anything shaped like one; `enabled: false` lets callers skip building a line. */
export type Logger = ((format: string, ...args: unknown[]) => void) & { enabled?: boolean };
export interface RelayLoggers {
  relay: Logger; // start, stop, socket trouble, drain
  session: Logger; // created, paired, rebound, reaped
  limits: Logger; // refusals
  datagram: Logger & { enabled: boolean }; // per datagram: off by default
}

export function createLoggers(prefix = LOG_PREFIX): RelayLoggers {
  return {
    relay: createDebug(`${prefix}:relay`),
    session: createDebug(`${prefix}:session`),
    limits: createDebug(`${prefix}:limits`),
    datagram: createDebug(`${prefix}:datagram`),
  };
}

/** Loggers that print nothing, for embedding and tests. */
export function silentLoggers(): RelayLoggers {
  const off = Object.assign(() => {}, { enabled: false });
  return { relay: off, session: off, limits: off, datagram: off };
}

/**
 * At most `linesPerInterval` lines per cause per interval; `admit` says how
 * many were held back before the line it lets through. `now` is a parameter.
 */
export class LogLimiter {
  private readonly windows = new Map<string, { end: number; used: number; held: number }>();
  constructor(
    private readonly intervalMs = REFUSAL_LOG_INTERVAL_MS,
    private readonly linesPerInterval = 1,
  ) {}

  /** -1: hold this line back; otherwise how many lines of this cause were held back before it. */
  admit(cause: string, now: number): number {
    const w = this.windows.get(cause);
    if (w === undefined || now >= w.end) {
      const held = w?.held ?? 0;
      this.windows.set(cause, { end: now + this.intervalMs, used: 1, held: 0 });
      return held;
    }
    if (w.used < this.linesPerInterval) {
      w.used++;
      return 0;
    }
    w.held++;
    return -1;
  }
}

/** Session events a second per kind: enough to follow, never a flood. */
const SESSION_EVENTS_PER_SEC = 50;

/**
 * The relay's loggers with their limits: refusals (and socket errors) at most
 * once a second per cause (SPEC 4.1), session events 50 a second per kind.
 * Ask `refusal()`/`event()` before formatting a line, so a flood builds no
 * strings; the first line after a held-back stretch is preceded by how many
 * were held back.
 */
export class RelayLog {
  readonly relay: Logger;
  readonly session: Logger;
  readonly limits: Logger;
  readonly datagram: Logger & { enabled: boolean };
  private readonly refusals = new LogLimiter(REFUSAL_LOG_INTERVAL_MS, 1);
  private readonly events = new LogLimiter(1000, SESSION_EVENTS_PER_SEC);

  constructor(loggers: RelayLoggers) {
    this.relay = loggers.relay;
    this.session = loggers.session;
    this.limits = loggers.limits;
    this.datagram = loggers.datagram;
  }

  /** May a refusal line of this cause be written now (to `limits`, or `relay` for socket trouble)? */
  refusal(cause: string, now: number, logger: Logger = this.limits): boolean {
    return admitted(this.refusals, logger, cause, now);
  }

  /** May a session event of this kind be written now? */
  event(kind: string, now: number): boolean {
    return admitted(this.events, this.session, kind, now);
  }
}

function admitted(limiter: LogLimiter, logger: Logger, cause: string, now: number): boolean {
  if (logger.enabled === false) return false; // namespace off: build nothing
  const held = limiter.admit(cause, now);
  if (held > 0) logger('(%d more "%s" lines held back in the last second)', held, cause);
  return held >= 0;
}

/** SPEC 3.2: the start's second line: every setting that decides who gets in and what it may cost. */
export function settingsLine(cfg: RelayConfig, peerRelays: number, recvBufferBytes: number, sendBufferBytes: number): string {
  const secrets = cfg.authSecrets.length;
  return [
    `session timeout ${cfg.sessionTimeoutSecs} s (unpaired ${Math.min(cfg.unpairedTimeoutSecs, cfg.sessionTimeoutSecs)} s)`,
    `max sessions ${cfg.maxSessions} (${cfg.maxSessionsPerIp} per IP or IPv6 /64)`,
    `${cfg.registrationsPerSecPerIp} registrations/s per IP`,
    `implicit rebind ${cfg.implicitRebind ? 'on' : 'off'}`,
    `tickets ${secrets > 0 ? `required (${secrets} secret${secrets > 1 ? 's' : ''})` : 'off'}`,
    `per-session cap ${cfg.maxSessionBytesPerSec > 0 ? `${cfg.maxSessionBytesPerSec} bytes/s` : 'no byte cap'} and ${cfg.maxSessionDatagramsPerSec > 0 ? `${cfg.maxSessionDatagramsPerSec} datagrams/s` : 'no datagram budget'}`,
    `${peerRelays} peer relays`,
    `socket buffers recv ${recvBufferBytes} send ${sendBufferBytes} bytes`,
    cfg.wsPort === undefined
      ? 'WebSocket leg off'
      : `WebSocket leg ${cfg.tlsCert !== undefined ? 'wss' : 'ws (no TLS)'}, ${cfg.wsMaxConnections} connections, queue ${cfg.wsQueueBytes} bytes, ping ${cfg.wsPingSecs} s`,
  ].join(', ');
}
