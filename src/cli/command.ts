import { parseDuration } from '../api/duration.js';

// The shape every top-level subcommand (node now; controller and agent later) implements.
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  run(argv: string[], io: Io): Promise<number>;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `--inventory-interval` of the agent and the controller: a duration, or 0 for never. */
export function inventoryInterval(value: string): number {
  try {
    return value === '0' ? 0 : parseDuration(value);
  } catch (e) {
    throw new UsageError(`--inventory-interval: ${(e as Error).message}`);
  }
}
