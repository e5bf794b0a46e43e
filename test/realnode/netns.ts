// Simulated hosts as Linux network namespaces. Each node gets its own network
// stack - its own 127.0.0.1, its own ports - and a node IP on a bridge in the root
// namespace, so a component can bind the same loopback port on every node (as
// the real RKE2 components do) while the test process and the other nodes still
// reach each node by its IP. Needs root (CAP_NET_ADMIN) and iproute2's `ip`.
//
// Layout, all on one /24 so that everything is plain L2 bridging:
//
//   root ns:  bridge cr<run>br, <prefix>.1/24 (the "gateway")
//               ├─ veth cr<run>v0 ── eth0 <prefix>.10/24 in netns cr-<run>-0
//               ├─ veth cr<run>v1 ── eth0 <prefix>.11/24 in netns cr-<run>-1
//               └─ ...
//
// No net.ipv4.ip_forward is needed: node-to-node traffic is switched by the
// bridge, and node-to-root traffic is delivered locally to the bridge's address
// (or any other root-ns address: Linux answers for all its addresses on any
// interface). With forwarding off, the nodes' default route via the gateway
// leads nowhere beyond the root namespace, which keeps test traffic on this host.
//
// What is created is recorded in a JSON state file before it is created, so a
// run that crashes half-way still leaves a record for destroyHostNetwork.
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCommand } from '../cluster/command.js';
import { sleep } from '../cluster/processes.js';
import { listForCleanup } from './cleanup-list.js';

export interface HostNetwork {
  readonly name: string;
  readonly bridge: string;
  readonly gatewayIP: string;
  readonly hosts: readonly NodeHost[];
}

export interface NodeHost {
  /** The caller's name for the node (a Kubernetes node name, say). */
  readonly name: string;
  /** The network namespace, as `ip netns` names it. */
  readonly netns: string;
  /** The node's IP on the bridge, reachable from the root namespace and the other nodes. */
  readonly ip: string;
}

/** The state file's content: names only, so any later process can remove them. */
interface State {
  version: 1;
  runId: string;
  prefix?: string;
  bridge?: string;
  nodes: { name: string; netns: string; veth: string; ip: string }[];
}

// 198.18.0.0/15 is reserved for benchmarking (RFC 2544): no real network lives
// there, so a /24 from it cannot shadow a route this machine actually uses.
const BENCH_PREFIXES = Array.from({ length: 512 }, (_, i) => `198.${18 + (i >> 8)}.${i & 255}`);
const FIRST_HOST = 10;
const MAX_NODES = 254 - FIRST_HOST + 1;
// Interface names in the node: a fresh namespace has only `lo`, so this cannot clash.
const NODE_IF = 'eth0';

// destroyHostNetwork deletes whatever a state file names. These patterns make sure
// a wrong or hand-edited file can never make it delete the machine's own eth0 or
// someone else's namespace: only names this module generates are accepted.
const RUN_ID = /^[0-9a-f]{6}$/;
const NAME_PATTERNS = {
  bridge: /^cr[0-9a-f]{6}br$/,
  veth: /^cr[0-9a-f]{6}v\d{1,3}$/,
  netns: /^cr-[0-9a-f]{6}-\d{1,3}$/,
};

/**
 * Creates a bridge with gateway <prefix>.1/24 and one namespace per node, with lo
 * up, node IP <prefix>.<10+i>/24 on a veth to the bridge, and a default route via
 * the gateway. Without `prefix`, picks a free /24 in 198.18.0.0/15. On failure it
 * removes what it created, then throws an error naming the run (`cr-<runid>`).
 */
