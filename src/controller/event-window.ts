// Routine worker Events gathered over a few seconds into one Event per kind.
//
// A pass already folds the routine events of its own nodes into one Event
// (cascade.ts combineEvents). When nodes take real time, each finish is a
// pass of its own, so at 5,000 workers that was still an Event per start and
// per finish: 10,000 Events, half of the controller's API writes and a good
// part of the API server's work, for lines nobody reads one by one. Here the
// worker starts and finishes of every pass within `windowMs` become one Event
// each ("125 worker nodes rotated: ..."). Servers, failures, skips and the
// run's own Events are never held back, and the run's last Event is preceded
// by whatever is still gathered (flush), so the record is complete when the
// run is Ready.
import type { CertificateRotation } from '../api/certificaterotation.js';
import { combineEvents, type NodeEvent } from './cascade.js';
import type { EventSink } from './deps.js';

interface Gathered {
  rotation: CertificateRotation;
  events: NodeEvent[];
  timer: ReturnType<typeof setTimeout>;
}

export class EventWindow {
  private readonly gathered = new Map<string, Gathered>();

  constructor(
    private readonly sink: Pick<EventSink, 'normal' | 'warning'>,
    private readonly windowMs = 5_000,
  ) {}

  /** Holds a pass's routine events of `rotation` until its window closes. */
  add(rotation: CertificateRotation, events: readonly NodeEvent[]): void {
    const key = rotation.metadata.uid ?? rotation.metadata.name!;
    let g = this.gathered.get(key);
    if (!g) {
      const timer = setTimeout(() => this.flush(rotation), this.windowMs);
      timer.unref();
      this.gathered.set(key, (g = { rotation, events: [], timer }));
    }
    g.rotation = rotation;
    g.events.push(...events);
  }

  /** Sends what is gathered for `rotation` now. */
  flush(rotation: CertificateRotation): void {
    const key = rotation.metadata.uid ?? rotation.metadata.name!;
    const g = this.gathered.get(key);
    if (!g) return;
    this.gathered.delete(key);
    clearTimeout(g.timer);
    for (const e of combineEvents(g.events)) this.sink[e.type === 'Normal' ? 'normal' : 'warning'](g.rotation, e.reason, e.message);
  }

  /** Sends everything gathered (shutdown, lost leadership). */
  close(): void {
    for (const g of [...this.gathered.values()]) this.flush(g.rotation);
  }
}
