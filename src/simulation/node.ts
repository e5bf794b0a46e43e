// A simulated node: its components serve the certificates on disk over real TLS
// on the node's loopback address and real ports (e.g. 127.B.1.11:6443), answer
// health checks, and on a restart behave like the distribution:
//   - marker files (force-restart) are consumed at start;
//   - a trigger file makes the certificate it belongs to be regenerated;
//   - removed cert-dir certificates are regenerated;
//   - files the distribution rewrites on every start are re-issued by the
//     supervisor (the server tree's CA) or copied from the server's own pair.
// Which file on which port, which health endpoints, and what a start does all
// come from tables of its own (served-files.ts, restart-behaviour.ts), written
// from upstream sources, never from the catalog it is meant to check.
// A control endpoint (POST /stop, /start, /restart, /restart-containers) is what
// SimulationExecutor calls. Faults can be injected for tests.
import { promises as fs } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { fillPath } from '../distributions/index.js';
import { readCertificateFile } from '../pki/certfile.js';
import type { SubjectTemplate } from '../distributions/types.js';
import { dynamicListenerJson, readCa, templateVars, writeHostFile, writeKubeconfig, type FixtureNode } from './fixtures.js';
import { caFromMaterial, createCa, fillTemplate, issueLeaf } from './issue.js';
import { START_BEHAVIOUR, type StartStep, type Subject } from './restart-behaviour.js';
import { HEALTH_ENDPOINTS, SERVED_FILES, type ServedFile } from './served-files.js';

// What every certificate a start makes is (k3s, dynamiclistener NewSignedCert):
// ECDSA P-256, SEC1 key, 365 days from an hour back (CalculateNotBefore), the
// CA's certificate after the leaf.
const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const MADE_AT_START = { validity: { days: 365, notBefore: 'one-hour-back-clamped-to-ca' }, algorithm: P256, encoding: 'sec1', chained: true } as const;

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
    for (const h of HEALTH_ENDPOINTS[this.node.distribution]) if (this.has(h.roles)) ports.add(h.port);
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
    const health = HEALTH_ENDPOINTS[this.node.distribution].find((h) => h.port === port && this.has(h.roles));
    const handler = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
      res.writeHead(this.running ? 200 : 503).end(this.running ? 'ok' : 'stopped');
    };
    let server: HttpsServer | HttpServer;
    if (file) server = createHttpsServer(await this.tlsMaterial(file), handler);
    else if (health?.tls === 'none') server = createHttpServer(handler);
    // A component that makes its own serving certificate in memory (RKE's
    // kube-controller-manager and kube-scheduler: no CA to check it against).
    else if (health?.tls === 'in-memory') {
      const self = await createCa(health.component, P256, 'sec1');
      server = createHttpsServer({ cert: self.certPem, key: self.keyPem }, handler);
    } else return; // an https component whose certificate is not on this node (e.g. no cert-dir certs)
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
        const present = new Set(
          START_BEHAVIOUR[this.node.distribution].flatMap((b) => b.containers ?? []).filter((c) => this.has(c.roles)).map((c) => c.name),
        );
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

  // What the distribution does when its service starts (restart-behaviour.ts).
  private async bootDistribution(): Promise<void> {
    const steps = START_BEHAVIOUR[this.node.distribution].filter((b) => this.has(b.roles)).flatMap((b) => b.steps);
    for (const step of steps) {
      if (step.kind === 'consume-marker') await fs.rm(join(this.node.root, this.path(step.path)), { force: true });
    }
    if (!this.faults.skipRegeneration) for (const step of steps) await this.startStep(step);
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

  private path(p: string): string {
    return fillPath(p, this.vars);
  }

  private async exists(rel: string): Promise<boolean> {
    return fs.access(join(this.node.root, rel)).then(() => true, () => false);
  }

  private async startStep(step: StartStep): Promise<void> {
    const root = this.node.root;
    const supervisor = this.node.supervisorRoot ?? root;
    const pairAt = (p: { cert: string; key: string }) => ({ cert: this.path(p.cert), key: this.path(p.key) });
    const leaf = (subject: Subject, ca: Awaited<ReturnType<typeof readCa>>, vars = this.vars) =>
      issueLeaf({ template: fillTemplate(subject as SubjectTemplate, vars), ca, ...MADE_AT_START });
    switch (step.kind) {
      case 'consume-marker':
        return;
      case 'regenerate-on-trigger': {
        if (!(await this.exists(this.path(step.trigger)))) return;
        await fs.rm(join(root, this.path(step.trigger)));
        const m = await leaf(step.subject, await readCa(root, pairAt(step.ca)));
        await writeHostFile(root, this.path(step.file), dynamicListenerJson(m.certPem, m.keyPem), 0o600);
        return;
      }
      case 'regenerate-when-missing': {
        const at = pairAt(step.pair);
        if (await this.exists(at.cert)) return;
        const vars: Record<string, string> = { ...this.vars, unix: String(Math.floor(Date.now() / 1000)) };
        const m =
          this.node.certDirSignedBy === 'distribution'
            ? await leaf(step.distributionSigned, await readCa(root, pairAt(step.distributionCa)), vars)
            : await issueLeaf({
                template: fillTemplate(step.selfSigned as SubjectTemplate, vars),
                ca: await caFromMaterial(await createCa(`${vars.nodeIP}-ca@${vars.unix}`, P256, 'sec1')),
                ...MADE_AT_START,
              });
        await writeHostFile(root, at.key, m.keyPem, 0o600);
        await writeHostFile(root, at.cert, m.certPem, 0o644);
        return;
      }
      case 'reissue':
      case 'copy-from-supervisor': {
        const signer = pairAt(step.signer);
        await writeHostFile(root, this.path(step.caCopy), await fs.readFile(join(supervisor, signer.cert)), 0o644);
        const at = pairAt(step.pair);
        if (step.kind === 'copy-from-supervisor') {
          const from = pairAt(step.from);
          await writeHostFile(root, at.cert, await fs.readFile(join(supervisor, from.cert)), 0o600);
          await writeHostFile(root, at.key, await fs.readFile(join(supervisor, from.key)), 0o600);
        } else {
          const m = await leaf(step.subject, await readCa(supervisor, signer));
          await writeHostFile(root, at.cert, m.certPem, 0o600);
          await writeHostFile(root, at.key, m.keyPem, 0o600);
        }
        return;
      }
      case 'write-kubeconfig':
        // rke2 told to write it elsewhere (--write-kubeconfig) leaves this one alone.
        if (!this.faults.skipKubeconfigRewrite) await writeKubeconfig(root, this.path(step.path), pairAt(step.client), this.path(step.serverCa));
        return;
    }
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
