import { randomBytes } from "node:crypto";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { inject } from "vitest";
import { readTaskTableSql } from "../../src/tasks/db.js";
import { createEmbeddedServer, freePort, isRoot, postgresUserIds } from "../../src/tasks/embedded.js";

export interface TestPostgresOptions {
  /** The role's password (default: random). */
  password?: string;
  /** Listen only on a unix socket in this directory (Cloud SQL's shape); `config.host` is then the directory. */
  socketDir?: string;
  /**
   * A server of the caller's own (initdb + start, seconds): for tests that stop and start it or end other
   * sessions. Implied by `socketDir`, and the only kind when no shared server was provided.
   */
  privateServer?: boolean;
}

export interface TestPostgres {
  /** A pool for the test's own queries (max 4), connected like the job would be. */
  pool: pg.Pool;
  config: { host: string; port: number; name: string; user: string; password: string };
  /** Stops the server (pool connections then fail with connection errors); `startServer` brings it back on the same port. Private servers only. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** Ends the pool; drops the database and role (shared server) or stops the server and removes its directory. */
  stop(): Promise<void>;
}

/** What test/global-setup.ts provides: one running server with a template database holding the task table. */
export interface SharedPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  template: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    sharedPostgres: SharedPostgres | undefined;
  }
}

export const TEMPLATE_DATABASE = "choreography_template";

const SPEED_FLAGS = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"];

function newPool(config: TestPostgres["config"]): pg.Pool {
  const pool = new pg.Pool({
    host: config.host,
    port: config.port,
    database: config.name,
    user: config.user,
    password: config.password,
    max: 4,
    connectionTimeoutMillis: 5000,
  });
  // Connections die when a fault test stops the server; that must not crash the test process.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/**
 * A PostgreSQL database with `choreography_tasks` (sql/choreography_tasks.sql) for one test file. By
 * default a fresh database cloned from the shared server's template (milliseconds), owned by a fresh
 * superuser role with the given password; see `privateServer` for when a test needs a server of its own.
 */
export async function startPostgres(options: TestPostgresOptions = {}): Promise<TestPostgres> {
  const shared = inject("sharedPostgres");
  if (shared === undefined || options.privateServer === true || options.socketDir !== undefined)
    return startPrivatePostgres(options);
  return cloneDatabase(shared, options.password ?? randomBytes(12).toString("hex"));
}

function adminClient(shared: SharedPostgres, database = "postgres"): pg.Client {
  return new pg.Client({
    host: shared.host,
    port: shared.port,
    user: shared.user,
    password: shared.password,
    database,
  });
}

async function cloneDatabase(shared: SharedPostgres, password: string): Promise<TestPostgres> {
  const name = `t_${randomBytes(6).toString("hex")}`;
  const admin = adminClient(shared);
  await admin.connect();
  try {
    // Identifiers are generated hex; the password is a literal (CREATE ROLE takes no parameters).
    const literal = `'${password.replaceAll("'", "''")}'`;
    await admin.query(`create role ${name} superuser login password ${literal}`);
    await admin.query(`create database ${name} template ${shared.template} owner ${name}`);
  } finally {
    await admin.end();
  }
  const config = { host: shared.host, port: shared.port, name, user: name, password };
  const pool = newPool(config);
  const refuse = () => Promise.reject(new Error("startPostgres({ privateServer: true }) to stop the server"));
  let stopped = false;
  return {
    pool,
    config,
    stopServer: refuse,
    startServer: refuse,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pool.end().catch(() => {});
      const drop = adminClient(shared);
      await drop.connect();
      try {
        // With any database the test created itself (the role owns those too).
        const { rows } = await drop.query<{ datname: string }>(
          "select datname from pg_database where datdba = (select oid from pg_roles where rolname = $1)",
          [name],
        );
        for (const { datname } of rows) await drop.query(`drop database "${datname}" with (force)`);
        await drop.query(`drop role if exists ${name}`);
      } finally {
        await drop.end();
      }
    },
  };
}

