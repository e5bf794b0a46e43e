// Failure paths of `node rotate`: every one must end in a clear error that names
// the file or step, with nothing changed (refusals) or everything restored byte
// for byte (rollbacks), never a half-written file and never key material in output.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, caFromMaterial, issueLeaf } from '../simulation/issue.js';
import { rke2Server, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { runCli, type CliRun } from '../simulation/harness.js';
import { SimulatedNode } from '../simulation/node.js';
import { changedPaths, copyDir, snapshotTree } from '../simulation/tree.js';
import { readCertificateFile, serialOf } from '../pki/certfile.js';
import { redateCa } from '../../test/realnode/expire.js';
import { runIp } from '../simulation/loopback.js';
import { cliEntry } from '../simulation/cli-entry.js';

const D = 'var/lib/rancher/rke2';
const DAY = 86_400_000;
const S = `${D}/server/tls`;
const isBackup = (rel: string) => /^var\/lib\/rancher\/rke2\/server\/tls-\d+/.test(rel);
// rke2 rewrites the agent's kubelet pairs at every start, the rollback's restart included:
// after a rollback that restarted, these (and only these) differ from before.
const REWRITTEN_BY_ANY_RESTART = ['client-kubelet', 'serving-kubelet'].flatMap((b) => [`${D}/agent/${b}.crt`, `${D}/agent/${b}.key`]).sort();

let work: string;
let server: FixtureNode;
let rkeWorker: FixtureNode;
let n = 0;
const outputs: CliRun[] = [];

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-failures-'));
  server = await rke2Server(join(work, 'fixture-server'), { nodeName: 'server-1', nodeIP: runIp(205, 1) });
  rkeWorker = await rkeNode(join(work, 'fixture-rke-worker'), { nodeName: 'w1', nodeIP: runIp(205, 2), roles: ['worker'] });
}, 60_000);

afterAll(async () => {
  for (const o of outputs) expect(`${o.stdout}${o.stderr}`).not.toContain('PRIVATE KEY');
  await fs.rm(work, { recursive: true, force: true });
});

async function copyOf(fixture: FixtureNode): Promise<FixtureNode> {
  const root = join(work, `run-${++n}`);
  await copyDir(fixture.root, root);
  return { ...fixture, root };
}

async function cli(args: string[]): Promise<CliRun> {
  const run = await runCli(args);
  outputs.push(run);
  return run;
}

const rotateArgs = (node: FixtureNode, extra: string[]) => ['node', 'rotate', '--host-root', node.root, '--distribution', node.distribution, ...extra];

