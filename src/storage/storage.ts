/**
 * One small interface over where media lives (SPEC §4). Keys are storage keys as validated by
 * the blueprint (relative POSIX paths); adapters check them again before touching anything.
 */
export interface UploadOptions {
  contentType: string;
  metadata: Record<string, string>;
}

export interface FetchedFile {
  /** A local file with the object's bytes (may be the original file in local mode: never write to it). */
  path: string;
  bytes: number;
}

export interface Storage {
  readonly name: "local" | "gcs";
  /** Makes the object at `key` available as a local file. `dir` is a temp directory the caller owns. */
  fetch(key: string, dir: string, signal?: AbortSignal): Promise<FetchedFile>;
  /** Whether an object exists at `key`. */
  exists(key: string): Promise<boolean>;
  /** Publishes a local file at `key` atomically: readers see the old object or the whole new one. */
  upload(localPath: string, key: string, options: UploadOptions): Promise<void>;
  /** The URL recorded in the task row: `file://<absolute path>` or `gs://<bucket>/<key>`. */
  url(key: string): string;
  /** Releases clients and sockets. */
  dispose?(): Promise<void>;
}
