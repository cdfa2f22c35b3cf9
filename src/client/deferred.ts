// A promise settled from outside, once: later calls do nothing (Node 20
// has no Promise.withResolvers).

export class Deferred<T = void> {
  readonly promise: Promise<T>;
  private settle: { resolve: (value: T) => void; reject: (err: Error) => void } | undefined;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
  }

  readonly resolve = (value: T): void => {
    const s = this.settle;
    this.settle = undefined;
    s?.resolve(value);
  };

  readonly reject = (err: Error): void => {
    const s = this.settle;
    this.settle = undefined;
    s?.reject(err);
  };
}
