// Running a command for a test, asynchronously: several suites host simulated
// TLS components in the test process itself, so a synchronous child process
// that talks to them would block the event loop that has to answer it.
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCommand(cmd: string, args: string[], input = ''): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    // A command that never reads stdin (openssl verify) may exit before the input
    // is written: EPIPE is not a failure; a command that needed it says so itself.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
