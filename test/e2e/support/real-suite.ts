// The skeleton the real-component suites (RKE2 and RKE) share: one cluster of
// real components with an agent per node and a controller, started before the
// suite and stopped after it with a check that no private key was ever logged;
// a rotation run with writes and etcd's quorum watched throughout; and the
// comparison of what each endpoint serves with what is on disk. What differs
// per distribution (which pair asks etcd and the API servers, which file each
// port serves) is the suite's own hand-written table, not the catalog's.
import { afterAll, beforeAll, expect } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BaseNode, RealCluster } from '../../realnode/real-cluster.js';
import { CONTROLLER_START_MS, ControllerProcess, waitFor } from './controller.js';
import { getTls, leases, leasesRenewedSince, Traffic, type Lease } from './real-checks.js';
import { applyRotation, getJson, intervals, nodeRotations, pemSerial, servedPem, waitRotationCondition } from './rotation.js';
import { unexplainedWriteFailures } from './write-log.js';

export interface RealSuite<N extends BaseNode, C extends RealCluster<N>> {
  cluster(): C;
  readonly timings: Record<string, number>;
  /** The controller's and each agent's last log lines, for a failing wait's message. */
  debug(): string;
  /**
   * A writer and etcd's quorum watch running from before the rotation is applied
   * until its condition holds; then: quorum was never lost, every acknowledged
   * write is readable, and the writes that failed are the ones one restarting
   * server explains (`unexplainedWriteFailures`). `availability: 'own'`
   * leaves the failed writes to the test, which knows its own window.
   * Returns the rotation as the API server has it.
   */
  run(name: string, spec: Record<string, unknown>, o: { condition: 'Ready' | 'Stalled'; timeout: string; traffic: Traffic; availability?: 'own' }): Promise<any>;
}

/** Registers the suite's beforeAll/afterAll: cluster, agents, a leading controller; and their teardown. */
export function realSuite<N extends BaseNode, C extends RealCluster<N>>(
  label: string,
  start: (workDir: string) => Promise<C>,
  // The agents' own credentials (a token of the chart's agent ServiceAccount); the tests' admin when absent.
  agentKubeconfig?: (cluster: C, workDir: string) => Promise<string>,
): RealSuite<N, C> {
  let work: string;
  let cluster: C | undefined;
  let controller: ControllerProcess | undefined;
  let stopping = false;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    const t0 = Date.now();
    work = mkdtempSync(join(tmpdir(), `certrotator-${label}-`));
    cluster = await start(work);
    if (agentKubeconfig) cluster.agentKubeconfig = await agentKubeconfig(cluster, work);
    await cluster.startAgents();
    // As its Deployment would: a controller that exits on its own (it gives up its
    // Lease when a renewal through the load balancer hangs while an API server
    // restarts, and exits 1) is started again, and picks the run up where it is.
    let restarts = 0;
    const startController = (): ControllerProcess => {
      const c = new ControllerProcess(restarts === 0 ? label : `${label}-${restarts}`, { leaseName: `certrotator-${label}`, extraArgs: [`--kubeconfig=${cluster!.kubeconfig}`] });
      c.child.once('exit', () => {
        if (stopping || c !== controller) return;
        restarts++;
        process.stderr.write(`${label}: controller exited on its own; started again (${restarts})\n`);
        controller = startController();
      });
      return c;
    };
    controller = startController();
    await waitFor('controller leading', () => controller!.leading(), CONTROLLER_START_MS, () => controller!.debug());
    timings.setup = (Date.now() - t0) / 1000;
  }, 420_000);

  afterAll(async () => {
    stopping = true;
    await controller?.stop();
    try {
      for (const n of cluster?.nodes ?? []) {
        const log = cluster!.agents.get(n.name)?.log;
        if (log) expect(readFileSync(log, 'utf8')).not.toContain('PRIVATE KEY');
      }
      if (controller) expect(controller.debug()).not.toContain('PRIVATE KEY');
    } finally {
      await cluster?.stop();
      process.stderr.write(`${label} suite timings (s): ${JSON.stringify(timings)}\n`);
      rmSync(work, { recursive: true, force: true });
    }
  }, 180_000);

  const debug = (): string =>
    `${controller?.debug() ?? ''}\n${(cluster?.nodes ?? [])
      .map((n) => `--- ${n.name}\n${readFileSync(cluster!.agents.get(n.name)!.log, 'utf8').split('\n').slice(-6).join('\n')}`)
      .join('\n')}`;

  return {
    cluster: () => cluster!,
    timings,
    debug,
    async run(name, spec, o) {
      const t0 = Date.now();
      o.traffic.start();
      try {
        await applyRotation(name, spec, cluster!.kubeconfig);
        await waitRotationCondition(name, o.condition, { timeout: o.timeout, debug, kubeconfig: cluster!.kubeconfig });
      } finally {
        await o.traffic.stop();
      }
      timings[name] = (Date.now() - t0) / 1000;
      process.stderr.write(`${name}: ${timings[name]} s; ${o.traffic.summary()}\n`);
      expect(o.traffic.quorumLost).toBe(0);
      if (o.availability !== 'own') expect(unexplainedWriteFailures(o.traffic, intervals(await nodeRotations(name, cluster!.kubeconfig)))).toEqual([]);
      expect(await o.traffic.unreadable()).toEqual([]);
      return getJson('certrotation', name, cluster!.kubeconfig);
    },
  };
}

