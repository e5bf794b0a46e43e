// Simulated hosts as network namespaces, checked with real TCP: the root namespace
// and every node reach each node's IP, a node's 127.0.0.1 is its own, and the
// state file is enough to remove everything, even after a partial clean-up.
// Needs root. Every probe goes to the run's own /24 or to a namespace's loopback,
// and no probe runs after a network is destroyed: its /24 would then follow this
// machine's default route off the host.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../cluster/command.js';
import { freePort, sleep, startProcess, stopProcesses, tail, type RecordedProcess } from '../cluster/processes.js';
import { linkNames, namespaceNames } from './ip-names.js';
import { createHostNetwork, destroyHostNetwork, inNode, type HostNetwork, type NodeHost } from './netns.js';

const NODE = process.execPath;

// Serves each `host,port,token` argument: answers every connection with the token,
// so a probe knows which listener it reached (not just that something answered).
const LISTENER = `
const net = require('node:net');
const specs = process.argv.slice(1).map((s) => s.split(','));
let left = specs.length;
for (const [host, port, token] of specs) {
  net.createServer((s) => s.end(token)).listen(Number(port), host, () => --left === 0 && console.log('ready'));
}`;

// Prints what host:port answers, or ERR:<code>.
const PROBE = `
const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
let got = '';
s.setTimeout(3000, () => { console.log('ERR:TIMEOUT'); process.exit(0); });
s.on('data', (d) => (got += d));
s.on('end', () => console.log(got));
s.on('error', (e) => console.log('ERR:' + e.code));`;

async function probe(from: NodeHost | 'root', host: string, port: number): Promise<string> {
  const argv = [NODE, '-e', PROBE, host, String(port)];
  const [cmd, ...args] = from === 'root' ? argv : inNode(from, argv);
  const res = await runCommand(cmd!, args);
  if (res.code !== 0) throw new Error(`probe from ${from === 'root' ? 'root' : from.name}: ${res.stderr}`);
  return res.stdout.trim();
}

const work = mkdtempSync(join(tmpdir(), 'netns-e2e-'));
const stateFile = join(work, 'main', 'network.json');
const partialStateFile = join(work, 'partial', 'network.json');
const listeners: RecordedProcess[] = [];

afterAll(async () => {
  // Listeners first: a namespace with a process in it outlives its deletion.
  await stopProcesses(listeners, 2000);
  await destroyHostNetwork(stateFile);
  await destroyHostNetwork(partialStateFile);
  rmSync(work, { recursive: true, force: true });
});

/** Starts the listener inside `host` and waits until all its sockets listen. */
async function startListener(host: NodeHost, specs: string[]): Promise<void> {
  const log = join(work, `${host.name}.log`);
  const [cmd, ...args] = inNode(host, [NODE, '-e', LISTENER, ...specs]);
  const started = startProcess(host.name, cmd!, args, log);
  // `ip netns exec` execs node in place, so this PID then runs NODE: recording it
  // as the binary lets stopProcesses confirm the PID is still ours before killing it.
  listeners.push({ ...started, bin: NODE });
  for (const deadline = Date.now() + 10000; Date.now() < deadline; await sleep(50)) {
    if (existsSync(log) && readFileSync(log, 'utf8').includes('ready')) return;
  }
  throw new Error(`listener in ${host.name} not ready:\n${tail(log)}`);
}

