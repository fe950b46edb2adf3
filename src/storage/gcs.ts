import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { type Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Bucket } from "@google-cloud/storage";
import pRetry, { AbortError } from "p-retry";
import { checkStorageKey } from "../blueprint/paths.js";
import { JobError } from "../errors.js";
import type { Logger } from "../log.js";
import { crc32cBase64, crc32cUpdate } from "./crc32c.js";
import { assertStorageKey, localNameFor, notFoundError } from "./keys.js";
import type { FetchedFile, FetchOptions, ObjectDescription, Storage, UploadOptions } from "./storage.js";

export interface GcsRetryOptions {
  /** Total attempts per operation, the first included (default 3). */
  attempts?: number;
  /** Delay before the first retry; doubled for each further one, with jitter (default 2000 ms). */
  minDelayMs?: number;
}

export interface GcsStorageOptions {
  /** GCS_BUCKET_NAME. */
  bucket: string;
  /** GCP_PROJECT_ID, passed to the client. */
  projectId?: string;
  logger: Logger;
  retry?: GcsRetryOptions;
  /**
   * An attempt that moves no byte for this long is abandoned and retried (default 20 000 ms): a connection
   * can die without an error or an end (seen after a reset mid-download), and nothing else would notice.
   */
  stallTimeoutMs?: number;
}

const DRIVER_NAME = "gcs";
const DEFAULT_ATTEMPTS = 3;
const DEFAULT_MIN_DELAY_MS = 2000;
const DEFAULT_STALL_TIMEOUT_MS = 20_000;
/** Uploads larger than this use a resumable session (as the SDK's own `bucket.upload` does). */
const RESUMABLE_ABOVE_BYTES = 5 * 1024 * 1024;

export type FailureKind = "not_found" | "denied" | "invalid" | "transient" | "other";

export interface Failure {
  kind: FailureKind;
  /** HTTP status, when the server answered. */
  status?: number;
  /** Node/network error code (ECONNRESET, …) or the SDK's code. */
  code?: string;
}

const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
  // The bytes received do not match the object's checksum: corrupted or cut in transit.
  "CONTENT_DOWNLOAD_MISMATCH",
  // The object stored by an upload does not have the checksum of the bytes sent (it is deleted).
  "CONTENT_UPLOAD_MISMATCH",
]);
const TRANSIENT_MESSAGE =
  /socket hang up|timed? ?out|ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|premature close/i;

function field(value: unknown, name: string): unknown {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

/**
 * Sorts an SDK or network error into permanent (fail at once) and transient (retry) failures
 * (SPEC §4): 408/429/5xx and connection resets, refusals and timeouts are transient.
 */
export function classifyGcsError(error: unknown): Failure {
  const rawCode = field(error, "code");
  const response = field(error, "response");
  const status =
    typeof rawCode === "number"
      ? rawCode
      : typeof field(response, "status") === "number"
        ? (field(response, "status") as number)
        : typeof field(error, "status") === "number"
          ? (field(error, "status") as number)
          : undefined;
  const causeCode = field(field(error, "cause"), "code");
  const code = typeof rawCode === "string" ? rawCode : typeof causeCode === "string" ? causeCode : undefined;
  if (status !== undefined && status >= 100) {
    if (status === 404) return { kind: "not_found", status };
    if (status === 401 || status === 403) return { kind: "denied", status };
    if (status === 408 || status === 429 || status >= 500) return { kind: "transient", status };
    if (status >= 400) return { kind: "invalid", status };
  }
  const message = error instanceof Error ? error.message : String(error);
  if ((code !== undefined && TRANSIENT_CODES.has(code)) || TRANSIENT_MESSAGE.test(message)) {
    return { kind: "transient", code: code ?? "network" };
  }
  return { kind: "other", ...(code === undefined ? {} : { code }) };
}

/** What a download response says about the object generation it serves (its `x-goog-*` headers). */
interface ServedObject {
  /** Whether its bytes can be checked as they arrive: served as stored (not compressed), with a CRC32C. */
  checkable: boolean;
  crc32c?: string;
  md5Hash?: string;
  /** The stored size, when a header gives it. */
  bytes?: number;
}

function servedObject(response: unknown): ServedObject | undefined {
  const status = field(response, "statusCode");
  const headers = field(response, "headers");
  if (typeof status !== "number" || status < 200 || status >= 300 || typeof headers !== "object")
    return undefined;
  const header = (name: string) => {
    const value = field(headers, name);
    return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
  };
  // `crc32c=<b64>,md5=<b64>`: one header, or two that Node joined with ", ".
  const hashes = new Map(
    (header("x-goog-hash") ?? "").split(",").map((pair) => {
      const at = pair.indexOf("=");
      return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()] as const;
    }),
  );
  const identity = (encoding: string | undefined) => encoding === undefined || encoding === "identity";
  const asStored = identity(header("content-encoding")) && identity(header("x-goog-stored-content-encoding"));
  const length = Number(header("x-goog-stored-content-length") ?? header("content-length") ?? Number.NaN);
  const crc32c = hashes.get("crc32c") || undefined;
  const md5Hash = hashes.get("md5") || undefined;
  return {
    checkable: asStored && crc32c !== undefined,
    ...(crc32c === undefined ? {} : { crc32c }),
    ...(md5Hash === undefined ? {} : { md5Hash }),
    ...(Number.isSafeInteger(length) && length >= 0 ? { bytes: length } : {}),
  };
}

