/**
 * The one contract every storage driver must keep (SPEC §3.2, §4), run by local.test.ts and
 * gcs.test.ts. Each test works under its own key prefix, so tests never see each other's objects.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isJobError, type JobError } from "../../src/errors.js";
import { fetchMedia } from "../../src/storage/fetch-media.js";
import { contentTypeFor } from "../../src/storage/keys.js";
import type { FetchedFile, FetchOptions, Storage } from "../../src/storage/storage.js";
import { captureLogs } from "../helpers/log-capture.js";

export interface StorageHarness {
  storage: Storage;
  /** Writes an object directly, bypassing the adapter. */
  put(key: string, data: Uint8Array): Promise<void>;
  /** Reads an object directly; undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  /** Names of every object under `prefix` (dot files and temp files included). */
  list(prefix: string): Promise<string[]>;
  /** Local paths that must never appear in an error message (the storage root, temp dirs). */
  privatePaths: string[];
  /** The URL `storage.url(key)` must return. */
  expectedUrl(key: string): string;
  close?(): Promise<void>;
}

export interface StorageContractOptions {
  name: string;
  create(): Promise<StorageHarness>;
  /** Another spelling of a key the driver must accept (GCS: `gs://<bucket>/key`). */
  aliasOf?(key: string): string;
  /** What `fetch` returns: a temporary copy in the caller's directory, or the stored file in place. */
  residence: "copy" | "original";
}

/** Keys every driver must refuse before touching anything (SPEC §3.2). */
export const HOSTILE_KEYS = [
  "",
  "../secret.mp4",
  "clips/../../secret.mp4",
  "clips/..",
  "/etc/passwd",
  "C:\\clips\\a.mp4",
  "clips\\a.mp4",
  "file:///etc/passwd",
  "http://example.com/a.mp4",
  "gs://another-bucket/clips/a.mp4",
  "clips/a\u0000.mp4",
  "clips//a.mp4",
  "./clips/a.mp4",
];

