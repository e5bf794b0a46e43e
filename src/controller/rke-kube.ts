// RkeClusterAccess against a real API server. Every call goes to the API
// server (no cache): these objects are read a handful of times per run, and
// the state must be read fresh for its write to be fenced by resourceVersion.
// Nothing here logs a Secret's contents.
import type { CoreV1Api, V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { API_VERSION, CERTIFICATE_ROTATION } from '../api/constants.js';
import type { CertificateRotation } from '../api/certificaterotation.js';
import { isAlreadyExists, isNotFound } from '../kube/client.js';
import type { WriteCounter } from './kube-adapter.js';
import { BUNDLE_RUN_ANNOTATION, FULL_CLUSTER_STATE } from './rke-bundle.js';
import type { RkeClusterAccess, RkeStateHandle } from './rke-run.js';

const orUndefined = async <T>(p: Promise<T>): Promise<T | undefined> => {
  try {
    return await p;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
};

export function kubeRkeAccess(core: CoreV1Api, bundleNamespace: string, count: WriteCounter = () => {}): RkeClusterAccess {
  const { namespace, name, key } = FULL_CLUSTER_STATE;
  return {
    bundleNamespace,
    async readState(): Promise<RkeStateHandle | undefined> {
      // RKE ≥ 1.6 keeps it in a Secret; older versions in a ConfigMap of the same name.
      const secret: V1Secret | undefined = await orUndefined(core.readNamespacedSecret({ namespace, name }));
      const secretText = secret?.data?.[key];
      if (secret && secretText !== undefined) {
        return {
          kind: 'Secret',
          text: Buffer.from(secretText, 'base64').toString('utf8'),
          replace: async (text) => {
            count('update', 'secrets');
            // Fenced: the body carries the resourceVersion it was read at (409 when it changed since).
            await core.replaceNamespacedSecret({ namespace, name, body: { ...secret, data: { ...secret.data, [key]: Buffer.from(text).toString('base64') } } });
          },
        };
      }
      const cm: V1ConfigMap | undefined = await orUndefined(core.readNamespacedConfigMap({ namespace, name }));
      const cmText = cm?.data?.[key];
      if (!cm || cmText === undefined) return undefined;
      return {
        kind: 'ConfigMap',
        text: cmText,
        replace: async (text) => {
          count('update', 'configmaps');
          await core.replaceNamespacedConfigMap({ namespace, name, body: { ...cm, data: { ...cm.data, [key]: text } } });
        },
      };
    },
    async getBundle(bundle) {
      const s = await orUndefined(core.readNamespacedSecret({ namespace: bundleNamespace, name: bundle }));
      if (!s) return undefined;
      const runId = s.metadata?.annotations?.[BUNDLE_RUN_ANNOTATION];
      return { data: s.data ?? {}, ...(runId ? { runId } : {}) };
    },
    async createBundle(bundle, data, runId, owner: CertificateRotation) {
      count('create', 'secrets');
      try {
        await core.createNamespacedSecret({
          namespace: bundleNamespace,
          body: {
            apiVersion: 'v1',
            kind: 'Secret',
            type: 'Opaque',
            metadata: {
              name: bundle,
              namespace: bundleNamespace,
              labels: { 'app.kubernetes.io/managed-by': 'certrotator', 'certrotator.io/rke-bundle': 'true' },
              annotations: { [BUNDLE_RUN_ANNOTATION]: runId },
              // Goes with its rotation if the run never gets to delete it.
              ownerReferences: [{ apiVersion: API_VERSION, kind: CERTIFICATE_ROTATION.kind, name: owner.metadata.name!, uid: owner.metadata.uid! }],
            },
            immutable: true,
            data,
          },
        });
      } catch (e) {
        if (!isAlreadyExists(e)) throw e;
      }
    },
    async deleteBundle(bundle) {
      count('delete', 'secrets');
      await orUndefined(core.deleteNamespacedSecret({ namespace: bundleNamespace, name: bundle }));
    },
  };
}
