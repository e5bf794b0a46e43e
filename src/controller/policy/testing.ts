// Fixtures for the policy controller's unit tests: a policy, a node's
// inventory and a rotation, each as the API server would return it.
import type { CertificateInventory } from '../../api/certificateinventory.js';
import type { CertificateRotation, CertificateRotationInput } from '../../api/certificaterotation.js';
import type { CertificateRotationPolicy, CertificateRotationPolicySpec, CertificateRotationPolicyStatus } from '../../api/certificaterotationpolicy.js';
import { LABELS } from '../../api/constants.js';
import { POLICY_GENERATION_ANNOTATION } from './decide.js';
import type { PolicyDeps } from './reconcile-policy.js';

const DAY = 86_400_000;
/** A Wednesday. */
export const NOW = new Date('2027-01-06T03:00:00Z');

export function policy(spec: Partial<CertificateRotationPolicySpec> = {}, generation = 1): CertificateRotationPolicy {
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'CertificateRotationPolicy',
    metadata: { name: 'nightly', uid: 'uid-1', generation },
    spec: {
      renewBefore: '2160h',
      template: { scope: 'All', strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' } },
      renewExpiredOutsideWindow: false,
      suspend: false,
      historyLimit: 3,
      ...spec,
    },
  };
}

export function inventory(node: string, services: Record<string, number>, scannedAt = new Date(NOW.getTime() - 3600_000)): CertificateInventory {
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'CertificateInventory',
    metadata: { name: node },
    status: {
      nodeName: node,
      distribution: 'rke2',
      roles: 'etcd,controlplane',
      scannedAt: scannedAt.toISOString(),
      writtenAt: scannedAt.toISOString(),
      files: 10,
      endpoints: 2,
      expired: 0,
      errors: 0,
      services: Object.entries(services).map(([name, days]) => ({ name, notAfter: new Date(NOW.getTime() + days * DAY).toISOString(), path: `/var/lib/rancher/rke2/${name}.crt` })),
      staleEndpoints: [],
      unreadable: [],
    },
  };
}

/** The nodes a fixture rotation rotated (its NodeRotations would say so), each finished at its completedAt. */
const ROTATED = new WeakMap<CertificateRotation, Map<string, number>>();
export const rotatedBy = (r: CertificateRotation | undefined): ReadonlyMap<string, number> => (r && ROTATED.get(r)) ?? new Map();

export function rotation(name: string, phase: string | undefined, extra: { policy?: string; generation?: string; completedAt?: string; rotated?: string[] } = {}): CertificateRotation {
  const r = rotationObject(name, phase, extra);
  ROTATED.set(r, new Map((extra.rotated ?? []).map((n) => [n, Date.parse(extra.completedAt ?? '')])));
  return r;
}

function rotationObject(name: string, phase: string | undefined, extra: { policy?: string; generation?: string; completedAt?: string }): CertificateRotation {
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'CertificateRotation',
    metadata: {
      name,
      generation: 1,
      creationTimestamp: new Date(NOW.getTime() - DAY) as unknown as Date,
      labels: extra.policy ? { [LABELS.policy]: extra.policy } : {},
      annotations: extra.generation ? { [POLICY_GENERATION_ANNOTATION]: extra.generation } : {},
    },
    spec: { scope: 'All', mode: 'Apply', paused: false, strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' } },
    ...(phase
      ? {
          status: {
            observedGeneration: 1,
            phase: phase as never,
            ...(extra.completedAt ? { completedAt: extra.completedAt } : {}),
            conditions: [{ type: 'Ready', status: phase === 'Succeeded' ? 'True' : 'False', reason: phase, message: phase === 'Failed' ? 'node server-1 rolled back: verify failed' : '', lastTransitionTime: NOW.toISOString() }],
          },
        }
      : {}),
  } as CertificateRotation;
}

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** The policy controller's world in memory: what its caches hold, what the API server has, what it wrote. */
export class FakePolicyCluster {
  policies = new Map<string, CertificateRotationPolicy>();
  inventories: CertificateInventory[] = [inventory('server-1', { etcd: 200, 'api-server': 80 })];
  rotations: CertificateRotation[] = [];
  /** What the API server has that the cache has not delivered yet. */
  notYetCached: CertificateRotation[] = [];
  created: CertificateRotationInput[] = [];
  patches: [string, Record<string, unknown>][] = [];
  deleted: string[] = [];
  statusWrites = 0;
  events: string[] = [];
  now = NOW;

  deps(): PolicyDeps {
    return {
      policy: (n) => this.policies.get(n),
      inventories: () => this.inventories,
      nodeLabels: () => new Map([['server-1', {}]]),
      rotations: () => this.rotations,
      rotatedNodes: rotatedBy,
      listOwnedFresh: async (p) => [...this.rotations, ...this.notYetCached].filter((r) => r.metadata.labels?.[LABELS.policy] === p),
      createRotation: async (r) => void this.created.push(r),
      patchRotation: async (n, patch) => void this.patches.push([n, patch]),
      deleteRotation: async (n) => void this.deleted.push(n),
      writeStatus: async (p, status: CertificateRotationPolicyStatus) => {
        this.statusWrites++;
        this.policies.set(p.metadata.name!, { ...p, status });
      },
      event: (_p, type, reason, message) => void this.events.push(`${type} ${reason}: ${message}`),
      now: () => this.now,
      log: silent,
    };
  }
}
