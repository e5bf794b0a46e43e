// The Event recorder against the real API server: the Event it writes passes
// validation, lands in `default` for a cluster-scoped object, and a burst of
// identical events becomes one Event whose count kubectl shows.
import { describe, expect, it } from '@jest/globals';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { EventRecorder } from '../../src/kube/events.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { waitFor } from './support/controller.js';

interface EventList {
  items: { type: string; reason: string; message: string; count: number; involvedObject: { kind: string; name: string }; source: { component: string } }[];
}

describe('EventRecorder against the real API server', () => {
  it('writes valid Events and aggregates a burst into one Event with a count', async () => {
    const name = `events-e2e-${Date.now().toString(36)}`;
    const rec = new EventRecorder({ kc: loadKubeConfig(), component: 'certrotator-controller', minUpdateIntervalMs: 200 });
    const involved = { apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name, uid: '6f1c2a3e-0000-4000-8000-000000000001' } };
    try {
      for (let i = 0; i < 50; i++) rec.warning(involved, 'NodeFailed', 'node rke2-worker-1 failed at step restart-agent');
      rec.normal(involved, 'RunFinished', 'all 6 nodes rotated');
      const events = async (): Promise<EventList> =>
        JSON.parse(await kubectlOk(['-n', 'default', 'get', 'events', '--field-selector', `involvedObject.name=${name}`, '-o', 'json'])) as EventList;
      // The recorder's own interval timer (not a flush) writes the folded count.
      await waitFor('the burst folded into one Event of count 50', async () => (await events()).items.some((e) => e.reason === 'NodeFailed' && e.count === 50), 30_000);
      await rec.flush();
      const list = await events();
      const byReason = Object.fromEntries(list.items.map((e) => [e.reason, e]));
      expect(list.items).toHaveLength(2);
      expect(byReason.NodeFailed).toMatchObject({ type: 'Warning', count: 50, message: 'node rke2-worker-1 failed at step restart-agent' });
      expect(byReason.NodeFailed!.involvedObject).toMatchObject({ kind: 'CertificateRotation', name });
      expect(byReason.NodeFailed!.source.component).toBe('certrotator-controller');
      expect(byReason.RunFinished).toMatchObject({ type: 'Normal', count: 1 });
    } finally {
      await rec.close();
      await kubectl(['-n', 'default', 'delete', 'events', '--field-selector', `involvedObject.name=${name}`]);
    }
  });
});
