/**
 * The hardening cases and what the job does in each: the single source of docs/RELIABILITY.md's
 * table. Every case is asserted by a test (`hardeningCase(id)` in a `*.test.ts` here; the docs test
 * checks each id is used and the table is current).
 */

export type Group = "input" | "media" | "fuzz" | "fault" | "load" | "secrets" | "trust";

export interface Outcome {
  /** Exit code of the CLI (0/1/2 documented; anything else only in an open case). */
  exit: number;
  /** Row status after the run ("untouched" = the row was not changed). */
  status: "completed" | "failed" | "untouched" | "running";
  stage?: string;
  /** `result.code` on failure. */
  code?: string;
  /** An excerpt of the row's `error` (a string the test asserts is contained). */
  error?: string;
}

export interface HardeningCase {
  id: string;
  group: Group;
  title: string;
  outcome: Outcome;
  /** Whether a re-run after the fault is part of the test ("ok") or not applicable ("n/a"). */
  rerun: "ok" | "n/a";
  /** "open": the behaviour is asserted as it is today but is a known bug (see RELIABILITY.md). */
  open?: string;
  note?: string;
}

/** The row failed at `stage` with `result.code` `code` and an error containing `error`. */
const failed = (stage: string, code: string, error: string, exit = 1): Outcome => ({
  exit,
  status: "failed",
  stage,
  code,
  error,
});
/** Refused by the validator (exit 2). */
const invalid = (error: string): Outcome => failed("validation", "INVALID_BLUEPRINT", error, 2);
const completed: Outcome = { exit: 0, status: "completed" };

