// Chaos: a rotation of 3 servers and 20 workers (maxUnavailable 5) while a
// seeded schedule SIGKILLs, 50 times, a controller replica (leader or standby)
// or an agent (one in flight, or any), each restarted at once as its Deployment
// or DaemonSet would. Two controller replicas share a Lease with short timings
// (--leader-elect-lease-duration 4), so a killed leader is replaced in seconds.
//
// At the end: every node rotated exactly once (one finished journal of this
// run per node, and every reported file's serial is new and is the one on
// disk), every renewed file verifies against a CA of the cluster (openssl; the
// controller-manager's and scheduler's own serving pairs against the CA in the same file),
// never two servers in flight at any sampled instant nor in the reported
// intervals, and nothing left behind (no NodeRotation in flight, no partial
// backup or temporary file on any host). The schedule is printed with its
// seed: CERTROTATOR_CHAOS_SEED=<seed> replays it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { NodeRotation } from '../../src/api/noderotation.js';
import { loadKubeConfig, makeClients, type ClusterCustomResource } from '../../src/kube/client.js';
import { PARTIAL_PREFIX } from '../../src/host/backup.js';
import { JOURNAL_DIR, JOURNAL_FILE } from '../../src/host/journal.js';
import { TEMP_MARK } from '../../src/host/root.js';
import type { SimulatedFleet } from '../../src/simulation/fleet.js';
import type { ClusterState } from '../cluster/cluster.js';
import { seededRandom } from '../cluster/random.js';
import { ControllerProcess, waitFor } from './support/controller.js';
import {
  applyRotation,
  fleetDebug,
  getJson,
  intervals,
  isServerRole,
  nodeRotations,
  normSerial,
  opensslVerify,
  overlappingServers,
  pemSerial,
  startFleetAndController,
  startSeparateCluster,
  stopFleetAndController,
  stopSeparateCluster,
  waitRotationCondition,
} from './support/rotation.js';

const P = 'chaos-';
const KILLS = 50;
const SEED = Number(process.env.CERTROTATOR_CHAOS_SEED ?? Date.now() % 1_000_000);
const LEASE = 'chaos-controller';
// A standby takes over within about 4 s of the leader's death.
const FAST_LEASE = ['--leader-elect-lease-duration=4', '--leader-elect-renew-deadline=3', '--leader-elect-retry-period=1'];

let dir: string;
let cluster: ClusterState;
let fleet: SimulatedFleet;
let kubeconfig: string;
const replicas: ControllerProcess[] = [];
let replicaCount = 0;

function startReplica(): ControllerProcess {
  const c = new ControllerProcess(`chaos-${++replicaCount}`, { leaseName: LEASE, extraArgs: [`--kubeconfig=${kubeconfig}`, ...FAST_LEASE] });
  replicas.push(c);
  return c;
}
const alive = (): ControllerProcess[] => replicas.filter((c) => !c.exit);
const debug = (): string => `${alive().map((c) => c.debug()).join('\n')}\n${fleetDebug(fleet, undefined, cluster.nodes.map((n) => n.name).slice(0, 6))}`;

/** Every file under `root`, relative to it. */
function walk(root: string, dir = root, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(root, p, out);
    else out.push(relative(root, p));
  }
  return out;
}

beforeAll(async () => {
  ({ dir, cluster } = await startSeparateCluster('chaos-e2e-', { distribution: 'rke2', servers: 3, workers: 20, octetBase: 140 }));
  kubeconfig = cluster.kubeconfig;
  const started = await startFleetAndController({
    workDir: join(dir, 'fleet'), distribution: 'rke2', nodes: cluster.nodes.map((n) => ({ name: n.name, ip: n.ip, roles: n.roles })), kubeconfig,
    controllerId: 'chaos-0', leaseName: LEASE,
  });
  fleet = started.fleet;
  // Two replicas with the short Lease timings take over from the helper's (default timings), which hands over gracefully.
  startReplica();
  startReplica();
  await started.controller.stop();
  await waitFor('a fast-lease replica leading', () => alive().some((c) => c.leading()), 30_000, debug);
}, 300_000);

afterAll(async () => {
  try {
    const [keep, ...others] = alive();
    for (const c of others) await c.stop();
    await stopFleetAndController(fleet, keep, { prefix: P, kubeconfig });
  } finally {
    await stopSeparateCluster(dir);
  }
}, 180_000);

