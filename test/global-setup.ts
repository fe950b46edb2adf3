import type { TestProject } from "vitest/node";
import { buildCli } from "./e2e/build.js";
import { startSharedPostgres } from "./helpers/postgres.js";

/**
 * Before any test file starts: build the CLI once (end-to-end tests run `node dist/main.js`, as the
 * container does), and start one PostgreSQL whose template database each test file clones
 * (test/helpers/postgres.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Concurrently: the build is tsc, the server an initdb, both child processes.
  const [build, started] = await Promise.allSettled([buildCli(), startSharedPostgres()]);
  if (build.status === "rejected") {
    if (started.status === "fulfilled") await started.value.stop();
    throw build.reason;
  }
  if (started.status === "rejected") throw started.reason;
  const postgres = started.value;
  project.provide("sharedPostgres", postgres.shared);
  return () => postgres.stop();
}
