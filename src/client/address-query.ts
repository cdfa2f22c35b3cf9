// SPEC 1.5: one address query under way at a time, answered by the relay's
// `ADDR ip:port` or given up after a timeout (the original relay has no
// address query). A newer query replaces an older one, which gets undefined.

import type { Timers } from './timers';

export type PublicAddress = { address: string; port: number };

export class AddressQuery {
  private waiter: ((a: PublicAddress | undefined) => void) | undefined;

  constructor(private readonly timers: Timers) {}

  /** A query is waiting for its answer (a relay's `ADDR ...` is then taken as it). */
  get active(): boolean {
    return this.waiter !== undefined;
  }

  /** Sends the query (`send`) and resolves with the answer, or undefined after timeoutMs or cancel(). */
  ask(timeoutMs: number, send: () => void): Promise<PublicAddress | undefined> {
    this.cancel();
    return new Promise((resolve) => {
      const timer = this.timers.setTimeout(() => done(undefined), timeoutMs);
      const done = (a: PublicAddress | undefined): void => {
        if (this.waiter !== done) return;
        this.waiter = undefined;
        this.timers.clearTimeout(timer);
        resolve(a);
      };
      this.waiter = done;
      send();
    });
  }

  /** The relay's answer to the query under way. */
  answer(a: PublicAddress): void {
    this.waiter?.(a);
  }

  /** The query under way resolves undefined. */
  cancel(): void {
    this.waiter?.(undefined);
  }
}
