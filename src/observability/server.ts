// The probe and metrics endpoint, on plain node:http (no framework needed for
// three GET routes). The kubelet's probes call it:
// - /healthz (liveness): the process is alive and its event loop is not
//   wedged. A fully blocked loop cannot answer at all, so the probe times
//   out; a loop that keeps stalling for long stretches (sync crypto in a
//   hot path, a runaway loop that yields rarely) is caught by the heartbeat.
//   Failing liveness restarts the pod: only for conditions a restart fixes.
// - /readyz (readiness): informers have synced (a controller acting on a
//   partial cache would make wrong decisions) and whatever the caller adds.
// - /metrics: the prom-client registry.
// Output format follows kube-apiserver's `[+]check ok` / `[-]check failed`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

/** A named check: true/undefined = ok; false or a string (the reason) = failing. */
export interface Check {
  name: string;
  check: () => boolean | string | undefined;
}

/** Something with hasSynced(), like our Informer. */
export interface Syncable {
  name: string;
  hasSynced(): boolean;
}

export interface ObservabilityServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** Default 0.0.0.0 in a pod; tests pass 127.0.0.1. */
  host?: string;
  registry?: Registry;
  /** Informers that must have synced before /readyz is ok. */
  informers?: Syncable[];
  /** More readiness checks (e.g. "leading or standby and connected"). */
  readiness?: Check[];
  /** More liveness checks. */
  liveness?: Check[];
  /** Event loop stalled for longer than this (recently) → /healthz fails. Default 10 s. */
  maxEventLoopStallMs?: number;
  /** How far back a stall counts. Default 60 s. */
  stallWindowMs?: number;
}

export interface ObservabilityServer {
  port: number;
  server: Server;
  /** Longest event-loop stall seen in the window (ms). */
  recentStallMs(): number;
  close(): Promise<void>;
}

const HEARTBEAT_MS = 250;

export async function startObservabilityServer(opts: ObservabilityServerOptions): Promise<ObservabilityServer> {
  const maxStall = opts.maxEventLoopStallMs ?? 10_000;
  const window = opts.stallWindowMs ?? 60_000;
  // Heartbeat: a timer that should fire every HEARTBEAT_MS; any extra delay is time the loop was blocked.
  const stalls: { at: number; ms: number }[] = [];
  let last = performance.now();
  const heartbeat = setInterval(() => {
    const now = performance.now();
    const stall = now - last - HEARTBEAT_MS;
    last = now;
    if (stall > 50) stalls.push({ at: now, ms: stall });
    while (stalls.length > 0 && now - stalls[0]!.at > window) stalls.shift();
  }, HEARTBEAT_MS);
  heartbeat.unref();
  const recentStallMs = (): number => {
    const now = performance.now();
    // A stall in progress (heartbeat overdue) counts too.
    const current = Math.max(0, now - last - HEARTBEAT_MS);
    return Math.max(current, ...stalls.filter((s) => now - s.at <= window).map((s) => s.ms));
  };

  const liveness: Check[] = [
    { name: 'ping', check: () => true },
    {
      name: 'eventloop',
      check: () => {
        const stall = recentStallMs();
        return stall <= maxStall || `event loop stalled for ${Math.round(stall)} ms (limit ${maxStall} ms)`;
      },
    },
    ...(opts.liveness ?? []),
  ];
  const readiness: Check[] = [
    ...(opts.informers ?? []).map((i) => ({ name: `informer-sync:${i.name}`, check: () => i.hasSynced() || 'not synced' })),
    ...(opts.readiness ?? []),
  ];

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end('internal error\n');
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    switch (url.pathname) {
      case '/healthz':
      case '/livez':
        return respondChecks(res, 'healthz', liveness, url.searchParams.has('verbose'));
      case '/readyz':
        return respondChecks(res, 'readyz', readiness, url.searchParams.has('verbose'));
      case '/metrics': {
        if (!opts.registry) {
          res.writeHead(404).end('no metrics registry\n');
          return;
        }
        const body = await opts.registry.metrics();
        res.writeHead(200, { 'Content-Type': opts.registry.contentType }).end(body);
        return;
      }
      default:
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : opts.port;
  return {
    port,
    server,
    recentStallMs,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(heartbeat);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function respondChecks(res: ServerResponse, what: string, checks: Check[], verbose: boolean): void {
  const lines: string[] = [];
  let ok = true;
  for (const c of checks) {
    let result: boolean | string | undefined;
    try {
      result = c.check();
    } catch (err) {
      result = err instanceof Error ? err.message : String(err);
    }
    if (result === true || result === undefined) {
      lines.push(`[+]${c.name} ok`);
    } else {
      ok = false;
      lines.push(`[-]${c.name} failed: ${result === false ? 'check failed' : result}`);
    }
  }
  res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  // Like kube-apiserver: terse "ok" on success unless ?verbose, details on failure.
  if (ok && !verbose) res.end('ok\n');
  else res.end(`${lines.join('\n')}\n${what} check ${ok ? 'passed' : 'failed'}\n`);
}
