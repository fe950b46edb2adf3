/**
 * Storage-key rules (SPEC §3.2). Pure: used by the blueprint validator and checked again by every
 * storage adapter before it touches anything.
 *
 * A storage key is a relative POSIX path: segments separated by `/`, none empty, `.` or `..`.
 */

export type KeyCheck = { ok: true; key: string } | { ok: false; reason: string };

export interface KeyOptions {
  /** GCS mode: `gs://<bucket>/key` is accepted and means `key`. */
  bucket?: string;
  /**
   * Local mode: a leading `data/` segment is stripped, as the Python job did (the API sends
   * `songs/x.mp3` and `data/Bachata_steps/…` in one blueprint, both relative to its data directory).
   */
  stripDataPrefix?: boolean;
}

/** The segment the Python job stripped from local keys. */
const DATA_PREFIX = "data/";

/** GCS's limit on object names, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
const URL_SCHEME = /^[a-zA-Z][a-zA-Z0-9+.-]*:/;
const WINDOWS_DRIVE = /^[a-zA-Z]:/;

/**
 * Validates a storage key and returns it normalised: a `gs://<configured bucket>/` prefix removed (GCS
 * mode) or one leading `data/` segment removed (local mode, `stripDataPrefix`).
 */
export function checkStorageKey(raw: string, options: KeyOptions = {}): KeyCheck {
  let key = raw;
  if (options.bucket !== undefined && key.startsWith(`gs://${options.bucket}/`)) {
    key = key.slice(`gs://${options.bucket}/`.length);
  }
  // Stripped first, so every rule below applies to the key that is actually opened.
  if (options.stripDataPrefix === true && key.startsWith(DATA_PREFIX)) key = key.slice(DATA_PREFIX.length);
  if (key.length === 0) return { ok: false, reason: "an empty path" };
  if (CONTROL_CHARACTERS.test(key)) return { ok: false, reason: "a path with control characters" };
  if (key.includes("\\")) return { ok: false, reason: "a path with backslashes" };
  if (key.startsWith("/") || WINDOWS_DRIVE.test(key)) return { ok: false, reason: "an absolute path" };
  if (URL_SCHEME.test(key)) {
    const scheme = key.slice(0, key.indexOf(":")).toLowerCase();
    if (scheme !== "gs") return { ok: false, reason: `a ${scheme}: URL` };
    return options.bucket === undefined
      ? { ok: false, reason: "a gs:// URL (storage is local, not GCS)" }
      : { ok: false, reason: "a gs:// URL of another bucket" };
  }
  const segments = key.split("/");
  if (segments.includes("..")) return { ok: false, reason: "a path with a '..' segment" };
  if (segments.includes(".")) return { ok: false, reason: "a path with a '.' segment" };
  if (segments.includes("")) return { ok: false, reason: "a path with an empty segment" };
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most keys need no encoding to be measured.
  if (key.length * 3 > MAX_KEY_BYTES && new TextEncoder().encode(key).length > MAX_KEY_BYTES) {
    return { ok: false, reason: `a path longer than ${MAX_KEY_BYTES} bytes` };
  }
  return { ok: true, key };
}

/** The lower-case extension of a key without the dot (`"mp4"`), or `""` when it has none. */
export function extensionOf(key: string): string {
  const name = key.slice(key.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot <= 0 ? "" : name.slice(dot + 1).toLowerCase();
}