describe('a host network of three nodes', () => {
  let net: HostNetwork;
  let a: NodeHost, b: NodeHost, c: NodeHost;
  let ipPort: number;
  let loPort: number;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('network namespaces need root');
    net = await createHostNetwork({ stateFile, nodes: ['node-a', 'node-b', 'node-c'] });
    [a, b, c] = net.hosts as [NodeHost, NodeHost, NodeHost];
    // Free in the root namespace, so a root probe of 127.0.0.1 finds no stranger there.
    ipPort = await freePort();
    loPort = await freePort();
    for (const host of net.hosts) {
      const specs = [`${host.ip},${ipPort},ip-${host.name}`];
      // A and C each bind the same loopback port; B binds nothing there.
      if (host !== b) specs.push(`127.0.0.1,${loPort},lo-${host.name}`);
      await startListener(host, specs);
    }
  });

  it('has a bridge with the gateway, and records it all in the state file', async () => {
    expect(net.gatewayIP).toMatch(/^198\.(18|19)\.\d{1,3}\.1$/);
    const prefix = net.gatewayIP.replace(/\.1$/, '');
    expect(net.hosts.map((h) => h.ip)).toEqual([`${prefix}.10`, `${prefix}.11`, `${prefix}.12`]);
    const bridge = JSON.parse((await runCommand('ip', ['-j', 'addr', 'show', 'dev', net.bridge])).stdout) as {
      operstate: string;
      addr_info: { family: string; local: string; prefixlen: number }[];
    }[];
    expect(bridge[0]!.operstate).toBe('UP');
    expect(bridge[0]!.addr_info).toContainEqual(expect.objectContaining({ family: 'inet', local: net.gatewayIP, prefixlen: 24 }));

    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { bridge: string; nodes: { netns: string; veth: string }[] };
    expect(state.bridge).toBe(net.bridge);
    expect(state.nodes.map((n) => n.netns)).toEqual(net.hosts.map((h) => h.netns));
    const links = await linkNames();
    for (const name of [state.bridge, ...state.nodes.map((n) => n.veth)]) {
      expect(name.length).toBeLessThanOrEqual(15);
      expect(links).toContain(name);
    }
    expect(await namespaceNames()).toEqual(expect.arrayContaining(net.hosts.map((h) => h.netns)));
  });

  it('lets the root namespace reach every node IP over TCP', async () => {
    for (const host of net.hosts) expect(await probe('root', host.ip, ipPort)).toBe(`ip-${host.name}`);
  });

  it('lets every node reach every other node IP, and the gateway, over TCP', async () => {
    for (const from of net.hosts) {
      for (const to of net.hosts.filter((h) => h !== from)) expect(await probe(from, to.ip, ipPort)).toBe(`ip-${to.name}`);
    }
    // The other way to the root namespace: a listener on the gateway IP.
    const port = await freePort(net.gatewayIP);
    const server = (await import('node:net')).createServer((s) => s.end('root'));
    await new Promise<void>((resolve) => server.listen(port, net.gatewayIP, resolve));
    try {
      expect(await probe(a, net.gatewayIP, port)).toBe('root');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("gives each node its own 127.0.0.1: A's loopback listener is not reachable from B or the root namespace", async () => {
    expect(await probe(a, '127.0.0.1', loPort)).toBe('lo-node-a');
    expect(await probe(c, '127.0.0.1', loPort)).toBe('lo-node-c');
    expect(await probe(b, '127.0.0.1', loPort)).toBe('ERR:ECONNREFUSED');
    const fromRoot = await probe('root', '127.0.0.1', loPort);
    expect(fromRoot).not.toMatch(/^lo-node-/);
    // Bound to loopback only: not served on the node's IP either.
    expect(await probe(b, a.ip, loPort)).toBe('ERR:ECONNREFUSED');
  });

  it('refuses a prefix already in use, leaving nothing behind', async () => {
    const file = join(work, 'clash', 'network.json');
    const prefix = net.gatewayIP.replace(/\.1$/, '');
    const err = await createHostNetwork({ stateFile: file, nodes: ['x'], prefix }).then(
      () => new Error('created a network on a prefix in use'),
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(/overlaps an address/);
    expect(existsSync(file)).toBe(false);
    // Only this attempt's names: another run on the machine may be adding its own.
    const runId = /cr-([0-9a-f]{6})/.exec(err.message)![1]!;
    expect((await linkNames()).filter((l) => l.startsWith(`cr${runId}`))).toEqual([]);
    expect((await namespaceNames()).filter((n) => n.startsWith(`cr-${runId}-`))).toEqual([]);
  });

  it('destroys every namespace and link it created, with the listeners still running', async () => {
    await destroyHostNetwork(stateFile);
    const links = await linkNames();
    expect(links).not.toContain(net.bridge);
    expect(links.filter((l) => l.startsWith(net.bridge.replace(/br$/, '')))).toEqual([]);
    const namespaces = await namespaceNames();
    for (const host of net.hosts) expect(namespaces).not.toContain(host.netns);
    const addrs = (await runCommand('ip', ['-j', 'addr', 'show'])).stdout;
    expect(addrs).not.toContain(`"${net.gatewayIP}"`);
    expect(existsSync(stateFile)).toBe(false);
    await destroyHostNetwork(stateFile); // a second time: nothing to do
  });
});

describe('destroying what a state file records', () => {
  it('does not throw when part of the network is already gone', async () => {
    const net = await createHostNetwork({ stateFile: partialStateFile, nodes: ['p0', 'p1', 'p2'] });
    const state = JSON.parse(readFileSync(partialStateFile, 'utf8')) as { nodes: { veth: string }[] };
    // Half a clean-up: one veth, one namespace and the bridge removed by hand.
    await runCommand('ip', ['link', 'del', state.nodes[0]!.veth]);
    await runCommand('ip', ['netns', 'del', net.hosts[1]!.netns]);
    await runCommand('ip', ['link', 'del', net.bridge]);

    await destroyHostNetwork(partialStateFile);
    const namespaces = await namespaceNames();
    for (const host of net.hosts) expect(namespaces).not.toContain(host.netns);
    const links = await linkNames();
    for (const name of [net.bridge, ...state.nodes.map((n) => n.veth)]) expect(links).not.toContain(name);
  });

  it('does not throw for a record of things that were never created (a crash before the first one)', async () => {
    writeFileSync(join(work, 'never.json'), JSON.stringify({
      version: 1,
      runId: 'abcdef',
      prefix: '198.19.254',
      bridge: 'crabcdefbr',
      nodes: [{ name: 'n', netns: 'cr-abcdef-0', veth: 'crabcdefv0', ip: '198.19.254.10' }],
    }));
    await destroyHostNetwork(join(work, 'never.json'));
    expect(existsSync(join(work, 'never.json'))).toBe(false);
    await destroyHostNetwork(join(work, 'no-such-file.json'));
  });

  it('refuses to delete anything a state file names that this module would not have created', async () => {
    const file = join(work, 'forged.json');
    // A name that exists nowhere: were the check broken, the test must not delete a real link.
    writeFileSync(file, JSON.stringify({ version: 1, runId: 'abcdef', bridge: 'notours0', nodes: [] }));
    await expect(destroyHostNetwork(file)).rejects.toThrow(/not a host-network record/);
    expect(existsSync(file)).toBe(true);
  });
});
