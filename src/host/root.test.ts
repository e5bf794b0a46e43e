import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostRoot } from './root.js';

let root: string;
let outside: string;
let host: HostRoot;

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'certrotator-root-'));
  outside = await fs.mkdtemp(join(tmpdir(), 'certrotator-outside-'));
  await fs.mkdir(join(root, 'data/rke2/server/tls'), { recursive: true });
  await fs.mkdir(join(root, 'var/lib/rancher'), { recursive: true });
  await fs.writeFile(join(outside, 'secret'), 'outside');
  // Common on real hosts: the data dir is a symlink to another disk, written absolute.
  await fs.symlink('/data/rke2', join(root, 'var/lib/rancher/rke2'));
  await fs.symlink(outside, join(root, 'var/lib/rancher/escape'));
  await fs.symlink('../../../../..', join(root, 'var/lib/rancher/up'));
  host = new HostRoot(root, ['var/lib/rancher/rke2']);
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
  await fs.rm(outside, { recursive: true, force: true });
});

describe('HostRoot', () => {
  test('resolves absolute symlinks inside the host root, as the host would', async () => {
    expect(await host.resolve('var/lib/rancher/rke2/server/tls/x.crt')).toBe(join(root, 'data/rke2/server/tls/x.crt'));
  });

  test('an absolute link to a path outside is read as a path inside the root, never the outside', async () => {
    expect(await host.resolve('var/lib/rancher/escape/secret')).toBe(join(root, outside.slice(1), 'secret'));
    await expect(host.readFile('var/lib/rancher/escape/secret')).rejects.toThrow(/ENOENT/);
  });

  test.each(['../etc/passwd', 'var/../../etc', 'var/lib/rancher/up/etc/passwd'])('refuses %s, which climbs out of the root', async (p) => {
    await expect(host.resolve(p)).rejects.toThrow('resolves outside the host root');
  });

  test('writes only under the catalog directories (after resolving links)', async () => {
    await host.writeFileAtomic('var/lib/rancher/rke2/server/tls/new.key', 'k', 0o600);
    expect((await fs.stat(join(root, 'data/rke2/server/tls/new.key'))).mode & 0o777).toBe(0o600);
    await expect(host.writeFileAtomic('etc/passwd', 'x', 0o644)).rejects.toThrow('etc/passwd: refusing to write outside var/lib/rancher/rke2');
  });

  test('atomic writes leave no temp file and set the mode exactly', async () => {
    await host.writeFileAtomic('var/lib/rancher/rke2/server/tls/a.crt', 'one', 0o644);
    await host.writeFileAtomic('var/lib/rancher/rke2/server/tls/a.crt', 'two', 0o644);
    expect(await fs.readFile(join(root, 'data/rke2/server/tls/a.crt'), 'utf8')).toBe('two');
    expect((await fs.stat(join(root, 'data/rke2/server/tls/a.crt'))).mode & 0o777).toBe(0o644);
    expect((await fs.readdir(join(root, 'data/rke2/server/tls'))).filter((n) => n.includes('certrotator'))).toEqual([]);
  });

  test('keeps the owner it is given (root can chown)', async () => {
    await host.writeFileAtomic('var/lib/rancher/rke2/server/tls/owned.key', 'k', 0o600, { uid: 1234, gid: 2345 });
    const st = await fs.stat(join(root, 'data/rke2/server/tls/owned.key'));
    expect([st.uid, st.gid]).toEqual([1234, 2345]);
  });

  test('refuses to read a file over 1 MiB, naming it and its size, without reading it', async () => {
    await fs.writeFile(join(root, 'data/rke2/server/tls/huge.crt'), Buffer.alloc(1024 * 1024 + 1, 0x41));
    await expect(host.readFile('var/lib/rancher/rke2/server/tls/huge.crt')).rejects.toThrow(
      'var/lib/rancher/rke2/server/tls/huge.crt: is 1048577 bytes; a certificate, key or configuration file is at most 1 MiB, refusing to read it',
    );
    await fs.writeFile(join(root, 'data/rke2/server/tls/max.crt'), Buffer.alloc(1024 * 1024, 0x41));
    expect((await host.readFile('var/lib/rancher/rke2/server/tls/max.crt')).length).toBe(1024 * 1024);
  });

  test('a path that resolves to a directory or a device is not read as a file', async () => {
    await expect(host.readFile('var/lib/rancher/rke2/server/tls')).rejects.toThrow('var/lib/rancher/rke2/server/tls: is not a regular file');
  });
});
