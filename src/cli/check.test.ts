import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rke2Agent, rke2Server, type FixtureNode } from '../simulation/fixtures.js';
import { runCli } from '../simulation/harness.js';

let work: string;
let server: FixtureNode;
let agent: FixtureNode;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-check-'));
  server = await rke2Server(join(work, 'server'), { nodeName: 'server-1', nodeIP: '127.0.8.1' });
  agent = await rke2Agent(join(work, 'agent'), { nodeName: 'agent-1', nodeIP: '127.0.8.2', supervisorRoot: server.root });
});

afterAll(() => fs.rm(work, { recursive: true, force: true }));

interface Report {
  roles: string[];
  certificates: { service: string; path: string; subject?: string; issuer?: string; serial?: string; notAfter?: string; daysLeft?: number; error?: string }[];
}

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
  const run = await runCli(['node', 'check', '--host-root', agent.root, '--distribution', 'rke2', '-o', 'json']);
  const report = JSON.parse(run.stdout) as Report;
  expect(report.roles).toEqual(['worker']);
  expect(report.certificates.map((c) => c.path.split('/').pop()).sort()).toEqual(['client-kube-proxy.crt', 'client-kubelet.crt', 'client-rke2-controller.crt', 'serving-kubelet.crt']);
});

test('a corrupt file is reported by name in the table and makes the exit code 1', async () => {
  const root = join(work, 'corrupt');
  await fs.cp(server.root, root, { recursive: true });
  await fs.writeFile(join(root, 'var/lib/rancher/rke2/server/tls/client-supervisor.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n');
  const run = await runCli(['node', 'check', '--host-root', root, '--distribution', 'rke2']);
  expect(run.code).toBe(1);
  expect(run.stdout).toMatch(/supervisor\s+var\/lib\/rancher\/rke2\/server\/tls\/client-supervisor\.crt\s+ERROR: .*client-supervisor\.crt: corrupt PEM/);
});
