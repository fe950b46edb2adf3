/**
 * The one module that runs FFmpeg and ffprobe. Every run takes a prepared argument array (never a shell string),
 * logs it at debug, reports progress from FFmpeg's `time=` mark, and is killed by a watchdog or an
 * aborted signal.
 *
 * fluent-ffmpeg's public API cannot run a prepared argument array as is (it reorders options, adds
 * `-y`, and spawns `ffmpeg -formats` to check every `-f` it sees: docs/decisions/process-runner.md), so
 * both binaries are spawned here directly with `node:child_process`, argument arrays only.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";
import pLimit from "p-limit";
import { JobError } from "../errors.js";
import type { Logger } from "../log.js";

export interface FfmpegProgress {
  /** Output time reached (FFmpeg's `time=` timemark), in seconds. */
  seconds: number;
  /** Encoding speed relative to real time (`speed=`), when FFmpeg reports one. */
  speed?: number;
}

export interface RunFfmpegOptions {
  /** Binary to run (default: `ffmpeg` from PATH). */
  ffmpegPath?: string;
  /** Watchdog: the process is killed after this long and the run fails with FFMPEG_TIMEOUT. */
  timeoutMs: number;
  /** Aborting kills FFmpeg at once (SIGKILL) and rejects with `signal.reason`. */
  signal?: AbortSignal;
  logger?: Logger;
  /** Planned output length, for log lines. */
  expectedSeconds?: number;
  onProgress?: (p: FfmpegProgress) => void;
  /** What is being rendered, for user-facing messages ("rendering move 3 (move_3)"). No temp paths. */
  label?: string;
}

export interface RunFfmpegResult {
  durationMs: number;
  /** FFmpeg's stderr with progress lines removed (the last lines only). */
  stderr: string;
}

/** Lines of stderr kept for error details. */
const STDERR_LINES = 200;

/**
 * Spawns `file args` (stdin and stdout ignored) and calls `onLine` for each stderr line (split on
 * `\r` too: FFmpeg rewrites its progress line in place). `onExit` gets null on exit code 0, else the error.
 */
function spawnLines(
  file: string,
  args: readonly string[],
  onLine: (line: string) => void,
  onExit: (err: (Error & { code?: string | number }) | null) => void,
): ChildProcess {
  const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], windowsHide: true });
  let partial = "";
  let exited = false;
  const exit = (err: (Error & { code?: string | number }) | null) => {
    if (exited) return;
    exited = true;
    onExit(err);
  };
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    const lines = (partial + chunk).split(/\r\n|\r|\n/);
    partial = lines.pop() ?? "";
    for (const line of lines) if (line !== "") onLine(line);
  });
  child.on("error", (err) => exit(err));
  child.on("close", (code, signalName) => {
    if (partial !== "") onLine(partial);
    partial = "";
    if (code === 0) return exit(null);
    const reason = signalName !== null ? `was killed with signal ${signalName}` : `exited with code ${code}`;
    exit(new Error(`${path.basename(file)} ${reason}`));
  });
  return child;
}

const TIME_RE = /time=\s*(-?\d+):(\d+):(\d+(?:\.\d+)?)/;
const SPEED_RE = /speed=\s*([\d.]+)x/;

/** Parses a progress line (`frame=… time=00:00:01.23 … speed=1.5x`); undefined for other lines. */
export function parseProgressLine(line: string): FfmpegProgress | undefined {
  const time = TIME_RE.exec(line);
  if (time === null) return undefined;
  const seconds = Number(time[1]) * 3600 + Number(time[2]) * 60 + Number(time[3]);
  const speed = SPEED_RE.exec(line);
  return speed === null
    ? { seconds: Math.max(0, seconds) }
    : { seconds: Math.max(0, seconds), speed: Number(speed[1]) };
}

function isProgressLine(line: string): boolean {
  return /^\s*(frame|size)=/.test(line) && TIME_RE.test(line);
}

