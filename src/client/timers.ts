// The clock and timers the client uses; tests substitute a fake.
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const h = setTimeout(fn, ms);
    h.unref(); // the socket, not a timer, keeps a client's process alive
    return h;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * The one timer of a shell that drives a pure machine: set() it to the
 * machine's nextWake() after every input; `wake` runs when it is due. Moving
 * it to where it already is costs a compare, so a shell may call set() per
 * datagram.
 */
export class WakeTimer {
  private handle: unknown;
  private at = Infinity;

  constructor(
    private readonly timers: Timers,
    private readonly wake: () => void,
  ) {}

  /** Due at `at` (the machine's clock, that of timers.now()); Infinity: never. */
  set(at: number): void {
    if (at === this.at) return;
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.handle = undefined;
    this.at = at;
    if (at !== Infinity) this.handle = this.timers.setTimeout(this.fire, Math.max(0, at - this.timers.now()));
  }

  private readonly fire = (): void => {
    this.handle = undefined;
    this.at = Infinity;
    this.wake();
  };
}
