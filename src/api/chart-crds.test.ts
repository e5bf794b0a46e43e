// Helm installs CRDs only from the chart's crds/ directory, and kustomize only
// from inside deploy/; `npm run gen:crds` writes the same bytes there and into
// crds/. This keeps all of them equal to what src/api renders.
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderAllCRDs } from './crds.js';

const REPO = join(process.cwd());
const CHART_CRDS = join(REPO, 'charts', 'certrotator', 'crds');
const CRDS = join(REPO, 'crds');
const DEPLOY_CRDS = join(REPO, 'deploy', 'crds');

describe.each([['charts/certrotator/crds', CHART_CRDS], ['deploy/crds', DEPLOY_CRDS]])('%s', (_name, dir) => {
  it('holds exactly the CRDs of crds/, byte for byte', () => {
    const names = readdirSync(CRDS).filter((n) => n.endsWith('.yaml')).sort();
    expect(readdirSync(dir).sort()).toEqual(names);
    expect(names.length).toBe(4);
    for (const name of names) expect(readFileSync(join(dir, name), 'utf8')).toBe(readFileSync(join(CRDS, name), 'utf8'));
  });

  it('is what gen:crds renders from src/api now', () => {
    for (const [name, text] of Object.entries(renderAllCRDs())) expect(readFileSync(join(dir, name), 'utf8')).toBe(text);
  });
});