/** Where one download try writes: a fresh sink per try; `discard` drops what a try wrote. */
interface DownloadTarget {
  open(): Writable;
  discard(): Promise<void>;
}

function downloadMismatch(): Error {
  return Object.assign(new Error("downloaded bytes do not match the object's checksum"), {
    code: "CONTENT_DOWNLOAD_MISMATCH",
  });
}

/** The content hash `describe` reports, from an object generation's metadata (md5, else crc32c + size). */
function metadataHash(metadata: { size?: unknown; md5Hash?: unknown; crc32c?: unknown }): string | undefined {
  const bytes = Number(metadata.size ?? Number.NaN);
  const hex = (base64: unknown) => Buffer.from(String(base64), "base64").toString("hex");
  // md5 is absent for composite objects; crc32c is always there (and the generation pins both).
  return typeof metadata.md5Hash === "string" && metadata.md5Hash !== ""
    ? `md5-${hex(metadata.md5Hash)}`
    : typeof metadata.crc32c === "string" && metadata.crc32c !== ""
      ? `crc32c-${hex(metadata.crc32c)}-${Number.isFinite(bytes) ? bytes : 0}`
      : undefined;
}

function describe(failure: Failure): string {
  if (failure.status !== undefined) return `HTTP ${failure.status}`;
  return failure.code ?? "error";
}

/** A transient failure, carried through p-retry so the last one can be reported. */
class TransientError extends Error {
  constructor(
    readonly failure: Failure,
    readonly original: unknown,
  ) {
    super(describe(failure), { cause: original });
  }
}

/**
 * GCS mode (SPEC §4). The SDK is imported on first use, so local runs never load it; it reads
 * STORAGE_EMULATOR_HOST itself. Its own retries are off: this adapter retries transient failures
 * (p-retry, exponential backoff with jitter) so the two are never multiplied.
 */
