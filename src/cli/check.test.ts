import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rke2Catalog } from '../distributions/rke2/catalog.js';
import { readCa, rke2Agent, rke2Server, writeAgedClientAdmin, writeHostFile, type FixtureNode } from '../simulation/fixtures.js';
import { runCli, type CliRun } from '../simulation/harness.js';
import { issueLeaf } from '../simulation/issue.js';

const S = 'var/lib/rancher/rke2/server/tls';
const DAY = 86_400_000;
const outputs: CliRun[] = [];

let work: string;
let server: FixtureNode;
let agent: FixtureNode;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-check-'));
  server = await rke2Server(join(work, 'server'), { nodeName: 'server-1', nodeIP: '127.0.8.1' });
  agent = await rke2Agent(join(work, 'agent'), { nodeName: 'agent-1', nodeIP: '127.0.8.2', supervisorRoot: server.root });
});

afterAll(async () => {
  for (const o of outputs) expect(`${o.stdout}${o.stderr}`).not.toContain('PRIVATE KEY');
  await fs.rm(work, { recursive: true, force: true });
});

interface Report {
  roles: string[];
  certificates: {
    service: string;
    path: string;
    subject?: string;
    issuer?: string;
    serial?: string;
    notAfter?: string;
    daysLeft?: number;
    status: string;
    error?: string;
  }[];
}

const check = async (root: string, ...args: string[]) => {
  const run = await runCli(['node', 'check', '--host-root', root, '--distribution', 'rke2', ...args]);
  outputs.push(run);
  return run;
};
/** A check that must succeed: exit code 0 (without --fail-on nothing is a failure). */
const checkOk = async (root: string, ...args: string[]) => {
  const run = await check(root, ...args);
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  return run;
};

test('check -o json lists every certificate of a server with subject, issuer, serial and expiry', async () => {
  const run = await runCli(['node', 'check', '--host-root', server.root, '--distribution', 'rke2', '-o', 'json']);
  expect(run.code).toBe(0);
  expect(run.stdout + run.stderr).not.toContain('PRIVATE KEY');
  const report = JSON.parse(run.stdout) as Report;
  expect(report.roles.sort()).toEqual(['controlplane', 'etcd', 'worker']);
  const admin = report.certificates.find((c) => c.path.endsWith('server/tls/client-admin.crt'))!;
  expect(admin).toMatchObject({ service: 'admin', subject: 'O=system:masters, CN=system:admin', daysLeft: 364 });
  expect(admin.issuer).toMatch(/^CN=rke2-client-ca@\d+$/);
  expect(admin.serial).toMatch(/^[0-9A-F]+$/);
  expect(report.certificates.find((c) => c.path.endsWith('dynamic-cert.json'))).toMatchObject({ service: 'rke2-server', subject: 'O=rke2, CN=rke2' });
  expect(report.certificates.filter((c) => c.service === 'certificate-authority')).toHaveLength(5);
});

test('check on an agent detects the worker role and lists only agent files', async () => {
  const run = await checkOk(agent.root, '-o', 'json');
  const report = JSON.parse(run.stdout) as Report;
  expect(report.roles).toEqual(['worker']);
  expect(report.certificates.map((c) => c.path.split('/').pop()).sort()).toEqual(['client-kube-proxy.crt', 'client-kubelet.crt', 'client-rke2-controller.crt', 'serving-kubelet.crt']);
});

test('a corrupt file is reported by name in the table, the others still listed, and exit code 0 without --fail-on', async () => {
  const root = await variant('corrupt', corrupt);
  const run = await check(root);
  expect(run.code).toBe(0);
  expect(run.stdout).toMatch(/supervisor\s+var\/lib\/rancher\/rke2\/server\/tls\/client-supervisor\.crt\s+ERROR: .*client-supervisor\.crt: corrupt PEM.*\s+ERROR$/m);
  expect(run.stdout).toMatch(/admin\s+var\/lib\/rancher\/rke2\/server\/tls\/client-admin\.crt\s.*\s364\s+OK$/m);
});

test('a missing dynamic-cert.json is ERROR "missing" under its own path (rotate writes its trigger; check only reports)', async () => {
  const root = await variant('no-dynamic-cert', (r) => fs.rm(join(r, S, 'dynamic-cert.json')));
  const certs = (JSON.parse((await checkOk(root, '-o', 'json')).stdout) as Report).certificates;
  expect(certs.filter((c) => c.status === 'ERROR')).toEqual([{ service: 'rke2-server', path: `${S}/dynamic-cert.json`, status: 'ERROR', error: 'missing' }]);
});

// Copies of the server tree with one file changed.
async function variant(name: string, change: (root: string) => Promise<void>): Promise<string> {
  const root = join(work, name);
  await fs.cp(server.root, root, { recursive: true });
  await change(root);
  return root;
}

const corrupt = (root: string) => fs.writeFile(join(root, `${S}/client-supervisor.crt`), '-----BEGIN CERTIFICATE-----\nAAAA\n');

// client-admin as rke2 issued it 400 days ago: 365 days, so 35 days expired. The
// CA only has to be old enough to have signed it (check reads, it does not verify).
const expired = (root: string) => writeAgedClientAdmin(root, 400);

