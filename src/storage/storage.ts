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
  /**
   * `copy`: a temporary file in `dir` that the caller owns (remove it when done); `original`: the
   * stored file itself, in place (never write to or remove it; it may change after the call).
   */
  residence: "copy" | "original";
  /**
   * GCS: the `describe` hash of exactly the generation downloaded. Absent in local mode, where the
   * file is the original (it may change after the call: copy it to pin its bytes).
   */
  hash?: string;
  /**
   * Hex sha256 of the bytes in `path`, when `FetchOptions.sha256` asked for it and the adapter hashed
   * them while copying (GCS: in the download's own pass). Absent for an original in place (local mode).
   */
  sha256?: string;
}

export interface FetchOptions {
  /** Hash the bytes while copying them (`FetchedFile.sha256`), so the caller need not read the file again. */
  sha256?: boolean;
}

/** What an object is, without fetching it. */
export interface ObjectDescription {
  bytes: number;
  /**
   * A content hash usable as a cache key, prefixed by its algorithm: `sha256-<hex>` (local, hashed
   * from the file), `md5-<hex>` or `crc32c-<hex>` (GCS, from the object's metadata; no download).
   */
  hash: string;
}

export interface Storage {
  readonly name: "local" | "gcs";
  /** Whether `fetch` hands out the stored file itself (`residence: "original"`) rather than a copy. */
  readonly fetchesInPlace: boolean;
  /** Makes the object at `key` available as a local file. `dir` is a temp directory the caller owns. */
  fetch(key: string, dir: string, signal?: AbortSignal, options?: FetchOptions): Promise<FetchedFile>;
  /**
   * The bytes of a small object (a sidecar, a cached probe) in memory, with the same checks as
   * `fetch` and no temporary file; STORAGE_NOT_FOUND when it does not exist.
   */
  read(key: string, signal?: AbortSignal): Promise<Buffer>;
  /**
   * Keys of the objects under `prefix/` (any depth), sorted; names starting with `.` (hidden files,
   * uploads in progress, the clip cache's default prefix) are left out. A missing prefix lists nothing.
   */
  list(prefix: string, signal?: AbortSignal): Promise<string[]>;
  /** Size and content hash of the object at `key`; STORAGE_NOT_FOUND when it does not exist. */
  describe(key: string, signal?: AbortSignal): Promise<ObjectDescription>;
  /** Publishes a local file at `key` atomically: readers see the old object or the whole new one. */
  upload(localPath: string, key: string, options: UploadOptions, signal?: AbortSignal): Promise<void>;
  /** The URL recorded in the task row: `file://<absolute path>` or `gs://<bucket>/<key>`. */
  url(key: string): string;
  /** Releases clients and sockets. */
  dispose?(): Promise<void>;
}
