// Errors with stable codes. Network input never throws: these are for misuse
// of the library and for what a client is told by a relay.

export class RelayError extends Error {
  override name = 'RelayError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** A bad option or environment variable; `option` names it (SPEC 3.1). */
export class ConfigError extends RelayError {
  override name = 'ConfigError';
  readonly option: string;
  constructor(option: string, message: string) {
    super('QR_ERR_CONFIG', `${option}: ${message}`);
    this.option = option;
  }
}

export type RefusalReason = 'full' | 'busy' | 'bad' | 'auth';

/** The relay answered a registration with ERR:FULL, ERR:BUSY, ERR:BAD or ERR:AUTH (SPEC 1.3, 4.3). */
export class RegistrationRefusedError extends RelayError {
  override name = 'RegistrationRefusedError';
  readonly reason: RefusalReason;
  constructor(reason: RefusalReason, relay: string, session: string) {
    super(`QR_ERR_${reason.toUpperCase()}`, `relay ${relay} refused session ${session}: ERR:${reason.toUpperCase()}`);
    this.reason = reason;
  }
}

/** No ACK arrived within the registration timeout. */
export class RegistrationTimeoutError extends RelayError {
  override name = 'RegistrationTimeoutError';
  constructor(relay: string, session: string, ms: number) {
    super('QR_ERR_TIMEOUT', `relay ${relay} did not acknowledge session ${session} within ${ms} ms`);
  }
}

/** The object was used after close(). */
export class ClosedError extends RelayError {
  override name = 'ClosedError';
  constructor(what: string) {
    super('QR_ERR_CLOSED', `${what} is closed`);
  }
}
