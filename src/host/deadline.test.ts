import { describe, expect, test } from '@jest/globals';
import { StepDeadlineError, withinDeadline } from './deadline.js';

const after = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms));

describe('withinDeadline', () => {
  test('a step that finishes in time: its value, and its signal never aborts', async () => {
    let seen: AbortSignal | undefined;
    await expect(withinDeadline(1_000, (signal) => ((seen = signal), after(10, 'done')))).resolves.toBe('done');
    await after(20, undefined);
    expect(seen!.aborted).toBe(false);
  });

  test("a step's own error is its error, not a deadline", async () => {
    await expect(withinDeadline(1_000, async () => Promise.reject(new Error('ENOSPC')))).rejects.toThrow('ENOSPC');
  });

  test('a step that does not return: fails at the deadline, and its signal tells the pending work so', async () => {
    let seen: AbortSignal | undefined;
    const started = Date.now();
    const never = withinDeadline(50, (signal) => ((seen = signal), new Promise<never>(() => undefined)));
    await expect(never).rejects.toBeInstanceOf(StepDeadlineError);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(seen!.aborted).toBe(true);
    expect(seen!.reason).toBeInstanceOf(StepDeadlineError);
  });

  test('a step that fails after its deadline already passed: no unhandled rejection, the deadline is what is reported', async () => {
    await expect(withinDeadline(20, () => after(60, undefined).then(() => Promise.reject(new Error('late'))))).rejects.toThrow(/did not finish within 0\.02 s/);
    await after(80, undefined);
  });
});
