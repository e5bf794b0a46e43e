// The chart's `agent.privileged=false` capability set, tried as the agent uses
// it: the set is enough for everything the agent does on a node, and each
// capability in it is needed by one of those things (without it, that thing
// fails). There is no kubelet here, so the set is applied the way the container
// runtime applies a pod's securityContext: a bounding set with every other
// capability dropped and no_new_privs (allowPrivilegeEscalation: false), by setpriv.
//  - restart: `nsenter -t <pid> -m -u -i -n -p -- systemctl restart rke2-server`
//    into another process's namespaces (the pod's view of the host's PID 1; a
//    process started here in new mount, UTS, IPC, network and PID namespaces,
//    since `nsenter -t 1` is refused on this machine);
//  - files: renewing etcd's pairs on an RKE2 node with a CIS profile, where rke2
//    chowns them to the etcd user (rke2 pkg/executor/staticpod/staticpod.go, etcd:
//    chownr of the server and peer cert, key and CA files when a profile is set).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helmTemplate } from '../../scripts/deploy-render.js';
import { rke2Server, type FixtureNode } from '../../src/simulation/fixtures.js';
import { diskSerial } from './support/real-suite.js';
import { cliEntry } from '../../src/simulation/cli-entry.js';

const HELM = join(process.env.CERTROTATOR_BIN_DIR ?? '', 'helm');
const ETCD_TLS = 'var/lib/rancher/rke2/server/tls/etcd';
const ETCD_UID = 4242; // the etcd user of a CIS-profile node; any uid that is not root
// etcd's ServerTrust and PeerTrust cert, key and trusted CA files (staticpod.go); the CA keys stay root's.
const CHOWNED_BY_RKE2 = ['server-client.crt', 'server-client.key', 'server-ca.crt', 'peer-server-client.crt', 'peer-server-client.key', 'peer-ca.crt'];

let work: string;
let chartCaps: string[];
let host: ChildProcess;
let hostPid: number;
let fixture: FixtureNode;

/** The capabilities the chart adds for agent.privileged=false, as helm renders them. */
function capabilitiesOfChart(): string[] {
  const docs = parseAllDocuments(helmTemplate(HELM, ['--set', 'agent.privileged=false', '--show-only', 'templates/agent-daemonset.yaml'])).map((d) => d.toJS());
  const ctx = docs[0].spec.template.spec.containers[0].securityContext;
  expect(ctx).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  return ctx.capabilities.add as string[];
}

/** argv that runs `argv` with only `caps`, as a container with that securityContext would. */
function withCapabilities(caps: readonly string[], argv: string[]): string[] {
  const set = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  return ['setpriv', `--bounding-set=${set}`, '--inh-caps=-all', '--no-new-privs', '--', ...argv];
}

function run(argv: string[]): { code: number; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const without = (caps: readonly string[], c: string) => caps.filter((x) => x !== c);

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-caps-'));
  chartCaps = capabilitiesOfChart();
  // "The host": new namespaces, its own hostname, and a systemctl that exists only
  // in its mount namespace (a tmpfs mounted there), which logs where it ran.
  const bin = join(work, 'host-bin');
  await fs.mkdir(bin);
  const systemctl = `#!/bin/sh\necho "$(hostname) $*" >> ${bin}/calls\n`;
  host = spawn(
    'unshare',
    ['-m', '-u', '-i', '-n', '-p', '--fork', '--kill-child', 'sh', '-c', `hostname certrotator-host && mount -t tmpfs none ${bin} && printf '%s' '${systemctl}' > ${bin}/systemctl && chmod 755 ${bin}/systemctl && echo ready && exec sleep 600`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    host.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    host.on('exit', (code) => reject(new Error(`unshare exited ${code}`)));
  });
  // The sleep is unshare's child, PID 1 of the new PID namespace.
  hostPid = Number(readFileSync(`/proc/${host.pid}/task/${host.pid}/children`, 'utf8').trim().split(' ')[0]);
  expect(hostPid).toBeGreaterThan(0);

  fixture = await rke2Server(join(work, 'fixture'), { nodeName: 'server-1', nodeIP: '127.0.7.1' });
}, 60_000);

afterAll(async () => {
  if (host?.pid && host.exitCode === null) {
    // unshare --fork ignores SIGTERM while it waits for its child: end the child
    // (the sleep we started, PID 1 of its namespace), and unshare exits with it.
    const exited = new Promise((r) => host.once('exit', r));
    if (hostPid > 0) process.kill(hostPid, 'SIGKILL');
    else process.kill(host.pid, 'SIGKILL');
    await exited;
  }
  host?.stdout?.destroy();
  await fs.rm(work, { recursive: true, force: true });
});