/**
 * A real PostgreSQL in a fresh temp directory. Tuned for speed, not durability (no fsync). As root the
 * server runs as user `postgres`, so the temp directory gets mode 755 (a mkdtemp directory is 700).
 */
async function startPrivatePostgres(options: TestPostgresOptions): Promise<TestPostgres> {
  const server = await startServer({
    password: options.password ?? randomBytes(12).toString("hex"),
    ...(options.socketDir === undefined ? {} : { socketDir: options.socketDir }),
  });
  const config = {
    host: options.socketDir ?? "127.0.0.1",
    port: server.port,
    name: "postgres",
    user: "postgres",
    password: server.password,
  };
  const pool = newPool(config);
  await pool.query(await readTaskTableSql());

  let stopped = false;
  return {
    pool,
    config,
    stopServer: () => server.server.stop(),
    startServer: () => server.server.start(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await pool.end().catch(() => {});
      await server.stop();
    },
  };
}

export interface StartedServer {
  server: Awaited<ReturnType<typeof createEmbeddedServer>>;
  port: number;
  password: string;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/** initdb + start of an embedded server with superuser `postgres` in a fresh temp directory. */
export async function startServer(options: { password: string; socketDir?: string }): Promise<StartedServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "pg-test-"));
  if (isRoot()) {
    await chmod(dir, 0o755);
    const ids = postgresUserIds();
    if (options.socketDir !== undefined && ids !== undefined)
      await chown(options.socketDir, ids.uid, ids.gid);
  }
  const port = await freePort();
  const listen =
    options.socketDir !== undefined
      ? ["-k", options.socketDir, "-c", "listen_addresses="]
      : ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="];
  const server = await createEmbeddedServer({
    dataDir: path.join(dir, "data"),
    port,
    user: "postgres",
    password: options.password,
    initdbFlags: ["--no-sync"],
    postgresFlags: [...listen, ...SPEED_FLAGS],
  });
  await server.initialise();
  await server.start();
  return {
    server,
    port,
    password: options.password,
    async stop() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * For vitest's globalSetup: one server for all test files, with a template database holding the task
 * table. Each `startPostgres()` then costs a CREATE DATABASE … TEMPLATE instead of an initdb.
 */
export async function startSharedPostgres(): Promise<{ shared: SharedPostgres; stop(): Promise<void> }> {
  const started = await startServer({ password: randomBytes(12).toString("hex") });
  const shared: SharedPostgres = {
    host: "127.0.0.1",
    port: started.port,
    user: "postgres",
    password: started.password,
    template: TEMPLATE_DATABASE,
  };
  const admin = adminClient(shared);
  await admin.connect();
  try {
    await admin.query(`create database ${TEMPLATE_DATABASE} is_template true`);
  } finally {
    await admin.end();
  }
  const template = adminClient(shared, TEMPLATE_DATABASE);
  await template.connect();
  try {
    await template.query(await readTaskTableSql());
  } finally {
    await template.end();
  }
  return { shared, stop: () => started.stop() };
}

/** A `choreography_tasks` row as the tests read it (`select *`). */
export type TaskTableRow = Record<string, unknown> & {
  status: string;
  stage: string | null;
  error: string | null;
  progress: number;
  result: Record<string, unknown> | null;
};

/** Inserts the pending row the API creates before it starts an execution. */
export async function insertPendingTask(pool: pg.Pool, taskId: string, userId: number): Promise<void> {
  await pool.query("insert into choreography_tasks (task_id, user_id, status) values ($1, $2, 'pending')", [
    taskId,
    userId,
  ]);
}

/** Empties the task table, then inserts one pending row: each test starts from a fresh task. */
export async function resetTasks(pool: pg.Pool, taskId: string, userId: number): Promise<void> {
  await pool.query("delete from choreography_tasks");
  await insertPendingTask(pool, taskId, userId);
}

/** The row of `taskId`, or undefined. */
export async function taskRow(pool: pg.Pool, taskId: string): Promise<TaskTableRow | undefined> {
  const { rows } = await pool.query("select * from choreography_tasks where task_id = $1", [taskId]);
  return rows[0] as TaskTableRow | undefined;
}
