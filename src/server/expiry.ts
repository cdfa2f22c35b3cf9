// The coarse expiry schedule of the session table (SPEC 2.5): a timing wheel
// of `tickMs` buckets, each an intrusive doubly-linked list threaded through
// the entries themselves. Adding, removing and taking what is due are O(1)
// per entry and allocate nothing per entry; an entry removed from the table
// leaves the schedule at once (it used to linger in its bucket until its
// deadline, which let a registration churn pin memory). Pure: `now` is a
// parameter; one unref'd interval in the server drives it.

/** The fields an entry carries for the schedule; `expiryTick` is -1 while unscheduled. */
export interface ExpiryEntry<T> {
  expiryTick: number;
  expiryPrev: T | null;
  expiryNext: T | null;
}

export class ExpirySchedule<T extends ExpiryEntry<T>> {
  /** tick -> first entry of that bucket. */
  private readonly buckets = new Map<number, T>();
  private entries = 0;
  /** Every bucket up to this tick has been taken. */
  private sweptThrough = -Infinity;

  constructor(readonly tickMs: number) {
    if (!(tickMs >= 1)) throw new RangeError('tickMs must be at least 1');
  }

  /** Entries scheduled. */
  get size(): number {
    return this.entries;
  }

  /** Buckets holding at least one entry. */
  get bucketCount(): number {
    return this.buckets.size;
  }

  /** Schedules `e` (not scheduled now) for the first tick at or after `deadline`. */
  add(e: T, deadline: number): void {
    if (e.expiryTick !== -1) throw new Error('entry is scheduled already');
    // A deadline in a bucket already swept goes in the next one to be taken.
    const tick = Math.max(Math.ceil(deadline / this.tickMs), this.sweptThrough + 1);
    const head = this.buckets.get(tick);
    e.expiryTick = tick;
    e.expiryPrev = null;
    e.expiryNext = head ?? null;
    if (head !== undefined) head.expiryPrev = e;
    this.buckets.set(tick, e);
    this.entries++;
  }

  /** Unschedules `e`; does nothing when it is not scheduled. */
  remove(e: T): void {
    const tick = e.expiryTick;
    if (tick === -1) return;
    const { expiryPrev: prev, expiryNext: next } = e;
    if (prev !== null) prev.expiryNext = next;
    else if (next !== null) this.buckets.set(tick, next);
    else this.buckets.delete(tick);
    if (next !== null) next.expiryPrev = prev;
    e.expiryTick = -1;
    e.expiryPrev = null;
    e.expiryNext = null;
    this.entries--;
  }

  /**
   * Unschedules entries whose bucket is due at `now` (its tick's end is at or
   * before `now`), at most `max` of them, oldest bucket first, and hands each
   * to `visit`, which may add it again. What is left over stays due for the
   * next call: a mass expiry is taken in slices, with I/O between them.
   */
  takeDue(now: number, max: number, visit: (e: T) => void): void {
    const last = Math.floor(now / this.tickMs);
    if (this.entries === 0) {
      this.sweptThrough = Math.max(this.sweptThrough, last);
      return;
    }
    if (last <= this.sweptThrough) return;
    let ticks: Iterable<number>;
    if (this.sweptThrough === -Infinity || last - this.sweptThrough > this.buckets.size * 2 + 16) {
      // First sweep, or a long gap (a clock jump, a suspended VM): visit the
      // buckets that exist rather than every tick in between.
      ticks = [...this.buckets.keys()].filter((tick) => tick <= last).sort((x, y) => x - y);
    } else {
      const from = this.sweptThrough + 1;
      ticks = (function* range() {
        for (let tick = from; tick <= last; tick++) yield tick;
      })();
    }
    this.sweptThrough = last; // entries visit() adds again land after every due bucket
    let taken = 0;
    for (const tick of ticks) {
      let e = this.buckets.get(tick);
      while (e !== undefined) {
        if (taken === max) {
          // Stop inside the due range: this bucket (and the rest) wait for the
          // next call, and an entry re-added now still lands after them.
          this.buckets.set(tick, e);
          e.expiryPrev = null;
          this.sweptThrough = tick - 1;
          return;
        }
        const next: T | null = e.expiryNext;
        e.expiryTick = -1;
        e.expiryPrev = null;
        e.expiryNext = null;
        this.entries--;
        taken++;
        visit(e); // may add e again, always to a later bucket
        e = next ?? undefined;
      }
      this.buckets.delete(tick);
    }
  }

  /** True when an entry's bucket is due at `now` (takeDue stopped at its bound). */
  hasDue(now: number): boolean {
    const last = Math.floor(now / this.tickMs);
    if (this.entries === 0 || last <= this.sweptThrough) return false;
    for (const tick of this.buckets.keys()) if (tick <= last) return true;
    return false;
  }
}
