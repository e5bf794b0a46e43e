// kubectl as the tests' client: the binary built with the control plane, pointed
// at the cluster the jest global setup started (KUBECONFIG).
import { join } from 'node:path';
import { runCommand, type CommandResult } from './command.js';

export type { CommandResult } from './command.js';

export function kubectlPath(): string {
  const binDir = process.env.CERTROTATOR_BIN_DIR;
  if (!binDir) throw new Error('CERTROTATOR_BIN_DIR is not set: run e2e tests through the jest e2e project');
  return join(binDir, 'kubectl');
}

export function kubectl(args: string[], opts: { input?: string; kubeconfig?: string } = {}): Promise<CommandResult> {
  const kubeconfig = opts.kubeconfig ?? process.env.KUBECONFIG;
  if (!kubeconfig) throw new Error('KUBECONFIG is not set: run e2e tests through the jest e2e project');
  return runCommand(kubectlPath(), [`--kubeconfig=${kubeconfig}`, ...args], opts.input ?? '');
}

/** kubectl that must succeed; the error names the command and carries kubectl's stderr. */
export async function kubectlOk(args: string[], opts: { input?: string; kubeconfig?: string } = {}): Promise<string> {
  const result = await kubectl(args, opts);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
  return result.stdout;
}
