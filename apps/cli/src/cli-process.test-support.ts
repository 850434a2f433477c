import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** tsx, to run the CLI from its sources. */
export const TSX = join(REPO, 'node_modules', '.bin', 'tsx');
/** tsx's arguments for `stowage <rest…>`. */
export const cliArgs = (...rest: string[]) => [join(REPO, 'apps/cli/src/bin/stowage.ts'), ...rest];

/** Runs the CLI in `cwd` without blocking this process (which may serve a test server), and collects its output. */
export async function runCli(cwd: string, env: NodeJS.ProcessEnv, ...rest: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(TSX, cliArgs(...rest), { cwd, env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const code = await new Promise<number | null>((resolveExit) => child.once('exit', resolveExit));
  return { code, stdout, stderr };
}