export async function expectJobError(promise: Promise<unknown>): Promise<JobError> {
  try {
    await promise;
  } catch (error) {
    if (isJobError(error)) return error;
    throw new Error(`expected a JobError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected a JobError, but the call succeeded");
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Counts the fetches that reach a driver and the most that ran at once. */
export function countingStorage(inner: Storage): Storage & { calls: string[]; maxInFlight: number } {
  let inFlight = 0;
  const counted = {
    ...inner,
    name: inner.name,
    calls: [] as string[],
    maxInFlight: 0,
    async fetch(
      key: string,
      dir: string,
      signal?: AbortSignal,
      options?: FetchOptions,
    ): Promise<FetchedFile> {
      counted.calls.push(key);
      inFlight += 1;
      counted.maxInFlight = Math.max(counted.maxInFlight, inFlight);
      try {
        return await inner.fetch(key, dir, signal, options);
      } finally {
        inFlight -= 1;
      }
    },
  };
  return counted;
}

export function testStorageContract(options: StorageContractOptions): void {
  describe(`storage contract: ${options.name}`, () => {
    let h: StorageHarness;
    let workDir: string;
    let counter = 0;
    const prefix = () => `contract-${process.pid}-${++counter}`;

    beforeAll(async () => {
      h = await options.create();
      workDir = await mkdtemp(path.join(os.tmpdir(), "storage-contract-"));
    });
    afterAll(async () => {
      await h?.close?.();
      if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
    });

    const scratch = () => mkdtemp(path.join(workDir, "t-"));
    const localFile = async (data: Uint8Array) => {
      const file = path.join(await scratch(), "upload.bin");
      await writeFile(file, data);
      return file;
    };
    const expectPrivateFree = (error: Error) => {
      for (const privatePath of [...h.privatePaths, workDir])
        expect(error.message).not.toContain(privatePath);
    };

    it("fetches an object's exact bytes to a local file", async () => {
      const key = `${prefix()}/clips/basic_1.mp4`;
      const data = randomBytes(64 * 1024);
      await h.put(key, data);
      const dir = await scratch();
      const fetched = await h.storage.fetch(key, dir);
      expect(fetched.bytes).toBe(data.length);
      expect(sha256(await readFile(fetched.path))).toBe(sha256(data));
      expect(fetched.residence).toBe(options.residence);
      expect(h.storage.fetchesInPlace).toBe(options.residence === "original");
      expect(fetched.path.startsWith(`${dir}${path.sep}`)).toBe(options.residence === "copy");
    });

    it("hashes a copy's bytes while fetching it when asked ({ sha256: true }), and only then", async () => {
      const key = `${prefix()}/cache/entry.mp4`;
      const data = randomBytes(300 * 1024 + 7);
      await h.put(key, data);
      const asked = await h.storage.fetch(key, await scratch(), undefined, { sha256: true });
      expect(sha256(await readFile(asked.path))).toBe(sha256(data));
      // A copy carries the hash of its bytes; an original in place carries none (the caller hashes it).
      expect(asked.sha256).toBe(asked.residence === "copy" ? sha256(data) : undefined);
      if (options.residence === "copy") expect(asked.sha256).toBe(sha256(data));
      const plain = await h.storage.fetch(key, await scratch());
      expect(plain.sha256).toBeUndefined();
    });

    it("reads a small object's exact bytes into memory; a missing one is STORAGE_NOT_FOUND naming the key", async () => {
      const key = `${prefix()}/cache/sources/probe.json`;
      const data = Buffer.from(JSON.stringify({ frames: 240, text: "paso básico" }));
      await h.put(key, data);
      expect(Buffer.compare(await h.storage.read(key), data)).toBe(0);
      const empty = `${prefix()}/cache/empty.json`;
      await h.put(empty, new Uint8Array(0));
      expect((await h.storage.read(empty)).length).toBe(0);
      const missing = `${prefix()}/cache/missing.json`;
      const error = await expectJobError(h.storage.read(missing));
      expect(error.code).toBe("STORAGE_NOT_FOUND");
      expect(error.message).toBe(`Media file not found: ${missing}`);
      expectPrivateFree(error);
    });

    it("accepts legal names that merely look odd (`clip..v2.mp4`, spaces, unicode)", async () => {
      const p = prefix();
      for (const key of [`${p}/clip..v2.mp4`, `${p}/Bachata steps/paso básico.mp4`]) {
        await h.put(key, Buffer.from(key));
        const fetched = await h.storage.fetch(key, await scratch());
        expect((await readFile(fetched.path)).toString()).toBe(key);
      }
    });

    it("describes an object only once it exists", async () => {
      const key = `${prefix()}/songs/Amor.mp3`;
      expect((await expectJobError(h.storage.describe(key))).code).toBe("STORAGE_NOT_FOUND");
      await h.put(key, Buffer.from("song"));
      expect((await h.storage.describe(key)).bytes).toBe(4);
    });

    it("describes an object without fetching it: size and a content hash that follows the bytes", async () => {
      const p = prefix();
      const a = randomBytes(20 * 1024);
      await h.put(`${p}/clips/a.mp4`, a);
      await h.put(`${p}/clips/same.mp4`, a);
      await h.put(`${p}/clips/b.mp4`, randomBytes(20 * 1024));
      const da = await h.storage.describe(`${p}/clips/a.mp4`);
      expect(da.bytes).toBe(a.length);
      expect(da.hash).toMatch(/^(sha256|md5|crc32c)-[0-9a-f]+/);
      // A cache key: safe in a storage key (no '/', '+', '=').
      expect(da.hash).toMatch(/^[a-z0-9-]+$/);
      expect((await h.storage.describe(`${p}/clips/same.mp4`)).hash).toBe(da.hash);
      expect((await h.storage.describe(`${p}/clips/b.mp4`)).hash).not.toBe(da.hash);
      await h.put(`${p}/clips/a.mp4`, randomBytes(20 * 1024));
      expect((await h.storage.describe(`${p}/clips/a.mp4`)).hash).not.toBe(da.hash);
      const error = await expectJobError(h.storage.describe(`${p}/clips/missing.mp4`));
      expect(error.code).toBe("STORAGE_NOT_FOUND");
      expectPrivateFree(error);
    });

    it("fails with STORAGE_NOT_FOUND naming the key (and nothing private) for a missing object", async () => {
      const key = `${prefix()}/clips/missing.mp4`;
      const error = await expectJobError(h.storage.fetch(key, await scratch()));
      expect(error.code).toBe("STORAGE_NOT_FOUND");
      expect(error.message).toBe(`Media file not found: ${key}`);
      expect(error.retryable).toBe(false);
      expectPrivateFree(error);
    });

    it("uploads a file, which then reads back byte for byte, with its URL", async () => {
      const key = `${prefix()}/output/choreography_1.mp4`;
      const data = randomBytes(48 * 1024);
      await h.storage.upload(await localFile(data), key, {
        contentType: contentTypeFor(key),
        metadata: { task_id: "task-1", blueprint_sha256: "0".repeat(64) },
      });
      expect(sha256((await h.get(key))!)).toBe(sha256(data));
      expect(h.storage.url(key)).toBe(h.expectedUrl(key));
    });

    it("replaces an existing object whole and leaves no temporary object behind", async () => {
      const p = prefix();
      const key = `${p}/output/video.mp4`;
      await h.put(key, randomBytes(96 * 1024));
      const data = randomBytes(10 * 1024);
      await h.storage.upload(await localFile(data), key, { contentType: "video/mp4", metadata: {} });
      const stored = (await h.get(key))!;
      expect(stored.length).toBe(data.length);
      expect(sha256(stored)).toBe(sha256(data));
      expect(await h.list(`${p}/`)).toEqual([key]);
    });

    it("fails naming the key, leaving nothing behind, when the local file to upload is missing", async () => {
      const p = prefix();
      const key = `${p}/output/video.mp4`;
      const missing = path.join(await scratch(), "never-written.mp4");
      const error = await expectJobError(
        h.storage.upload(missing, key, { contentType: "video/mp4", metadata: {} }),
      );
      expect(error.message).toContain(key);
      expectPrivateFree(error);
      expect(await h.list(`${p}/`)).toEqual([]);
    });

    it("lists the keys under a prefix, at any depth, sorted, without hidden names or other prefixes", async () => {
      const p = prefix();
      const put = (key: string) => h.put(key, Buffer.from(key));
      for (const key of [
        `${p}/lib/b.mp4`,
        `${p}/lib/a.mp4`,
        `${p}/lib/sub/c.mov`,
        `${p}/lib/.hidden.mp4`,
        `${p}/lib/.clip-cache/x/entry.mp4`,
        `${p}/library/d.mp4`,
        `${p}/other.mp4`,
      ])
        await put(key);
      const expected = [`${p}/lib/a.mp4`, `${p}/lib/b.mp4`, `${p}/lib/sub/c.mov`];
      expect(await h.storage.list(`${p}/lib`)).toEqual(expected);
      expect(await h.storage.list(`${p}/lib/`)).toEqual(expected);
      expect(await h.storage.list(`${p}/lib/sub`)).toEqual([`${p}/lib/sub/c.mov`]);
      expect(await h.storage.list(`${p}/nothing-here`)).toEqual([]);
      // An upload in progress or finished shows up only whole.
      const file = await localFile(Buffer.from("new"));
      await h.storage.upload(file, `${p}/lib/e.mp4`, { contentType: "video/mp4", metadata: {} });
      expect(await h.storage.list(`${p}/lib`)).toEqual([
        ...expected.slice(0, 2),
        `${p}/lib/e.mp4`,
        expected[2],
      ]);
    });

    it("refuses a hostile prefix to list", async () => {
      for (const bad of ["../secret", "/etc", "clips/../..", "http://example.com/x"]) {
        const error = await expectJobError(h.storage.list(bad));
        expect(error.code).toBe("STORAGE_DENIED");
      }
    });

    it.each(HOSTILE_KEYS)("refuses the key %j in every operation, touching nothing", async (key) => {
      const dir = await scratch();
      const file = await localFile(Buffer.from("x"));
      // Each call made only when awaited: rejections pending meanwhile would be unhandled.
      for (const attempt of [
        () => h.storage.fetch(key, dir),
        () => h.storage.describe(key),
        () => h.storage.upload(file, key, { contentType: "video/mp4", metadata: {} }),
        () => Promise.resolve().then(() => h.storage.url(key)),
      ]) {
        const error = await expectJobError(attempt());
        expect(error.code).toBe("STORAGE_DENIED");
        expectPrivateFree(error);
      }
      expect(await readdir(dir)).toEqual([]);
    });

    it.runIf(options.aliasOf !== undefined)("accepts the driver's own alias of a key", async () => {
      const key = `${prefix()}/clips/alias.mp4`;
      await h.put(key, Buffer.from("alias"));
      const alias = options.aliasOf!(key);
      expect((await h.storage.describe(alias)).bytes).toBe(5);
      const fetched = await h.storage.fetch(alias, await scratch());
      expect((await readFile(fetched.path)).toString()).toBe("alias");
      expect(h.storage.url(alias)).toBe(h.expectedUrl(key));
    });

    describe("fetchMedia", () => {
      it("fetches 29 references to 12 distinct clips exactly 12 times, bounded, with progress", async () => {
        const p = prefix();
        const clips = Array.from({ length: 12 }, (_, i) => ({
          key: `${p}/clips/clip_${i}.mp4`,
          data: randomBytes(2048 + i * 100),
        }));
        for (const clip of clips) await h.put(clip.key, clip.data);
        const keys = Array.from({ length: 29 }, (_, i) => clips[(i * 5) % 12]!.key);
        expect(new Set(keys).size).toBe(12);
        const counted = countingStorage(h.storage);
        const progress: { files: number; totalFiles: number; bytes: number }[] = [];
        const { logger } = captureLogs();

        const files = await fetchMedia(counted, keys, path.join(await scratch(), "media"), {
          concurrency: 4,
          signal: new AbortController().signal,
          logger,
          onProgress: (event) => progress.push(event),
        });

        expect(counted.calls.length).toBe(12);
        expect(new Set(counted.calls).size).toBe(12);
        expect(counted.maxInFlight).toBeLessThanOrEqual(4);
        const totalBytes = clips.reduce((sum, clip) => sum + clip.data.length, 0);
        expect(progress.map((event) => event.files)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
        expect(progress.every((event) => event.totalFiles === 12)).toBe(true);
        expect(progress.at(-1)!.bytes).toBe(totalBytes);
        for (const key of keys) {
          const clip = clips.find((candidate) => candidate.key === key)!;
          expect(sha256(await readFile(files.get(key)!.path))).toBe(sha256(clip.data));
        }
      });

      it("fails with the missing key's error and starts nothing after it", async () => {
        const p = prefix();
        await h.put(`${p}/clips/a.mp4`, Buffer.from("a"));
        const keys = [`${p}/clips/a.mp4`, `${p}/clips/missing.mp4`, `${p}/clips/a.mp4`];
        const { logger } = captureLogs();
        const error = await expectJobError(
          fetchMedia(h.storage, keys, path.join(await scratch(), "media"), {
            concurrency: 1,
            signal: new AbortController().signal,
            logger,
          }),
        );
        expect(error.code).toBe("STORAGE_NOT_FOUND");
        expect(error.message).toBe(`Media file not found: ${p}/clips/missing.mp4`);
      });

      it("starts no fetch when the signal is already aborted", async () => {
        const counted = countingStorage(h.storage);
        const controller = new AbortController();
        const reason = new Error("Job terminated: SIGTERM");
        controller.abort(reason);
        const { logger } = captureLogs();
        await expect(
          fetchMedia(counted, [`${prefix()}/clips/a.mp4`], path.join(await scratch(), "media"), {
            concurrency: 2,
            signal: controller.signal,
            logger,
          }),
        ).rejects.toBe(reason);
        expect(counted.calls).toEqual([]);
      });
    });
  });
}