export const CASES: HardeningCase[] = [
  // Hostile blueprints (SPEC §3.1–3.2), each through the CLI.
  {
    id: "path-dotdot",
    group: "input",
    title: "`../../etc/passwd` and `a/../../b` as clip, song and output",
    outcome: invalid("'..' segment"),
    rerun: "n/a",
  },
  {
    id: "path-absolute",
    group: "input",
    title: "absolute paths `/etc/passwd`, `C:\\Windows\\x.mp4`, `//host/x`",
    outcome: invalid("absolute path"),
    rerun: "n/a",
  },
  {
    id: "path-backslash",
    group: "input",
    title: "backslash traversal `..\\..\\x.mp4`",
    outcome: invalid("backslashes"),
    rerun: "n/a",
  },
  {
    id: "path-control",
    group: "input",
    title: "NUL, newline, DEL and C1 control characters in a path",
    outcome: invalid("control characters"),
    rerun: "n/a",
  },
  {
    id: "path-scheme",
    group: "input",
    title: "`file://`, `http://`, `data:`, `gs://` in local mode",
    outcome: invalid("URL"),
    rerun: "n/a",
  },
  {
    id: "path-dot-empty",
    group: "input",
    title: "`./x`, `clips//x`, `clips/`, empty string",
    outcome: invalid("video_path"),
    rerun: "n/a",
  },
  {
    id: "path-long",
    group: "input",
    title: "a 2 000-byte path",
    outcome: invalid("longer than 1024 bytes"),
    rerun: "n/a",
  },
  {
    id: "path-encoded",
    group: "input",
    title:
      "encoded traversal (`%2e%2e/`, `..%2f`, fullwidth `．．/`, `∕`), `~/`, `$HOME`, a blank name: literal names, not found, nothing outside the root read",
    outcome: failed("fetching", "STORAGE_NOT_FOUND", "Media file not found"),
    rerun: "n/a",
  },
  {
    id: "path-symlink",
    group: "input",
    title: "a symlink under the root pointing outside it",
    outcome: failed("fetching", "STORAGE_DENIED", "outside the storage root"),
    rerun: "n/a",
  },
  {
    id: "output-attacks",
    group: "input",
    title: "output path equal to an input, wrong extension, traversal, absolute",
    outcome: invalid("output_config.output_path"),
    rerun: "n/a",
  },
  {
    id: "numbers-huge",
    group: "input",
    title: "`1e308`, `1e400` (→ Infinity), `-0`, negative, strings, booleans as numbers",
    outcome: invalid("Invalid blueprint"),
    rerun: "n/a",
    note: "each row names the field, e.g. `moves[0].start_time`",
  },
  { id: "moves-10000", group: "input", title: "10 000 moves", outcome: invalid("moves"), rerun: "n/a" },
  {
    id: "nested-junk",
    group: "input",
    title: "100 000-deep nested arrays as `generation_parameters`, 50 000-deep objects as a `clip_id`",
    outcome: invalid("Invalid blueprint"),
    rerun: "n/a",
    note: "the same junk under an unknown field is ignored: renders, exit 0",
  },
  {
    id: "oversized",
    group: "input",
    title: "1 MiB + 1 byte of JSON (`--blueprint FILE`; an env var cannot hold it)",
    outcome: invalid("larger than 1 MiB"),
    rerun: "n/a",
  },
  {
    id: "not-json",
    group: "input",
    title: "not JSON, a JSON array, `null`, empty object, wrong types at the top",
    outcome: invalid("Invalid blueprint"),
    rerun: "n/a",
  },
  {
    id: "unicode",
    group: "input",
    title: "emoji/RTL/zero-width/NFD names and a lone surrogate: valid keys render, the row says so",
    outcome: completed,
    rerun: "n/a",
  },
  {
    id: "unicode-bad",
    group: "input",
    title: "a lone surrogate (`\\ud800`) or U+FFFE in a path",
    outcome: failed("fetching", "STORAGE_NOT_FOUND", "Media file not found"),
    rerun: "n/a",
    note: "fixed: the failure could not be written (jsonb rejects lone surrogates) and the row stayed `running`",
  },
  {
    id: "ffmpeg-smuggling",
    group: "input",
    title:
      "codec/bitrate/preset/format strings carrying FFmpeg options (`libx264 -f lavfi`, `2M -vf …`, `copy`)",
    outcome: invalid("output_config"),
    rerun: "n/a",
  },
  {
    id: "filtergraph-names",
    group: "input",
    title: "file names and clip ids full of filtergraph syntax (`'[0:v];movie=…,`) and a leading `-`",
    outcome: completed,
    rerun: "n/a",
  },
  {
    id: "song-missing",
    group: "input",
    title:
      "a song that is missing, has a lone surrogate in its key, or is a symlink out of the root (CLIP_CACHE=off)",
    outcome: failed("fetching", "STORAGE_NOT_FOUND", "Media file not found"),
    rerun: "n/a",
    note: "the symlink variant: `STORAGE_DENIED`, `outside the storage root`",
  },
  {
    id: "song-missing-clip-cache",
    group: "input",
    title: "the same missing song with CLIP_CACHE=on (the default)",
    outcome: failed("fetching", "STORAGE_NOT_FOUND", "Media file not found: songs/nope.m4a"),
    rerun: "n/a",
    note: "found by this suite: until 328a0a6 an unhandled rejection in src/job/clip-cache.ts killed the process (row left `running`, temp dir left)",
  },
  // Hostile media.
  {
    id: "media-truncated",
    group: "media",
    title: "an MP4 cut in half (moov at the end)",
    outcome: failed("fetching", "MEDIA_INVALID", "clips/truncated.mp4"),
    rerun: "n/a",
  },
  {
    id: "media-truncated-faststart",
    group: "media",
    title: "a faststart MP4 cut at 60 % (index intact, data missing)",
    outcome: completed,
    rerun: "n/a",
    note: "renders the frames that exist and holds the last one; no warning (the index claims the full length)",
  },
  {
    id: "media-text",
    group: "media",
    title: "a text file named `.mp4`",
    outcome: failed("fetching", "MEDIA_INVALID", "clips/text.mp4"),
    rerun: "n/a",
  },
  {
    id: "media-empty",
    group: "media",
    title: "a zero-byte clip and a zero-byte song",
    outcome: failed("fetching", "MEDIA_INVALID", "the file is empty"),
    rerun: "n/a",
  },
  {
    id: "media-audio-only",
    group: "media",
    title: "an audio-only file as a clip",
    outcome: failed("fetching", "MEDIA_INVALID", "clips/audio-only.mp4"),
    rerun: "n/a",
  },
  {
    id: "media-image",
    group: "media",
    title: "a PNG image as a clip",
    outcome: failed("fetching", "MEDIA_INVALID", "still image (png), not a video"),
    rerun: "n/a",
    note: "fixed: the row used to say `its duration is unknown`",
  },
  {
    id: "media-video-as-song",
    group: "media",
    title: "a video without audio as the song",
    outcome: failed("fetching", "MEDIA_INVALID", "songs/silent-video.mp4"),
    rerun: "n/a",
  },
  {
    id: "media-4k",
    group: "media",
    title: "a 3840×2160 clip (1 s)",
    outcome: completed,
    rerun: "n/a",
    note: "output capped at 1920×1080",
  },
  {
    id: "media-one-frame",
    group: "media",
    title: "a 1-frame clip used for a 1 s move",
    outcome: completed,
    rerun: "n/a",
    note: "last frame held, warning in the result",
  },
  {
    id: "media-60min-song",
    group: "media",
    title: "a 60-minute song under a 2 s timeline",
    outcome: completed,
    rerun: "n/a",
  },
  // Fuzzing.
  {
    id: "fuzz-validator",
    group: "fuzz",
    title: "fast-check mutations of a valid blueprint (40 CLI runs)",
    outcome: invalid("(agrees with the in-process validator)"),
    rerun: "n/a",
    note: "valid mutants render (exit 0) or fail at fetching (exit 1); never a crash",
  },
  // Faults.
  {
    id: "gcs-503-transient",
    group: "fault",
    title: "GCS answers 503 twice on downloads",
    outcome: completed,
    rerun: "n/a",
    note: "retried with backoff",
  },
  {
    id: "gcs-503-persistent",
    group: "fault",
    title: "GCS answers 503 to every download",
    outcome: failed("fetching", "STORAGE_UNAVAILABLE", "failed after 3 attempts (HTTP 503)"),
    rerun: "ok",
    note: "3 attempts per key, retryable: true, nothing uploaded",
  },
  {
    id: "gcs-reset",
    group: "fault",
    title: "connection reset after 2 000 body bytes (twice)",
    outcome: completed,
    rerun: "n/a",
    note: "retried; a reset that leaves the download silent (the SDK stream neither errors nor ends) is abandoned after 20 s without a byte and retried",
  },
  {
    id: "gcs-corrupt",
    group: "fault",
    title: "one download with a flipped bit (same length)",
    outcome: completed,
    rerun: "n/a",
    note: "checksum mismatch detected and retried",
  },
  { id: "gcs-slow", group: "fault", title: "downloads delayed 3 s", outcome: completed, rerun: "n/a" },
  {
    id: "gcs-upload-503",
    group: "fault",
    title: "GCS answers 503 to every upload request",
    outcome: failed("uploading", "STORAGE_UNAVAILABLE", "output/"),
    rerun: "ok",
    note: "no object written",
  },
  {
    id: "sigterm-validation",
    group: "fault",
    title: "SIGTERM right after `Job started`",
    outcome: failed("validation", "TERMINATED", "Job terminated: SIGTERM"),
    rerun: "ok",
    note: "exit < 5 s",
  },
  {
    id: "sigterm-fetching",
    group: "fault",
    title: "SIGTERM while downloads hang (GCS, proxy delays 20 s)",
    outcome: failed("fetching", "TERMINATED", "Job terminated: SIGTERM"),
    rerun: "ok",
    note: "exit < 5 s",
  },
  {
    id: "sigterm-rendering",
    group: "fault",
    title: "SIGTERM 300 ms into rendering",
    outcome: failed("rendering", "TERMINATED", "Job terminated: SIGTERM"),
    rerun: "ok",
    note: "FFmpeg killed, exit < 5 s",
  },
  {
    id: "sigterm-uploading",
    group: "fault",
    title: "SIGTERM while the upload hangs (GCS, proxy delays 20 s)",
    outcome: failed("uploading", "TERMINATED", "Job terminated: SIGTERM"),
    rerun: "ok",
    note: "the upload request is aborted, exit < 5 s, no object",
  },
  {
    id: "ffmpeg-kill9",
    group: "fault",
    title: "`kill -9` of the CLI's FFmpeg child mid-render",
    outcome: failed("rendering", "FFMPEG_FAILED", "FFmpeg failed while"),
    rerun: "ok",
  },
  {
    id: "db-down-at-start",
    group: "fault",
    title: "PostgreSQL stopped at start, back after 1.5 s",
    outcome: completed,
    rerun: "n/a",
    note: "connection retried (1 s/2 s/4 s)",
  },
  {
    id: "db-down-mid-render",
    group: "fault",
    title: "PostgreSQL stopped during rendering, back after 2.5 s",
    outcome: completed,
    rerun: "n/a",
    note: "progress writes lost (logged), final write retried",
  },
  {
    id: "db-down-for-good",
    group: "fault",
    title: "PostgreSQL down for the whole run",
    outcome: { exit: 1, status: "untouched" },
    rerun: "ok",
    note: "`Database unavailable` logged; nothing rendered, nothing recorded (no database to record in)",
  },
  {
    id: "db-wrong-password",
    group: "secrets",
    title: "a wrong DB_PASSWORD",
    outcome: { exit: 1, status: "untouched" },
    rerun: "n/a",
    note: "`password authentication failed` logged, the password is not",
  },
  {
    id: "disk-full-temp",
    group: "fault",
    title: "TMPDIR on a 64 KiB tmpfs (needs mount rights; skipped with a warning otherwise)",
    outcome: failed("rendering", "FFMPEG_FAILED", "No space left on device"),
    rerun: "ok",
    note: "fixed: the row used to say `Error initializing output stream 0:0 --`",
  },
  {
    id: "disk-full-output",
    group: "fault",
    title: "the output directory on a 64 KiB tmpfs",
    outcome: failed("uploading", "STORAGE_ERROR", "output/"),
    rerun: "ok",
    note: "no partial file visible",
  },
  // Untrusted media and concurrent executions (docs/THREAT_MODEL.md), test/hardening/trust.test.ts.
  {
    id: "trust-hls-clip",
    group: "trust",
    title:
      "a clip `x.mp4` that is an HLS playlist whose segment is a marker video outside the root (absolute path, `../` path, `file:` URL; local and GCS mode)",
    outcome: failed("fetching", "MEDIA_INVALID", "HLS playlist"),
    rerun: "n/a",
    note: "fixed: the outside video used to be rendered and cached; the marker colour is asserted absent from every output and cache entry",
  },
  {
    id: "trust-dash-clip",
    group: "trust",
    title: "a clip that is a DASH manifest with an absolute `BaseURL` outside the root",
    outcome: failed("fetching", "MEDIA_INVALID", "DASH manifest"),
    rerun: "n/a",
  },
  {
    id: "trust-ffconcat-symlink",
    group: "trust",
    title: "a clip that is an ffconcat script naming a symlink (inside the root) to a video outside it",
    outcome: failed("fetching", "MEDIA_INVALID", "FFmpeg concat script"),
    rerun: "n/a",
  },
  {
    id: "trust-hls-song",
    group: "trust",
    title: "a song `x.mp3` that is an HLS playlist whose segment is a marker tone outside the root",
    outcome: failed("fetching", "MEDIA_INVALID", "HLS playlist"),
    rerun: "n/a",
  },
  {
    id: "trust-playlist-loop",
    group: "trust",
    title: "a 51-byte HLS playlist that names itself",
    outcome: failed("fetching", "MEDIA_INVALID", "HLS playlist"),
    rerun: "n/a",
    note: "fixed: ffprobe used to reach ~11 GB before its 60 s timeout; now refused from its first bytes, peak RSS of the process tree asserted < 512 MiB",
  },
  {
    id: "trust-huge-picture",
    group: "trust",
    title: "a 16000×16000 PNG frame in Matroska (a file of a few KB)",
    outcome: failed("fetching", "MEDIA_INVALID", "larger than the job decodes"),
    rerun: "n/a",
    note: "fixed: used to cost 1.7 GB; refused at probe time (8192 px a side, 36 MP), peak RSS asserted < 512 MiB",
  },
  {
    id: "trust-duplicate-execution",
    group: "trust",
    title:
      "a second execution of a task while the first is rendering (the first paused mid-render), then a third after it completed",
    outcome: completed,
    rerun: "n/a",
    note: "fixed: the second used to restart the row and, failing later, flip `completed` to `failed`; now it leaves the row alone and exits 0 (advisory lock per task), the first completes, the third finds it completed",
  },
  {
    id: "trust-task-id",
    group: "trust",
    title: "`task_id` of 37 characters, and with a NUL (the row named by TASK_ID records it)",
    outcome: invalid("task_id"),
    rerun: "n/a",
    note: "fixed: passed validation and failed at the database (exit 1)",
  },
  {
    id: "trust-output-reserved",
    group: "trust",
    title:
      "`output_path` inside the clip cache (`.clip-cache/…`), the embedded database (`.pgdata/…`), inside an input (`clips/red.mp4/x.mp4`) or containing one (`clips.mp4` over `clips.mp4/…`)",
    outcome: invalid("output_config.output_path"),
    rerun: "n/a",
  },
  {
    id: "trust-embedded-concurrent",
    group: "trust",
    title:
      "two local jobs on one storage root without DB_* settings, started together (embedded PostgreSQL), the shorter one ending first",
    outcome: completed,
    rerun: "n/a",
    note: "fixed: the second failed with `the database system is starting up`, or the first stopped the server under the second (row left `running`); now one server is shared (lock file + registry in `.pgdata/`), the last job stops it",
  },
  {
    id: "trust-ctrl-c",
    group: "trust",
    title:
      "Ctrl-C in a terminal during a local run with the embedded database (SIGINT to the whole process group)",
    outcome: failed("rendering", "TERMINATED", "Job terminated: SIGINT"),
    rerun: "n/a",
    note: "fixed: the server got the SIGINT too, the failure could not be recorded and the job exited 13; the server now runs in its own process group",
  },
  {
    id: "trust-embedded-dies",
    group: "trust",
    title: "the embedded PostgreSQL killed (SIGKILL) mid-render",
    outcome: { exit: 1, status: "untouched" },
    rerun: "n/a",
    note: "the row keeps its last progress (its database is gone); the log says `Database unavailable …`; fixed: used to exit 13 (a stop that never settled)",
  },
  {
    id: "trust-double-sigterm",
    group: "trust",
    title: "two SIGTERMs 15 ms apart during the render",
    outcome: failed("rendering", "TERMINATED", "Job terminated: SIGTERM"),
    rerun: "n/a",
    note: "fixed: the second signal hit the default handler (exit 143, temp dir left, row sometimes `running`)",
  },
  // Load.
  {
    id: "load-4-cache-off",
    group: "load",
    title: "4 executions at once (same database, same storage root, shared clips), CLIP_CACHE=off",
    outcome: completed,
    rerun: "n/a",
    note: "each row its own result, each output's frame count checked, shared files' sha256 unchanged, no stray files",
  },
  {
    id: "load-4-cache-on",
    group: "load",
    title: "the same with CLIP_CACHE=on, cold cache (4 jobs building the same entries) then warm",
    outcome: completed,
    rerun: "n/a",
  },
  {
    id: "scale-500-cache-off",
    group: "load",
    title: "50 vs 500 moves of 0.2 s tiny clips, CLIP_CACHE=off (`npm run test:load`)",
    outcome: completed,
    rerun: "n/a",
    note: "asserts peak RSS (process tree) at 500 < 1.5 × at 50, time per move at 500 < 3 × at 50",
  },
  {
    id: "scale-500-cache-on",
    group: "load",
    title: "the same with CLIP_CACHE=on (`npm run test:load`)",
    outcome: completed,
    rerun: "n/a",
  },
];

export function caseById(id: string): HardeningCase {
  const found = CASES.find((c) => c.id === id);
  if (found === undefined) throw new Error(`Unknown hardening case ${id}`);
  return found;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** The Markdown table of docs/RELIABILITY.md. */
export function renderTable(): string {
  const head = [
    "| case | group | what | exit | row (status / stage / code) | error excerpt | temp left | re-run |",
    "|---|---|---|---|---|---|---|---|",
  ];
  const rows = CASES.map((c) => {
    const o = c.outcome;
    const row = [o.status, o.stage, o.code].filter((x) => x !== undefined).join(" / ");
    const what = `${c.title}${c.note === undefined ? "" : ` — ${c.note}`}${c.open === undefined ? "" : ` — **open:** ${c.open}`}`;
    return `| \`${c.id}\` | ${c.group} | ${cell(what)} | ${o.exit} | ${row} | ${cell(o.error === undefined ? "" : `\`${o.error}\``)} | ${o.status === "running" ? "**yes**" : "none"} | ${c.rerun} |`;
  });
  return [...head, ...rows].join("\n");
}
