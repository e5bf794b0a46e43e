// Issue 4 end to end with real agents: CertificateRotations applied with
// kubectl, `certrotator controller` as a child process, and one real
// `certrotator agent` per kwok node over a simulated RKE2 host tree whose
// components serve over TLS on the node's loopback IP. openssl is the judge.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedFleet } from '../../src/simulation/fleet.js';
import { changedPaths, snapshotTree, type TreeEntry } from '../../src/simulation/tree.js';
import { kubectlOk } from '../cluster/kubectl.js';
import type { SimulatedNode as ClusterNode } from '../cluster/nodes.js';
import { ControllerProcess } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { allIn, applyRotation, condition, deleteRotations, fleetDebug, getJson, intervals, nodeRotations, opensslVerify, overlappingServers, pemSerial, rke2Backups, runPhases, servedPem, startFleetAndController, stopFleetAndController, waitRotationCondition } from './support/rotation.js';
import { inBlock } from '../../src/simulation/loopback.js';

const P = 'rot-';
const TLS = 'var/lib/rancher/rke2/server/tls';
const AGENT = 'var/lib/rancher/rke2/agent';
const nodes = JSON.parse(process.env.CERTROTATOR_E2E_NODES ?? '[]') as ClusterNode[];
const SERVERS = nodes.filter((n) => n.roles.includes('etcd') || n.roles.includes('controlplane')).map((n) => n.name).sort();
const WORKERS = nodes.filter((n) => !SERVERS.includes(n.name)).map((n) => n.name).sort();
// Where each node's simulated components answer (the agent's --node-ip). The kwok
// nodes' InternalIPs are in this run's network; the agent suite simulates those
// very addresses, so this suite takes its own block of it.
const hostIP = (ip: string): string => inBlock(ip, 20);
const ipOf = (name: string): string => hostIP(nodes.find((n) => n.name === name)!.ip);

// Which CA signs what each server serves on a port; undefined: self-signed cert-dir certificate.
const SERVER_PORTS: Record<number, string | undefined> = {
  6443: `${TLS}/server-ca.crt`,
  2379: `${TLS}/etcd/server-ca.crt`,
  2380: `${TLS}/etcd/peer-ca.crt`,
  9345: `${TLS}/server-ca.crt`,
  10250: `${TLS}/server-ca.crt`,
  10257: undefined,
  10259: undefined,
};

let work: string;
let fleet: SimulatedFleet;
let controller: ControllerProcess;

const debug = (): string => fleetDebug(fleet, controller, nodes.map((n) => n.name));

// A host tree snapshot without the per-run bookkeeping (backups, with the journal inside them).
const snapshot = (node: string): Promise<Map<string, TreeEntry>> => snapshotTree(fleet.hostRoot(node), (p) => /(^|\/)tls-\d+$/.test(p));
const caFiles = (node: string): Map<string, string> => {
  const out = new Map<string, string>();
  for (const f of ['server-ca', 'client-ca', 'request-header-ca', 'etcd/server-ca', 'etcd/peer-ca']) {
    for (const ext of ['crt', 'key']) {
      try {
        out.set(`${f}.${ext}`, createHash('sha256').update(readFileSync(join(fleet.hostRoot(node), TLS, `${f}.${ext}`))).digest('hex'));
      } catch {
        /* agents have no CA keys */
      }
    }
  }
  for (const f of ['server-ca.crt', 'client-ca.crt']) out.set(`agent/${f}`, createHash('sha256').update(readFileSync(join(fleet.hostRoot(node), AGENT, f))).digest('hex'));
  return out;
};

async function waitReady(name: string, timeout = '150s'): Promise<void> {
  await waitRotationCondition(name, 'Ready', { timeout, debug });
}

beforeAll(async () => {
  await installCrds();
  work = mkdtempSync(join(tmpdir(), 'rotation-e2e-'));
  ({ fleet, controller } = await startFleetAndController({
    workDir: work, distribution: 'rke2', nodes: nodes.map((n) => ({ name: n.name, ip: hostIP(n.ip), roles: n.roles })), controllerId: 'rot-a', leaseName: 'rot-controller',
  }));
  await deleteRotations(P);
}, 180_000);

