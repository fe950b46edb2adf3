import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** End-to-end tests run the built CLI (`node dist/main.js`), as the container does: build it once. */
export function buildCli(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  execFileSync(
    process.execPath,
    [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
}