/** Replaces absolute paths in FFmpeg output by their base names: messages reach users. */
export function redactPaths(text: string): string {
  return text.replace(/(?:[A-Za-z]:)?(?:\/[^\s/'":,]+)+\/([^\s/'":,]+)/g, "$1");
}

/** Operating-system failures FFmpeg reports in passing; they say what to fix better than its last line. */
const OS_ERRORS =
  /No space left on device|Disk quota exceeded|Read-only file system|Cannot allocate memory|Too many open files|Permission denied/i;

/**
 * The most useful line of FFmpeg's stderr: one naming an OS failure (a full disk is otherwise
 * reported as "Error initializing output stream"), else the last one that looks like an error.
 */
export function errorLine(stderr: string): string | undefined {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !isProgressLine(line));
  return (
    lines.findLast((line) => OS_ERRORS.test(line)) ??
    lines.findLast((line) => /error|invalid|no such|failed|cannot|unable|not found|denied/i.test(line)) ??
    lines.at(-1)
  );
}

/**
 * Address-space limits (docs/THREAT_MODEL.md): a hostile file makes FFmpeg fail with "Cannot allocate
 * memory" instead of exhausting the machine. Generous for real work (a 1080p x264 encode stays under
 * 1 GiB of address space; the picture-size caps keep decoded frames small), applied where the OS
 * has util-linux's `prlimit` (Linux); elsewhere the processes run unlimited.
 */
export const FFMPEG_ADDRESS_SPACE = 2 * 1024 ** 3;
export const FFPROBE_ADDRESS_SPACE = 1024 ** 3;

/** Probe watchdog: ffprobe reads headers and at most a few frames; a file that takes longer is hostile. */
export const PROBE_TIMEOUT_MS = 15_000;

const resolved = new Map<string, string | undefined>();

/** The absolute path of an executable (a path, or a name looked up in PATH); undefined if missing. */
export function findExecutable(name: string): string | undefined {
  if (resolved.has(name)) return resolved.get(name);
  const candidates = name.includes("/")
    ? [name]
    : (process.env["PATH"] ?? "").split(path.delimiter).map((dir) => path.join(dir || ".", name));
  const found = candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  const result = found === undefined ? undefined : path.resolve(found);
  resolved.set(name, result);
  return result;
}

/**
 * The command that runs `binary args` under an address-space limit: `prlimit --as=N -- binary args`
 * (prlimit execs the binary: same process, so kills reach it). A binary that does not exist is run
 * directly, so the caller sees ENOENT as before.
 */
export function limitedCommand(
  binary: string,
  args: string[],
  addressSpace: number,
): { file: string; args: string[] } {
  const prlimit = process.platform === "linux" ? findExecutable("prlimit") : undefined;
  const target = findExecutable(binary);
  if (prlimit === undefined || target === undefined) return { file: binary, args };
  return { file: prlimit, args: [`--as=${addressSpace}`, "--", target, ...args] };
}

/** Runs FFmpeg with exactly `args` (without the binary). */
export function runFfmpeg(args: string[], options: RunFfmpegOptions): Promise<RunFfmpegResult> {
  const { signal, logger } = options;
  const label = options.label ?? "running FFmpeg";
  const binary = options.ffmpegPath ?? "ffmpeg";
  if (signal?.aborted) return Promise.reject(signal.reason);
  logger?.debug({ ffmpeg: binary, args, expected_seconds: options.expectedSeconds }, `FFmpeg: ${label}`);

  return new Promise((resolve, reject) => {
    const started = performance.now();
    const limited = limitedCommand(binary, args, FFMPEG_ADDRESS_SPACE);
    let child: ChildProcess | undefined;
    let settled = false;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const stderrLines: string[] = [];

    const kill = () => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    };
    const onAbort = () => {
      kill();
      finish(() => reject(signal?.reason));
    };
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };

    const onLine = (line: string) => {
      const progress = parseProgressLine(line);
      if (progress !== undefined && isProgressLine(line)) {
        options.onProgress?.(progress);
        return;
      }
      stderrLines.push(line);
      if (stderrLines.length > STDERR_LINES) stderrLines.shift();
    };
    child = spawnLines(limited.file, limited.args, onLine, (err) => {
      const stderr = stderrLines.join("\n");
      const durationMs = Math.round(performance.now() - started);
      if (signal?.aborted) return finish(() => reject(signal.reason));
      if (timedOut) {
        const ms = options.timeoutMs;
        const seconds = ms < 10_000 ? Math.round(ms / 100) / 10 : Math.round(ms / 1000);
        return finish(() =>
          reject(
            new JobError(`FFmpeg did not finish within ${seconds} s while ${label}`, {
              code: "FFMPEG_TIMEOUT",
              retryable: true,
              details: { stderr: redactPaths(stderr.slice(-4000)), timeout_ms: options.timeoutMs },
            }),
          ),
        );
      }
      if (err !== null) {
        const notFound = (err as NodeJS.ErrnoException).code === "ENOENT";
        const reason = notFound ? `${path.basename(binary)} not found` : errorLine(stderr);
        return finish(() =>
          reject(
            new JobError(
              `FFmpeg failed while ${label}${reason === undefined ? "" : `: ${redactPaths(reason)}`}`,
              {
                code: "FFMPEG_FAILED",
                cause: err,
                details: { stderr: redactPaths(stderr.slice(-4000)), exit: err.message },
              },
            ),
          ),
        );
      }
      logger?.debug({ duration_ms: durationMs }, `FFmpeg done: ${label}`);
      finish(() => resolve({ durationMs, stderr }));
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    timer = setTimeout(() => {
      timedOut = true;
      logger?.warn({ timeout_ms: options.timeoutMs }, `FFmpeg watchdog fired while ${label}`);
      kill();
    }, options.timeoutMs);
  });
}

/**
 * ffprobe processes at once, across every caller (inputs, cache entries, the output check): each is
 * cheap in CPU but ~20 MB of memory, and 29 at once cost ~500 MB of the 512 MiB budget.
 */
const probeSlots = pLimit(4);

export interface RunFfprobeOptions {
  ffprobePath?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Largest output accepted, in bytes (default 64 MiB; packet listings of long videos need more). */
  maxBuffer?: number;
}

export interface FfprobeFailure {
  ok: false;
  /** ffprobe's own reason, paths removed. */
  reason: string;
}

/**
 * Runs ffprobe with `args` plus `-print_format json` and returns the parsed JSON, or the reason it
 * failed. fluent-ffmpeg's `ffprobe()` parses the flat text format and drops side data (rotation),
 * so ffprobe is spawned directly, still with an argument array.
 */
export function runFfprobeJson(
  args: string[],
  options: RunFfprobeOptions = {},
): Promise<{ ok: true; json: unknown; stderr: string } | FfprobeFailure> {
  return probeSlots(() => spawnFfprobe(args, options));
}

function spawnFfprobe(
  args: string[],
  options: RunFfprobeOptions,
): Promise<{ ok: true; json: unknown; stderr: string } | FfprobeFailure> {
  const binary = options.ffprobePath ?? "ffprobe";
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  const limited = limitedCommand(
    binary,
    ["-v", "error", "-print_format", "json", ...args],
    FFPROBE_ADDRESS_SPACE,
  );
  return new Promise((resolve, reject) => {
    execFile(
      limited.file,
      limited.args,
      {
        maxBuffer: options.maxBuffer ?? 64 * 1024 * 1024,
        timeout: options.timeoutMs ?? PROBE_TIMEOUT_MS,
        killSignal: "SIGKILL",
        signal: options.signal,
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        if (options.signal?.aborted) return reject(options.signal.reason);
        if (err !== null) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") {
            return reject(
              new JobError(`${path.basename(binary)} not found`, { code: "FFMPEG_FAILED", cause: err }),
            );
          }
          if (err.killed) return resolve({ ok: false, reason: "ffprobe did not finish in time" });
          if (/Cannot allocate memory/.test(stderr)) {
            return resolve({ ok: false, reason: "reading it needs more memory than the job allows" });
          }
          const line = stderr.trim().split("\n").at(-1) ?? "";
          // "…/work/x.mp4: Invalid data found when processing input" → the part after the file name.
          const reason = line.includes(": ") ? line.slice(line.lastIndexOf(": ") + 2) : line;
          return resolve({
            ok: false,
            reason: redactPaths(reason || (err.killed ? "ffprobe timed out" : err.message)),
          });
        }
        try {
          resolve({ ok: true, json: JSON.parse(stdout) as unknown, stderr });
        } catch {
          resolve({ ok: false, reason: "ffprobe printed no readable JSON" });
        }
      },
    );
  });
}
