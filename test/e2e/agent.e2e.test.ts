// The node agent against the real API server: real `certrotator agent`
// processes watch NodeRotations created with kubectl and rotate simulated RKE2
// host trees whose components serve over TLS on the nodes' loopback IPs.
// openssl is the judge of what was written and what is served.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { nodeRotationLabels, nodeRotationName } from '../../src/api/names.js';
import type { NodeRotation } from '../../src/api/noderotation.js';
import { SimulatedFleet } from '../../src/simulation/fleet.js';
import { writeAgedClientAdmin } from '../../src/simulation/fixtures.js';
import { snapshotTree, changedPaths } from '../../src/simulation/tree.js';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import type { SimulatedNode as ClusterNode } from '../cluster/nodes.js';
import { installCrds } from './support/crds.js';
import { servedSerial } from './support/rotation.js';

const TLS = 'var/lib/rancher/rke2/server/tls';
const nodes = JSON.parse(process.env.CERTROTATOR_E2E_NODES ?? '[]') as ClusterNode[];
const ipOf = (name: string): string => nodes.find((n) => n.name === name)!.ip;
let work: string;
let fleet: SimulatedFleet;
let run = 0;
// The CertificateRotation the test's NodeRotations belong to, as the controller's
// would: an agent obeys only an instruction of its owner's current run.
const OWNER = 'agent-e2e';
let ownerUid = '';

beforeAll(async () => {
  await installCrds();
  work = mkdtempSync(join(tmpdir(), 'agent-e2e-'));
  fleet = await SimulatedFleet.create({
    workDir: work,
    distribution: 'rke2',
    nodes: nodes.map((n) => ({ name: n.name, ip: n.ip, roles: n.roles })),
    kubeconfig: process.env.KUBECONFIG!,
  });
  await fleet.start();
  await kubectlOk(['create', '-f', '-'], {
    input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: OWNER }, spec: { distribution: 'rke2', scope: 'All' } }),
  });
  ownerUid = (await kubectlOk(['get', 'certificaterotation', OWNER, '-o', 'jsonpath={.metadata.uid}'])).trim();
}, 180_000);

afterAll(async () => {
  await fleet?.stop();
  // No agent ever logs key material, whatever happened.
  for (const name of fleet?.nodeNames() ?? []) expect(fleet.agentLog(name)).not.toContain('PRIVATE KEY');
  await kubectlOk(['delete', 'noderotations', '-l', 'certrotator.io/rotation=agent-e2e', '--wait=false']);
  await kubectlOk(['delete', 'certificaterotation', OWNER, '--ignore-not-found', '--wait=false']);
  // The inventories its agents wrote: a later suite may own the same node names.
  const inventories = (fleet?.nodeNames() ?? []).map((n) => `certificateinventory/${n}`);
  if (inventories.length > 0) await kubectlOk(['delete', ...inventories, '--ignore-not-found']);
  rmSync(work, { recursive: true, force: true });
});

