// A deadline for the steps that only touch the node's own files (plan, prepare,
// backup, install, the rollback's restore). They take milliseconds on a healthy
// disk; on a hung one (an NFS-backed /var, a dying device) a read or write may
// never return, and an agent waiting on it would hold the rotation slot with no
// end. A file operation cannot be cancelled once the kernel has it, so the
// deadline does two things: the step fails at once, named, and the operation
// still pending is told (by the signal) never to rename anything into place when
// it does return, so it cannot undo the rollback that follows.
export const DEFAULT_LOCAL_STEP_TIMEOUT_MS = 60_000;

export class StepDeadlineError extends Error {
  constructor(readonly ms: number) {
    super(
      `did not finish within ${ms / 1000} s: an operation on the host did not return (a hung filesystem?); ` +
        'whatever it was writing will not be put in place when it does',
    );
    this.name = 'StepDeadlineError';
  }
}

/** Runs `fn` with a signal that aborts at the deadline; rejects with StepDeadlineError then, whether or not fn has returned. */
export async function withinDeadline<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new StepDeadlineError(ms);
      ac.abort(e);
      reject(e);
    }, ms);
  });
  try {
    return await Promise.race([fn(ac.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}
