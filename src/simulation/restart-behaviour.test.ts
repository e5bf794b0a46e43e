// The catalog against the simulator's own tables, which were written from the
// distributions' sources apart from it. Where they disagree one of them is
// wrong; either way the simulator will not quietly agree with the catalog.
import { describe, expect, test } from '@jest/globals';
import { allFiles, catalogFor, fillPath } from '../distributions/index.js';
import { DISTRIBUTIONS } from '../distributions/services.js';
import { START_BEHAVIOUR, type StartStep } from './restart-behaviour.js';
import { HEALTH_ENDPOINTS, SERVED_FILES } from './served-files.js';

describe.each(DISTRIBUTIONS)('%s: catalog and simulator tables agree', (distribution) => {
  const catalog = catalogFor(distribution);
  const files = allFiles(catalog);
  // One node's view: the data dir and RKE's per-host name filled the same way on both sides.
  const path = (p: string) => fillPath(p, { dataDir: catalog.defaultDataDir, host: '10-0-0-1', nodeIPDashes: '10-0-0-1' });
  const steps: StartStep[] = START_BEHAVIOUR[distribution].flatMap((b) => b.steps);
  const of = <K extends StartStep['kind']>(kind: K) => steps.filter((s): s is Extract<StartStep, { kind: K }> => s.kind === kind);

  test('every trigger the catalog writes is one a start acts on, for the same file and CA', () => {
    const catalogTriggers = files.flatMap((f) => (f.renewal.kind === 'trigger' ? [{ trigger: f.renewal.trigger, file: f.cert, ca: f.renewal.ca.cert }] : []));
    expect(of('regenerate-on-trigger').map((s) => ({ trigger: s.trigger, file: s.file, ca: s.ca.cert }))).toEqual(catalogTriggers);
  });

  test('every marker file the catalog writes before a start is one the start consumes', () => {
    const markers = catalog.restart.flatMap((r) => (r.plan.kind === 'systemd-stop-start' ? r.plan.markerFiles : []));
    expect(of('consume-marker').map((s) => s.path).sort()).toEqual([...markers].sort());
  });

  test('the files the catalog leaves to a start to rewrite are exactly the ones a start rewrites', () => {
    const reissued = files.filter((f) => f.renewal.kind === 'reissued-on-start').map((f) => f.cert).sort();
    expect([...new Set([...of('reissue'), ...of('copy-from-supervisor')].map((s) => s.pair.cert))].sort()).toEqual(reissued);
    const copies = files.flatMap((f) => (f.renewal.kind === 'reissued-on-start' && f.renewal.copyOf ? [[f.cert, `${f.renewal.copyOf}.crt`]] : [])).sort();
    expect([...new Set(of('copy-from-supervisor'))].map((s) => [s.pair.cert, s.from.cert]).sort()).toEqual(copies);
  });

  test('the files the catalog removes to have them regenerated are the ones a start makes when missing', () => {
    const removed = files.filter((f) => f.renewal.kind === 'remove-to-regenerate').map((f) => [f.cert, f.key]).sort();
    expect(of('regenerate-when-missing').map((s) => [s.pair.cert, s.pair.key]).sort()).toEqual(removed);
  });

  test('the kubeconfigs the catalog expects rewritten at start are the ones a start writes, from the same pair', () => {
    const embedded = files.flatMap((f) => (f.embeddedIn ?? []).filter((e) => e.rewrittenOnStartOf).map((e) => [e.path, f.cert, e.serverCa])).sort();
    expect(of('write-kubeconfig').map((s) => [s.path, s.client.cert, s.serverCa]).sort()).toEqual(embedded);
  });

  test('every port the catalog verifies a served certificate on serves that file', () => {
    for (const f of files) {
      for (const served of f.servedOn ?? []) {
        const rows = SERVED_FILES[distribution].filter((r) => r.port === served.port);
        expect({ file: f.cert, port: served.port, served: rows.some((r) => path(r.cert) === path(f.cert!)) }).toEqual({ file: f.cert, port: served.port, served: true });
      }
    }
  });

  test("every health probe of the catalog has an endpoint that answers it, over the probe's scheme", () => {
    for (const p of catalog.probes) {
      const h = HEALTH_ENDPOINTS[distribution].find((e) => e.port === p.port && e.component === p.component);
      expect({ probe: `${p.component}:${p.port}`, scheme: h && (h.tls === 'none' ? 'http' : 'https') }).toEqual({ probe: `${p.component}:${p.port}`, scheme: p.scheme });
      expect(p.roles.every((r) => h!.roles.includes(r))).toBe(true);
    }
  });
});