// client-scheduler issued by a clock three days ahead of this one.
async function notYetValid(root: string) {
  const spec = rke2Catalog.services.scheduler!.files[0]!;
  const ca = await readCa(root, { cert: `${S}/client-ca.crt`, key: `${S}/client-ca.key` });
  const m = await issueLeaf({ template: spec.template!, ca, validity: spec.validity, algorithm: spec.keyAlgorithm, encoding: spec.keyEncoding, chained: true, now: new Date(Date.now() + 3 * DAY) });
  await writeHostFile(root, `${S}/client-scheduler.crt`, m.certPem, 0o644);
}

describe('STATUS per file', () => {
  let mixed: string;
  beforeAll(async () => {
    mixed = await variant('mixed', async (root) => {
      await expired(root);
      await notYetValid(root);
      await corrupt(root);
    });
  }, 60_000);

  test('-o json: EXPIRED, NOT YET VALID and ERROR where they are, OK everywhere else', async () => {
    const run = await check(mixed, '-o', 'json');
    expect(run.code).toBe(0);
    const certs = (JSON.parse(run.stdout) as Report).certificates;
    const byFile = (name: string) => certs.find((c) => c.path === `${S}/${name}`);
    expect(byFile('client-admin.crt')).toMatchObject({ status: 'EXPIRED', daysLeft: -36 });
    expect(byFile('client-scheduler.crt')).toMatchObject({ status: 'NOT YET VALID' });
    expect(byFile('client-supervisor.crt')).toMatchObject({ status: 'ERROR', error: expect.stringContaining('corrupt PEM') });
    const others = certs.filter((c) => !/client-(admin|scheduler|supervisor)\.crt$/.test(c.path));
    expect(others.length).toBeGreaterThan(10);
    expect(others.filter((c) => c.status !== 'OK')).toEqual([]);
  });

  test('the table says EXPIRED beside the negative DAYS LEFT', async () => {
    const run = await checkOk(mixed);
    expect(run.stdout.split('\n')[0]).toMatch(/\sDAYS LEFT\s+STATUS$/);
    expect(run.stdout).toMatch(/admin\s+var\/lib\/rancher\/rke2\/server\/tls\/client-admin\.crt\s.*\s-36\s+EXPIRED$/m);
    expect(run.stdout).toMatch(/client-scheduler\.crt\s.*\sNOT YET VALID$/m);
  });

  test('--warn-within widens WARNING: 400d catches every 365-day leaf, not the 10-year CAs', async () => {
    const certs = (JSON.parse((await checkOk(server.root, '--warn-within', '400d', '-o', 'json')).stdout) as Report).certificates;
    expect(new Set(certs.filter((c) => c.service !== 'certificate-authority').map((c) => c.status))).toEqual(new Set(['WARNING']));
    expect(new Set(certs.filter((c) => c.service === 'certificate-authority').map((c) => c.status))).toEqual(new Set(['OK']));
    // A Go duration means the same.
    const hours = (JSON.parse((await checkOk(server.root, '--warn-within', '9600h', '-o', 'json')).stdout) as Report).certificates;
    expect(hours.map((c) => c.status)).toEqual(certs.map((c) => c.status));
  });
});

describe('exit code with --fail-on', () => {
  const trees: Record<string, () => Promise<string>> = {
    clean: async () => server.root,
    expired: () => variant('only-expired', expired),
    'not-yet-valid': () => variant('only-not-yet-valid', notYetValid),
    corrupt: () => variant('only-corrupt', corrupt),
  };
  const roots = new Map<string, string>();
  beforeAll(async () => {
    for (const [name, make] of Object.entries(trees)) roots.set(name, await make());
  }, 60_000);

  test.each<[string, string[], number]>([
    // [tree, flags, exit code]
    ['clean', [], 0],
    ['clean', ['--fail-on', 'warning'], 0],
    ['clean', ['--fail-on', 'expired'], 0],
    ['clean', ['--warn-within', '400d', '--fail-on', 'warning'], 1],
    ['clean', ['--warn-within', '400d', '--fail-on', 'expired'], 0],
    ['expired', [], 0],
    ['expired', ['--fail-on', 'warning'], 1],
    ['expired', ['--fail-on', 'expired'], 1],
    ['not-yet-valid', ['--fail-on', 'warning'], 1],
    ['not-yet-valid', ['--fail-on', 'expired'], 0],
    // A file that cannot be read never lets a check pass.
    ['corrupt', [], 0],
    ['corrupt', ['--fail-on', 'warning'], 1],
    ['corrupt', ['--fail-on', 'expired'], 1],
  ])('%s tree, %j: exit %d', async (tree, flags, code) => {
    const run = await check(roots.get(tree)!, ...flags);
    expect(run.code).toBe(code);
    if (code === 1) expect(run.stderr).toMatch(/file\(s\) at --fail-on (warning|expired) or beyond: var\/lib\/rancher\/rke2\//);
    else expect(run.stderr).toBe('');
  });
});

describe('usage errors (exit 2, naming the flag)', () => {
  test.each<[string[], RegExp]>([
    [['node', 'check', '--fail-on', 'critical'], /--fail-on must be warning or expired, not "critical"/],
    [['node', 'check', '--warn-within', '3 weeks'], /--warn-within: "3 weeks" is not a duration; write it like 30d/],
    [['node', 'check', '--warn-within', '30'], /--warn-within: "30" is not a duration/],
    [['node', 'rotate', '--all', '--fail-on', 'expired'], /--fail-on is a node check option/],
  ])('%j', async (args, message) => {
    const run = await runCli([...args.slice(0, 2), '--host-root', server.root, '--distribution', 'rke2', ...args.slice(2)]);
    outputs.push(run);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
  });
});
