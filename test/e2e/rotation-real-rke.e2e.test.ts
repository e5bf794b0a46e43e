// Rotations on an RKE (v1) cluster whose control plane is real (test/realnode):
// three hosts with every role, each a network namespace whose /etc/kubernetes is
// its own tree, running the real etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler with RKE's flags as containers of the host's `docker`
// stand-in, and one worker. The certificates were made with openssl as RKE
// makes them, and kube-system/full-cluster-state holds them as RKE keeps it.
// The certrotator controller issues each run's certificates from that state;
// each agent runs inside its host with host root `/` and restarts through the
// host's `docker`.
//
// The oracles are the real components and openssl, not our catalog: after each
// rotation every etcd member answers /health to the NEW kube-node pair (the
// API server's etcd client identity, as rke's own health check uses), every
// kube-apiserver answers /readyz to the NEW kube-admin pair taken from the
// updated cluster state, the controller-manager and scheduler leases are
// renewed by restarted processes, and every endpoint serves the serial on disk.
// A writer creates a ConfigMap every 200 ms through the load balancer throughout,
// and etcd's quorum is watched.
import { describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFullState } from '../../src/controller/rke-bundle.js';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { RealRkeCluster, type RkeNode } from '../realnode/rke-cluster.js';
import { etcdCertName } from '../realnode/rke-layout.js';
import { etcdIsHealthy, getTls, leases } from './support/real-checks.js';
import { chartAgentKubeconfig } from './support/service-account.js';
import { diskSerial, diskSerials, etcdTraffic, expectLeasesRenewed, expectServedIsDisk, realSuite, type ServedFile } from './support/real-suite.js';
import { allIn, applyRotation, condition, getJson, intervals, nodeRotations, normSerial, opensslVerify, overlappingServers, runPhases, servedPem, waitRotationCondition } from './support/rotation.js';

// Every agent runs with a token of the chart's agent ServiceAccount and exactly
// the RBAC the chart grants it on RKE: no Secret at all.
const suite = realSuite<RkeNode, RealRkeCluster>(
  'real-rke',
  (workDir) => RealRkeCluster.start({ workDir, binDir: process.env.CERTROTATOR_BIN_DIR!, servers: 3, workers: 1 }),
  (c, workDir) => chartAgentKubeconfig(c.kubeconfig, workDir, 'rke'),
);
const cluster = (): RealRkeCluster => suite.cluster();

// ---- oracles ---------------------------------------------------------------

const ssl = (n: RkeNode, f: string): string => join(n.sslDir, f);
const kubeCa = (n: RkeNode): string => ssl(n, 'kube-ca.pem');
const pairOn = (n: RkeNode, name: string) => ({ cert: ssl(n, `${name}.pem`), key: ssl(n, `${name}-key.pem`) });

// rke's etcd health check: https://<address>:2379/health with kube-node (services/etcd_util.go).
const etcdHealth = (n: RkeNode, via: RkeNode) => getTls(`https://${n.ip}:2379/health`, pairOn(via, 'kube-node'), kubeCa(via));

// kube-admin lives only in the cluster state (and the workstation's kubeconfig).
function kubeAdminOf(state: string): { cert: Buffer; key: Buffer } {
  const e = parseFullState(state).currentState!.certificatesBundle!['kube-admin']!;
  return { cert: Buffer.from(e.certificatePEM!), key: Buffer.from(e.keyPEM!) };
}

// What each server serves where, by RKE's flags (test/realnode/rke-layout.ts):
// a hand-written table, not the catalog's.
const SERVED: readonly ServedFile<RkeNode>[] = [
  { port: 6443, file: (n) => ssl(n, 'kube-apiserver.pem') },
  { port: 2379, file: (n) => ssl(n, `${etcdCertName(n.ip)}.pem`) },
  { port: 2380, file: (n) => ssl(n, `${etcdCertName(n.ip)}.pem`) },
];

// Every member, asked with the first server's kube-node pair as it was when the run started.
function newTraffic(prefix: string) {
  const first = cluster().servers[0]!;
  return etcdTraffic(prefix, cluster().kubeconfig, cluster().servers, pairOn(first, 'kube-node'), kubeCa(first));
}

const stateSerial = (state: string, name: string): string => normSerial(new X509Certificate(parseFullState(state).currentState!.certificatesBundle![name]!.certificatePEM!).serialNumber);

// The kubelet and kube-proxy stand-ins answer healthz only once they authenticated with their files.
async function workerPlaneHealthy(n: RkeNode): Promise<boolean> {
  const r = await cluster().exec(n, ['sh', '-c', 'curl -sf --max-time 3 http://127.0.0.1:10248/healthz && curl -sf --max-time 3 http://127.0.0.1:10256/healthz']);
  return r.code === 0;
}

