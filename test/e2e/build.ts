import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** End-to-end tests run the built CLI (`node dist/main.js`), as the container does: build it once. */
export async function buildCli(): Promise<void> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  try {
    await promisify(execFile)(
      process.execPath,
      [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
      { cwd: root, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    // tsc reports type errors on stdout.
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`build failed:\n${stdout ?? ""}${stderr ?? ""}`, { cause: err });
  }
}
