/**
 * The Cloud Storage emulator from firebase-tools, started in this process (see
 * shared notes test-infra.md): its Java rules runtime is stubbed out (only the Firebase-SDK API
 * needs it; the GCS JSON API used by @google-cloud/storage does not). Fails loudly if it cannot
 * start: a storage suite must never skip silently.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const require = createRequire(import.meta.url);

interface StorageEmulatorInstance {
  getPersistenceTmpDir(): string;
  _rulesRuntime: { start: () => Promise<void>; stop: () => Promise<void> };
  _rulesManager: unknown;
}
interface EmulatorModules {
  StorageEmulator: new (args: Record<string, unknown>) => StorageEmulatorInstance;
  EmulatorRegistry: {
    start(emulator: StorageEmulatorInstance): Promise<void>;
    stop(name: string): Promise<void>;
  };
}

export interface GcsEmulator {
  /** `http://127.0.0.1:<port>`: the value for STORAGE_EMULATOR_HOST. */
  host: string;
  /** Milliseconds it took to start. */
  startMs: number;
  stop(): Promise<void>;
}

export const EMULATOR_PROJECT_ID = "demo-test";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function loadModules(): EmulatorModules {
  try {
    const { StorageEmulator } = require("firebase-tools/lib/emulator/storage/index.js") as Pick<
      EmulatorModules,
      "StorageEmulator"
    >;
    const { EmulatorRegistry } = require("firebase-tools/lib/emulator/registry.js") as Pick<
      EmulatorModules,
      "EmulatorRegistry"
    >;
    return { StorageEmulator, EmulatorRegistry };
  } catch (error) {
    throw new Error(
      "Cannot load the GCS emulator from firebase-tools (is the devDependency firebase-tools installed?)",
      { cause: error },
    );
  }
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`GCS emulator did not listen on port ${port} in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts the emulator on a free port on 127.0.0.1. Only one per process (firebase's registry is global). */
export async function startGcsEmulator(): Promise<GcsEmulator> {
  const started = performance.now();
  const { StorageEmulator, EmulatorRegistry } = loadModules();
  const port = await freePort();
  // Blobs go to os.tmpdir()/firebase/storage/blobs by default, shared by every emulator on the machine:
  // one suite stopping its emulator deleted another's files. Each emulator gets its own directory.
  const blobs = mkdtempSync(path.join(os.tmpdir(), "gcs-emulator-"));
  const PrivateStorageEmulator = class extends StorageEmulator {
    override getPersistenceTmpDir(): string {
      return blobs;
    }
  };
  const emulator = new PrivateStorageEmulator({
    projectId: EMULATOR_PROJECT_ID,
    host: "127.0.0.1",
    port,
    rules: { name: "storage.rules", content: "" },
    auto_download: false,
  });
  emulator._rulesRuntime.start = async () => {};
  emulator._rulesRuntime.stop = async () => {};
  emulator._rulesManager = { start: async () => [], stop: async () => {}, getRuleset: () => undefined };
  try {
    await EmulatorRegistry.start(emulator);
    await waitForPort(port, 10_000);
  } catch (error) {
    await EmulatorRegistry.stop("storage").catch(() => {});
    rmSync(blobs, { recursive: true, force: true });
    throw new Error(`The GCS emulator failed to start on 127.0.0.1:${port}`, { cause: error });
  }
  let stopped = false;
  return {
    host: `http://127.0.0.1:${port}`,
    startMs: Math.round(performance.now() - started),
    async stop() {
      if (stopped) return;
      stopped = true;
      await EmulatorRegistry.stop("storage");
      rmSync(blobs, { recursive: true, force: true });
    },
  };
}
