// Helpers for the end-to-end rotation suites: a real controller process, real
// agents over a simulated fleet, CertificateRotations applied with kubectl,
// and openssl as the judge of what the nodes serve.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { NodeRotation } from '../../../src/api/noderotation.js';
import { expect } from '@jest/globals';
import { SimulatedFleet, type FleetNodeSpec } from '../../../src/simulation/fleet.js';
import { startCluster, stopCluster, type ClusterState } from '../../cluster/cluster.js';
import { runCommand, type CommandResult } from '../../cluster/command.js';
import type { Topology } from '../../cluster/nodes.js';
import { installCrds } from './crds.js';
import { kubectl, kubectlOk } from '../../cluster/kubectl.js';
import { CONTROLLER_START_MS, ControllerProcess, waitFor } from './controller.js';

export type RunResult = CommandResult;

/** Any command, asynchronously (see test/cluster/command.ts for why). */
export const run = runCommand;

/** The certificate openssl s_client sees served at ip:port (PEM). */
export async function servedPem(ip: string, port: number): Promise<string> {
  const r = await run('openssl', ['s_client', '-connect', `${ip}:${port}`, '-servername', 'localhost', '-showcerts']);
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(r.stdout);
  if (!m) throw new Error(`openssl s_client ${ip}:${port} showed no certificate: ${r.stderr.slice(-500)}`);
  return m[0];
}

/** certrotator reports serials in hex without leading zeros; openssl pads to whole bytes. */
export function normSerial(s: string): string {
  return s.trim().replace(/^serial=/, '').replace(/^0+(?=.)/, '').toLowerCase();
}

export async function pemSerial(pem: string): Promise<string> {
  const r = await run('openssl', ['x509', '-noout', '-serial'], pem);
  if (r.code !== 0) throw new Error(`openssl x509: ${r.stderr}`);
  return normSerial(r.stdout);
}

export async function servedSerial(ip: string, port: number): Promise<string> {
  return pemSerial(await servedPem(ip, port));
}

/** `openssl verify -CAfile ca cert` on a PEM; returns openssl's output (": OK" on success). */
export async function opensslVerify(caFile: string, pem: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'verify-'));
  try {
    const file = join(dir, 'served.crt');
    writeFileSync(file, pem);
    const r = await run('openssl', ['verify', '-CAfile', caFile, file]);
    return (r.stdout + r.stderr).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function applyRotation(name: string, spec: Record<string, unknown>, kubeconfig?: string): Promise<string> {
  return kubectlOk(['apply', '-f', '-'], {
    input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name }, spec }),
    ...(kubeconfig ? { kubeconfig } : {}),
  });
}