describe('refusals change nothing on disk', () => {
  const cases: [string, (node: FixtureNode) => Promise<void>, string[], RegExp][] = [
    ['a missing CA key', (node) => fs.rm(join(node.root, S, 'client-ca.key')), ['--service', 'admin'], /server\/tls\/client-ca\.key: missing \(CA key needed to sign .*client-admin\.crt\)/],
    [
      'a CA key that does not belong to the CA certificate',
      async (node) => fs.copyFile(join(node.root, S, 'server-ca.key'), join(node.root, S, 'client-ca.key')),
      ['--service', 'supervisor'],
      /client-ca\.key: private key does not match CA certificate .*client-ca\.crt/,
    ],
    [
      'a certificate signed by another CA of the same name',
      async (node) => {
        // Every RKE2 cluster's client CA is called rke2-client-ca@<ts>: same name, other key.
        const caCn = readCertificateFile(await fs.readFile(join(node.root, S, 'client-ca.crt'), 'utf8'), 'ca', 'pem').leaf.subject.replace(/^CN=/, '');
        const impostor = await caFromMaterial(await createCa(caCn, { name: 'ECDSA', namedCurve: 'P-256' }, 'sec1'));
        const leaf = await issueLeaf({
          template: { cn: 'system:admin', o: ['system:masters'], eku: ['clientAuth'] },
          ca: impostor,
          validity: { days: 365, notBefore: 'one-hour-back-clamped-to-ca' },
          algorithm: { name: 'ECDSA', namedCurve: 'P-256' },
          encoding: 'sec1',
          chained: true,
        });
        await fs.writeFile(join(node.root, S, 'client-admin.crt'), leaf.certPem);
        await fs.writeFile(join(node.root, S, 'client-admin.key'), leaf.keyPem, { mode: 0o600 });
      },
      ['--service', 'admin'],
      /client-admin\.crt: is not signed by the CA .*client-ca\.crt/,
    ],
    [
      'a truncated certificate',
      async (node) => {
        const p = join(node.root, S, 'serving-kube-apiserver.crt');
        const text = await fs.readFile(p, 'utf8');
        await fs.writeFile(p, text.slice(0, 300));
      },
      ['--service', 'api-server'],
      /serving-kube-apiserver\.crt: corrupt PEM: a block is not terminated \(truncated file\?\)/,
    ],
    [
      'a certificate with invalid base64',
      async (node) => {
        const p = join(node.root, S, 'etcd/client.crt');
        const text = await fs.readFile(p, 'utf8');
        await fs.writeFile(p, text.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!'));
      },
      ['--service', 'etcd'],
      /etcd\/client\.crt: corrupt PEM: invalid base64/,
    ],
    [
      'a key file holding a certificate',
      async (node) => fs.copyFile(join(node.root, S, 'client-scheduler.crt'), join(node.root, S, 'client-scheduler.key')),
      ['--service', 'scheduler'],
      /client-scheduler\.key: (expected one private key PEM block|unexpected PEM block type CERTIFICATE)/,
    ],
    ['a missing certificate', (node) => fs.rm(join(node.root, S, 'client-auth-proxy.crt')), ['--service', 'auth-proxy'], /client-auth-proxy\.crt: missing \(service auth-proxy/],
    [
      // Re-issued by openssl with the same name and key, so its leaves still chain to it.
      'an expired CA: refused with what to do (rke allowed it, rancher/rke#1974)',
      (node) => redateCa({ cert: join(node.root, S, 'client-ca.crt'), key: join(node.root, S, 'client-ca.key') }, new Date(Date.now() - 400 * DAY), new Date(Date.now() - 5 * DAY)),
      ['--service', 'admin'],
      /server\/tls\/client-ca\.crt: the CA expired on .*Rotate the CA first/,
    ],
  ];

  test.each(cases)('%s', async (_name, damage, args, message) => {
    const node = await copyOf(server);
    await damage(node);
    const before = await snapshotTree(node.root);
    const run = await cli(rotateArgs(node, [...args, '--no-restart']));
    expect(run.stderr).toMatch(message);
    expect(run.code).toBe(1);
    expect(changedPaths(before, await snapshotTree(node.root))).toEqual([]);
  });

  test('an RKE worker has no kube-ca key: signing is refused, naming the key', async () => {
    const node = await copyOf(rkeWorker);
    const before = await snapshotTree(node.root);
    const run = await cli(rotateArgs(node, ['--service', 'kube-proxy', '--no-restart']));
    expect(run.stderr).toMatch(/etc\/kubernetes\/ssl\/kube-ca-key\.pem: missing \(CA key needed to sign etc\/kubernetes\/ssl\/kube-proxy\.pem\)/);
    expect(run.code).toBe(1);
    expect(changedPaths(before, await snapshotTree(node.root))).toEqual([]);
  });

  test('a renewed certificate that fails the check before install (its key is not its own, as an encoder bug would make it): stopped, nothing written', async () => {
    const node = await copyOf(server);
    const before = await snapshotTree(node.root);
    process.env.CERTROTATOR_TEST_FAULT = 'foreign-key:serving-kube-apiserver';
    try {
      const run = await cli(rotateArgs(node, ['--service', 'api-server', '--no-restart']));
      expect(run.stderr).toMatch(/prepare: .*serving-kube-apiserver\.key \(renewed\): private key does not match the renewed certificate for .*serving-kube-apiserver\.crt/);
      expect(run.code).toBe(1);
    } finally {
      delete process.env.CERTROTATOR_TEST_FAULT;
    }
    expect(changedPaths(before, await snapshotTree(node.root))).toEqual([]);
  });

  test('an unreadable journal of an earlier run: said once with its path and the backup, moved aside; the next run goes ahead', async () => {
    const node = await copyOf(server);
    const first = await cli(rotateArgs(node, ['--service', 'admin', '--no-restart', '-o', 'json']));
    expect(first.code).toBe(0);
    const backupDir = JSON.parse(first.stdout).backupDir as string;
    const journal = join(node.root, backupDir, 'certrotator', 'journal.json');
    await fs.writeFile(journal, '{"version": 1, "step": "insta'); // cut off mid-write
    const before = await snapshotTree(node.root);
    const second = await cli(rotateArgs(node, ['--service', 'admin', '--no-restart']));
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`${backupDir}/certrotator/journal.json: the journal of an earlier rotation cannot be read`);
    expect(second.stderr).toMatch(new RegExp(`moved aside to .*journal\\.json\\.unreadable-\\d+\\. The backup ${backupDir.replace(/[.-]/g, '\\$&')} holds the files`));
    // Only the journal moved; no certificate changed.
    const changed = changedPaths(before, await snapshotTree(node.root));
    expect(changed.map((p) => p.replace(/unreadable-\d+$/, 'unreadable-N')).sort()).toEqual([`${backupDir}/certrotator/journal.json`, `${backupDir}/certrotator/journal.json.unreadable-N`]);
    const third = await cli(rotateArgs(node, ['--service', 'admin', '--no-restart']));
    expect(`${third.code} ${third.stderr}`).toMatch(/^0 /);
  });

  test('a CA that expires before the new leaf would: the leaf ends with the CA, openssl verifies it, and the report says so', async () => {
    const node = await copyOf(server);
    const ca = { cert: join(node.root, S, 'client-ca.crt'), key: join(node.root, S, 'client-ca.key') };
    await redateCa(ca, new Date(Date.now() - 300 * DAY), new Date(Date.now() + 60 * DAY));
    const run = await cli(rotateArgs(node, ['--service', 'admin', '--no-restart', '-o', 'json']));
    expect(run.code).toBe(0);
    const file = (JSON.parse(run.stdout).files as { path: string; notAfter: string; validity?: string }[]).find((f) => f.path === `${S}/client-admin.crt`)!;
    const caEnd = (await opensslOut(['x509', '-in', ca.cert, '-noout', '-enddate'])).trim();
    expect((await opensslOut(['x509', '-in', join(node.root, S, 'client-admin.crt'), '-noout', '-enddate'])).trim()).toBe(caEnd);
    expect(await opensslOut(['verify', '-CAfile', ca.cert, join(node.root, S, 'client-admin.crt')])).toMatch(/: OK/);
    expect(file.validity).toContain(`clamped to the CA's notAfter ${file.notAfter}`);
  });

  test.each([
    [['--service', 'bogus'], /unknown rke2 service "bogus"/],
    [['--service', 'kube-apiserver'], /unknown rke2 service "kube-apiserver"/],
    [[], /either --service S \(repeatable\) or --all/],
    [['--all', '--service', 'admin'], /either --service S/],
  ])('usage error %j exits 2 and changes nothing', async (args, message) => {
    const node = await copyOf(server);
    const before = await snapshotTree(node.root);
    const run = await cli(rotateArgs(node, args as string[]));
    expect(run.stderr).toMatch(message);
    expect(run.code).toBe(2);
    expect(changedPaths(before, await snapshotTree(node.root))).toEqual([]);
  });
});

describe('failures after the first change roll back byte for byte', () => {
  async function withSimulation(configure: (sim: SimulatedNode) => void, args: string[], damage?: (node: FixtureNode) => Promise<void>) {
    const node = await copyOf(server);
    await damage?.(node);
    const address = runIp(206, n);
    const sim = new SimulatedNode(node, { address });
    await sim.start();
    configure(sim);
    const before = await snapshotTree(node.root);
    try {
      const run = await cli(rotateArgs(node, [...args, '--restarter', 'simulation', '--simulation-url', sim.controlUrl, '--node-ip', address, '--loopback-address', address, '--verify-timeout', '2']));
      return { node, sim, before, run, after: await snapshotTree(node.root, isBackup) };
    } finally {
      await sim.stop();
    }
  }

  test('a restart that fails', async () => {
    const { run, before, after, sim, node } = await withSimulation((sim) => (sim.faults.failRestarts = 1), ['--service', 'api-server']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: restart: simulated start failed: .*\(rolled back from var\/lib\/rancher\/rke2\/server\/tls-\d+\)/);
    expect(changedPaths(before, after)).toEqual(REWRITTEN_BY_ANY_RESTART);
    // Stopped, failed to start, then the rollback's own stop/start brought the old files back.
    expect(sim.events).toEqual(['stop', 'start', 'stop', 'start']);
    const journal = await readJournalOf(node);
    expect(journal.step).toBe('rolled-back');
    expect(journal.failure.step).toBe('restart');
  }, 60_000);

  test('a component that keeps serving the old certificate', async () => {
    const { run, before, after } = await withSimulation((sim) => (sim.faults.serveStale = true), ['--service', 'etcd']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: verify: 127\.\d+\.206\.\d+:2379 serves serial [0-9A-F]+, expected [0-9A-F]+ \(.*etcd\/server-client\.crt\) \(rolled back/);
    expect(changedPaths(before, after)).toEqual(REWRITTEN_BY_ANY_RESTART);
  }, 60_000);

  test('a failure after rke2 made a missing dynamic-cert.json from the trigger: the rollback removes it again', async () => {
    const { run, before, after, node } = await withSimulation(
      (sim) => (sim.faults.serveStale = true),
      ['--service', 'rke2-server', '--service', 'api-server'],
      (node) => fs.rm(join(node.root, S, 'dynamic-cert.json')),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: verify: 127\.\d+\.206\.\d+:6443 serves serial [0-9A-F]+, expected .*\(rolled back/);
    // The restart made the file (the journal knew it was missing), the rollback took it away.
    const journal = await readJournalOf(node);
    expect(journal.files.find((f: { id: string }) => f.id === 'dynamic-cert')).toMatchObject({ missing: true, newSerial: expect.stringMatching(/^[0-9A-F]+$/) });
    expect(changedPaths(before, after)).toEqual(REWRITTEN_BY_ANY_RESTART);
  }, 60_000);

  test.each([
    ['ENOSPC', 'no space left on device'],
    ['EACCES', 'permission denied'],
  ])('%s while installing: stopped at install, rolled back byte for byte, no temporary file left', async (code, words) => {
    process.env.CERTROTATOR_TEST_FAULT = `write-error:${code}:serving-kube-apiserver.crt:1`;
    try {
      const { run, before, after } = await withSimulation(() => {}, ['--service', 'api-server']);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(new RegExp(`error: install: ${code}: ${words}, write 'serving-kube-apiserver\\.crt' \\(rolled back from var/lib/rancher/rke2/server/tls-\\d+\\)`));
      expect(changedPaths(before, after)).toEqual([]);
      expect([...after.keys()].filter((p) => p.includes('.certrotator-'))).toEqual([]);
    } finally {
      delete process.env.CERTROTATOR_TEST_FAULT;
    }
  }, 60_000);

  // A hung disk (write-stall: the write returns only after 12 s) against a 3 s step
  // deadline. Every local step has that deadline, the rollback's included: with 1 s, a
  // clean-clone run under load had the rollback of six pairs miss it ("ROLLBACK FAILED:
  // did not finish within 1 s") although only the install's first write was stalled.
  test.each([
    ['installing', 'write-stall:12000:serving-kube-apiserver.crt', /error: install: did not finish within 3 s: an operation on the host did not return .*\(rolled back from var\/lib\/rancher\/rke2\/server\/tls-\d+\)/],
    ['backing up', 'new-file-stall:12000:journal.json', /error: backup: did not finish within 3 s: an operation on the host did not return /],
  ])('a disk that hangs while %s: the step fails at its deadline, named; the late write lands nowhere; the node is as it was', async (step, fault, message) => {
    process.env.CERTROTATOR_TEST_FAULT = fault;
    try {
      const started = Date.now();
      const { run, before, node } = await withSimulation(() => {}, ['--service', 'api-server', '--step-timeout', '3']);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(message);
      // Ended by the deadline, not by the write returning.
      expect(Date.now() - started).toBeLessThan(12_000);
      // The stalled write is still under way (its temp file, or the partial backup
      // it writes into, exists); it returns after the run ended and must not rename
      // anything into place. It has ended when what it wrote into is gone.
      const inFlight = async () => [...(await snapshotTree(node.root)).keys()].filter((p) => p.includes('.certrotator-'));
      expect(await inFlight()).not.toEqual([]);
      for (const deadline = Date.now() + 20_000; (await inFlight()).length > 0; await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > deadline) throw new Error(`the stalled write never ended: ${(await inFlight()).join(', ')}`);
      }
      const after = await snapshotTree(node.root);
      expect(changedPaths(before, new Map([...after].filter(([p]) => !isBackup(p))))).toEqual([]);
      expect([...after.keys()].filter((p) => p.includes('.certrotator-'))).toEqual([]);
      if (step === 'backing up') expect([...after.keys()].filter(isBackup)).toEqual([]);
      else expect((await readJournalOf(node)).step).toBe('rolled-back');
    } finally {
      delete process.env.CERTROTATOR_TEST_FAULT;
    }
  }, 60_000);

  test('a rollback that itself fails: says so, and exactly how to finish it (the same run again, or these copies by hand)', async () => {
    // The disk fails the install's write of the file and the rollback's too.
    process.env.CERTROTATOR_TEST_FAULT = 'write-error:ENOSPC:serving-kube-apiserver.crt:2';
    let node: FixtureNode;
    try {
      const r = await withSimulation(() => {}, ['--service', 'api-server']);
      node = r.node;
      expect(r.run.code).toBe(1);
      const backup = /tls-\d+/.exec(r.run.stderr)![0];
      expect(r.run.stderr).toMatch(/ROLLBACK FAILED: ENOSPC: no space left on device, write 'serving-kube-apiserver\.crt' — start the same rotation again to finish the rollback from its journal \(var\/lib\/rancher\/rke2\/server\/tls-\d+\/certrotator\/journal\.json\), or restore by hand: /);
      expect(r.run.stderr).toContain(`cp -p /var/lib/rancher/rke2/server/${backup}/serving-kube-apiserver.crt /var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt`);
      expect((await readJournalOf(node)).step).toBe('rolling-back');
    } finally {
      delete process.env.CERTROTATOR_TEST_FAULT;
    }
    // Run again, as the message says (the same command): the rollback finishes and the node is as it was.
    const address = runIp(206, ++n);
    const sim = new SimulatedNode(node!, { address });
    await sim.start();
    let again;
    try {
      again = await cli(rotateArgs(node!, ['--service', 'api-server', '--restarter', 'simulation', '--simulation-url', sim.controlUrl, '--node-ip', address, '--loopback-address', address, '--verify-timeout', '2']));
    } finally {
      await sim.stop();
    }
    expect(again.stderr).toMatch(/resuming the rotation recorded in .*tls-\d+ at step rolling-back/);
    expect((await readJournalOf(node!)).step).toBe('rolled-back');
    expect(await fs.readFile(join(node!.root, S, 'serving-kube-apiserver.crt'), 'utf8')).toBe(await fs.readFile(join(server.root, S, 'serving-kube-apiserver.crt'), 'utf8'));
  }, 60_000);

  test('a distribution that does not regenerate what it should', async () => {
    const { run, before, after } = await withSimulation((sim) => (sim.faults.skipRegeneration = true), ['--service', 'rke2-server']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: verify: .*dynamic-cert-regenerate: still present, the regeneration did not run \(rolled back/);
    // skipRegeneration also stops the agent re-issue, so here nothing differs at all.
    expect(changedPaths(before, after)).toEqual([]);
  }, 60_000);
});

async function readJournalOf(node: FixtureNode) {
  const dirs = (await fs.readdir(join(node.root, D, 'server'))).filter((d) => d.startsWith('tls-'));
  expect(dirs).toHaveLength(1);
  return JSON.parse(await fs.readFile(join(node.root, D, 'server', dirs[0]!, 'certrotator', 'journal.json'), 'utf8'));
}

// Runs the real CLI as a child process that pauses at `point`, then SIGKILLs it.
async function killAt(point: string, args: string[]): Promise<string> {
  const child = spawn(process.execPath, [...cliEntry(), ...args], {
    cwd: process.cwd(),
    env: { ...process.env, CERTROTATOR_TEST_PAUSE_AT: point, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    // Generous: a child that loads the CLI through tsx took over 30 s on a machine busy with two more control planes.
    const timer = setTimeout(() => reject(new Error(`child never reached ${point}: ${out}`)), 75_000);
    const check = () => {
      if (out.includes(`paused at ${point}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stderr.on('data', check);
    child.on('exit', () => {
      clearTimeout(timer);
      reject(new Error(`child exited before ${point}: ${out}`));
    });
  });
  child.kill('SIGKILL');
  await exited;
  outputs.push({ code: -1, stdout: out, stderr: '' });
  return out;
}

describe('a run killed at any step resumes without renewing twice', () => {
  // unit-stopped: inside the restart, rke2-server stopped and not yet started again.
  const points = ['after-backup', 'temp-written:client-admin.crt', 'mid-install', 'after-install', 'unit-stopped', 'after-restart'];
  test.each(points)('killed at %s', async (point) => {
    const node = await copyOf(server);
    const address = runIp(207, n);
    const sim = new SimulatedNode(node, { address });
    await sim.start();
    const before = await snapshotTree(node.root);
    const args = rotateArgs(node, ['--service', 'admin', '--service', 'api-server', '--restarter', 'simulation', '--simulation-url', sim.controlUrl, '--node-ip', address, '--loopback-address', address, '--verify-timeout', '10']);
    try {
      await killAt(point, args);
      // Killed with the server stopped: nothing starts it but the resumed run.
      if (point === 'unit-stopped') expect(sim.events.at(-1)).toBe('stop');
      const staged = await readJournalOf(node);
      const stagedSerials = Object.fromEntries(staged.files.filter((f: { renewal: string }) => f.renewal === 'sign').map((f: { cert: string; newSerial: string }) => [f.cert, f.newSerial]));
      const resumed = await cli(args);
      expect(resumed.stderr).toMatch(/resuming the rotation recorded in .*tls-\d+ at step/);
      expect(resumed.code).toBe(0);
      // The certificates on disk are the ones staged before the kill: no second renewal.
      for (const [cert, serial] of Object.entries(stagedSerials)) {
        const onDisk = serialOf(readCertificateFile(await fs.readFile(join(node.root, cert), 'utf8'), cert, 'pem').leaf);
        expect({ cert, serial: onDisk }).toEqual({ cert, serial });
      }
      const after = await snapshotTree(node.root, isBackup);
      expect(changedPaths(before, after)).toEqual(
        [
          ...['client-admin', 'client-kube-apiserver', 'serving-kube-apiserver'].flatMap((b) => [`${S}/${b}.crt`, `${S}/${b}.key`]),
          ...['client-kubelet', 'serving-kubelet'].flatMap((b) => [`${D}/agent/${b}.crt`, `${D}/agent/${b}.key`]),
          // rke2-server rewrites its admin kubeconfig from the new client-admin at start.
          'etc/rancher/rke2/rke2.yaml',
        ].sort(),
      );
      // No temp file or half-built backup is left anywhere.
      expect([...after.keys()].filter((p) => p.includes('.certrotator-'))).toEqual([]);
      expect((await readJournalOf(node)).step).toBe('done');
    } finally {
      await sim.stop();
    }
  }, 150_000);

  test('killed while the backup is being made (a partial directory on disk): the next run removes it and rotates once', async () => {
    const node = await copyOf(server);
    const before = await snapshotTree(node.root);
    const args = rotateArgs(node, ['--service', 'admin', '--no-restart']);
    await killAt('mid-backup', args);
    const partial = (await fs.readdir(join(node.root, D, 'server'))).filter((d) => d.startsWith('.certrotator-partial-'));
    expect(partial).toHaveLength(1);
    const again = await cli(args);
    expect(again.code).toBe(0);
    expect((await fs.readdir(join(node.root, D, 'server'))).filter((d) => d.startsWith('.certrotator-partial-') || /^tls-\d+$/.test(d))).toHaveLength(1);
    expect((await readJournalOf(node)).step).toBe('done');
    expect(changedPaths(before, await snapshotTree(node.root, isBackup))).toEqual([`${S}/client-admin.crt`, `${S}/client-admin.key`]);
  }, 120_000);

  test('an unfinished rotation of another scope: refused before anything changes, naming it and how to finish it', async () => {
    const node = await copyOf(server);
    await killAt('after-backup', rotateArgs(node, ['--service', 'admin', '--no-restart']));
    const before = await snapshotTree(node.root);
    const other = await cli(rotateArgs(node, ['--service', 'scheduler', '--no-restart']));
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/an unfinished rotation \(scope admin, no restart\) is recorded in var\/lib\/rancher\/rke2\/server\/tls-\d+; run it again with the same scope to finish it/);
    expect(changedPaths(before, await snapshotTree(node.root))).toEqual([]);
  }, 120_000);

  test('killed in the middle of a rollback, the resumed run finishes the rollback', async () => {
    const node = await copyOf(server);
    const address = runIp(207, n);
    const sim = new SimulatedNode(node, { address });
    await sim.start();
    sim.faults.failRestarts = 1;
    const before = await snapshotTree(node.root);
    const args = rotateArgs(node, ['--service', 'supervisor', '--restarter', 'simulation', '--simulation-url', sim.controlUrl, '--node-ip', address, '--loopback-address', address, '--verify-timeout', '5']);
    try {
      await killAt('mid-rollback', args);
      const resumed = await cli(args);
      expect(resumed.code).toBe(1);
      expect(resumed.stderr).toMatch(/error: restart: simulated start failed.*\(rolled back from/);
      expect(changedPaths(before, await snapshotTree(node.root, isBackup))).toEqual(REWRITTEN_BY_ANY_RESTART);
      expect((await readJournalOf(node)).step).toBe('rolled-back');
    } finally {
      await sim.stop();
    }
  }, 150_000);
});

test.each([
  ['a 0640 certificate and a 0600 key keep their modes', 0o640, 0o600, 0o640, 0o600],
  ['a 0400 key stays 0400', 0o644, 0o400, 0o644, 0o400],
  ['a group-readable 0640 key is narrowed to 0600', 0o644, 0o640, 0o644, 0o600],
])('a renewal keeps each file\'s owner and mode: %s', async (_name, certMode, keyModeBefore, certAfter, keyAfter) => {
  const node = await copyOf(server);
  const [crt, key] = [join(node.root, S, 'client-admin.crt'), join(node.root, S, 'client-admin.key')];
  await fs.chown(crt, 1001, 1002);
  await fs.chown(key, 1001, 1002);
  await fs.chmod(crt, certMode);
  await fs.chmod(key, keyModeBefore);
  const run = await cli(rotateArgs(node, ['--service', 'admin', '--no-restart']));
  expect(run.code).toBe(0);
  const [c, k] = [await fs.stat(crt), await fs.stat(key)];
  expect([c.uid, c.gid, c.mode & 0o777, k.uid, k.gid, k.mode & 0o777]).toEqual([1001, 1002, certAfter, 1001, 1002, keyAfter]);
});

function opensslOut(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}
