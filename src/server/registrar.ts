// SPEC 2.2, 3.6, 4.1, 4.3: the whole answer to "may this address register
// this session, and what happens" in one pure place, and one table of what
// each outcome means at the edge: the reply, the metric label it is counted
// under, and its log line. The relay's socket code only looks the outcome up.
// Pure: the time comes in as parameters; nothing is sent or logged here.

import { limitKeyOf } from '../wire/address';
import type { IpKey } from '../wire/address';
import { ACK, ERR_AUTH, ERR_BAD, ERR_BUSY, ERR_FULL } from '../wire/protocol';
import { checkTicket } from '../wire/tickets';
import type { RegistrationResult } from './counters';
import type { RegistrationRateLimiter } from './limits';
import type { Admission, RegisterResult, Session, SessionTable, TableOutcome } from './session-table';

/** Every way a registration can end: the table's outcomes and the ones decided before it is asked. */
export type RegistrationOutcome =
  | TableOutcome
  | 'busy-rate' // SPEC 4.1: over the per-IP registration rate
  | 'bad-ticket' // SPEC 4.3: not a ticket made with our secrets
  | 'bad'; // SPEC 1.3: breaks 1.2 (decided by classify(), before the registrar is asked)

export interface Registration extends Omit<RegisterResult, 'outcome'> {
  outcome: RegistrationOutcome;
}

/** Who asked, for the log lines. */
export interface Registrant {
  who: string; // ip:port as logs write it
  id: string;
}

export interface OutcomeSpec {
  /** SPEC 1.3: what the registrant is sent (never longer than its request; the edge checks). */
  reply: Buffer;
  /** quic_relay_registrations_total{result}. */
  result: RegistrationResult;
  /** A session event (50 a second per kind) or a refusal (once a second per cause, SPEC 4.1). */
  log: { kind: 'event' | 'refusal'; cause: string; line(r: Registration, who: Registrant, context: LogContext): string };
  /** An explicit rebind (quic_relay_rebinds_total{kind="explicit"}). */
  rebind?: true;
}

/** What some log lines quote besides the registration itself. */
export interface LogContext {
  registrationsPerSecPerIp: number;
  sessionsOpen: number;
  sessionsOnIp(ip: IpKey): number;
  ip: IpKey;
  format(address: string, port: number): string;
}

const previous = (r: Registration, c: LogContext): string => c.format(r.previousAddress ?? '?', r.previousPort ?? 0);
const partnerOf = (s: Session | undefined, c: LogContext): string => (s === undefined ? '?' : c.format(s.aAddress, s.aPort));

