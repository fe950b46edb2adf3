import { defineConfig } from "vitest/config";

/** `npm run test:load`: the slow scale runs (500-move blueprints), kept out of `npm test`. */
export default defineConfig({
  test: {
    include: ["test/**/*.load.ts"],
    globalSetup: ["test/global-setup.ts"],
    pool: "forks",
    maxWorkers: 1,
    testTimeout: 1_800_000,
    hookTimeout: 120_000,
  },
});
