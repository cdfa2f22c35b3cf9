// Argument parsers shared by the commands. Each throws commander's
// InvalidArgumentError, so a bad flag or variable ends in one line naming the
// option (SPEC 3.1), and each runs the library's own check so both agree.

import { InvalidArgumentError } from 'commander';
import { checkHost, checkInteger, parseBooleanText } from '../wire/checks';
import { RelayError } from '../wire/errors';
import { checkEndpoints } from '../server/config';

function wrap<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    // The library names the option itself; commander names it too, so keep only the reason.
    const msg = err instanceof RelayError ? err.message.replace(/^[^:]*: /, '') : String(err);
    throw new InvalidArgumentError(msg);
  }
}

/** A whole decimal number in [min, max]; no signs, exponents or blanks. */
export function integerParser(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^\d{1,10}$/.test(value)) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return wrap(() => checkInteger(Number(value), '', min, max));
  };
}

export const parsePort = integerParser(0, 65535);

export function parseHost(value: string): string {
  return wrap(() => checkHost(value, ''));
}

/** true/false spelled the usual ways, for variables of on/off flags. */
export function parseBoolean(value: string): boolean {
  const b = parseBooleanText(value);
  if (b === undefined) throw new InvalidArgumentError('must be true or false');
  return b;
}

/** A comma-separated list of `host[:port]` (IPs only when `ipOnly`), checked as the library checks it. */
export function endpointListParser(ipOnly: boolean): (value: string) => string[] {
  return (value) => {
    const list = value
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    if (list.length === 0) throw new InvalidArgumentError('no address given');
    wrap(() => checkEndpoints(list, '', ipOnly));
    return list;
  };
}
