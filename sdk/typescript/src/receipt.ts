// The promise `ingest` returns. It knows whether anyone is listening (`await`, `then`,
// `catch`, `finally`, `Promise.all`…), so that an error nobody awaits goes to `onError`
// instead of crashing the process as an unhandled rejection, and an error somebody awaits
// is reported once, to them.

/** A Promise that records whether a reaction was ever attached to it. */
export class Receipt<T> extends Promise<T> {
  // Promises derived with then/catch/finally are plain Promises.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  #observed = false;

  /** True once anything subscribed to the outcome. */
  get observed(): boolean {
    return this.#observed;
  }

  // `await` and Promise.resolve call `then` on a Promise subclass, as do `catch` and `finally`.
  override then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    this.#observed = true;
    return super.then(onFulfilled, onRejected);
  }
}

/** A receipt with its settling functions. */
export interface Pending<T> {
  receipt: Receipt<T>;
  resolve(value: T): void;
  /** Rejects without ever counting as an unhandled rejection. */
  reject(reason: unknown): void;
}

export function pending<T>(): Pending<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const receipt = new Receipt<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    receipt,
    resolve,
    reject(reason) {
      // A reaction through Promise.prototype.then itself does not mark the receipt observed;
      // it keeps Node from treating an error already given to onError as unhandled.
      Promise.prototype.then.call(receipt, undefined, () => {});
      reject(reason);
    },
  };
}