afterAll(async () => {
  try {
    await stopFleetAndController(fleet, controller, { prefix: P });
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
}, 120_000);

describe('CertificateRotation with real agents on 3 RKE2 servers + 3 workers', () => {
  it('rotates every service: servers one at a time by name, then workers; new serials served and verified against the unchanged CAs', async () => {
    expect(SERVERS).toHaveLength(3);
    expect(WORKERS).toHaveLength(3);
    const servedBefore = new Map<string, string>();
    for (const n of SERVERS) for (const port of Object.keys(SERVER_PORTS)) servedBefore.set(`${n}:${port}`, await pemSerial(await servedPem(ipOf(n), Number(port))));
    for (const n of WORKERS) servedBefore.set(`${n}:10250`, await pemSerial(await servedPem(ipOf(n), 10250)));
    const casBefore = new Map(nodes.map((n) => [n.name, caFiles(n.name)]));
    const backupsBefore = new Map(nodes.map((n) => [n.name, rke2Backups(fleet.hostRoot(n.name))]));

    const t0 = Date.now();
    await applyRotation(`${P}all`, { strategy: { maxUnavailable: 2 } });
    await waitReady(`${P}all`);
    const took = Date.now() - t0;

    const r = await getJson(`certrotation`, `${P}all`);
    expect(r.status).toMatchObject({ phase: 'Succeeded', progress: '6/6', distribution: 'rke2', observedGeneration: 1 });
    expect(await runPhases(`${P}all`)).toEqual(allIn([...SERVERS, ...WORKERS], 'Rotated'));
    expect(r.status.counts.map((c: any) => [c.role, c.planned, c.rotated])).toEqual([['etcd,controlplane', 3, 3], ['worker', 3, 3]]);
    expect(condition(r, 'ServersRotated').status).toBe('True');
    expect(condition(r, 'WorkersRestarted').status).toBe('True');
    expect(condition(r, 'Stalled').status).toBe('False');

    // One NodeRotation per node, every one Rotated by its own agent.
    const nrs = await nodeRotations(`${P}all`);
    expect(nrs.map((n) => n.spec.nodeName).sort()).toEqual([...SERVERS, ...WORKERS].sort());
    for (const nr of nrs) expect(nr.status).toMatchObject({ phase: 'Rotated', step: 'Done', runID: nr.spec.runID });
    // Order and concurrency from the agents' own timestamps: servers by name,
    // strictly one after another, every server done before any worker started.
    const iv = intervals(nrs);
    expect(iv.slice(0, 3).map((i) => i.node)).toEqual(SERVERS);
    expect(overlappingServers(iv)).toEqual([]);
    const lastServerEnd = Math.max(...iv.filter((i) => SERVERS.includes(i.node)).map((i) => i.end));
    for (const w of iv.filter((i) => WORKERS.includes(i.node))) expect(w.start).toBeGreaterThanOrEqual(lastServerEnd);

    // Exactly one backup per node for the one run.
    for (const n of nodes) expect(rke2Backups(fleet.hostRoot(n.name)).filter((b) => !backupsBefore.get(n.name)!.includes(b))).toHaveLength(1);

    // What the nodes serve now: new serials, the ones the agents reported, chaining to the CA files that did not change.
    for (const n of SERVERS) {
      const nr = nrs.find((x) => x.spec.nodeName === n)!;
      for (const [port, ca] of Object.entries(SERVER_PORTS)) {
        const pem = await servedPem(ipOf(n), Number(port));
        const serial = await pemSerial(pem);
        expect([`${n}:${port}`, serial]).not.toEqual([`${n}:${port}`, servedBefore.get(`${n}:${port}`)]);
        const verify = await opensslVerify(ca ? join(fleet.hostRoot(n), ca) : '/dev/null', pem);
        if (ca) expect(verify).toMatch(/: OK$/);
        const reported = nr.status!.files!.filter((f) => f.newSerial && f.newSerial.toLowerCase().replace(/^0+(?=.)/, '') === serial);
        if (ca) expect([`${n}:${port}`, reported.length]).toEqual([`${n}:${port}`, 1]);
      }
    }
    for (const n of WORKERS) {
      const pem = await servedPem(ipOf(n), 10250);
      expect(await pemSerial(pem)).not.toBe(servedBefore.get(`${n}:10250`));
      expect(await opensslVerify(join(fleet.hostRoot(SERVERS[0]!), `${TLS}/server-ca.crt`), pem)).toMatch(/: OK$/);
    }
    for (const n of nodes) expect(caFiles(n.name)).toEqual(casBefore.get(n.name));

    // What a person sees.
    const table = await kubectlOk(['get', 'certrotations', `${P}all`]);
    const [header, row] = table.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'SCOPE', 'SERVICE', 'PHASE', 'PROGRESS', 'CURRENT', 'AGE']);
    expect(row).toMatch(new RegExp(`^${P}all\\s+All\\s+Succeeded\\s+6/6\\s+\\d+[sm]`));
    const wide = (await kubectlOk(['get', 'certrotations', `${P}all`, '-o', 'wide'])).trim().split('\n');
    expect(wide[0]!.split(/\s{2,}/)).toEqual(['NAME', 'SCOPE', 'SERVICE', 'PHASE', 'PROGRESS', 'CURRENT', 'AGE', 'DISTRIBUTION', 'MESSAGE']);
    expect(wide[1]).toMatch(new RegExp(`^${P}all\\s+All\\s+Succeeded\\s+6/6\\s+\\S+\\s+rke2\\s+rotated 6/6 node\\(s\\)`));
    const nrTable = (await kubectlOk(['get', 'noderotations', '-l', `certrotator.io/rotation=${P}all`])).trim().split('\n');
    expect(nrTable[0]!.split(/\s{2,}/)).toEqual(['NAME', 'NODE', 'ROLE', 'PHASE', 'AGE']);
    expect(nrTable.slice(1).filter((l) => /\sRotated\s/.test(l))).toHaveLength(6);

    const events = await kubectlOk(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${P}all`, '-o', 'jsonpath={range .items[*]}{.reason}|{.message}{"\\n"}{end}']);
    for (const reason of ['RunStarted', 'RunSucceeded']) expect(events).toContain(`${reason}|`);
    for (const n of nodes) {
      expect(events).toMatch(new RegExp(`NodeStarted\\|.*${n.name}`));
      expect(events).toMatch(new RegExp(`NodeRotated\\|.*${n.name}`));
    }
    process.stderr.write(`full rotation of 6 nodes took ${took} ms\n`);
  }, 200_000);

  it('etcd: only the servers get a NodeRotation, and only etcd files change on them; workers untouched', async () => {
    const before = new Map(await Promise.all(nodes.map(async (n) => [n.name, await snapshot(n.name)] as const)));
    await applyRotation(`${P}etcd`, { scope: 'Service', service: 'etcd' });
    await waitReady(`${P}etcd`, '120s');
    const nrs = await nodeRotations(`${P}etcd`);
    expect(nrs.map((n) => n.spec.nodeName).sort()).toEqual(SERVERS);
    expect(nrs.every((n) => n.spec.scope === 'Service' && n.spec.services.join() === 'etcd' && n.status?.phase === 'Rotated')).toBe(true);
    expect(overlappingServers(intervals(nrs))).toEqual([]);
    const r = await getJson('certrotation', `${P}etcd`);
    expect(r.status).toMatchObject({ phase: 'Succeeded', progress: '3/3' });
    expect(condition(r, 'WorkersRestarted')).toMatchObject({ status: 'True', reason: 'NoneInPlan' });

    // An RKE2 server restart re-issues the agent kubelet pairs on every start (by design).
    const reissuedAtStart = /^var\/lib\/rancher\/rke2\/agent\/(client|serving)-kubelet\.(crt|key)$/;
    for (const n of SERVERS) {
      const changed = changedPaths(before.get(n)!, await snapshot(n)).filter((p) => !reissuedAtStart.test(p));
      expect([n, changed]).toEqual([n, [`${TLS}/etcd/client.crt`, `${TLS}/etcd/client.key`, `${TLS}/etcd/peer-server-client.crt`, `${TLS}/etcd/peer-server-client.key`, `${TLS}/etcd/server-client.crt`, `${TLS}/etcd/server-client.key`]]);
    }
    for (const n of WORKERS) expect([n, changedPaths(before.get(n)!, await snapshot(n))]).toEqual([n, []]);
  }, 150_000);

  it('kubelet: every node gets a NodeRotation; each kubelet serves a new certificate from the server CA', async () => {
    const servedBefore = new Map(await Promise.all(nodes.map(async (n) => [n.name, await pemSerial(await servedPem(ipOf(n.name), 10250))] as const)));
    const before = new Map(await Promise.all(nodes.map(async (n) => [n.name, await snapshot(n.name)] as const)));
    await applyRotation(`${P}kubelet`, { scope: 'Service', service: 'kubelet', strategy: { maxUnavailable: 3 } });
    await waitReady(`${P}kubelet`);
    const nrs = await nodeRotations(`${P}kubelet`);
    expect(nrs.map((n) => n.spec.nodeName).sort()).toEqual([...SERVERS, ...WORKERS].sort());
    expect(overlappingServers(intervals(nrs))).toEqual([]);
    for (const n of nodes) {
      const pem = await servedPem(ipOf(n.name), 10250);
      expect([n.name, await pemSerial(pem)]).not.toEqual([n.name, servedBefore.get(n.name)]);
      expect(await opensslVerify(join(fleet.hostRoot(SERVERS[0]!), `${TLS}/server-ca.crt`), pem)).toMatch(/: OK$/);
      const changed = changedPaths(before.get(n.name)!, await snapshot(n.name));
      // Only kubelet material: the agent pairs, and on servers the kubelet keys the supervisor signs from.
      const kubelet = /^var\/lib\/rancher\/rke2\/(agent\/(client|serving)-kubelet\.(crt|key)|server\/tls\/(client|serving)-kubelet\.key)$/;
      expect([n.name, changed.filter((p) => !kubelet.test(p))]).toEqual([n.name, []]);
      expect(changed).toEqual(expect.arrayContaining([`${AGENT}/serving-kubelet.crt`, `${AGENT}/client-kubelet.crt`]));
    }
  }, 200_000);

  it('a CertificateRotationPolicy decides from what the agents read: one rotation through the real agents, their fresh inventories after it, then Stalled rather than a second (renewBefore longer than the leaves live)', async () => {
    const policy = `${P}policy`;
    type Inv = { status?: { nodeName: string; scannedAt: string; services: { name: string; notAfter: string }[] } };
    // Every node's inventory, as its agent wrote it at start.
    let inventories: Inv[] = [];
    const apiServerExpiries = () => inventories.flatMap((i) => i.status?.services.filter((x) => x.name === 'api-server').map((x) => Date.parse(x.notAfter)) ?? []);
    for (const deadline = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 300))) {
      inventories = (JSON.parse(await kubectlOk(['get', 'certinv', '-o', 'json'])) as { items: Inv[] }).items.filter((i) => nodes.some((n) => n.name === i.status?.nodeName));
      if (inventories.length === nodes.length && apiServerExpiries().length > 0) break;
      if (Date.now() > deadline) throw new Error(`the agents' inventories: ${JSON.stringify(inventories.map((i) => i.status?.nodeName))}\n${debug()}`);
    }
    // Due now and after any renewal: ten years, longer than any leaf lives.
    const renewBefore = '87600h';
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotationPolicy', metadata: { name: policy }, spec: { renewBefore, template: { scope: 'Service', service: 'api-server', strategy: { maxUnavailable: 3 } } } }),
    });
    try {
      const owned = async () => (await kubectlOk(['get', 'certificaterotations', '-l', `certrotator.io/policy=${policy}`, '-o', 'name'])).split('\n').filter(Boolean).map((n) => n.split('/')[1]!);
      for (const deadline = Date.now() + 30_000; (await owned()).length === 0; await new Promise((r) => setTimeout(r, 200))) {
        if (Date.now() > deadline) throw new Error(`no rotation from ${policy}: ${JSON.stringify((await getJson('crpol', policy))?.status)}\n${debug()}`);
      }
      const [rotation] = await owned();
      await waitReady(rotation!);
      // The policy waits for the rotated nodes to read their files again, sees the new certificates
      // still within renewBefore, and stops: another rotation would change nothing.
      let p: any;
      for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 300))) {
        p = await getJson('crpol', policy);
        const stalled = p?.status?.conditions?.find((c: any) => c.type === 'Stalled');
        if (stalled?.status === 'True') break;
        if (Date.now() > deadline) throw new Error(`policy not stalled: ${JSON.stringify(p?.status)}\n${debug()}`);
      }
      expect(p.status.conditions.find((c: any) => c.type === 'Stalled')).toMatchObject({ reason: 'StillDueAfterRotation' });
      expect(p.status.lastRotation).toMatchObject({ name: rotation, phase: 'Succeeded' });
      expect(await owned()).toEqual([rotation]);
      // What it decided from: every rotated node's inventory, read after the rotation, with a later api-server expiry.
      const rotated = new Map((await nodeRotations(rotation!)).filter((nr) => nr.status?.phase === 'Rotated').map((nr) => [nr.spec.nodeName, Date.parse(nr.status!.finishedAt!)]));
      expect([...rotated.keys()].sort()).toEqual(nodes.map((n) => n.name).sort());
      const after = (JSON.parse(await kubectlOk(['get', 'certinv', '-o', 'json'])) as { items: Inv[] }).items.filter((i) => rotated.has(i.status!.nodeName));
      expect(after).toHaveLength(rotated.size);
      for (const i of after) expect(Date.parse(i.status!.scannedAt)).toBeGreaterThanOrEqual(rotated.get(i.status!.nodeName)!);
      expect(p.status.nextExpiry.service).toBe('api-server');
      expect(Date.parse(p.status.nextExpiry.notAfter)).toBeGreaterThan(Math.min(...apiServerExpiries()));
      // What the CertrotatorPolicyStalled alert reads, on the leader's /metrics; gone with the policy.
      const series = `certrotator_policy_stalled{policy="${policy}",reason="StillDueAfterRotation"} 1`;
      const metrics = async () => (await fetch(`http://127.0.0.1:${controller.port}/metrics`)).text();
      expect(await metrics()).toContain(series);
      await kubectlOk(['delete', 'crpol', policy, '--wait=true']);
      for (const deadline = Date.now() + 30_000; (await metrics()).includes(`policy="${policy}"`); await new Promise((r) => setTimeout(r, 200))) {
        if (Date.now() > deadline) throw new Error(`the series of ${policy} outlived it`);
      }
    } finally {
      await kubectlOk(['delete', 'crpol', policy, '--ignore-not-found', '--wait=true']);
    }
  }, 240_000);
});