/** The one table: every outcome's reply, metric label and log line. */
export const OUTCOMES: Readonly<Record<RegistrationOutcome, OutcomeSpec>> = {
  keepalive: { reply: ACK, result: 'keepalive', log: { kind: 'event', cause: 'keepalive', line: () => '' } },
  created: { reply: ACK, result: 'created', log: { kind: 'event', cause: 'created', line: (_r, w) => `session ${w.id} created by ${w.who}` } },
  joined: {
    reply: ACK,
    result: 'joined',
    log: { kind: 'event', cause: 'paired', line: (r, w, c) => `session ${w.id} paired: ${partnerOf(r.session, c)} <-> ${w.who}` },
  },
  'replaced-quiet': {
    reply: ACK,
    result: 'joined',
    log: {
      kind: 'event',
      cause: 'paired',
      line: (r, w, c) => `session ${w.id} paired: ${w.who} took the slot of ${previous(r, c)}, silent since the same peer came back from a new port`,
    },
  },
  rebound: {
    reply: ACK,
    result: 'rebound',
    rebind: true,
    log: { kind: 'event', cause: 'rebound', line: (r, w, c) => `session ${w.id}: ${previous(r, c)} rebound to ${w.who} (REG)` },
  },
  full: {
    reply: ERR_FULL,
    result: 'full',
    log: { kind: 'refusal', cause: 'full', line: (_r, w) => `ERR:FULL to ${w.who}: session ${w.id} already holds two other peers` },
  },
  'busy-sessions': {
    reply: ERR_BUSY,
    result: 'busy_sessions',
    log: {
      kind: 'refusal',
      cause: 'busy-sessions',
      line: (_r, w, c) => `ERR:BUSY to ${w.who} for session ${w.id}: ${c.sessionsOpen} sessions open (--max-sessions)`,
    },
  },
  'busy-ip': {
    reply: ERR_BUSY,
    result: 'busy_ip',
    log: {
      kind: 'refusal',
      cause: 'busy-ip',
      line: (_r, w, c) => `ERR:BUSY to ${w.who} for session ${w.id}: its IP is in ${c.sessionsOnIp(c.ip)} sessions (--max-sessions-per-ip)`,
    },
  },
  'busy-draining': {
    reply: ERR_BUSY,
    result: 'busy_draining',
    log: { kind: 'refusal', cause: 'busy-draining', line: (_r, w) => `ERR:BUSY to ${w.who} for session ${w.id}: draining, no new sessions` },
  },
  'busy-rate': {
    reply: ERR_BUSY,
    result: 'busy_rate',
    log: {
      kind: 'refusal',
      cause: 'busy-rate',
      line: (_r, w, c) => `ERR:BUSY to ${w.who} for session ${w.id}: over ${c.registrationsPerSecPerIp} registrations/s from its IP`,
    },
  },
  // A ticket is no secret (its MAC proves only that we made it): the id may be logged.
  'bad-ticket': {
    reply: ERR_AUTH,
    result: 'auth',
    log: { kind: 'refusal', cause: 'auth', line: (_r, w) => `ERR:AUTH to ${w.who} for session ${w.id}: not a ticket made with our secrets` },
  },
  expired: {
    reply: ERR_AUTH,
    result: 'auth',
    log: {
      kind: 'refusal',
      cause: 'auth',
      line: (_r, w) => `ERR:AUTH to ${w.who} for session ${w.id}: expired ticket (it may only keep its own session alive)`,
    },
  },
  // SPEC 1.3: decided by classify(), before the registrar; here for its reply, label and line.
  bad: { reply: ERR_BAD, result: 'bad', log: { kind: 'refusal', cause: 'bad', line: (_r, w) => `ERR:BAD to ${w.who}: malformed registration` } },
};

const refused = (outcome: RegistrationOutcome): Registration => ({
  outcome,
  session: undefined,
  left: undefined,
  leftRemoved: false,
  previousAddress: undefined,
  previousPort: undefined,
});

/** SPEC 1.3: a malformed registration from an unregistered address. */
export const BAD_REGISTRATION: Registration = Object.freeze(refused('bad'));

export interface RegistrarOptions {
  /** SPEC 4.3: accepted secrets; none: any id. */
  authSecrets: readonly string[];
}

export class Registrar {
  constructor(
    private readonly table: SessionTable,
    private readonly limiter: RegistrationRateLimiter,
    private readonly options: RegistrarOptions,
  ) {}

  /**
   * SPEC 2.2 with the limits around it. `now` is the monotonic clock (ms),
   * `nowSecs` Unix seconds (ticket expiry). A refusal changes nothing.
   */
  register(ip: IpKey, address: string, port: number, id: string, now: number, nowSecs: number, draining: boolean): Registration {
    let admission: Admission = 'any';
    // SPEC 4.1: keepalives are never refused (nor re-checked: the ticket let
    // this address in, SPEC 4.3); anything else spends a token first, so a
    // flood of forged tickets costs no more than one HMAC per token. SPEC 4.5:
    // the bucket is per IPv6 /64.
    if (!this.table.isKeepalive(ip, address, port, id)) {
      if (!this.limiter.take(limitKeyOf(ip), now)) return refused('busy-rate');
      if (this.options.authSecrets.length > 0) {
        const ticket = checkTicket(id, this.options.authSecrets, nowSecs);
        if (ticket === 'invalid') return refused('bad-ticket');
        if (ticket === 'expired') admission = 'rebind-only';
      }
      if (admission === 'any' && draining) admission = 'no-create'; // SPEC 3.6
    }
    return this.table.register(ip, address, port, id, now, admission);
  }
}
