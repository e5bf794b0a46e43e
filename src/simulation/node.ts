// A simulated node: its components serve the certificates on disk over real TLS
// on the node's loopback address and real ports (e.g. 127.0.1.11:6443) — which
// file on which port from a table of its own (served-files.ts), never from the
// catalog it is meant to check — answer the catalog's health probes, and on a
// restart behave like the distribution, driven by the catalog data:
//   - marker files (force-restart) are consumed at start;
//   - a trigger file makes the certificate it belongs to be regenerated;
//   - removed self-signed cert-dir certificates are regenerated;
//   - files the distribution rewrites on every start are re-issued by the
//     supervisor (the server tree's CA) or copied from the server's own pair.
// A control endpoint (POST /stop, /start, /restart, /restart-containers) is what
// SimulationExecutor calls. Faults can be injected for tests.
import { promises as fs } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { allFiles, catalogFor, fillPath } from '../distributions/index.js';
import { readCertificateFile } from '../pki/certfile.js';
import {
  distributionSignedCertDirPair,
  dynamicListenerJson,
  materialise,
  readCa,
  selfSignedCertDirPair,
  templateVars,
  writeEmbeddedCopies,
  writeHostFile,
  type FixtureNode,
} from './fixtures.js';
import { createCa, fillTemplate, issueLeaf } from './issue.js';
import { SERVED_FILES, type ServedFile } from './served-files.js';

export interface SimulationFaults {
  // The next N start/restart requests fail (and change nothing).
  failRestarts: number;
  // Components come back but keep serving the certificates they had before.
  serveStale: boolean;
  // Files the distribution would regenerate at start are not regenerated.
  skipRegeneration: boolean;
  // The admin kubeconfig is not rewritten at start (rke2 told to write it elsewhere).
  skipKubeconfigRewrite: boolean;
}

interface Listener {
  readonly port: number;
  readonly server: HttpsServer | HttpServer;
  readonly file?: { cert: string; key?: string; format: ServedFile['format'] };
}

export class SimulatedNode {
  readonly faults: SimulationFaults = { failRestarts: 0, serveStale: false, skipRegeneration: false, skipKubeconfigRewrite: false };
  readonly events: string[] = [];
  private readonly catalog;
  private readonly vars: Record<string, string>;
  private listeners: Listener[] = [];
  private control?: HttpServer;
  private running = false;
  private readonly sockets = new Set<Socket>();

  // Where the components listen: the node's IP unless told otherwise (tests give
  // each run its own loopback address while the files keep the fixture's identity).
  readonly address: string;
  private readonly controlPort: number;

  constructor(
    readonly node: FixtureNode,
    opts: { address?: string; controlPort?: number } = {},
  ) {
    this.catalog = catalogFor(node.distribution);
    this.vars = templateVars(node);
    this.address = opts.address ?? node.nodeIP;
    this.controlPort = opts.controlPort ?? 19_000;
  }

  get controlUrl(): string {
    return `http://${this.address}:${(this.control?.address() as AddressInfo | null)?.port ?? this.controlPort}`;
  }

  private has(roles: readonly string[]): boolean {
    return roles.some((r) => (this.node.roles as readonly string[]).includes(r));
  }

  // Which file is served on a port: from the simulator's own table of the
  // distributions' flags (served-files.ts), not the catalog's servedOn, the file
  // present on this node (for RKE's per-host names, the one for this node's IP).
  private async servingFile(port: number): Promise<Listener['file']> {
    const vars = { ...this.vars, host: this.vars.nodeIPDashes! };
    for (const f of SERVED_FILES[this.node.distribution]) {
      if (f.port !== port || !this.has(f.roles)) continue;
      const cert = fillPath(f.cert, vars);
      try {
        await fs.access(join(this.node.root, cert));
        return { cert, ...(f.key ? { key: fillPath(f.key, vars) } : {}), format: f.format };
      } catch {
        continue;
      }
    }
    return undefined;
  }