export function createGcsStorage(options: GcsStorageOptions): Storage {
  const bucketName = options?.bucket;
  if (typeof bucketName !== "string" || bucketName.trim() === "") {
    throw new JobError("GCS storage needs a bucket name", { code: "STORAGE_ERROR" });
  }
  const attempts = options.retry?.attempts ?? DEFAULT_ATTEMPTS;
  const minDelayMs = options.retry?.minDelayMs ?? DEFAULT_MIN_DELAY_MS;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new TypeError(`retry.attempts must be an integer ≥ 1, received ${String(attempts)}`);
  }
  if (!Number.isFinite(minDelayMs) || minDelayMs < 0) {
    throw new TypeError(`retry.minDelayMs must be a number ≥ 0, received ${String(minDelayMs)}`);
  }
  const { logger } = options;
  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  let bucketPromise: Promise<Bucket> | undefined;

  const getBucket = () => {
    bucketPromise ??= import("@google-cloud/storage").then(({ Storage }) => {
      const client = new Storage({
        ...(options.projectId === undefined ? {} : { projectId: options.projectId }),
        retryOptions: { autoRetry: false, maxRetries: 0 },
      });
      return client.bucket(bucketName);
    });
    return bucketPromise;
  };
  const checkKey = (raw: string) => assertStorageKey(raw, { bucket: bucketName });

  /** Runs `attempt` with retries on transient failures; maps every failure to a JobError. */
  const withRetry = async <T>(
    operation: "download" | "upload" | "check",
    key: string,
    attempt: () => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> => {
    try {
      return await pRetry(
        async () => {
          try {
            return await attempt();
          } catch (error) {
            if (signal?.aborted) throw new AbortError(toError(signal.reason));
            const failure = classifyGcsError(error);
            if (failure.kind === "transient") throw new TransientError(failure, error);
            throw new AbortError(permanentError(operation, key, failure, error));
          }
        },
        {
          retries: attempts - 1,
          minTimeout: minDelayMs,
          factor: 2,
          randomize: true,
          ...(signal === undefined ? {} : { signal }),
          onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
            if (retriesLeft === 0) return;
            logger.warn(
              { key, operation, attempt: attemptNumber, attempts, reason: error.message },
              `Storage ${operation} of ${key} failed (${error.message}); retrying`,
            );
          },
        },
      );
    } catch (error) {
      if (error instanceof TransientError) {
        throw new JobError(
          `Storage unavailable: ${operation} of ${key} failed after ${attempts} attempt${attempts === 1 ? "" : "s"} (${error.message})`,
          { code: "STORAGE_UNAVAILABLE", retryable: true, cause: error.original, details: { attempts } },
        );
      }
      throw error;
    }
  };

  /**
   * Downloads `key` into `target` with every check, retrying transient failures (each try starts
   * afresh: `target.discard()` drops what a failed one wrote). Returns the `describe` hash of the
   * generation received and, when asked, the sha256 of the bytes, both taken in the download's pass.
   */
  const download = async (
    key: string,
    target: DownloadTarget,
    signal: AbortSignal | undefined,
    withSha256: boolean,
  ): Promise<{ hash: string | undefined; sha256: string | undefined }> => {
    const bucket = await getBucket();
    return withRetry(
      "download",
      key,
      () =>
        guardStall(stallTimeoutMs, signal, async (attemptSignal, touch) => {
          await target.discard();
          const receive = async (source: Readable, checksum: boolean) => {
            let crc = 0;
            let received = 0;
            const hasher = withSha256 ? createHash("sha256") : undefined;
            const hash = new Transform({
              transform(chunk: Buffer, _encoding, done) {
                touch();
                if (checksum) crc = crc32cUpdate(crc, chunk);
                hasher?.update(chunk);
                received += chunk.length;
                done(null, chunk);
              },
            });
            await pipeline(source, hash, target.open(), { signal: attemptSignal });
            return { crc32c: crc32cBase64(crc), bytes: received, sha256: hasher?.digest("hex") };
          };
          try {
            // One request: the response's headers name the generation it serves and that
            // generation's size and checksums, so the bytes are checked against exactly the version
            // they are — no metadata request first, no mix of two versions.
            let served: ServedObject | undefined;
            const source = bucket.file(key).createReadStream({ validation: false });
            // Read to the end even when it turns out uncheckable (never for what this job stores):
            // destroying an SDK read stream destroys its pooled agent, cutting every other download.
            source.once("response", (response: unknown) => {
              served = servedObject(response);
            });
            const first = await receive(source, true);
            const response = served as ServedObject | undefined;
            if (response?.checkable === true) {
              if (
                (response.bytes !== undefined && response.bytes !== first.bytes) ||
                response.crc32c !== first.crc32c
              ) {
                throw downloadMismatch();
              }
              return {
                hash: metadataHash({ size: response.bytes ?? first.bytes, ...response }),
                sha256: first.sha256,
              };
            }
            await target.discard();
            // Served compressed (stored gzip) or without checksum headers: size and checksum come
            // from the object's metadata and the download is pinned to that generation. The check is
            // ours: the SDK skips its own when a server omits x-goog-stored-content-encoding (the
            // emulator does).
            const [metadata] = await untilAborted(bucket.file(key).getMetadata(), attemptSignal);
            touch();
            const gzipped = metadata.contentEncoding === "gzip";
            const file = bucket.file(key, { generation: metadata.generation });
            // Objects stored gzip are served decompressed: only the SDK can check those.
            const got = await receive(
              file.createReadStream({ validation: gzipped ? "crc32c" : false }),
              !gzipped,
            );
            if (!gzipped) {
              const sizeOk = metadata.size === undefined || Number(metadata.size) === got.bytes;
              if (!sizeOk || (metadata.crc32c !== undefined && got.crc32c !== metadata.crc32c)) {
                throw downloadMismatch();
              }
            }
            return { hash: metadataHash(metadata), sha256: got.sha256 };
          } catch (error) {
            await target.discard();
            throw error;
          }
        }),
      signal,
    );
  };

  return {
    name: DRIVER_NAME,
    fetchesInPlace: false,

    async fetch(
      rawKey: string,
      dir: string,
      signal?: AbortSignal,
      fetchOptions?: FetchOptions,
    ): Promise<FetchedFile> {
      const key = checkKey(rawKey);
      const destination = path.join(dir, localNameFor(key));
      const partial = `${destination}.part`;
      await mkdir(dir, { recursive: true });
      let sink: WriteStream | undefined;
      const { hash, sha256 } = await download(
        key,
        {
          open: () => {
            sink = createWriteStream(partial);
            return sink;
          },
          discard: async () => {
            // A sink destroyed while its file was still opening creates the file afterwards: wait
            // for it to close, or the removal below runs first and a `.part` file is left behind.
            if (sink !== undefined && !sink.closed) await once(sink, "close").catch(() => {});
            await rm(partial, { force: true });
          },
        },
        signal,
        fetchOptions?.sha256 === true,
      );
      await rename(partial, destination);
      const fetched: FetchedFile = {
        path: destination,
        bytes: (await stat(destination)).size,
        residence: "copy",
      };
      if (hash !== undefined) fetched.hash = hash;
      if (sha256 !== undefined) fetched.sha256 = sha256;
      return fetched;
    },

    async read(rawKey: string, signal?: AbortSignal): Promise<Buffer> {
      const key = checkKey(rawKey);
      let chunks: Buffer[] = [];
      await download(
        key,
        {
          open: () =>
            new Writable({
              write(chunk: Buffer, _encoding, done) {
                chunks.push(chunk);
                done();
              },
            }),
          discard: async () => {
            chunks = [];
          },
        },
        signal,
        false,
      );
      return Buffer.concat(chunks);
    },

    async describe(rawKey: string, signal?: AbortSignal): Promise<ObjectDescription> {
      const key = checkKey(rawKey);
      const file = (await getBucket()).file(key);
      const [metadata] = await withRetry("check", key, () => file.getMetadata(), signal);
      const bytes = Number(metadata.size ?? Number.NaN);
      const hash = metadataHash(metadata);
      if (hash === undefined || !Number.isFinite(bytes)) {
        throw new JobError(`Storage gave no checksum for ${key}`, { code: "STORAGE_ERROR" });
      }
      return { bytes, hash };
    },

    async list(rawPrefix: string, signal?: AbortSignal): Promise<string[]> {
      const prefix = checkKey(rawPrefix.replace(/\/+$/, ""));
      const bucket = await getBucket();
      const [files] = await withRetry(
        "check",
        `${prefix}/`,
        () => bucket.getFiles({ prefix: `${prefix}/`, autoPaginate: true }),
        signal,
      );
      return files
        .map((file) => file.name)
        .filter((name) => {
          // Hidden names at any depth below the prefix are left out, as in local mode.
          const rest = name.slice(prefix.length + 1);
          return (
            rest !== "" &&
            !rest.split("/").some((segment) => segment.startsWith(".")) &&
            checkStorageKey(name).ok
          );
        })
        .sort();
    },

    async upload(
      localPath: string,
      rawKey: string,
      uploadOptions: UploadOptions,
      signal?: AbortSignal,
    ): Promise<void> {
      const key = checkKey(rawKey);
      const bucket = await getBucket();
      // Streamed so that an abort (SIGTERM) or a stall destroys the request: a single-request upload
      // that never completes creates no object. Never `chunkSize` (the emulator breaks chunked uploads).
      await withRetry(
        "upload",
        key,
        () =>
          guardStall(stallTimeoutMs, signal, async (attemptSignal, touch) => {
            const { size } = await stat(localPath);
            // The CRC32C of the bytes sent, taken in their pass with the fast implementation (the SDK's
            // own validation computes it at 50–200 MB/s), checked against what the service stored.
            let crc = 0;
            const progress = new Transform({
              transform(chunk: Buffer, _encoding, done) {
                touch();
                crc = crc32cUpdate(crc, chunk);
                done(null, chunk);
              },
            });
            const file = bucket.file(key);
            const target = file.createWriteStream({
              resumable: size > RESUMABLE_ABOVE_BYTES,
              contentType: uploadOptions.contentType,
              metadata: { contentType: uploadOptions.contentType, metadata: { ...uploadOptions.metadata } },
              validation: false,
            });
            await pipeline(createReadStream(localPath), progress, target, { signal: attemptSignal });
            // The upload's response carries the stored object's metadata.
            if (field(file.metadata, "crc32c") !== crc32cBase64(crc)) {
              // Never leave an object that is not the file: delete it, and let the retry write it again.
              await file.delete({ ignoreNotFound: true }).catch(() => {});
              throw Object.assign(new Error("the stored object's checksum is not the uploaded bytes'"), {
                code: "CONTENT_UPLOAD_MISMATCH",
              });
            }
          }),
        signal,
      );
    },

    url(rawKey: string): string {
      return `gs://${bucketName}/${checkKey(rawKey)}`;
    },
  };
}

