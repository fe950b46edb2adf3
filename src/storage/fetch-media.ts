import { mkdir } from "node:fs/promises";
import pLimit from "p-limit";
import type { Logger } from "../log.js";
import type { FetchedFile, Storage } from "./storage.js";

export interface FetchProgress {
  /** Distinct files fetched so far. */
  files: number;
  /** Distinct files to fetch. */
  totalFiles: number;
  /** Bytes of the files fetched so far. */
  bytes: number;
}

export interface FetchMediaOptions {
  /** How many fetches run at once (≥ 1). */
  concurrency: number;
  signal: AbortSignal;
  logger: Logger;
  /** Called once per fetched file, in completion order. */
  onProgress?: ((progress: FetchProgress) => void) | undefined;
}

/**
 * Fetches every distinct key once (moves that share a clip share its fetch), at most
 * `concurrency` at a time, into `dir`. Returns key → local file. On the first failure or on abort,
 * the queued fetches never start, the running ones are aborted, and the first error is thrown once
 * they have settled (so nothing is still writing into `dir`).
 */
export async function fetchMedia(
  storage: Storage,
  keys: readonly string[],
  dir: string,
  options: FetchMediaOptions,
): Promise<Map<string, FetchedFile>> {
  const { signal, logger, onProgress } = options;
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
    throw new TypeError(`concurrency must be an integer ≥ 1, received ${String(options.concurrency)}`);
  }
  signal.throwIfAborted();
  const distinct = [...new Set(keys)];
  const started = performance.now();
  await mkdir(dir, { recursive: true });

  const stop = new AbortController();
  const forward = () => stop.abort(signal.reason);
  signal.addEventListener("abort", forward, { once: true });
  const limit = pLimit(options.concurrency);
  const files = new Map<string, FetchedFile>();
  let bytes = 0;
  let firstError: unknown;

  const fetchOne = async (key: string) => {
    if (stop.signal.aborted) return;
    try {
      const file = await storage.fetch(key, dir, stop.signal);
      files.set(key, file);
      bytes += file.bytes;
      logger.debug({ key, bytes: file.bytes }, `Fetched ${key}`);
      onProgress?.({ files: files.size, totalFiles: distinct.length, bytes });
    } catch (error) {
      if (firstError === undefined && !stop.signal.aborted) {
        firstError = error;
        stop.abort(error);
      }
    }
  };

  try {
    await Promise.all(distinct.map((key) => limit(() => fetchOne(key))));
  } finally {
    signal.removeEventListener("abort", forward);
  }
  if (signal.aborted) throw signal.reason;
  if (firstError !== undefined) throw firstError;

  logger.info(
    {
      files: distinct.length,
      references: keys.length,
      bytes,
      duration_ms: Math.round(performance.now() - started),
      storage: storage.name,
    },
    `Fetched ${distinct.length} media file${distinct.length === 1 ? "" : "s"}`,
  );
  return new Map(keys.map((key) => [key, files.get(key)!]));
}
