/**
 * Pure helpers shared by the storage adapters: content types, key checks that throw the job's
 * error, and the local file name a fetched object gets. The key rules themselves live in
 * `blueprint/paths.ts` (one place); this file only turns their verdict into a JobError.
 */
import { createHash } from "node:crypto";
import { checkStorageKey, extensionOf, type KeyOptions } from "../blueprint/paths.js";
import { JobError } from "../errors.js";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  mp4: "video/mp4",
  mov: "video/quicktime",
  mkv: "video/x-matroska",
  webm: "video/webm",
};

/** The `Content-Type` an uploaded video is stored with (by the key's extension). */
export function contentTypeFor(key: string): string {
  return CONTENT_TYPES[extensionOf(key)] ?? "application/octet-stream";
}

/**
 * Returns the normalised key or throws STORAGE_DENIED naming it (JSON-quoted, so control
 * characters stay visible). Keys were validated with the blueprint already; this is the adapters'
 * second line of defence.
 */
export function assertStorageKey(raw: string, options: KeyOptions = {}): string {
  const checked = checkStorageKey(raw, options);
  if (checked.ok) return checked.key;
  throw new JobError(`Invalid storage key ${JSON.stringify(raw)}: ${checked.reason} is not allowed`, {
    code: "STORAGE_DENIED",
  });
}

/** The error every adapter throws for a missing object (SPEC: names the key, never a local path). */
export function notFoundError(key: string, cause?: unknown): JobError {
  return new JobError(`Media file not found: ${key}`, { code: "STORAGE_NOT_FOUND", cause });
}

/**
 * A file name for a fetched copy of `key`: unique per key (a hash), so distinct keys never collide
 * in one directory, and keeping a short plain extension so tools can still guess the format.
 */
export function localNameFor(key: string): string {
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 24);
  const ext = extensionOf(key);
  return /^[a-z0-9]{1,8}$/.test(ext) ? `${hash}.${ext}` : hash;
}

/** Whether `child` is `parent` or lies below it (both absolute, already resolved). */
export function isInside(parent: string, child: string, separator = "/"): boolean {
  if (child === parent) return true;
  const prefix = parent.endsWith(separator) ? parent : parent + separator;
  return child.startsWith(prefix);
}
