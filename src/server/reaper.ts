// SPEC 2.5: the reaper's timer. Each period it runs one pass over at most
// `slice` sessions and, while more are due, continues on setImmediate, so a
// mass expiry lets datagrams through between slices (a slice is about a
// millisecond). What a pass does is the relay's (RelayServer.reap).

export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private more: NodeJS.Immediate | undefined;

  constructor(
    /** One pass: at most `max` sessions looked at. */
    private readonly pass: (now: number, max: number) => void,
    /** True while sessions are left due after a pass. */
    private readonly due: (now: number) => boolean,
    private readonly clock: () => number,
    private readonly slice: number,
  ) {}

  /** A pass every `intervalMs`; 0 starts no timer (tests call the pass themselves). */
  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.timer = setInterval(this.run, intervalMs);
    this.timer.unref(); // never what keeps the process alive
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.more !== undefined) clearImmediate(this.more);
    this.more = undefined;
  }

  private readonly run = (): void => {
    this.more = undefined;
    const now = this.clock();
    this.pass(now, this.slice);
    if (this.due(now) && this.timer !== undefined) this.more = setImmediate(this.run);
  };
}
