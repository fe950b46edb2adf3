import pLimit from "p-limit";

/**
 * Runs `task` for every item, at most `concurrency` at once, and stops at the first failure: items
 * not yet started never start, running ones see their signal aborted, and the first error is
 * thrown only once every started task has settled — so nothing is still writing into a directory
 * the caller removes next. An abort of `signal` does the same and throws its reason. Results are in
 * the items' order.
 */
export async function forEachBounded<T, R>(
  items: readonly T[],
  concurrency: number,
  signal: AbortSignal,
  task: (item: T, signal: AbortSignal, index: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new TypeError(`concurrency must be an integer ≥ 1, received ${String(concurrency)}`);
  }
  signal.throwIfAborted();
  const stop = new AbortController();
  const forward = () => stop.abort(signal.reason);
  signal.addEventListener("abort", forward, { once: true });
  const limit = pLimit(concurrency);
  const results: R[] = new Array<R>(items.length);
  let failure: { error: unknown } | undefined;
  try {
    await Promise.all(
      items.map((item, index) =>
        limit(async () => {
          if (stop.signal.aborted) return;
          try {
            results[index] = await task(item, stop.signal, index);
          } catch (error) {
            if (failure === undefined && !stop.signal.aborted) {
              failure = { error };
              stop.abort(error);
            }
          }
        }),
      ),
    );
  } finally {
    signal.removeEventListener("abort", forward);
  }
  if (signal.aborted) throw signal.reason;
  if (failure !== undefined) throw failure.error;
  return results;
}
