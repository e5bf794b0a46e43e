import { describe, expect, it } from '@jest/globals';
import { WorkQueue } from '../kube/workqueue.js';
import { createMetrics, NodeCertificateSeries, workQueueHooks } from './metrics.js';

describe('metrics', () => {
  it('defines the design.md §3 metrics in its own registry, with default process metrics', async () => {
    const m = createMetrics();
    const names = (await m.registry.getMetricsAsJSON()).map((x) => x.name);
    for (const n of [
      'certrotator_certificate_not_after_timestamp_seconds',
      'certrotator_rotations_total',
      'certrotator_rotation_duration_seconds',
      'certrotator_node_steps_total',
      'certrotator_node_step_duration_seconds',
      'certrotator_reconcile_total',
      'certrotator_reconcile_duration_seconds',
      'certrotator_workqueue_depth',
      'certrotator_workqueue_adds_total',
      'certrotator_workqueue_retries_total',
      'certrotator_watch_errors_total',
      'certrotator_leader',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(names).toContain(n);
    }
    // two instances do not collide (tests, or controller + agent in one process)
    expect(() => createMetrics()).not.toThrow();
  });

  it('records a work queue: adds, retries, reconciles, and depth sampled at scrape', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const q = new WorkQueue({ name: 'certificaterotation', hooks: workQueueHooks(m, 'certificaterotation') });
    m.observeQueueDepth(q);
    q.add('a');
    q.add('b');
    q.add('a');
    let text = await m.registry.metrics();
    expect(text).toContain('certrotator_workqueue_depth{name="certificaterotation"} 2');
    expect(text).toContain('certrotator_workqueue_adds_total{name="certificaterotation"} 2');
    let calls = 0;
    const running = q.run(1, async (key) => {
      calls++;
      if (key === 'a' && calls === 1) throw new Error('x');
    });
    while (calls < 2) await new Promise((r) => setTimeout(r, 5));
    await q.shutDown();
    await running;
    text = await m.registry.metrics();
    expect(text).toContain('certrotator_workqueue_depth{name="certificaterotation"} 0');
    expect(text).toContain('certrotator_workqueue_retries_total{name="certificaterotation"} 1');
    expect(text).toContain('certrotator_reconcile_total{controller="certificaterotation",result="error"} 1');
    expect(text).toContain('certrotator_reconcile_total{controller="certificaterotation",result="success"} 1');
    expect(text).toMatch(/certrotator_reconcile_duration_seconds_count\{controller="certificaterotation"\} 2/);
  });
});

describe('NodeCertificateSeries', () => {
  it('removes every series of a node that left the cluster, and only those', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const series = new NodeCertificateSeries(m.certificateNotAfter);
    series.set('w1', 'kubelet', 100);
    series.set('w1', 'kube-proxy', 200);
    series.set('s1', 'etcd', 300);
    expect(series.keepOnly(new Set(['s1']))).toEqual(['w1']);
    const text = await m.registry.metrics();
    expect(text).not.toMatch(/certificate_not_after_timestamp_seconds\{[^}]*node="w1"/);
    expect(text).toMatch(/certificate_not_after_timestamp_seconds\{node="s1",service="etcd"\} 300/);
    expect(series.keepOnly(new Set(['s1']))).toEqual([]);
  });
});
