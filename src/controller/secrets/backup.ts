// The backup of a Secret-backed target's Secret (issue 13 §3 and §6): a copy
// made before the Secret is renewed in place or deleted for its owner to
// regenerate, kept until the renewal is verified, and what a rollback restores.
//
// Why a Secret and not the status: the copy holds a private key, which must
// never appear in a status, an Event or a log; a Secret is where the cluster
// keeps keys, under the same RBAC as the original. It sits in the original's
// namespace (a copy elsewhere would widen who can read it) and is owned by the
// CertificateRotation, so deleting the rotation cannot leave copies of keys
// behind; the run deletes it itself once the target is verified.
// Run by target-steps.ts (scope: Secrets, mode: Apply).
import { API_VERSION, CERTIFICATE_ROTATION, GROUP } from '../../api/constants.js';
import { labelValue, secretBackupName } from '../../api/names.js';

/** The parts of a Secret that are backed up and restored. */
export interface SecretObject {
  metadata: {
    namespace: string;
    name: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  type?: string;
  data?: Record<string, string>;
}

export const BACKUP_LABELS = {
  /** The name of the Secret this one is a copy of (a label value: at most 63 characters). */
  of: `${GROUP}/backup-of`,
  rotation: `${GROUP}/rotation`,
} as const;

// Kept as annotations: what the restore needs that a backup of its own type would misrepresent.
const ORIGINAL_NAME = `${GROUP}/backup-of-name`;
const ORIGINAL_TYPE = `${GROUP}/backup-of-type`;
const ORIGINAL_LABELS = `${GROUP}/backup-of-labels`;
const ORIGINAL_ANNOTATIONS = `${GROUP}/backup-of-annotations`;
const ORIGINAL_RESOURCE_VERSION = `${GROUP}/backup-of-resource-version`;
// Regenerate: the webhook configurations deleted with the Secret, as JSON by Kind/name (they hold no key).
const REMOVED_FRONTS = `${GROUP}/backup-of-fronts`;

// Never copied: kubectl's last-applied annotation repeats the Secret's data, keys included, in clear.
const NOT_COPIED = new Set(['kubectl.kubernetes.io/last-applied-configuration']);
const copied = (m: Record<string, string> | undefined): Record<string, string> => Object.fromEntries(Object.entries(m ?? {}).filter(([k]) => !NOT_COPIED.has(k)));

export interface BackupOwner {
  name: string;
  uid: string;
  generation: number;
}

/**
 * The backup Secret to create before `original` is changed. Type Opaque: a copy
 * typed kubernetes.io/tls would look like a serving certificate to every tool
 * that lists them (and to certrotator's own discovery). `data` is copied whole,
 * not only the serving pair: a rollback must give back exactly what was there.
 */
export function backupOf(original: SecretObject, owner: BackupOwner, fronts?: Record<string, object>): SecretObject & { apiVersion: 'v1'; kind: 'Secret'; metadata: { ownerReferences: object[] } } {
  const { namespace, name } = original.metadata;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      namespace,
      name: secretBackupName(name, owner.name, owner.generation),
      labels: { [BACKUP_LABELS.of]: labelValue(name), [BACKUP_LABELS.rotation]: labelValue(owner.name) },
      annotations: {
        [ORIGINAL_NAME]: name,
        [ORIGINAL_TYPE]: original.type ?? 'Opaque',
        [ORIGINAL_LABELS]: JSON.stringify(original.metadata.labels ?? {}),
        [ORIGINAL_ANNOTATIONS]: JSON.stringify(copied(original.metadata.annotations)),
        ...(original.metadata.resourceVersion ? { [ORIGINAL_RESOURCE_VERSION]: original.metadata.resourceVersion } : {}),
        ...(fronts && Object.keys(fronts).length ? { [REMOVED_FRONTS]: JSON.stringify(fronts) } : {}),
      },
      ownerReferences: [{ apiVersion: API_VERSION, kind: CERTIFICATE_ROTATION.kind, name: owner.name, uid: owner.uid, controller: true, blockOwnerDeletion: false }],
    },
    type: 'Opaque',
    data: { ...(original.data ?? {}) },
  };
}

/**
 * What a rollback writes back, from the backup: the Secret as it was (data,
 * type, labels, annotations). Applied as an update of the renewed Secret, or as
 * a create when the owner's Secret was deleted (Regenerate). Refuses a backup
 * that is not one, rather than restoring something else over a Secret.
 */
export function restoredFrom(backup: SecretObject): SecretObject & { apiVersion: 'v1'; kind: 'Secret' } {
  const a = backup.metadata.annotations ?? {};
  const name = a[ORIGINAL_NAME];
  if (!name || !a[ORIGINAL_TYPE]) throw new Error(`Secret ${backup.metadata.namespace}/${backup.metadata.name} is not a certrotator backup (no ${ORIGINAL_NAME} / ${ORIGINAL_TYPE} annotations)`);
  const parse = (key: string): Record<string, string> => {
    try {
      return JSON.parse(a[key] ?? '{}') as Record<string, string>;
    } catch {
      throw new Error(`Secret ${backup.metadata.namespace}/${backup.metadata.name}: annotation ${key} is not the JSON object certrotator wrote`);
    }
  };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { namespace: backup.metadata.namespace, name, labels: parse(ORIGINAL_LABELS), annotations: parse(ORIGINAL_ANNOTATIONS) },
    type: a[ORIGINAL_TYPE],
    data: { ...(backup.data ?? {}) },
  };
}

/** The fronts a Regenerate backup keeps (Kind/name → the object as it was), for a rollback to put back. */
export function frontsIn(backup: SecretObject): Record<string, object> {
  const raw = backup.metadata.annotations?.[REMOVED_FRONTS];
  if (!raw) return {};
  try {
    return JSON.parse(raw) as Record<string, object>;
  } catch {
    throw new Error(`Secret ${backup.metadata.namespace}/${backup.metadata.name}: annotation ${REMOVED_FRONTS} is not the JSON object certrotator wrote`);
  }
}