export async function createHostNetwork(opts: {
  stateFile: string;
  nodes: readonly string[];
  prefix?: string;
}): Promise<HostNetwork> {
  const { stateFile, nodes } = opts;
  if (nodes.length === 0 || nodes.length > MAX_NODES) throw new Error(`between 1 and ${MAX_NODES} nodes, not ${nodes.length}`);
  if (opts.prefix !== undefined && !isPrefix(opts.prefix)) throw new Error(`prefix must be three octets like 198.18.7, not ${opts.prefix}`);
  // An existing file may be the only record of a network that is still up:
  // overwriting it would leak that network for good.
  if (existsSync(stateFile)) throw new Error(`${stateFile} exists: destroyHostNetwork it first`);

  // Random per run, so two runs on one machine (or a crashed run's leftovers)
  // never share a namespace or interface name.
  const runId = randomBytes(3).toString('hex');
  const state: State = { version: 1, runId, nodes: [] };
  writeState(stateFile, state);
  listForCleanup('network', stateFile);
  try {
    const bridge = `cr${runId}br`;
    state.bridge = bridge;
    writeState(stateFile, state);
    // A fixed MAC (locally administered, from the run id): otherwise a bridge takes
    // the lowest MAC of its ports, so the gateway's MAC would change as veths join
    // and a node's cached ARP entry for it would go stale for a while.
    const mac = `02:63:72:${runId.slice(0, 2)}:${runId.slice(2, 4)}:${runId.slice(4, 6)}`;
    await ip('link', 'add', 'name', bridge, 'address', mac, 'type', 'bridge');
    await ip('link', 'set', bridge, 'up');
    const prefix = await assignGateway(bridge, opts.prefix, (p) => {
      state.prefix = p;
      writeState(stateFile, state);
    });

    const hosts: NodeHost[] = [];
    for (const [i, name] of nodes.entries()) {
      const node = { name, netns: `cr-${runId}-${i}`, veth: `cr${runId}v${i}`, ip: `${prefix}.${FIRST_HOST + i}` };
      state.nodes.push(node);
      writeState(stateFile, state);
      await ip('netns', 'add', node.netns);
      // Without lo up, even 127.0.0.1 inside the node is unreachable.
      await ip('-n', node.netns, 'link', 'set', 'lo', 'up');
      // Created with its peer already inside the namespace: no moment where an
      // unconfigured eth0 sits in the root namespace.
      await ip('link', 'add', 'name', node.veth, 'type', 'veth', 'peer', 'name', NODE_IF, 'netns', node.netns);
      await ip('link', 'set', node.veth, 'master', bridge, 'up');
      await ip('-n', node.netns, 'addr', 'add', `${node.ip}/24`, 'dev', NODE_IF);
      await ip('-n', node.netns, 'link', 'set', NODE_IF, 'up');
      await ip('-n', node.netns, 'route', 'add', 'default', 'via', `${prefix}.1`);
      hosts.push({ name, netns: node.netns, ip: node.ip });
    }
    return { name: `cr-${runId}`, bridge, gatewayIP: `${prefix}.1`, hosts };
  } catch (err) {
    try {
      await destroyHostNetwork(stateFile);
    } catch (cleanupErr) {
      throw new AggregateError([err, cleanupErr], `creating host network cr-${runId} failed, and so did removing it (record kept in ${stateFile})`);
    }
    // The run's name, so whoever reads the error can tell which run's names it was about.
    throw new Error(`creating host network cr-${runId} failed (what it had created is removed): ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Deletes the namespaces, veths and bridge the state file names, then the file.
 * Idempotent: what is already gone is skipped, a missing file is a no-op. Kills
 * nothing - a process still inside a namespace keeps that namespace alive after
 * its name is gone, but no longer attached to anything. Throws only if something
 * named could not be removed; the file is then kept for another try.
 */
export async function destroyHostNetwork(stateFile: string): Promise<void> {
  if (!existsSync(stateFile)) return;
  const state = readState(stateFile);
  const links = new Set(await linkNames());
  const namespaces = new Set(await namespaceNames());
  for (const node of state.nodes) {
    // The veth goes first and explicitly: deleting a namespace removes its end of
    // the pair only later, in the kernel's asynchronous namespace cleanup - and not
    // at all while a process still runs in it - so the host end would linger.
    // Deleting the host end removes both ends at once.
    if (links.has(node.veth)) await ipAllowGone(['link', 'del', node.veth]);
    if (namespaces.has(node.netns)) await ipAllowGone(['netns', 'del', node.netns]);
  }
  if (state.bridge && links.has(state.bridge)) await ipAllowGone(['link', 'del', state.bridge]);

  const left = await leftovers(state);
  if (left.length > 0) throw new Error(`destroyHostNetwork: still present after deleting: ${left.join(', ')} (record kept in ${stateFile})`);
  rmSync(stateFile, { force: true });
}

/** The argv that runs `argv` inside the node's network namespace. */
export function inNode(host: NodeHost, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', host.netns, ...argv];
}

/**
 * argv inside the node with some of its own tree over this machine's /etc:
 * `ip netns exec` gives the command a mount namespace of its own (slave to the
 * root one, so nothing mounted here leaks out); in it /etc becomes a read-only
 * overlay of this machine's /etc with one extra, empty directory per name (the
 * mount points, from `layerDir`), and the node's own directory is bound on each
 * read-write. This machine's /etc is not changed.
 */
export function inNodeWithEtc(host: NodeHost, layerDir: string, binds: readonly { name: string; source: string }[], argv: readonly string[]): string[] {
  const script = [
    'mount -t overlay overlay -o "lowerdir=$1:/etc" /etc',
    ...binds.map((_, i) => `mount --bind "$${i + 2}" /etc/${binds[i]!.name}`),
    `shift ${binds.length + 1}`,
    'exec "$@"',
  ].join(' && ');
  return inNode(host, ['sh', '-c', script, 'node-mounts', layerDir, ...binds.map((b) => b.source), ...argv]);
}

/** Makes `layerDir` hold the empty mount points inNodeWithEtc binds on. */
export function etcLayer(layerDir: string, names: readonly string[]): void {
  for (const n of names) mkdirSync(join(layerDir, n), { recursive: true });
}

// --- addresses --------------------------------------------------------------

/** Gives the bridge <prefix>.1/24 on a /24 no other interface uses, and returns the prefix. */
async function assignGateway(bridge: string, wanted: string | undefined, record: (prefix: string) => void): Promise<string> {
  // Another run may pick the same free /24 between our look and our claim, so
  // the claim is checked after it is made; on a clash both sides let go and pick
  // again at random (with 512 candidates, a second clash is very unlikely).
  for (let attempt = 0; attempt < 5; attempt++) {
    const taken = await networksInUse(bridge);
    const free = (wanted ? [wanted] : BENCH_PREFIXES).filter((p) => !taken.some((n) => overlaps(n, p)));
    if (free.length === 0) throw new Error(wanted ? `prefix ${wanted}.0/24 overlaps an address already on this machine` : 'no free /24 left in 198.18.0.0/15');
    const prefix = free[randomInt(free.length)];
    record(prefix);
    await ip('addr', 'add', `${prefix}.1/24`, 'dev', bridge);
    if (!(await networksInUse(bridge)).some((n) => overlaps(n, prefix))) return prefix;
    await ipAllowGone(['addr', 'del', `${prefix}.1/24`, 'dev', bridge]);
    await sleep(randomInt(50, 250));
  }
  throw new Error('could not claim a free /24: other runs kept taking the same one');
}

interface Net {
  addr: number;
  len: number;
}

/** IPv4 networks on every root-namespace interface except `exceptIf`. */
async function networksInUse(exceptIf: string): Promise<Net[]> {
  const ifaces = JSON.parse((await ip('-j', 'addr', 'show')) || '[]') as {
    ifname: string;
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  return ifaces
    .filter((i) => i.ifname !== exceptIf)
    .flatMap((i) => i.addr_info ?? [])
    .filter((a) => a.family === 'inet')
    .map((a) => ({ addr: toInt(a.local), len: a.prefixlen }));
}

function overlaps(net: Net, prefix: string): boolean {
  const len = Math.min(net.len, 24);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((net.addr & mask) >>> 0) === ((toInt(`${prefix}.0`) & mask) >>> 0);
}

function toInt(ipv4: string): number {
  return ipv4.split('.').reduce((acc, octet) => ((acc << 8) | Number(octet)) >>> 0, 0);
}

function isPrefix(prefix: string): boolean {
  const octets = prefix.split('.');
  return octets.length === 3 && octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255);
}

// --- state file -------------------------------------------------------------

function writeState(file: string, state: State): void {
  mkdirSync(dirname(file), { recursive: true });
  // Write-then-rename: a crash mid-write leaves the previous record, not half a JSON.
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2));
  renameSync(tmp, file);
}

function readState(file: string): State {
  const state = JSON.parse(readFileSync(file, 'utf8')) as State;
  const bad = (what: string, value: unknown): never => {
    throw new Error(`${file}: not a host-network record (${what}: ${JSON.stringify(value)})`);
  };
  if (state.version !== 1 || !RUN_ID.test(state.runId) || !Array.isArray(state.nodes)) bad('header', state.runId);
  if (state.bridge !== undefined && !NAME_PATTERNS.bridge.test(state.bridge)) bad('bridge', state.bridge);
  for (const node of state.nodes) {
    if (!NAME_PATTERNS.veth.test(node.veth)) bad('veth', node.veth);
    if (!NAME_PATTERNS.netns.test(node.netns)) bad('netns', node.netns);
  }
  return state;
}

// --- ip(8) ------------------------------------------------------------------

async function ip(...args: string[]): Promise<string> {
  const res = await runCommand('ip', args);
  if (res.code !== 0) throw new Error(`ip ${args.join(' ')}: exit ${res.code}: ${res.stderr.trim()}`);
  return res.stdout;
}

/** Runs a delete; a failure is not an error here, because leftovers() checks the result. */
async function ipAllowGone(args: string[]): Promise<void> {
  // Checking existence first and deleting second leaves a window in which
  // something else (a namespace's own cleanup) removes it: that is "already gone".
  await runCommand('ip', args);
}

async function linkNames(): Promise<string[]> {
  return (JSON.parse((await ip('-j', 'link', 'show')) || '[]') as { ifname: string }[]).map((l) => l.ifname);
}

async function namespaceNames(): Promise<string[]> {
  return (JSON.parse((await ip('-j', 'netns', 'list')) || '[]') as { name: string }[]).map((n) => n.name);
}

/** Names from the record that still exist; polls briefly because link removal can trail. */
async function leftovers(state: State): Promise<string[]> {
  const wanted = [...state.nodes.flatMap((n) => [n.veth, n.netns]), ...(state.bridge ? [state.bridge] : [])];
  for (let i = 0; ; i++) {
    const present = new Set([...(await linkNames()), ...(await namespaceNames())]);
    const left = wanted.filter((n) => present.has(n));
    if (left.length === 0 || i >= 20) return left;
    await sleep(100);
  }
}