/**
 * Runs one attempt under its own signal, aborted when `outer` is or when no byte has moved for
 * `stallMs` (`touch` marks progress); a stall surfaces as a transient ETIMEDOUT.
 */
async function guardStall<T>(
  stallMs: number,
  outer: AbortSignal | undefined,
  attempt: (signal: AbortSignal, touch: () => void) => Promise<T>,
): Promise<T> {
  const stall = new AbortController();
  const timer = setTimeout(() => {
    stall.abort(
      Object.assign(new Error(`no data moved for ${Math.round(stallMs / 100) / 10} s`), {
        code: "ETIMEDOUT",
      }),
    );
  }, stallMs);
  const signal = outer === undefined ? stall.signal : AbortSignal.any([outer, stall.signal]);
  try {
    return await untilAborted(
      attempt(signal, () => timer.refresh()),
      signal,
    );
  } catch (error) {
    if (stall.signal.aborted && outer?.aborted !== true) throw stall.signal.reason;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Settles with `promise`, or rejects with the signal's reason as soon as it aborts (the call itself may go on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

function permanentError(operation: string, key: string, failure: Failure, cause: unknown): JobError {
  switch (failure.kind) {
    case "not_found":
      return operation === "upload"
        ? new JobError(`Storage bucket not found while uploading ${key}`, {
            code: "STORAGE_NOT_FOUND",
            cause,
          })
        : notFoundError(key, cause);
    case "denied":
      return new JobError(`Access denied to ${key} (${describe(failure)})`, {
        code: "STORAGE_DENIED",
        cause,
      });
    case "invalid":
      return new JobError(`Storage rejected the ${operation} of ${key} (${describe(failure)})`, {
        code: "STORAGE_ERROR",
        cause,
      });
    default:
      // The cause's message may hold local temp paths: the row gets the code only, logs the cause.
      return new JobError(`Storage ${operation} of ${key} failed (${describe(failure)})`, {
        code: "STORAGE_ERROR",
        cause,
      });
  }
}