/**
 * Writes through the load balancer, and asks every etcd member's /health with one
 * client pair read once now (a pair read mid-install could be half old, half new).
 */
export function etcdTraffic(prefix: string, kubeconfig: string, members: readonly BaseNode[], pair: { cert: string; key: string }, ca: string): Traffic {
  const bytes = { cert: readFileSync(pair.cert), key: readFileSync(pair.key) };
  const caBytes = readFileSync(ca);
  return new Traffic(prefix, kubeconfig, members.map((n) => () => getTls(`https://${n.ip}:2379/health`, bytes, caBytes)));
}

/** Which file a server serves on a port, by the distribution's flags (test/realnode/*-layout.ts). */
export interface ServedFile<N extends BaseNode> {
  readonly port: number;
  readonly file: (n: N) => string;
}

/** The serial of the first certificate in a PEM file. */
export const diskSerial = (file: string): Promise<string> => pemSerial(readFileSync(file, 'utf8'));

/** `<node>:<port>` → the serial of the file on disk that the port serves. */
export async function diskSerials<N extends BaseNode>(servers: readonly N[], table: readonly ServedFile<N>[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const n of servers) for (const s of table) out.set(`${n.name}:${s.port}`, await diskSerial(s.file(n)));
  return out;
}

/** Every endpoint serves what is on disk; in scope (`changed`) it differs from `before`, out of scope it does not. */
export async function expectServedIsDisk<N extends BaseNode>(
  servers: readonly N[],
  table: readonly ServedFile<N>[],
  before: Map<string, string>,
  changed: (key: string) => boolean,
): Promise<void> {
  const disk = await diskSerials(servers, table);
  for (const n of servers) {
    for (const s of table) {
      const key = `${n.name}:${s.port}`;
      const served = await pemSerial(await servedPem(n.ip, s.port));
      expect(`${key} ${served}`).toBe(`${key} ${disk.get(key)}`);
      if (changed(key)) expect(`${key} ${disk.get(key)}`).not.toBe(`${key} ${before.get(key)}`);
      else expect(`${key} ${disk.get(key)}`).toBe(`${key} ${before.get(key)}`);
    }
  }
}

/**
 * The controller-manager and scheduler leases are renewed after the last server
 * finished: by new holders where those processes were restarted (they read a
 * renewed file), by the same ones otherwise.
 */
export async function expectLeasesRenewed(kubeconfig: string, before: Record<string, Lease>, rotation: any, restarted: boolean): Promise<void> {
  const servers = (await nodeRotations(rotation.metadata.name, kubeconfig)).filter((nr) => nr.spec.generation === rotation.status.runGeneration && nr.spec.role !== 'worker');
  const lastServerDone = Math.max(...servers.map((nr) => new Date(nr.status!.finishedAt!).getTime()));
  const renewed = async (): Promise<boolean> => {
    const now = await leases(kubeconfig);
    return restarted ? leasesRenewedSince(before, now, lastServerDone) : Object.values(now).every((l) => l.renew > lastServerDone);
  };
  await waitFor(`leases renewed${restarted ? ' by restarted processes' : ''}`, renewed, 60_000, () => JSON.stringify({ before, lastServerDone }));
}
