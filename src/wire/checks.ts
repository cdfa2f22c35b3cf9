// Value checks that the relay's options and the client's environment share,
// so a bad value reads the same wherever it comes from (SPEC 3.1, 5.2). Each
// throws a ConfigError naming the option or variable.

import * as net from 'node:net';
import { ConfigError } from './errors';

/** An integer in [min, max], else a ConfigError naming `option`. */
export function checkInteger(value: unknown, option: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(option, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A UDP or TCP port; 0 means "any free port". */
export function checkPort(value: unknown, option: string): number {
  return checkInteger(value, option, 0, 65535);
}

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$/;

/** True for an IP literal or a plausible DNS host name. */
export function isHostText(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  if (net.isIP(value) !== 0) return true;
  return !/^[\d.]+$/.test(value) && HOST_NAME.test(value);
}

/** An IP literal or a host name (resolved when the socket is opened). */
export function checkHost(value: unknown, option: string): string {
  if (typeof value !== 'string' || !isHostText(value)) {
    throw new ConfigError(option, `must be an IP address or host name, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** true/false spelled the usual ways (1/0, yes/no, on/off; empty is false); undefined for anything else. */
export function parseBooleanText(text: string): boolean | undefined {
  const v = text.trim().toLowerCase();
  if (v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
  if (v === '' || v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
  return undefined;
}