export async function getJson<T = any>(kind: string, name: string, kubeconfig?: string): Promise<T | undefined> {
  const r = await kubectl(['get', kind, name, '-o', 'json'], kubeconfig ? { kubeconfig } : {});
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

export async function nodeRotations(rotation: string, kubeconfig?: string): Promise<NodeRotation[]> {
  const out = await kubectlOk(['get', 'noderotations', '-l', `certrotator.io/rotation=${rotation}`, '-o', 'json'], kubeconfig ? { kubeconfig } : {});
  return (JSON.parse(out) as { items: NodeRotation[] }).items;
}

/**
 * Each node's phase in a rotation's latest run, read as a person reads it:
 * status.nodes for the nodes in flight or stopped, the NodeRotation's report
 * for a Rotated one, and Pending for a node of `planned` with neither.
 */
export async function runPhases(rotation: string, planned: readonly string[] = [], kubeconfig?: string): Promise<Record<string, string>> {
  const r = await getJson('certificaterotation', rotation, kubeconfig);
  const out: Record<string, string> = Object.fromEntries(planned.map((n) => [n, 'Pending']));
  for (const nr of await nodeRotations(rotation, kubeconfig)) {
    const current = nr.status?.runID === undefined || nr.status.runID === nr.spec.runID;
    if (nr.spec.generation === r.status.runGeneration && nr.spec.action !== 'Check' && nr.status?.phase === 'Rotated' && current) out[nr.spec.nodeName] = 'Rotated';
  }
  for (const n of r.status.nodes ?? []) out[n.name] = n.phase;
  return out;
}

/** `{ node: phase }` for every node named. */
export const allIn = (names: readonly string[], phase: string): Record<string, string> => Object.fromEntries(names.map((n) => [n, phase]));

export function condition(obj: any, type: string): any {
  return obj?.status?.conditions?.find((c: any) => c.type === type);
}

/** Deletes the CertificateRotations whose names start with `prefix` (the controller must be running to release finalizers). */
export async function deleteRotations(prefix: string, kubeconfig?: string): Promise<void> {
  const opts = kubeconfig ? { kubeconfig } : {};
  const names = (await kubectlOk(['get', 'certificaterotations', '-o', 'name'], opts)).split('\n').filter((n) => n.startsWith(`certificaterotation.certrotator.io/${prefix}`));
  if (names.length > 0) await kubectlOk(['delete', '--wait=true', '--timeout=90s', ...names], opts);
}

const SERVER_DIR = 'var/lib/rancher/rke2/server';
const AGENT_DIR = 'var/lib/rancher/rke2/agent';

/** RKE2 backup dirs (`tls-<unix>`) on a node: beside server/tls on servers, in agent/ on agents. */
export function rke2Backups(hostRoot: string): string[] {
  const list = (dir: string): string[] => {
    try {
      return readdirSync(join(hostRoot, dir)).filter((n) => n.startsWith('tls-')).map((n) => `${dir}/${n}`);
    } catch {
      return [];
    }
  };
  return [...list(SERVER_DIR), ...list(AGENT_DIR)].sort();
}

export interface Interval {
  node: string;
  role: string;
  start: number;
  end: number;
}

/** Each NodeRotation's [startedAt, finishedAt] as the agents reported it (ms precision). */
export function intervals(nrs: NodeRotation[]): Interval[] {
  const out = nrs.map((nr) => ({
    node: nr.spec.nodeName,
    role: nr.spec.role,
    start: Date.parse(nr.status?.startedAt ?? ''),
    end: Date.parse(nr.status?.finishedAt ?? ''),
  }));
  // A missing timestamp would make every overlap comparison false: refuse it instead.
  const bad = out.filter((i) => !Number.isFinite(i.start) || !Number.isFinite(i.end) || i.end < i.start);
  if (bad.length > 0) throw new Error(`NodeRotations without a started/finished interval: ${bad.map((i) => i.node).join(', ')}`);
  return out.sort((a, b) => a.start - b.start);
}

export const isServerRole = (role: string): boolean => role.includes('etcd') || role.includes('controlplane');

/** Pairs of server nodes whose reported intervals overlap (must be empty). */
export function overlappingServers(list: Interval[]): string[] {
  const servers = list.filter((i) => isServerRole(i.role));
  const out: string[] = [];
  for (const a of servers) for (const b of servers) if (a.node < b.node && a.start < b.end && b.start < a.end) out.push(`${a.node}/${b.node}`);
  return out;
}

/**
 * What every rotation suite starts with: a simulated fleet of hosts with a real
 * agent per node, and a real controller process that has taken its Lease.
 * `beforeStart` runs after the host trees exist and before anything starts
 * (e.g. to build RKE's cluster state from them).
 */
export async function startFleetAndController(o: {
  workDir: string;
  distribution: 'rke2' | 'rke';
  nodes: FleetNodeSpec[];
  kubeconfig?: string;
  controllerId: string;
  leaseName: string;
  beforeStart?: (fleet: SimulatedFleet) => Promise<void>;
}): Promise<{ fleet: SimulatedFleet; controller: ControllerProcess }> {
  const kubeconfig = o.kubeconfig ?? process.env.KUBECONFIG!;
  const fleet = await SimulatedFleet.create({ workDir: o.workDir, distribution: o.distribution, nodes: o.nodes, kubeconfig });
  await o.beforeStart?.(fleet);
  await fleet.start();
  const controller = new ControllerProcess(o.controllerId, {
    leaseName: o.leaseName,
    ...(o.kubeconfig ? { extraArgs: [`--kubeconfig=${o.kubeconfig}`] } : {}),
  });
  await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
  return { fleet, controller };
}

/** The matching teardown: the suite's rotations deleted, processes stopped, and no private key ever printed. */
export async function stopFleetAndController(
  fleet: SimulatedFleet | undefined,
  controller: ControllerProcess | undefined,
  o: { prefix: string; kubeconfig?: string },
): Promise<void> {
  try {
    if (controller) await deleteRotations(o.prefix, o.kubeconfig);
  } finally {
    await controller?.stop();
    await fleet?.stop();
    for (const name of fleet?.nodeNames() ?? []) expect(fleet!.agentLog(name)).not.toContain('PRIVATE KEY');
    if (controller) expect(controller.debug()).not.toContain('PRIVATE KEY');
  }
}

/** Agents' and controller's last log lines, for a failing wait's message. */
export function fleetDebug(fleet: SimulatedFleet | undefined, controller: ControllerProcess | undefined, nodes: string[]): string {
  return `${controller?.debug() ?? ''}\n${nodes.map((n) => `--- ${n}\n${fleet?.agentLog(n).split('\n').slice(-6).join('\n')}`).join('\n')}`;
}

/** `kubectl wait --for=condition=C` on a rotation; on a time-out the error carries its status and `debug()`. */
export async function waitRotationCondition(
  name: string,
  cond: 'Ready' | 'Stalled',
  o: { timeout: string; debug: () => string; kubeconfig?: string },
): Promise<void> {
  const opts = o.kubeconfig ? { kubeconfig: o.kubeconfig } : {};
  try {
    await kubectlOk(['wait', `--for=condition=${cond}`, `--timeout=${o.timeout}`, `certrotation/${name}`], opts);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${JSON.stringify((await getJson('certrotation', name, o.kubeconfig))?.status, null, 1)}\n${o.debug()}`);
  }
}

/** A control plane of the suite's own (e.g. with RKE nodes) in a temp dir, with the CRDs installed. */
export async function startSeparateCluster(dirPrefix: string, topology: Topology): Promise<{ dir: string; cluster: ClusterState }> {
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  const cluster = await startCluster({ dir, binDir: process.env.CERTROTATOR_BIN_DIR!, topology });
  await installCrds(cluster.kubeconfig);
  return { dir, cluster };
}

export async function stopSeparateCluster(dir: string | undefined): Promise<void> {
  if (!dir) return;
  await stopCluster(dir);
  rmSync(dir, { recursive: true, force: true });
}
