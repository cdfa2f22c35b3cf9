// Counters are plain numbers bumped on the hot path (SPEC 3.3); nothing here
// runs per datagram but `counters.x++`. The Prometheus text is produced at
// scrape time by metrics-http.ts from these and from the session table.

/** The label values of quic_relay_registrations_total, in the order the metrics list them. */
export const REGISTRATION_RESULTS = [
  'created',
  'joined',
  'keepalive',
  'rebound',
  'full',
  'bad',
  'auth',
  'busy_rate',
  'busy_sessions',
  'busy_ip',
  'busy_draining',
] as const;
export type RegistrationResult = (typeof REGISTRATION_RESULTS)[number];
const REFUSALS: readonly RegistrationResult[] = ['full', 'bad', 'auth', 'busy_rate', 'busy_sessions', 'busy_ip', 'busy_draining'];

export class RelayCounters {
  datagramsReceived = 0;
  bytesReceived = 0;
  forwardedDatagrams = 0;
  forwardedBytes = 0;
  // dropped, one pair per reason
  droppedUnpaired = 0;
  droppedUnpairedBytes = 0;
  droppedUnknownSource = 0;
  droppedUnknownSourceBytes = 0;
  droppedAmbiguousSource = 0;
  droppedAmbiguousSourceBytes = 0;
  /** SPEC 1.6: from source port 0. */
  droppedPortZero = 0;
  droppedPortZeroBytes = 0;
  /** SPEC 4.4: from an address that leads back to a relay (ours, or --peer-relays). */
  droppedLoop = 0;
  droppedLoopBytes = 0;
  /** Over --max-session-bytes-per-sec or --max-session-datagrams-per-sec. */
  droppedRate = 0;
  droppedRateBytes = 0;
  /** SPEC 6.3: past a WebSocket connection's send queue. */
  droppedBackpressure = 0;
  droppedBackpressureBytes = 0;
  sendErrors = 0;
  socketErrors = 0;
  /** Registrations by result (quic_relay_registrations_total{result}); registrar.ts's OUTCOMES says which is which. */
  readonly registrations: Record<RegistrationResult, number> = Object.fromEntries(REGISTRATION_RESULTS.map((r) => [r, 0])) as Record<
    RegistrationResult,
    number
  >;
  /** SPEC 1.5: address queries answered (or suppressed, see repliesSuppressed). */
  addressQueries = 0;
  /** Replies not sent because they would be longer than the request (SPEC 1.3). */
  repliesSuppressed = 0;
  rebindsExplicit = 0;
  rebindsImplicit = 0;
  sessionsReaped = 0;
  /** Sessions removed because their last peer registered another session (SPEC 2.2). */
  sessionsEmptied = 0;

  get droppedDatagrams(): number {
    return (
      this.droppedUnpaired +
      this.droppedUnknownSource +
      this.droppedAmbiguousSource +
      this.droppedRate +
      this.droppedPortZero +
      this.droppedLoop +
      this.droppedBackpressure
    );
  }
  /** A session is created by exactly one registration. */
  get sessionsCreated(): number {
    return this.registrations.created;
  }
  get refusals(): number {
    let n = 0;
    for (const r of REFUSALS) n += this.registrations[r];
    return n;
  }
}

/** What the relay reports when it stops (SPEC 3.4) and what /healthz returns. */
export interface RelaySummary {
  uptimeSecs: number;
  sessionsOpen: number;
  sessionsPaired: number;
  sessionsCreated: number;
  forwardedDatagrams: number;
  forwardedBytes: number;
  droppedDatagrams: number;
  refusals: number;
  sendErrors: number;
}

/** The summary from the counters and the table's sizes. */
export function summaryOf(c: RelayCounters, uptimeSecs: number, sessionsOpen: number, sessionsPaired: number): RelaySummary {
  return {
    uptimeSecs,
    sessionsOpen,
    sessionsPaired,
    sessionsCreated: c.sessionsCreated,
    forwardedDatagrams: c.forwardedDatagrams,
    forwardedBytes: c.forwardedBytes,
    droppedDatagrams: c.droppedDatagrams,
    refusals: c.refusals,
    sendErrors: c.sendErrors,
  };
}

export function formatSummary(s: RelaySummary): string {
  return (
    `stopped after ${s.uptimeSecs.toFixed(1)} s: ${s.sessionsOpen} sessions open (${s.sessionsPaired} paired), ` +
    `${s.sessionsCreated} created, ${s.forwardedDatagrams} datagrams (${s.forwardedBytes} bytes) forwarded, ` +
    `${s.droppedDatagrams} dropped, ${s.refusals} registrations refused, ${s.sendErrors} send errors`
  );
}