describe("the chart's capability set for agent.privileged=false", () => {
  test('is the documented one', () => {
    expect([...chartCaps].sort()).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SYS_ADMIN', 'SYS_CHROOT', 'SYS_PTRACE']);
  });

  const restart = (caps: readonly string[]) =>
    run(withCapabilities(caps, [process.execPath, '--import', 'tsx', 'test/e2e/support/restart-through-nsenter.ts', String(hostPid), 'rke2-server', `${join(work, 'host-bin')}:/usr/bin:/bin`]));
  // Read through the host process's root: the file exists only in its mount namespace.
  const calls = () => {
    try {
      return readFileSync(`/proc/${hostPid}/root${join(work, 'host-bin', 'calls')}`, 'utf8');
    } catch {
      return '';
    }
  };

  test("restarts a unit in the host's namespaces (its hostname, its mounts) through nsenter", () => {
    const r = restart(chartCaps);
    expect(r).toEqual({ code: 0, out: '' });
    expect(calls()).toBe('certrotator-host reset-failed rke2-server\ncertrotator-host restart rke2-server\n');
  });

  test.each([
    ['SYS_ADMIN', /nsenter: reassociate to namespace 'ns\/\w+' failed: Operation not permitted/],
    ['SYS_CHROOT', /nsenter: reassociate to namespace 'ns\/mnt' failed: Operation not permitted/],
    ['SYS_PTRACE', /nsenter: cannot open \/proc\/\d+\/ns\/\w+: Permission denied/],
  ])('without %s the restart fails: nsenter cannot enter the namespaces', (cap, message) => {
    const before = calls();
    const r = restart(without(chartCaps, cap));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/systemctl restart rke2-server failed: /);
    expect(r.out).toMatch(message);
    expect(calls()).toBe(before);
  });

  async function cisNode(name: string): Promise<string> {
    const root = join(work, name);
    await fs.cp(fixture.root, root, { recursive: true });
    for (const f of CHOWNED_BY_RKE2) await fs.chown(join(root, ETCD_TLS, f), ETCD_UID, ETCD_UID);
    return root;
  }
  const renewEtcd = (caps: readonly string[], root: string) =>
    run(withCapabilities(caps, [process.execPath, ...cliEntry(), 'node', 'rotate', '--host-root', root, '--distribution', 'rke2', '--service', 'etcd', '--no-restart']));

  test("renews etcd's pairs owned by the etcd user, keeping owner and mode", async () => {
    const root = await cisNode('cis-ok');
    const cert = join(root, ETCD_TLS, 'server-client.crt');
    const old = await diskSerial(cert);
    const r = renewEtcd(chartCaps, root);
    expect(r.out).not.toContain('PRIVATE KEY');
    expect(r.code).toBe(0);
    expect(await diskSerial(cert)).not.toBe(old);
    for (const f of ['server-client.crt', 'server-client.key', 'peer-server-client.crt', 'peer-server-client.key']) {
      const st = await fs.stat(join(root, ETCD_TLS, f));
      expect({ f, uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ f, uid: ETCD_UID, gid: ETCD_UID, mode: f.endsWith('.key') ? 0o600 : expect.any(Number) });
    }
  }, 60_000);

  test.each([
    // Reading the etcd user's 0600 key.
    ['DAC_OVERRIDE', /error: prepare: var\/lib\/rancher\/rke2\/server\/tls\/etcd\/server-client\.key: not readable \(permission denied\)/],
    // Copying the etcd user's files into the backup with their owner, mode and times.
    ['FOWNER', /error: backup: EPERM: operation not permitted, copyfile '[^']*\/etcd\/[a-z-]+\.crt'/],
    // Giving the new files back to the etcd user (the rollback's restore needs it too).
    ['CHOWN', /error: install: EPERM: operation not permitted, fchown/],
  ])("without %s the etcd user's files cannot be renewed, and nothing changes", async (cap, message) => {
    const root = await cisNode(`cis-no-${cap}`);
    const cert = join(root, ETCD_TLS, 'server-client.crt');
    const old = await diskSerial(cert);
    const r = renewEtcd(without(chartCaps, cap), root);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(message);
    expect(await diskSerial(cert)).toBe(old);
  }, 60_000);
});