  private async tlsMaterial(file: NonNullable<Listener['file']>): Promise<{ cert: string; key: string }> {
    const text = await fs.readFile(join(this.node.root, file.cert), 'utf8');
    if (file.format === 'dynamiclistener-json') {
      const parsed = readCertificateFile(text, file.cert, 'dynamiclistener-json');
      const secret = JSON.parse(text) as { data: Record<string, string> };
      void parsed;
      return { cert: Buffer.from(secret.data['tls.crt']!, 'base64').toString(), key: Buffer.from(secret.data['tls.key']!, 'base64').toString() };
    }
    return { cert: text, key: await fs.readFile(join(this.node.root, file.key!), 'utf8') };
  }

  async start(): Promise<void> {
    try {
      await this.listenAll();
    } catch (e) {
      // A port already taken (a real apiserver on 0.0.0.0:6443, say): close what opened.
      await this.stop();
      throw e;
    }
  }

  // Every port a component of this node listens on.
  private ports(): number[] {
    const ports = new Set<number>();
    for (const f of SERVED_FILES[this.node.distribution]) if (this.has(f.roles)) ports.add(f.port);
    for (const p of this.catalog.probes) if (this.has(p.roles)) ports.add(p.port);
    return [...ports].sort((a, b) => a - b);
  }

  private async listenAll(): Promise<void> {
    for (const port of this.ports()) await this.openPort(port);
    this.control = createHttpServer((req, res) => void this.onControl(req, res));
    await listen(this.control, this.controlPort, this.address).catch((e: unknown) => {
      this.control = undefined;
      throw e;
    });
    this.running = true;
  }