/** What the controller does for one node: the run recorded in its rotation's status first, then the instruction, owned by it. */
async function instruct(node: string, spec: Partial<NodeRotation['spec']>, o: { owned?: boolean } = {}): Promise<string> {
  const generation = ++run;
  const name = nodeRotationName(OWNER, generation, node);
  const role = nodes.find((n) => n.name === node)!.roles.join(',');
  await kubectlOk(['patch', 'certificaterotation', OWNER, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { runGeneration: generation } })]);
  const owned = o.owned ?? true;
  await kubectlOk(['create', '-f', '-'], {
    input: stringify({
      apiVersion: 'certrotator.io/v1alpha1',
      kind: 'NodeRotation',
      metadata: {
        name,
        labels: nodeRotationLabels(OWNER, generation, node),
        ...(owned ? { ownerReferences: [{ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', name: OWNER, uid: ownerUid, controller: true }] } : {}),
      },
      spec: { rotation: OWNER, generation, runID: `${ownerUid}-g${generation}`, nodeName: node, role, distribution: 'rke2', scope: 'All', services: [], timeout: '60s', ...spec },
    }),
  });
  return name;
}

async function waitFinished(name: string, timeoutMs = 90_000): Promise<NodeRotation> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nr = JSON.parse(await kubectlOk(['get', 'noderotation', name, '-o', 'json'])) as NodeRotation;
    if (nr.status && ['Rotated', 'Failed', 'RolledBack'].includes(nr.status.phase)) return nr;
    if (Date.now() > deadline) throw new Error(`${name} not finished: ${JSON.stringify(nr.status)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** How many reconcile passes over a NodeRotation the node's agent has logged (debug 'reconciled' lines). */
function agentPasses(node: string, noderotation: string): number {
  return fleet
    .agentLog(node)
    .split('\n')
    .filter((l) => l.includes('"msg":"reconciled"'))
    .filter((l) => (JSON.parse(l) as { noderotation?: string }).noderotation === noderotation).length;
}

async function waitForAgent(node: string, what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${fleet.agentLog(node).slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function backups(node: string): string[] {
  return readdirSync(join(fleet.hostRoot(node), 'var/lib/rancher/rke2/server')).filter((n) => n.startsWith('tls-'));
}

describe('certrotator agent', () => {
  it('rotates api-server on a server: new serial on disk, signed by the unchanged CA, and served on :6443', async () => {
    const node = 'rke2-server-1';
    const before = await servedSerial(ipOf(node), 6443);
    const name = await instruct(node, { scope: 'Service', services: ['api-server'] });
    const nr = await waitFinished(name);
    expect(nr.status?.message).toMatch(/^node rke2-server-1: \d+ files rotated$/);
    expect(nr.status).toMatchObject({ phase: 'Rotated', step: 'Done', runID: nr.spec.runID });
    const serving = nr.status!.files!.find((f) => f.path === `/${TLS}/serving-kube-apiserver.crt`)!;
    expect(serving).toMatchObject({ service: 'api-server', servedVerified: true });
    expect(serving.oldSerial?.toLowerCase()).toBe(before);
    expect(serving.newSerial).not.toBe(serving.oldSerial);
    expect(await servedSerial(ipOf(node), 6443)).toBe(serving.newSerial!.toLowerCase());
    const root = fleet.hostRoot(node);
    const verify = execFileSync('openssl', ['verify', '-CAfile', join(root, TLS, 'server-ca.crt'), join(root, TLS, 'serving-kube-apiserver.crt')]).toString();
    expect(verify.trim()).toMatch(/: OK$/);
    expect(nr.status?.backupPath).toMatch(new RegExp(`^/${TLS}-\\d+$`));
    // The agent read its node again once it finished (not six hours later): its CertificateInventory
    // was written after the report, so a policy deciding from it sees the new certificates.
    const finished = Date.parse(nr.status!.finishedAt!);
    let scannedAt = 0;
    await waitForAgent(node, 'a CertificateInventory scanned after the rotation', () => {
      void kubectl(['get', 'certinv', node, '-o', 'jsonpath={.status.scannedAt}']).then((r) => (scannedAt = r.code === 0 ? Date.parse(r.stdout) : 0));
      return scannedAt >= finished;
    });
  });

  it('refuses an instruction no CertificateRotation run owns (made by hand): Failed with the reason, nothing touched on the host', async () => {
    const node = 'rke2-server-2';
    const before = await snapshotTree(fleet.hostRoot(node));
    const name = await instruct(node, { scope: 'Service', services: ['api-server'] }, { owned: false });
    const nr = await waitFinished(name);
    expect(nr.status).toMatchObject({ phase: 'Failed', runID: nr.spec.runID });
    expect(nr.status?.message).toBe(`node ${node}: refused, nothing done: not owned by CertificateRotation ${OWNER} (a NodeRotation is created by the certrotator controller for one of its runs)`);
    expect(changedPaths(before, await snapshotTree(fleet.hostRoot(node)))).toEqual([]);
  });

  it('rotates a worker by restarting rke2-agent, which re-issues the kubelet certificates from the server CA', async () => {
    const node = 'rke2-worker-1';
    const before = await servedSerial(ipOf(node), 10250);
    const nr = await waitFinished(await instruct(node, { scope: 'All' }));
    expect(nr.status?.phase).toBe('Rotated');
    const serving = nr.status!.files!.find((f) => f.path.endsWith('/agent/serving-kubelet.crt'))!;
    expect(serving.servedVerified).toBe(true);
    expect(serving.newSerial?.toLowerCase()).not.toBe(before);
    expect(await servedSerial(ipOf(node), 10250)).toBe(serving.newSerial!.toLowerCase());
    const server = fleet.hostRoot('rke2-server-1');
    const verify = execFileSync('openssl', ['verify', '-CAfile', join(server, TLS, 'server-ca.crt'), join(fleet.hostRoot(node), 'var/lib/rancher/rke2/agent/serving-kubelet.crt')]).toString();
    expect(verify.trim()).toMatch(/: OK$/);
  });

  it('resumes after the agent is killed mid-step, without rotating the node twice', async () => {
    const node = 'rke2-server-2';
    await fleet.stopAgent(node);
    await fleet.startAgent(node, { CERTROTATOR_TEST_PAUSE_AT: 'after-install' });
    const backupsBefore = backups(node);
    const name = await instruct(node, { scope: 'Service', services: ['etcd'] });
    await waitForAgent(node, 'the agent to reach after-install', () => fleet.agentLog(node).includes('paused at after-install'), 60_000);
    const midway = JSON.parse(await kubectlOk(['get', 'noderotation', name, '-o', 'json'])) as NodeRotation;
    expect(midway.status).toMatchObject({ phase: 'Updating', step: 'Renewing' });
    await fleet.stopAgent(node, 'SIGKILL');

    await fleet.startAgent(node);
    const nr = await waitFinished(name);
    expect(nr.status?.phase).toBe('Rotated');
    expect(nr.status?.message).toContain('resumed after an interruption');
    // One backup: the resumed run continued the first one instead of starting over.
    expect(backups(node).filter((b) => !backupsBefore.includes(b))).toHaveLength(1);
    const peer = nr.status!.files!.find((f) => f.path.endsWith('/etcd/peer-server-client.crt'))!;
    expect(peer.servedVerified).toBe(true);
    expect(await servedSerial(ipOf(node), 2380)).toBe(peer.newSerial!.toLowerCase());

    // The agent restarting once more must not touch the node again: once the new
    // agent has reconciled the finished NodeRotation, the tree is as it was.
    const settled = await snapshotTree(fleet.hostRoot(node));
    await fleet.stopAgent(node);
    const passesBefore = agentPasses(node, name);
    await fleet.startAgent(node);
    await waitForAgent(node, 'the restarted agent to reconcile the finished NodeRotation', () => agentPasses(node, name) > passesBefore);
    expect(changedPaths(settled, await snapshotTree(fleet.hostRoot(node)))).toEqual([]);
  });

  it('rolls back a node whose component keeps serving the old certificate, naming the node and the step', async () => {
    const node = 'rke2-server-3';
    const root = fleet.hostRoot(node);
    const before = await snapshotTree(root);
    fleet.sim(node).faults.serveStale = true;
    try {
      const nr = await waitFinished(await instruct(node, { scope: 'Service', services: ['api-server'], timeout: '10s' }));
      expect(nr.status?.phase).toBe('RolledBack');
      expect(nr.status?.step).toBe('Verifying');
      expect(nr.status?.message).toMatch(/^node rke2-server-3: step Verifying failed: 127\.\d+\.1\.3:6443 serves serial [0-9A-F]+, expected [0-9A-F]+ \(var\/lib\/rancher\/rke2\/server\/tls\/serving-kube-apiserver\.crt\); rolled back from \/var\/lib\/rancher\/rke2\/server\/tls-\d+$/);
      const reissuedAtStart = /\/agent\/(client|serving)-kubelet\.(crt|key)$/;
      const changed = changedPaths(before, await snapshotTree(root, (p) => p.startsWith(`${TLS}-`)));
      expect(changed.filter((p) => !reissuedAtStart.test(`/${p}`))).toEqual([]);
    } finally {
      fleet.sim(node).faults.serveStale = false;
    }
  });

  it('serves /metrics: its reconciles counted by outcome, as the controller counts its own', async () => {
    const node = 'rke2-server-1';
    const port = fleet
      .agentLog(node)
      .split('\n')
      .map((l) => (l.includes('agent starting') ? (JSON.parse(l) as { healthPort?: number }).healthPort : undefined))
      .filter((p): p is number => typeof p === 'number')
      .at(-1);
    expect(port).toBeGreaterThan(0);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^certrotator_reconcile_total\{controller="agent",result="success"\} [1-9]/m);
    // Its certificate inventory (read at start): each file's notAfter, as openssl reads it from the host.
    // (Read at agent start, so compared with a file no test in this suite renews: the etcd peer CA.)
    const file = join(fleet.hostRoot(node), 'var/lib/rancher/rke2/server/tls/etcd/peer-ca.crt');
    const enddate = execFileSync('openssl', ['x509', '-noout', '-enddate', '-in', file], { encoding: 'utf8' }).trim().replace(/^notAfter=/, '');
    const series = new RegExp(`^certrotator_certificate_not_after_timestamp_seconds\\{node="${node}",service="certificate-authority",path="/var/lib/rancher/rke2/server/tls/etcd/peer-ca\\.crt"\\} (\\d+)$`, 'm');
    expect(Number(series.exec(text)?.[1])).toBe(Math.floor(Date.parse(enddate) / 1000));
    expect(text).toMatch(/^certrotator_certificate_expired\{node="rke2-server-1",service="admin",path="\/var\/lib\/rancher\/rke2\/server\/tls\/client-admin\.crt"\} 0$/m);
  });

  // Last in this suite: it leaves rke2-server-3's client-admin signed by a throwaway CA.
  it('warns on its Node when a certificate nears expiry: one CertificateExpirationWarning Event, kubectl describe node shows it', async () => {
    const node = 'rke2-server-3';
    await fleet.stopAgent(node);
    // client-admin as rke2 issued it 340 days ago: 25 days left, within the 30-day threshold.
    await writeAgedClientAdmin(fleet.hostRoot(node), 340);
    await fleet.startAgent(node);
    const selector = `involvedObject.kind=Node,involvedObject.name=${node},reason=CertificateExpirationWarning`;
    let events: { type: string; message: string; count?: number; source?: { component?: string } }[] = [];
    for (let i = 0; i < 60 && events.length === 0; i++) {
      events = JSON.parse(await kubectlOk(['get', 'events', '-n', 'default', '--field-selector', selector, '-o', 'json'])).items;
      if (events.length === 0) await new Promise((r) => setTimeout(r, 500));
    }
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'Warning', source: { component: 'certrotator-agent' } });
    expect(events[0]!.message).toMatch(/^\/var\/lib\/rancher\/rke2\/server\/tls\/client-admin\.crt \(service admin\) expires in 2[45] days, on .* \(within 30 days\)/);
    expect(await kubectlOk(['describe', 'node', node])).toContain('CertificateExpirationWarning');
  });

  it('each agent writes its node’s CertificateInventory: kubectl get certinv, sorted by expiry, shows server-3’s admin certificate first', async () => {
    // Runs after the test above aged server-3's client-admin to 25 days left.
    type Inv = { metadata: { name: string }; status: { nodeName: string; roles: string; files: number; earliest?: { service: string; daysLeft: number; path?: string } } };
    let items: Inv[] = [];
    const names = nodes.map((n) => n.name).sort();
    await waitForAgent('rke2-server-3', 'an inventory of every node, server-3 with its aged admin certificate', () => {
      void kubectlOk(['get', 'certinv', '-o', 'json']).then((out) => (items = (JSON.parse(out) as { items: Inv[] }).items));
      return items.filter((i) => names.includes(i.metadata.name)).length === names.length && items.some((i) => i.metadata.name === 'rke2-server-3' && i.status.earliest?.service === 'admin');
    });
    for (const i of items.filter((x) => names.includes(x.metadata.name))) {
      expect(i.status.nodeName).toBe(i.metadata.name);
      expect(i.status.files).toBeGreaterThan(0);
      // What the agent finds on the host: an RKE2 server runs the agent's kubelet too.
      expect(i.status.roles).toBe(i.metadata.name.includes('server') ? 'etcd,controlplane,worker' : 'worker');
    }
    const s3 = items.find((i) => i.metadata.name === 'rke2-server-3')!;
    expect(s3.status.earliest).toMatchObject({ service: 'admin', path: '/var/lib/rancher/rke2/server/tls/client-admin.crt' });
    expect([24, 25]).toContain(s3.status.earliest!.daysLeft);
    const sorted = (await kubectlOk(['get', 'certinv', '--sort-by=.status.earliest.notAfter', '--no-headers'])).trim().split('\n');
    expect(sorted[0]).toMatch(/^rke2-server-3\s+etcd,controlplane,worker\s+admin\s+\S+\s+2[45]\s/);
  });
});
