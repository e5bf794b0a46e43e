#!/usr/bin/env node
// certrotator's single entry point. Subcommands register in COMMANDS.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError, type Command, type Io } from './command.js';
import { agentCommand } from './agent.js';
import { controllerCommand } from './controller.js';
import { nodeCommand } from './node.js';

const COMMANDS: readonly Command[] = [nodeCommand, agentCommand, controllerCommand];

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  const command = COMMANDS.find((c) => c.name === name);
  if (!command || rest.includes('--help') || rest.includes('-h')) {
    if (command) {
      io.out(command.usage);
      return 0;
    }
    io.err(`usage: certrotator <command> ...\n\ncommands:\n${COMMANDS.map((c) => `  ${c.name.padEnd(12)}${c.summary}`).join('\n')}\n`);
    return name === undefined || name === '--help' || name === '-h' ? 0 : 2;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError || (e as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      io.err(`certrotator: ${(e as Error).message}\n\n${command.usage}`);
      return 2;
    }
    io.err(`certrotator: error: ${(e as Error).message}\n`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (invokedDirectly) {
  const io: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
  main(process.argv.slice(2), io).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`certrotator: error: ${(e as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
