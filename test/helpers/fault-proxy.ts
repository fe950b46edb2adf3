/**
 * A small HTTP proxy on 127.0.0.1 in front of the GCS emulator that injects scripted faults:
 * answer with a status N times, reset the connection after some body bytes, or delay. Every
 * request is recorded. Bounded: each fault has a finite count, delays are capped, and the proxy
 * closes itself after `lifetimeMs` so a forgotten one never keeps the test process alive.
 */
import http from "node:http";
import type { Socket } from "node:net";

export interface FaultMatch {
  method?: string;
  /** Matched against the request's path and query. */
  path?: string | RegExp;
}

export type Fault = { times: number; match?: FaultMatch } & (
  | { kind: "status"; status: number }
  | { kind: "reset"; afterBytes: number }
  /** Flips one bit of the body's first byte (same length): only a checksum can tell. */
  | { kind: "corrupt" }
  /** Flips one bit of the request body's byte `fromEnd` bytes before its end (an upload's content). */
  | { kind: "corrupt-request"; fromEnd: number }
  | { kind: "delay"; ms: number }
);

export interface RequestRecord {
  method: string;
  url: string;
  /** The status sent, or "reset" when the connection was cut. */
  outcome: number | "reset";
  fault?: Fault["kind"];
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: the value for STORAGE_EMULATOR_HOST. */
  host: string;
  readonly requests: RequestRecord[];
  /** Adds faults; each applies to the next `times` matching requests. */
  inject(...faults: Fault[]): void;
  /** Drops remaining faults and the request log. */
  reset(): void;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Upstream base URL, e.g. the emulator's host. */
  target: string;
  /** Closes itself after this long (default 5 minutes). */
  lifetimeMs?: number;
}

const MAX_DELAY_MS = 30_000;
const MAX_TIMES = 1_000;

function matches(fault: Fault, req: http.IncomingMessage): boolean {
  const { method, path } = fault.match ?? {};
  if (method !== undefined && req.method !== method.toUpperCase()) return false;
  const url = req.url ?? "";
  if (typeof path === "string" && !url.includes(path)) return false;
  if (path instanceof RegExp && !path.test(url)) return false;
  return true;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const faults: Fault[] = [];
  const requests: RequestRecord[] = [];
  const sockets = new Set<Socket>();
  let port = 0;

  const takeFault = (req: http.IncomingMessage): Fault | undefined => {
    const fault = faults.find((candidate) => candidate.times > 0 && matches(candidate, req));
    if (fault !== undefined) fault.times -= 1;
    return fault;
  };

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: RequestRecord,
    resetAfter?: number,
    corrupt = false,
    corruptRequestFromEnd?: number,
  ) => {
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        record.outcome = answer.statusCode ?? 502;
        // The emulator answers with its own address (resumable upload session URLs): keep the
        // client talking to the proxy.
        const headers = { ...answer.headers };
        if (typeof headers.location === "string") {
          headers.location = headers.location.replace(target.host, `127.0.0.1:${port}`);
        }
        res.writeHead(answer.statusCode ?? 502, headers);
        if (corrupt) {
          let first = true;
          answer.on("data", (chunk: Buffer) => {
            if (first && chunk.length > 0) {
              chunk[0] = chunk[0]! ^ 0x01;
              first = false;
            }
            res.write(chunk);
          });
          answer.on("end", () => res.end());
          return;
        }
        if (resetAfter === undefined) {
          answer.pipe(res);
          return;
        }
        let sent = 0;
        answer.on("data", (chunk: Buffer) => {
          if (sent >= resetAfter) return;
          const part = chunk.subarray(0, resetAfter - sent);
          sent += part.length;
          res.write(part);
          if (sent >= resetAfter) {
            record.outcome = "reset";
            answer.destroy();
            // Let the bytes already written leave, then cut the connection with a TCP RST.
            setTimeout(() => req.socket.resetAndDestroy(), 20);
          }
        });
        answer.on("end", () => res.end());
      },
    );
    upstream.on("error", () => {
      record.outcome = 502;
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    if (corruptRequestFromEnd === undefined) {
      req.pipe(upstream);
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const at = body.length - corruptRequestFromEnd;
      if (at >= 0 && at < body.length) body[at] = body[at]! ^ 0x01;
      upstream.end(body);
    });
  };

  const server = http.createServer((req, res) => {
    const record: RequestRecord = { method: req.method ?? "", url: req.url ?? "", outcome: 0 };
    requests.push(record);
    const fault = takeFault(req);
    if (fault !== undefined) record.fault = fault.kind;
    switch (fault?.kind) {
      case "status": {
        req.resume();
        record.outcome = fault.status;
        const body = JSON.stringify({ error: { code: fault.status, message: "Injected fault" } });
        res.writeHead(fault.status, { "content-type": "application/json" }).end(body);
        return;
      }
      case "reset":
        forward(req, res, record, fault.afterBytes);
        return;
      case "corrupt":
        forward(req, res, record, undefined, true);
        return;
      case "corrupt-request":
        forward(req, res, record, undefined, false, fault.fromEnd);
        return;
      case "delay":
        setTimeout(() => forward(req, res, record), Math.min(fault.ms, MAX_DELAY_MS));
        return;
      default:
        forward(req, res, record);
    }
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("fault proxy: no port");
  port = address.port;

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= new Promise<void>((resolve) => {
      clearTimeout(lifetime);
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
    return stopped;
  };
  const lifetime = setTimeout(() => void stop(), options.lifetimeMs ?? 300_000);
  lifetime.unref();

  return {
    host: `http://127.0.0.1:${address.port}`,
    requests,
    inject(...added: Fault[]) {
      for (const fault of added) {
        if (!Number.isInteger(fault.times) || fault.times < 1 || fault.times > MAX_TIMES) {
          throw new RangeError(`fault.times must be an integer from 1 to ${MAX_TIMES}`);
        }
        faults.push({ ...fault });
      }
    },
    reset() {
      faults.length = 0;
      requests.length = 0;
    },
    stop,
  };
}
