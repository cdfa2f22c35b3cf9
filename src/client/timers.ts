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
