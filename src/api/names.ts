// Names and labels the controller derives for a run's NodeRotations. Pure and
// deterministic: a controller that restarts mid-run must derive the same name
// for the same (rotation, generation, node), so `create` either succeeds once
// or says AlreadyExists — never a second instruction for the same node.

import { createHash } from 'node:crypto';
import { LABELS } from './constants.js';

const MAX_NAME = 253; // DNS subdomain, what metadata.name allows
const MAX_LABEL_VALUE = 63;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 10);
}

/** Cut `text` to fit `max` with a hash of the whole, so distinct inputs stay distinct. */
function fit(text: string, max: number): string {
  if (text.length <= max) return text;
  const hash = shortHash(text);
  const head = text.slice(0, max - hash.length - 1).replace(/[^A-Za-z0-9]+$/, '');
  return `${head}-${hash}`;
}

/**
 * `<rotation>-g<generation>-<node>-<hash>`. The readable part alone can be the
 * same for two runs (rotation `a` + node `g1-x` and rotation `a-g1` + node `x`
 * both read `a-g1-g1-x`), and a create that answers AlreadyExists counts as
 * done: the hash of the three, joined by a character no name can hold, keeps
 * each node's instruction its own. Shortened (with a hash) when too long.
 */
export function nodeRotationName(rotation: string, generation: number, node: string): string {
  const hash = shortHash(`${rotation}/${generation}/${node}`);
  return `${fit(`${rotation}-g${generation}-${node}`, MAX_NAME - hash.length - 1)}-${hash}`;
}

/**
 * `<secret>-crbak-g<generation>-<hash>`: the backup of a Secret-backed target's
 * Secret, kept beside it (same namespace) until the renewal is verified. The same
 * inputs give the same name, so a controller that restarts after creating it
 * meets AlreadyExists instead of making a second copy.
 */
export function secretBackupName(secret: string, rotation: string, generation: number): string {
  const hash = shortHash(`${rotation}/${generation}/${secret}`);
  return `${fit(`${secret}-crbak-g${generation}`, MAX_NAME - hash.length - 1)}-${hash}`;
}

/**
 * The agent's journal key for one run. Includes the rotation's UID, so a
 * rotation deleted and re-created under the same name never resumes an old
 * journal.
 */
export function runID(rotationUID: string, generation: number): string {
  return `${rotationUID}-g${generation}`;
}

/** A value that is a valid label value: node names can be 253 characters, label values only 63. */
export function labelValue(text: string): string {
  if (text.length <= MAX_LABEL_VALUE && LABEL_VALUE.test(text)) return text;
  return fit(text.replace(/[^-A-Za-z0-9_.]/g, '-'), MAX_LABEL_VALUE);
}

export function nodeRotationLabels(rotation: string, generation: number, node: string): Record<string, string> {
  return {
    [LABELS.rotation]: labelValue(rotation),
    [LABELS.generation]: String(generation),
    [LABELS.node]: labelValue(node),
  };
}