// ---- what a worker's credentials can get ----------------------------------

// A PEM armour line, in clear or base64 at any of the three alignments.
const KEY_MATERIAL = /PRIVATE KEY|LS0tLS1CRUdJTi|0tLS0tQkVHSU4|tLS0tLUJFR0lO/;

// kubectl's words when no API server answered at all: the load balancer sent the request to
// a server the rotation is restarting, which accepted the connection and then said nothing
// (seen in CI: "net/http: TLS handshake timeout"). Such a read says nothing about what the
// token may get, so it is counted as unanswered; only an answer other than 403 is a finding.
const NO_ANSWER = /Unable to connect to the server|TLS handshake timeout|connection refused|connection reset|unexpected EOF|i\/o timeout|apiserver is shutting down|currently unable to handle the request/i;

/**
 * Everything the agent token (the one every agent uses, the worker's too) can
 * get that holds key material, and every Secret read it is not refused: both
 * must stay empty before, during and after a run.
 */
async function exposedToAgentToken(rotation: string): Promise<{ findings: string[]; sealedBoxes: number; listed: boolean; refused: number }> {
  const kubeconfig = cluster().agentKubeconfig!;
  const findings: string[] = [];
  let refused = 0;
  for (const args of [
    ['get', 'secret', 'full-cluster-state', '-n', 'kube-system'],
    ['get', 'configmap', 'full-cluster-state', '-n', 'kube-system'],
    // Where this suite's controller keeps the run's bundle: its Lease namespace (test/e2e/support/controller.ts).
    ['get', 'secret', 'certrotator-rke-bundle', '-n', 'default'],
    ['get', 'secrets', '-A'],
  ]) {
    const r = await kubectl([...args, '-o', 'name'], { kubeconfig });
    if (r.code !== 0 && /forbidden/i.test(r.stderr)) refused++;
    else if (r.code === 0 || !NO_ANSWER.test(r.stderr)) findings.push(`not refused: kubectl ${args.join(' ')} (${r.code}: ${r.stderr.trim().slice(0, 120)})`);
  }
  // What the token may read. A kube-apiserver the rotation just restarted answers 403 to
  // everything until its RBAC cache has synced (the load balancer sends it requests as soon
  // as it accepts connections): such a sample reads nothing, and is counted as not listed.
  const nrs = await kubectl(['get', 'noderotations', '-o', 'json'], { kubeconfig });
  const owner = await kubectl(['get', 'certificaterotation', rotation, '-o', 'json'], { kubeconfig });
  for (const [what, text] of [['noderotations', nrs.stdout], ['certificaterotation', owner.stdout]] as const) if (KEY_MATERIAL.test(text)) findings.push(`key material in ${what}`);
  if (nrs.code !== 0) return { findings, sealedBoxes: 0, listed: false, refused };
  const sealedBoxes = (JSON.parse(nrs.stdout).items as { sealedBundle?: unknown }[]).filter((nr) => nr.sealedBundle).length;
  return { findings, sealedBoxes, listed: true, refused };
}

/** Samples exposedToAgentToken every 1.5 s until stopped. */
function watchAgentTokenExposure(rotation: string) {
  const seen = { samples: 0, listed: 0, refused: 0, maxSealedBoxes: 0, findings: new Set<string>() };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const r = await exposedToAgentToken(rotation);
      seen.samples++;
      if (r.listed) seen.listed++;
      seen.refused += r.refused;
      seen.maxSealedBoxes = Math.max(seen.maxSealedBoxes, r.sealedBoxes);
      for (const f of r.findings) seen.findings.add(f);
      await new Promise((res) => setTimeout(res, 1500));
    }
  })();
  return { seen, stop: async () => { stopped = true; await loop; } };
}

interface RunOutcome {
  rotation: any;
  before: { disk: Map<string, string>; state: string };
  state: string;
}

