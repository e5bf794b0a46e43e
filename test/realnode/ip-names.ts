// What `ip` lists right now, read directly (not through netns.ts, whose work the
// tests that use this check).
import { runCommand } from '../cluster/command.js';

export async function linkNames(): Promise<string[]> {
  const res = await runCommand('ip', ['-j', 'link', 'show']);
  return (JSON.parse(res.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

export async function namespaceNames(): Promise<string[]> {
  const res = await runCommand('ip', ['-j', 'netns', 'list']);
  return (JSON.parse(res.stdout || '[]') as { name: string }[]).map((n) => n.name);
}