describe(`chaos: 50 SIGKILLs of controller replicas and agents during a rotation of 3 servers + 20 workers (seed ${SEED})`, () => {
  it('every node rotated exactly once, every file new and verified, never two servers in flight, nothing left behind', async () => {
    const random = seededRandom(SEED);
    const nrs = makeClients(loadKubeConfig({ kubeconfig })).nodeRotations as unknown as ClusterCustomResource<NodeRotation>;
    const name = `${P}all`;
    const schedule: string[] = [];
    const killedAt: number[] = [];
    let maxServersInFlight = 0;
    let samples = 0;
    let done = false;

    // Never two servers in flight: the NodeRotations, sampled every 200 ms.
    const sampler = (async () => {
      while (!done) {
        const list = (await nrs.list(`certrotator.io/rotation=${name}`).catch(() => ({ items: [] as NodeRotation[] }))).items;
        const servers = list.filter((nr) => isServerRole(nr.spec.role) && nr.status?.phase === 'Updating').length;
        maxServersInFlight = Math.max(maxServersInFlight, servers);
        samples++;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    const t0 = Date.now();
    await applyRotation(name, { distribution: 'rke2', scope: 'All', strategy: { maxUnavailable: 5, nodeTimeout: '5m' } }, kubeconfig);
    for (let k = 0; k < KILLS; k++) {
      await new Promise((r) => setTimeout(r, 300 + random() * 900));
      const list = (await nrs.list(`certrotator.io/rotation=${name}`)).items;
      const inFlight = list.filter((nr) => nr.status?.phase === 'Updating' || nr.status?.phase === 'Pending').map((nr) => nr.spec.nodeName);
      const roll = random();
      killedAt.push(Date.now());
      const at = `${((Date.now() - t0) / 1000).toFixed(1)}s`;
      if (roll < 0.25) {
        const leader = alive().find((c) => c.leading() && !c.lines.some((l) => l.msg.includes('leadership lost')));
        const victim = leader ?? alive()[0]!;
        victim.kill('SIGKILL');
        schedule.push(`${at} controller ${victim.identity}${leader ? ' (leader)' : ''}`);
        startReplica();
      } else if (roll < 0.35) {
        const standby = alive().find((c) => !c.leading()) ?? alive()[0]!;
        standby.kill('SIGKILL');
        schedule.push(`${at} controller ${standby.identity} (standby)`);
        startReplica();
      } else {
        const pool = roll < 0.8 && inFlight.length > 0 ? inFlight : cluster.nodes.map((n) => n.name);
        const node = pool[Math.floor(random() * pool.length)]!;
        await fleet.stopAgent(node, 'SIGKILL');
        schedule.push(`${at} agent ${node}${inFlight.includes(node) ? ' (in flight)' : ''}`);
        await fleet.startAgent(node);
      }
    }
    const killsDoneAt = (Date.now() - t0) / 1000;
    try {
      await waitRotationCondition(name, 'Ready', { timeout: '600s', kubeconfig, debug });
    } finally {
      done = true;
      await sampler;
      process.stderr.write(`chaos seed ${SEED}: ${schedule.length} kills in ${killsDoneAt.toFixed(1)} s, run done at ${((Date.now() - t0) / 1000).toFixed(1)} s; ${samples} samples, at most ${maxServersInFlight} server(s) in flight\nschedule:\n  ${schedule.join('\n  ')}\n`);
    }
    const rotation = await getJson('certrotation', name, kubeconfig);
    expect(rotation.status.phase).toBe('Succeeded');
    expect(schedule).toHaveLength(KILLS);
    // The kills fell inside the run, not after it.
    expect(killedAt.filter((t) => t < Date.parse(rotation.status.completedAt)).length).toBeGreaterThanOrEqual(KILLS - 5);

    // Never two servers at once: sampled, and in the intervals the agents reported.
    expect(samples).toBeGreaterThan(20);
    expect(maxServersInFlight).toBeLessThanOrEqual(1);
    const finished = await nodeRotations(name, kubeconfig);
    expect(finished).toHaveLength(23);
    expect(overlappingServers(intervals(finished))).toEqual([]);

    // Exactly once per node: one journal of this run, finished; no other run's journal was started by it.
    const cas = join(dir, 'cluster-cas.pem');
    const first = fleet.hostRoot(cluster.nodes.find((n) => n.roles.includes('controlplane'))!.name);
    writeFileSync(cas, walk(first).filter((f) => /server\/tls\/(etcd\/)?[a-z-]*ca\.crt$/.test(f)).map((f) => readFileSync(join(first, f), 'utf8')).join(''));
    for (const nr of finished) {
      const node = nr.spec.nodeName;
      const root = fleet.hostRoot(node);
      const files = walk(root);
      const journals = files.filter((f) => f.endsWith(join(JOURNAL_DIR, JOURNAL_FILE))).map((f) => JSON.parse(readFileSync(join(root, f), 'utf8')));
      const ours = journals.filter((j) => j.runId === nr.spec.runID);
      expect([node, ours.length, ours[0]?.step]).toEqual([node, 1, 'done']);
      expect([node, journals.length]).toEqual([node, 1]);
      // Nothing left behind on the host.
      expect([node, files.filter((f) => f.includes(PARTIAL_PREFIX) || f.includes(TEMP_MARK))]).toEqual([node, []]);
      // Every reported file: a new serial, the one on disk, and it verifies against a CA of the cluster.
      expect(nr.status!.phase).toBe('Rotated');
      for (const f of nr.status!.files ?? []) {
        const onDisk = join(root, f.path);
        if (!f.newSerial || !statSync(onDisk, { throwIfNoEntry: false })) continue;
        const pem = readFileSync(onDisk, 'utf8');
        if (!pem.includes('BEGIN CERTIFICATE')) continue;
        expect(`${node}:${f.path} ${normSerial(await pemSerial(pem))}`).toBe(`${node}:${f.path} ${normSerial(f.newSerial)}`);
        expect(`${node}:${f.path} ${normSerial(f.newSerial)}`).not.toBe(`${node}:${f.path} ${normSerial(f.oldSerial ?? '')}`);
        // kube-controller-manager and kube-scheduler make their own serving pair (before k3s #12285):
        // client-go writes the leaf and the one-off CA that signed it into the same file.
        const ownPair = /\/server\/tls\/(kube-controller-manager|kube-scheduler)\/[^/]+\.crt$/.test(f.path);
        expect(`${node}:${f.path} ${await opensslVerify(ownPair ? onDisk : cas, pem)}`).toMatch(/: OK$/);
      }
    }
    // No NodeRotation of the run left in flight, and every replica still running is healthy.
    expect(finished.filter((nr) => nr.status?.phase !== 'Rotated')).toEqual([]);
    await waitFor('a leader', () => alive().some((c) => c.leading()), 30_000, debug);
  }, 900_000);
});