// controlPlaneRestarted: kube-controller-manager and kube-scheduler read a renewed
// file, so their containers were restarted and the leases have new holders;
// otherwise (service etcd: only etcd reads kube-etcd-<ip>) the same holders keep renewing.
async function rotate(name: string, spec: Record<string, unknown>, expectServedChanged: (key: string) => boolean, controlPlaneRestarted: boolean): Promise<RunOutcome> {
  const servers = cluster().servers;
  const before = { disk: await diskSerials(servers, SERVED), state: await cluster().readClusterState() };
  const beforeLeases = await leases(cluster().kubeconfig);
  const rotation = await suite.run(name, { distribution: 'rke', ...spec, strategy: { nodeTimeout: '5m' } }, { condition: 'Ready', timeout: '900s', traffic: newTraffic(name) });
  expect(rotation.status.phase).toBe('Succeeded');
  const state = await cluster().readClusterState();
  const admin = kubeAdminOf(state);
  for (const n of servers) {
    for (const via of servers) {
      // The NEW kube-node pair of every host is etcd's client; the API servers take the state's kube-admin.
      expect(await etcdHealth(n, via)).toEqual({ status: 200, body: expect.stringContaining('"health":"true"') });
      expect((await getTls(`https://${n.ip}:6443/readyz`, admin, kubeCa(via))).status).toBe(200);
    }
  }
  for (const n of cluster().nodes) expect([n.name, await workerPlaneHealthy(n)]).toEqual([n.name, true]);
  // Every endpoint serves what is on disk, verified by openssl against the unchanged kube-ca; in scope it is new.
  await expectServedIsDisk(servers, SERVED, before.disk, expectServedChanged);
  for (const n of servers) for (const s of SERVED) expect(await opensslVerify(kubeCa(n), await servedPem(n.ip, s.port))).toMatch(/: OK$/);
  // The state holds what the hosts hold, in desiredState and currentState alike.
  const parsed = parseFullState(state);
  for (const n of cluster().nodes) {
    for (const f of ['kube-node', 'kube-proxy', ...(n.server ? ['kube-apiserver', etcdCertName(n.ip)] : [])]) {
      expect(`${n.name} ${f} ${await diskSerial(ssl(n, `${f}.pem`))}`).toBe(`${n.name} ${f} ${stateSerial(state, f)}`);
    }
  }
  expect(parsed.desiredState!.certificatesBundle!['kube-node']!.certificatePEM === parsed.currentState!.certificatesBundle!['kube-node']!.certificatePEM).toBe(true);
  // The bundle (the only other copy of the new keys) is gone.
  const secrets = await kubectlOk(['get', 'secrets', '-A', '-o', 'jsonpath={.items[*].metadata.name}'], { kubeconfig: cluster().kubeconfig });
  expect(secrets.split(' ')).not.toContain('certrotator-rke-bundle');
  // The controller-manager and scheduler hold their leases (restarted ones, where they were restarted).
  await expectLeasesRenewed(cluster().kubeconfig, beforeLeases, rotation, controlPlaneRestarted);
  return { rotation, before, state };
}

