import { createHash, randomUUID } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import {
  copyFile,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { checkStorageKey } from "../blueprint/paths.js";
import { JobError } from "../errors.js";
import { assertStorageKey, isInside, notFoundError } from "./keys.js";
import type { FetchedFile, ObjectDescription, Storage, UploadOptions } from "./storage.js";

export interface LocalStorageOptions {
  /** Directory every key is relative to (LOCAL_STORAGE_ROOT). Resolved against the current directory. */
  root: string;
  /**
   * A key prefix (the clip cache's) under which `describe` keeps a memo of content hashes: key →
   * sha256, trusted only while the file's device, inode, size, mtime and ctime are all unchanged
   * (docs/decisions/clip-cache.md, "Source-hash memo"). Unset: every `describe` hashes the file.
   */
  hashMemoPrefix?: string;
}

/** What a memo file records: the hash, and the file's identity when it was hashed. */
interface HashMemo {
  version: 1;
  key: string;
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  hash: string;
}

const DRIVER_NAME = "local";

function errnoCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

const MISSING = new Set(["ENOENT", "ENOTDIR", "ELOOP"]);

/**
 * Local mode (SPEC §4): keys are files under `root`. Every key is checked twice: its text
 * (`checkStorageKey`), then its real path after symlinks, which must stay inside the root's real
 * path. Fetched files are used in place; uploads are published by rename, so readers see the old
 * file or the whole new one.
 */
export function createLocalStorage(options: LocalStorageOptions): Storage {
  if (typeof options?.root !== "string" || options.root.trim() === "") {
    throw new JobError("Local storage needs a root directory", { code: "STORAGE_ERROR" });
  }
  const root = path.resolve(options.root);
  const memoPrefix =
    options.hashMemoPrefix === undefined
      ? undefined
      : assertStorageKey(options.hashMemoPrefix.replace(/\/+$/, ""));
  let rootReal: Promise<string> | undefined;

  const realRoot = () => {
    rootReal ??= realpath(root).catch((error: unknown) => {
      rootReal = undefined;
      throw new JobError("The local storage root (LOCAL_STORAGE_ROOT) does not exist or is not readable", {
        code: "STORAGE_ERROR",
        cause: error,
      });
    });
    return rootReal;
  };

  const escapeError = (key: string) =>
    new JobError(`Storage key resolves outside the storage root: ${key}`, { code: "STORAGE_DENIED" });

  /** The real path of an existing key, checked to be inside the root; undefined when missing. */
  const resolveExisting = async (key: string): Promise<string | undefined> => {
    const base = await realRoot();
    let real: string;
    try {
      real = await realpath(path.join(root, key));
    } catch (error) {
      if (MISSING.has(errnoCode(error) ?? "")) return undefined;
      throw accessError(key, error);
    }
    if (!isInside(base, real, path.sep)) throw escapeError(key);
    return real;
  };

  /**
   * Creates the parent directories of `key` one segment at a time, checking each (symlinks
   * followed) is a directory inside the root before anything is created in it. Returns the real
   * path of the target's directory.
   */
  const ensureParent = async (key: string): Promise<string> => {
    const base = await realRoot();
    let current = base;
    for (const segment of key.split("/").slice(0, -1)) {
      const next = path.join(current, segment);
      try {
        await mkdir(next);
      } catch (error) {
        if (errnoCode(error) !== "EEXIST") throw accessError(key, error);
      }
      const real = await realpath(next).catch((error: unknown) => {
        throw accessError(key, error);
      });
      if (!isInside(base, real, path.sep)) throw escapeError(key);
      if (!(await stat(real)).isDirectory()) {
        throw new JobError(`Cannot write ${key}: a parent path is not a directory`, {
          code: "STORAGE_ERROR",
        });
      }
      current = real;
    }
    return current;
  };

  const fetchFile = async (rawKey: string, _dir: string, signal?: AbortSignal): Promise<FetchedFile> => {
    const key = assertStorageKey(rawKey);
    signal?.throwIfAborted();
    const real = await resolveExisting(key);
    if (real === undefined) throw notFoundError(key);
    const info = await stat(real).catch((error: unknown) => {
      throw MISSING.has(errnoCode(error) ?? "") ? notFoundError(key, error) : accessError(key, error);
    });
    if (!info.isFile()) {
      throw new JobError(`Media file is not a regular file: ${key}`, { code: "STORAGE_ERROR" });
    }
    return { path: real, bytes: info.size, residence: "original" };
  };

  const storage: Storage = {
    name: DRIVER_NAME,
    fetchesInPlace: true,

    fetch: fetchFile,

    async read(rawKey: string, signal?: AbortSignal): Promise<Buffer> {
      const file = await fetchFile(rawKey, "", signal);
      const key = assertStorageKey(rawKey);
      return readFile(file.path, signal === undefined ? {} : { signal }).catch((error: unknown) => {
        if (signal?.aborted) throw signal.reason;
        throw MISSING.has(errnoCode(error) ?? "") ? notFoundError(key, error) : accessError(key, error);
      });
    },

    async describe(rawKey: string, signal?: AbortSignal): Promise<ObjectDescription> {
      const file = await fetchFile(rawKey, "", signal);
      const key = assertStorageKey(rawKey);
      const before = memoPrefix === undefined ? undefined : await identity(file.path);
      const memoKey =
        memoPrefix === undefined
          ? undefined
          : `${memoPrefix}/hash-memo/${createHash("sha256").update(key).digest("hex")}.json`;
      // Read and written like any key: inside the root, symlinks checked.
      const memoFile =
        memoKey === undefined ? undefined : await resolveExisting(memoKey).catch(() => undefined);
      if (memoFile !== undefined && before !== undefined) {
        const memo = await readFile(memoFile, "utf8")
          .then((text) => JSON.parse(text) as Partial<HashMemo>)
          .catch(() => undefined);
        if (
          memo?.version === 1 &&
          memo.key === key &&
          typeof memo.hash === "string" &&
          /^sha256-[0-9a-f]{64}$/.test(memo.hash) &&
          sameIdentity(memo, before)
        ) {
          return { bytes: file.bytes, hash: memo.hash };
        }
      }
      const hash = createHash("sha256");
      try {
        for await (const chunk of createReadStream(file.path, signal === undefined ? {} : { signal })) {
          hash.update(chunk as Buffer);
        }
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        throw accessError(key, error);
      }
      const description = { bytes: file.bytes, hash: `sha256-${hash.digest("hex")}` };
      if (memoKey !== undefined && before !== undefined) {
        // Recorded only if the file did not change while it was read; best effort.
        const after = await identity(file.path);
        if (after !== undefined && sameIdentity(before, after)) {
          const memo: HashMemo = { version: 1, key, ...before, hash: description.hash };
          const temp = path.join(os.tmpdir(), `hash-memo-${randomUUID()}.json`);
          await writeFile(temp, JSON.stringify(memo))
            .then(() => storage.upload(temp, memoKey, { contentType: "application/json", metadata: {} }))
            .catch(() => {})
            .finally(() => rm(temp, { force: true }).catch(() => {}));
        }
      }
      return description;
    },

    async list(rawPrefix: string, signal?: AbortSignal): Promise<string[]> {
      const prefix = assertStorageKey(rawPrefix.replace(/\/+$/, ""));
      const base = await resolveExisting(prefix);
      if (base === undefined) return [];
      const keys: string[] = [];
      // Directories are walked as they are (symlinked ones are not followed); each key is checked
      // again (real path inside the root) when it is fetched or described.
      const walk = async (dir: string, keyDir: string): Promise<void> => {
        signal?.throwIfAborted();
        const entries = await readdir(dir, { withFileTypes: true }).catch((error: unknown) => {
          if (MISSING.has(errnoCode(error) ?? "")) return [];
          throw accessError(keyDir, error);
        });
        for (const entry of entries) {
          if (entry.name.startsWith(".")) continue;
          const key = `${keyDir}/${entry.name}`;
          if (entry.isDirectory()) await walk(path.join(dir, entry.name), key);
          else if ((entry.isFile() || entry.isSymbolicLink()) && checkStorageKey(key).ok) keys.push(key);
        }
      };
      if ((await stat(base)).isDirectory()) await walk(base, prefix);
      return keys.sort();
    },

    async upload(
      localPath: string,
      rawKey: string,
      _options: UploadOptions,
      signal?: AbortSignal,
    ): Promise<void> {
      const key = assertStorageKey(rawKey);
      signal?.throwIfAborted();
      const dir = await ensureParent(key);
      const target = path.join(dir, path.posix.basename(key));
      // Same directory as the target, so the rename is atomic; dot-prefixed and unique.
      const temp = path.join(dir, `.${path.posix.basename(key)}.${randomUUID()}.tmp`);
      try {
        await copyFile(localPath, temp, constants.COPYFILE_EXCL);
        const handle = await open(temp, "r+");
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        // Aborted (SIGTERM) while copying: nothing is published.
        signal?.throwIfAborted();
        // Replaces a symlink at the target itself, never the file it points to.
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { force: true }).catch(() => {});
        if (signal?.aborted) throw signal.reason;
        const code = errnoCode(error);
        if (code === "EISDIR" || code === "ENOTEMPTY" || code === "EEXIST") {
          throw new JobError(`Cannot write ${key}: a directory is in the way`, {
            code: "STORAGE_ERROR",
            cause: error,
          });
        }
        throw new JobError(`Could not write ${key}: ${code ?? "I/O error"}`, {
          code:
            errnoCode(error) === "EACCES" || errnoCode(error) === "EPERM"
              ? "STORAGE_DENIED"
              : "STORAGE_ERROR",
          cause: error,
        });
      }
      await syncDirectory(dir);
    },

    url(rawKey: string): string {
      // As the Python job: `file://` + the absolute path, not percent-encoded.
      return `file://${path.join(root, assertStorageKey(rawKey))}`;
    },
  };
  return storage;
}

type Identity = Pick<HashMemo, "dev" | "ino" | "size" | "mtimeNs" | "ctimeNs">;

/** The file's identity as the memo records it (nanosecond times: a rewrite within the same ms still differs). */
async function identity(file: string): Promise<Identity | undefined> {
  const st = await stat(file, { bigint: true }).catch(() => undefined);
  if (st === undefined) return undefined;
  return {
    dev: String(st.dev),
    ino: String(st.ino),
    size: String(st.size),
    mtimeNs: String(st.mtimeNs),
    ctimeNs: String(st.ctimeNs),
  };
}

function sameIdentity(a: Partial<Identity>, b: Identity): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}

function accessError(key: string, error: unknown): JobError {
  const code = errnoCode(error);
  return new JobError(`Cannot access ${key}: ${code ?? "I/O error"}`, {
    code: code === "EACCES" || code === "EPERM" ? "STORAGE_DENIED" : "STORAGE_ERROR",
    cause: error,
  });
}

/** Makes the rename durable. Best effort: some file systems refuse fsync on a directory. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r").catch(() => undefined);
  if (handle === undefined) return;
  await handle.sync().catch(() => {});
  await handle.close();
}