  // Opens the port if its component can serve: with its certificate on disk, over
  // plain HTTP, or with one it makes in memory. An https component whose
  // certificate is not there does not listen (until a start makes the file).
  private async openPort(port: number): Promise<void> {
    const file = await this.servingFile(port);
    const probe = this.catalog.probes.find((p) => p.port === port && this.has(p.roles));
    const probeScheme = probe?.scheme;
    const handler = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
      res.writeHead(this.running ? 200 : 503).end(this.running ? 'ok' : 'stopped');
    };
    let server: HttpsServer | HttpServer;
    if (file) server = createHttpsServer(await this.tlsMaterial(file), handler);
    else if (probeScheme === 'http') server = createHttpServer(handler);
    // A component that makes its own serving certificate in memory (RKE's
    // kube-controller-manager and kube-scheduler: no CA to check it against).
    else if (probeScheme === 'https' && !probe?.ca) {
      const self = await createCa(probe!.component, { name: 'ECDSA', namedCurve: 'P-256' }, 'sec1');
      server = createHttpsServer({ cert: self.certPem, key: self.keyPem }, handler);
    } else return; // an https probe whose certificate is not on this node (e.g. no cert-dir certs)
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      // A stopped component does not answer at all.
      if (!this.running) s.destroy();
    });
    this.listeners.push({ port, server, ...(file ? { file } : {}) });
    await listen(server, port, this.address);
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const s of this.sockets) s.destroy();
    await Promise.all([...this.listeners.map((l) => close(l.server)), ...(this.control ? [close(this.control)] : [])]);
    this.listeners = [];
  }

  private async onControl(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const action = req.url?.replace(/^\//, '') ?? '';
    this.events.push(action);
    try {
      if (action === 'stop') {
        this.running = false;
        for (const s of this.sockets) s.destroy();
        res.writeHead(200).end();
        return;
      }
      if (this.faults.failRestarts > 0) {
        this.faults.failRestarts--;
        this.running = false;
        res.writeHead(500).end(`Job for ${action} failed because the control process exited with error code (simulated)`);
        return;
      }
      if (action === 'start' || action === 'restart') {
        await this.bootDistribution();
        res.writeHead(200).end();
        return;
      }
      if (action === 'restart-containers') {
        const { containers } = JSON.parse(body) as { containers: string[] };
        const present = new Set([
          ...allFiles(this.catalog).filter((s) => this.has(s.roles)).flatMap((s) => s.consumers),
          ...this.catalog.probes.filter((p) => this.has(p.roles)).map((p) => p.component),
        ]);
        const restarted = containers.filter((c) => present.has(c));
        await this.bootDistribution();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(restarted));
        return;
      }
      res.writeHead(404).end(`unknown action ${action}`);
    } catch (e) {
      res.writeHead(500).end((e as Error).message);
    }
  }

  // What the distribution does when its service starts.
  private async bootDistribution(): Promise<void> {
    const root = this.node.root;
    const exists = (rel: string) => fs.access(join(root, rel)).then(() => true, () => false);
    for (const rule of this.catalog.restart) {
      if (rule.plan.kind === 'systemd-stop-start' && this.has(rule.whenRoleIn)) {
        for (const m of rule.plan.markerFiles) await fs.rm(join(root, fillPath(m, this.vars)), { force: true });
      }
    }
    if (!this.faults.skipRegeneration) {
      const supervisor = this.node.supervisorRoot ?? root;
      for (const spec of allFiles(this.catalog)) {
        if (!this.has(spec.roles)) continue;
        const r = spec.renewal;
        const cert = spec.cert && fillPath(spec.cert, this.vars);
        const key = spec.key && fillPath(spec.key, this.vars);
        if (r.kind === 'trigger' && (await exists(fillPath(r.trigger, this.vars)))) {
          await fs.rm(join(root, fillPath(r.trigger, this.vars)));
          const ca = await readCa(root, { cert: fillPath(r.ca.cert, this.vars), key: fillPath(r.ca.key, this.vars) });
          const m = await issueLeaf({ template: fillTemplate(spec.template!, this.vars), ca, validity: spec.validity, algorithm: spec.keyAlgorithm, encoding: spec.keyEncoding, chained: spec.chained });
          await writeHostFile(root, cert!, dynamicListenerJson(m.certPem, m.keyPem), 0o600);
        } else if (r.kind === 'remove-to-regenerate' && spec.optional && cert && !(await exists(cert)) && key) {
          // The component (self-signed) or, since k3s PR #12285, k3s (server-ca) makes a new pair.
          const vars = { ...this.vars, unix: String(Math.floor(Date.now() / 1000)) };
          const m =
            this.node.certDirSignedBy === 'distribution'
              ? await distributionSignedCertDirPair(spec, vars, (files) => readCa(root, { cert: fillPath(files.cert, this.vars), key: fillPath(files.key, this.vars) }))
              : await selfSignedCertDirPair(spec, vars);
          await writeHostFile(root, key, m.keyPem, 0o600);
          await writeHostFile(root, cert, m.certPem, 0o644);
        } else if (r.kind === 'reissued-on-start' && spec.rewrittenOnEveryStart) {
          await materialise(this.catalog, root, spec, this.vars, () => Promise.reject(new Error('unused')), supervisor, 0o600);
        }
      }
      // rke2-server rewrites its admin kubeconfig at the end of every start.
      if (!this.faults.skipKubeconfigRewrite) await writeEmbeddedCopies(this.catalog, root, this.vars, this.node.roles);
    }
    // A component that had no certificate to serve (rke2's supervisor without
    // dynamic-cert.json) listens once the start made one.
    const open = new Set(this.listeners.map((l) => l.port));
    for (const port of this.ports()) if (!open.has(port)) await this.openPort(port);
    if (!this.faults.serveStale) {
      for (const l of this.listeners) {
        if (!l.file) continue;
        const file = (await this.servingFile(l.port)) ?? l.file;
        (l.server as HttpsServer).setSecureContext(await this.tlsMaterial(file));
      }
    }
    this.running = true;
  }
}

function listen(server: HttpServer | HttpsServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: HttpServer | HttpsServer): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}
