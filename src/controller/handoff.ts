// The hand-off path: when an agent's report frees a slot, the node that status
// named next (status.nextNodes) is created at once, without waiting behind the
// pass in flight.
//
// The rotation's passes run one at a time, and each waits for its fenced
// status write. A report that lands while a pass is writing would wait for
// that write, then for its own pass, before its slot is filled. This path
// takes the same decision (decideCascade, from the run the last written pass
// kept, at the resourceVersion the cache holds) and carries out only its first
// creates: the nodes whose intent a written status already records. It writes
// nothing, emits nothing, and does nothing when there is no kept run to decide
// from (the pass that follows does it all).
//
// Why that is as safe as a pass: it is a pass on a cache that may be a write
// behind, whose write is never sent. cascade.ts says why such a pass never
// starts a second server or more than maxUnavailable workers: it creates only
// nodes named next, only when a report it has seen frees their slot, and a
// node named next that exists is counted in flight (adopted). Every decider
// starts nodes in plan order, so what one started is a prefix of what another
// would; the create pipeline sends each object once.
import type { ControllerDeps } from './deps.js';
import { bundledRun, decideFrom, runOf } from './reconcile-rotation.js';
import { keptBasisFor } from './run-index.js';
import { runActive } from './run-state.js';
import { secretRunActive } from './secrets/run-secrets.js';

/** Decisions per written status at most: see startNamedNext. */
export const DECISIONS_PER_STATUS = 3;

/**
 * Creates the nodes named next whose slots reports have freed; returns how many
 * it handed to the create pipeline. `decided` counts, per rotation, the
 * decisions taken at the resourceVersion the cache holds: at most
 * DECISIONS_PER_STATUS. Each decision goes over every report since that
 * status, so when reports come much faster than passes (agents that finish at
 * once), deciding on every one cost more CPU than the passes did; the pass
 * that follows takes in the rest, as it batches them anyway.
 */
export function startNamedNext(deps: ControllerDeps, name: string, decided: Map<string, { at: string; n: number }> = new Map()): number {
  const rotation = deps.read.rotation(name);
  const base = rotation?.status;
  if (!rotation) decided.delete(name);
  if (!rotation || !base?.startedAt || !deps.creates || rotation.metadata.deletionTimestamp) return 0;
  if (!runActive(base) || secretRunActive(base) || !base.nextNodes?.length || bundledRun(deps, base.distribution)) return 0;
  const at = rotation.metadata.resourceVersion ?? '';
  const seen = decided.get(name);
  if (seen?.at === at && seen.n >= DECISIONS_PER_STATUS) return 0;
  const here = keptBasisFor(deps, rotation, base, base.startedAt);
  if (!here) return 0;
  decided.set(name, { at, n: seen?.at === at ? seen.n + 1 : 1 });
  const d = decideFrom(deps, runOf(rotation, base).run, base, here, deps.now());
  deps.creates.start(name, d.createFirst);
  return d.createFirst.length;
}
