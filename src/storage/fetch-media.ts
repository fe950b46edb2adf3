import { mkdir } from "node:fs/promises";
import { forEachBounded } from "../concurrency.js";
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

  const files = new Map<string, FetchedFile>();
  let bytes = 0;
  await forEachBounded(distinct, options.concurrency, signal, async (key, stop) => {
    const file = await storage.fetch(key, dir, stop);
    files.set(key, file);
    bytes += file.bytes;
    logger.debug({ key, bytes: file.bytes }, `Fetched ${key}`);
    onProgress?.({ files: files.size, totalFiles: distinct.length, bytes });
  });

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
