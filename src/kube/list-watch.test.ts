// ListWatch's contract (list-watch.ts), with a scripted watcher: what is
// listed and from which resourceVersion each watch starts, what the cache and
// the callbacks see, and how each way a watch can end is answered.
import { describe, expect, it } from '@jest/globals';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { ListWatch, type Watcher } from './list-watch.js';

type Obj = KubernetesObject & { data?: string };

function obj(name: string, rv: string, data = ''): Obj {
  return { metadata: { name, namespace: 'ns', resourceVersion: rv }, data };
}

/** A watcher whose watches the test drives: send events, then end them. */
class ScriptedWatcher implements Watcher {
  readonly watches: { query: Record<string, unknown>; send: (type: string, o: unknown) => void; end: (err: unknown) => void; aborted: boolean }[] = [];
  async watch(_path: string, query: Record<string, unknown>, callback: (type: string, o: unknown, e: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    const controller = new AbortController();
    const w = { query, send: (type: string, o: unknown) => callback(type, o, { type, object: o }), end: done, aborted: false };
    controller.signal.addEventListener('abort', () => (w.aborted = true));
    this.watches.push(w);
    return controller;
  }
  last(): ScriptedWatcher['watches'][number] {
    return this.watches[this.watches.length - 1]!;
  }
}

function setup(lists: Obj[][]) {
  const watcher = new ScriptedWatcher();
  let listed = 0;
  const listFn = async (): Promise<KubernetesListObject<Obj>> => {
    const items = lists[Math.min(listed, lists.length - 1)]!;
    listed++;
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: `L${listed}` }, items };
  };
  const delays: number[] = [];
  const lw = new ListWatch<Obj>('/api/v1/namespaces/ns/configmaps', watcher, listFn, 'app=x', async (ms) => void delays.push(ms));
  const seen: string[] = [];
  for (const verb of ['add', 'update', 'delete'] as const) lw.on(verb, (o) => seen.push(`${verb} ${o.metadata!.name}@${o.metadata!.resourceVersion}`));
  const errors: unknown[] = [];
  lw.on('error', (e) => errors.push(e));
  return { lw, watcher, seen, errors, delays, lists: () => listed };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ListWatch', () => {
  it('lists, then watches from the list’s resourceVersion with the selector; events update the cache; an unchanged version is not an update', async () => {
    const { lw, watcher, seen } = setup([[obj('a', '1'), obj('b', '2')]]);
    await lw.start();
    expect(watcher.last().query).toEqual({ resourceVersion: 'L1', allowWatchBookmarks: 'true', labelSelector: 'app=x' });
    watcher.last().send('ADDED', obj('c', '3'));
    watcher.last().send('MODIFIED', obj('a', '4', 'new'));
    watcher.last().send('MODIFIED', obj('a', '4', 'new'));
    watcher.last().send('DELETED', obj('b', '5'));
    watcher.last().send('BOOKMARK', { metadata: { resourceVersion: '6' } });
    expect(seen).toEqual(['add a@1', 'add b@2', 'add c@3', 'update a@4', 'delete b@5']);
    expect(lw.list().map((o) => o.metadata!.name).sort()).toEqual(['a', 'c']);
    expect(lw.get('a', 'ns')!.data).toBe('new');
    expect(lw.list('ns')).toHaveLength(2);
    expect(lw.list('other')).toEqual([]);
    // The bookmark's resourceVersion is where the next watch resumes.
    watcher.last().end(new DOMException('nothing for 30 s', 'TimeoutError'));
    await tick();
    expect(watcher.last().query.resourceVersion).toBe('6');
  });

  it('resumes a watch that timed out from the last resourceVersion at once, without listing', async () => {
    const { lw, watcher, lists, delays } = setup([[obj('a', '1')]]);
    await lw.start();
    watcher.last().send('MODIFIED', obj('a', '7'));
    watcher.last().end(new DOMException('nothing for 30 s', 'TimeoutError'));
    await tick();
    expect(watcher.watches).toHaveLength(2);
    expect(watcher.last().query.resourceVersion).toBe('7');
    expect(lists()).toBe(1);
    expect(delays).toEqual([]);
  });

  it('relists after 410 Gone (a refused watch, or an ERROR event), deleting what the new list no longer has', async () => {
    const { lw, watcher, seen, lists } = setup([[obj('a', '1'), obj('b', '1')], [obj('b', '1'), obj('c', '8')], [obj('c', '9')]]);
    await lw.start();
    watcher.last().end({ statusCode: 410 });
    await tick();
    expect(lists()).toBe(2);
    expect(watcher.last().query.resourceVersion).toBe('L2');
    watcher.last().send('ERROR', { kind: 'Status', code: 410 });
    watcher.last().end(null);
    await tick();
    expect(lists()).toBe(3);
    expect(seen).toEqual(['add a@1', 'add b@1', 'delete a@1', 'add c@8', 'delete b@1', 'update c@9']);
    expect(lw.list().map((o) => o.metadata!.name)).toEqual(['c']);
  });

  it('reports any other error and stops; start() resumes from the last resourceVersion without listing', async () => {
    const { lw, watcher, errors, lists } = setup([[obj('a', '1')]]);
    await lw.start();
    watcher.last().send('ADDED', obj('b', '5'));
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    watcher.last().end(refused);
    await tick();
    expect(errors).toEqual([refused]);
    expect(watcher.watches).toHaveLength(1);
    await lw.start();
    expect(watcher.watches).toHaveLength(2);
    expect(watcher.last().query.resourceVersion).toBe('5');
    expect(lists()).toBe(1);
  });

  it('reports a failed list, and a watch that could not be sent', async () => {
    const watcher = new ScriptedWatcher();
    const failing = new Error('list refused');
    const lw = new ListWatch<Obj>('/p', watcher, () => Promise.reject(failing));
    const errors: unknown[] = [];
    lw.on('error', (e) => errors.push(e));
    await lw.start();
    expect(errors).toEqual([failing]);
    expect(watcher.watches).toHaveLength(0);

    const unreadable = new Error('client-key: ENOENT');
    const lw2 = new ListWatch<Obj>('/p', { watch: () => Promise.reject(unreadable) }, async () => ({ apiVersion: 'v1', kind: 'List', metadata: {}, items: [] }));
    lw2.on('error', (e) => errors.push(e));
    await lw2.start();
    expect(errors).toEqual([failing, unreadable]);
  });

  it('waits longer each time the server ends a watch that brought nothing (1 s doubling to 30 s); an event resets the wait', async () => {
    const { lw, watcher, delays } = setup([[obj('a', '1')]]);
    await lw.start();
    for (let i = 0; i < 7; i++) {
      watcher.last().end(null);
      await tick();
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000]);
    watcher.last().send('MODIFIED', obj('a', '2'));
    watcher.last().end(null);
    await tick();
    watcher.last().end(null);
    await tick();
    expect(delays.slice(6)).toEqual([1000]);
  });

  it('stop() aborts the watch and nothing reconnects, not even when the aborted watch ends', async () => {
    const { lw, watcher, errors } = setup([[obj('a', '1')]]);
    await lw.start();
    lw.stop();
    expect(watcher.last().aborted).toBe(true);
    watcher.last().end(new DOMException('aborted', 'AbortError'));
    await tick();
    expect(watcher.watches).toHaveLength(1);
    expect(errors).toEqual([]);
  });
});
