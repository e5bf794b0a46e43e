// kubectl as the tests' client: the binary built with the control plane, pointed
// at the cluster the jest global setup started (KUBECONFIG).
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function kubectlPath(): string {
  const binDir = process.env.CERTROTATOR_BIN_DIR;
  if (!binDir) throw new Error('CERTROTATOR_BIN_DIR is not set: run e2e tests through the jest e2e project');
  return join(binDir, 'kubectl');
}

export function kubectl(args: string[], opts: { input?: string; kubeconfig?: string } = {}): Promise<CommandResult> {
  const kubeconfig = opts.kubeconfig ?? process.env.KUBECONFIG;
  if (!kubeconfig) throw new Error('KUBECONFIG is not set: run e2e tests through the jest e2e project');
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlPath(), [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** kubectl that must succeed; the error names the command and carries kubectl's stderr. */
export async function kubectlOk(args: string[], opts: { input?: string; kubeconfig?: string } = {}): Promise<string> {
  const result = await kubectl(args, opts);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
  return result.stdout;
}