describe('RKE with real etcd, kube-apiserver, kube-controller-manager and kube-scheduler', () => {
  test('the hosts are what RKE makes: components read /etc/kubernetes/ssl, anonymous requests are refused, the worker reaches the API servers through nginx-proxy', async () => {
    for (const n of cluster().nodes) {
      const ls = await cluster().exec(n, ['ls', '/etc/kubernetes/ssl']);
      expect(ls.stdout).toContain('kube-node.pem');
      expect(ls.stdout.includes('kube-ca-key.pem')).toBe(n.server);
      expect(await workerPlaneHealthy(n)).toBe(true);
    }
    for (const n of cluster().servers) {
      expect((await getTls(`https://${n.ip}:6443/readyz`, undefined, kubeCa(n))).status).toBe(401);
      expect(etcdIsHealthy(await etcdHealth(n, n))).toBe(true);
    }
  });

  test('without full-cluster-state there is nothing to issue from: a worker (no kube-ca key on the host) refuses before touching a file, naming why', async () => {
    const worker = cluster().nodes.find((n) => !n.server)!;
    const before = readFileSync(ssl(worker, 'kube-proxy.pem'), 'utf8');
    await applyRotation('real-rke-nostate', {
      distribution: 'rke',
      scope: 'Service',
      service: 'kube-proxy',
      strategy: { nodeSelector: { matchExpressions: [{ key: 'node-role.kubernetes.io/controlplane', operator: 'DoesNotExist' }] } },
    }, cluster().kubeconfig);
    await waitRotationCondition('real-rke-nostate', 'Stalled', { timeout: '120s', debug: suite.debug, kubeconfig: cluster().kubeconfig });
    const r = await getJson('certrotation', 'real-rke-nostate', cluster().kubeconfig);
    expect(condition(r, 'Stalled').message).toContain(worker.name);
    expect(condition(r, 'Stalled').message).toMatch(/kube-ca-key\.pem: missing/);
    expect(readFileSync(ssl(worker, 'kube-proxy.pem'), 'utf8') === before).toBe(true);
    await kubectlOk(['delete', 'certrotation', 'real-rke-nostate', '--wait=true'], { kubeconfig: cluster().kubeconfig });
  }, 180_000);

  test('scope All: hosts one at a time, one issue of every certificate from the state, kube-admin renewed in the state only; the cluster keeps serving', async () => {
    await cluster().saveClusterState();
    // The agents' token (a worker's included) can get no private key: before the run, throughout it, after it.
    expect(await exposedToAgentToken('real-rke-all')).toMatchObject({ findings: [], listed: true });
    const exposure = watchAgentTokenExposure('real-rke-all');
    let outcome: RunOutcome;
    try {
      outcome = await rotate('real-rke-all', { scope: 'All' }, () => true, true);
    } finally {
      await exposure.stop();
    }
    const { before, state, rotation } = outcome;
    expect([...exposure.seen.findings]).toEqual([]);
    process.stderr.write(`real-rke-all: agent token sampled ${exposure.seen.samples} times (${exposure.seen.listed} listed, ${exposure.seen.refused} of ${exposure.seen.samples * 4} secret reads refused), at most ${exposure.seen.maxSealedBoxes} sealed boxes seen\n`);
    expect(exposure.seen.listed).toBeGreaterThan(10);
    // Reads that got no answer are not findings, so most reads must have had one.
    expect(exposure.seen.refused).toBeGreaterThan(exposure.seen.samples * 4 * 0.5);
    expect(exposure.seen.maxSealedBoxes).toBeGreaterThan(0); // it looked while the sealed certificates were there
    expect(await exposedToAgentToken('real-rke-all')).toMatchObject({ findings: [], listed: true });
    // What each agent opened: what RKE deploys to its roles (pki/util.go getCertKeys); the worker only kube-node and kube-proxy.
    for (const n of cluster().nodes) {
      const opened = readFileSync(cluster().agents.get(n.name)!.log, 'utf8').split('\n').filter((l) => l.includes("opened this node's sealed certificates")).map((l) => JSON.parse(l).entries);
      const expected = n.server
        ? ['kube-apiserver', 'kube-apiserver-proxy-client', 'kube-controller-manager', ...cluster().servers.map((s) => etcdCertName(s.ip)).sort(), 'kube-node', 'kube-proxy', 'kube-scheduler'].sort()
        : ['kube-node', 'kube-proxy'];
      expect([n.name, opened]).toEqual([n.name, [expected]]);
    }
    expect(await runPhases(rotation.metadata.name, [], cluster().kubeconfig)).toEqual(allIn(cluster().nodes.map((n) => n.name), 'Rotated'));
    // Servers one at a time, then the worker (etcd plane, control plane, worker plane).
    const iv = intervals(await nodeRotations('real-rke-all', cluster().kubeconfig));
    expect(overlappingServers(iv)).toEqual([]);
    expect(iv.map((i) => i.node).at(-1)).toBe(cluster().nodes.find((n) => !n.server)!.name);
    // Shared pairs: one new serial everywhere (kube-node on every host, kube-apiserver on every server).
    for (const f of ['kube-node', 'kube-proxy', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-apiserver-proxy-client', 'kube-admin']) {
      expect(`${f} ${stateSerial(state, f)}`).not.toBe(`${f} ${stateSerial(before.state, f)}`);
    }
    // Not renewed by rke cert rotate: the CAs and the service-account token key.
    for (const f of ['kube-ca', 'kube-apiserver-requestheader-ca', 'kube-service-account-token']) {
      expect(`${f} ${stateSerial(state, f)}`).toBe(`${f} ${stateSerial(before.state, f)}`);
    }
    // kube-admin was never put on a host, and the user is told to refresh the workstation's copies.
    for (const n of cluster().nodes) expect((await cluster().exec(n, ['ls', '/etc/kubernetes/ssl'])).stdout).not.toContain('kube-admin');
    const events = await kubectlOk(['get', 'events', '-A', '--field-selector', 'reason=KubeAdminRenewed', '-o', 'jsonpath={.items[*].message}'], { kubeconfig: cluster().kubeconfig });
    expect(events).toContain('rke util get-kubeconfig');
  }, 1_000_000);

  test('service etcd: new kube-etcd-<ip> pairs served on 2379 and 2380 by every member, nothing else renewed', async () => {
    const { before, state } = await rotate('real-rke-etcd', { scope: 'Service', service: 'etcd' }, (key) => !key.endsWith(':6443'), false);
    for (const n of cluster().servers) expect(stateSerial(state, etcdCertName(n.ip))).not.toBe(stateSerial(before.state, etcdCertName(n.ip)));
    for (const f of ['kube-node', 'kube-apiserver', 'kube-admin']) expect(`${f} ${stateSerial(state, f)}`).toBe(`${f} ${stateSerial(before.state, f)}`);
  }, 1_000_000);
});
