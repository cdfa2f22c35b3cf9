// Log namespaces (SPEC 3.2), through `debug` on stderr. debug timestamps each
// line when stderr is not a terminal. Info and warnings are on by default (the
// CLI enables DEFAULT_LOG_NAMESPACES when DEBUG is unset); per-datagram detail
// lives under quic-relay:datagram and is guarded by `.enabled` at each call.

import createDebug from 'debug';
import { REFUSAL_LOG_INTERVAL_MS } from '../wire/constants';

export const LOG_PREFIX = 'quic-relay';
/** What is on without DEBUG: everything but per-datagram detail. */
export const DEFAULT_LOG_NAMESPACES = `${LOG_PREFIX}:*,-${LOG_PREFIX}:datagram`;

/** A debug instance, or anything shaped like one; `enabled: false` lets callers skip building a line. */
export type Logger = ((format: string, ...args: unknown[]) => void) & { enabled?: boolean };
export interface RelayLoggers {
  relay: Logger; // start, stop, socket trouble
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
 * At most `linesPerInterval` lines per cause per interval (SPEC 4.1: refusals
 * once a second per cause); the first line of the next interval says how many
 * were held back. Keeps a flood of registrations from turning into a flood of
 * synchronous writes to stderr. `now` is a parameter, so it stays testable.
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
