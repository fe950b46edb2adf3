import { randomBytes } from "node:crypto";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { readTaskTableSql } from "../../src/tasks/db.js";
import { createEmbeddedServer, freePort, isRoot, postgresUserIds } from "../../src/tasks/embedded.js";

export interface TestPostgresOptions {
  /** The role's password (default: random). */
  password?: string;
  /** Listen only on a unix socket in this directory (Cloud SQL's shape); `config.host` is then the directory. */
  socketDir?: string;
}

export interface TestPostgres {
  /** A pool for the test's own queries (max 4), connected like the job would be. */
  pool: pg.Pool;
  config: { host: string; port: number; name: string; user: string; password: string };
  dataDir: string;
  /** Stops the server (pool connections then fail with connection errors); `startServer` brings it back on the same port. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** Ends the pool, stops the server, removes the data directory. */
  stop(): Promise<void>;
}

/**
 * A real PostgreSQL in a fresh temp directory with `choreography_tasks` created from
 * sql/choreography_tasks.sql. Tuned for speed, not durability (no fsync). As root the server runs as
 * user `postgres`, so the temp directory gets mode 755 (a mkdtemp directory is 700).
 */
export async function startPostgres(options: TestPostgresOptions = {}): Promise<TestPostgres> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "pg-test-"));
  if (isRoot()) {
    await chmod(dir, 0o755);
    const ids = postgresUserIds();
    if (options.socketDir !== undefined && ids !== undefined)
      await chown(options.socketDir, ids.uid, ids.gid);
  }
  const dataDir = path.join(dir, "data");
  const password = options.password ?? randomBytes(12).toString("hex");
  const port = await freePort();
  const listen =
    options.socketDir !== undefined
      ? ["-k", options.socketDir, "-c", "listen_addresses="]
      : ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="];
  const server = await createEmbeddedServer({
    dataDir,
    port,
    user: "postgres",
    password,
    initdbFlags: ["--no-sync"],
    postgresFlags: [
      ...listen,
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
    ],
  });
  await server.initialise();
  await server.start();

  const config = {
    host: options.socketDir ?? "127.0.0.1",
    port,
    name: "postgres",
    user: "postgres",
    password,
  };
  const pool = new pg.Pool({
    host: config.host,
    port,
    database: config.name,
    user: config.user,
    password,
    max: 4,
    connectionTimeoutMillis: 5000,
  });
  // Connections die when a fault test stops the server; that must not crash the test process.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  await pool.query(await readTaskTableSql());

  let stopped = false;
  return {
    pool,
    config,
    dataDir,
    stopServer: () => server.stop(),
    startServer: () => server.start(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await pool.end().catch(() => {});
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
