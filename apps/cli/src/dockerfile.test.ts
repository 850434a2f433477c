import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMPOSE_IMAGE } from './schedule.js';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** The Dockerfile's instructions: continuation lines joined, comments dropped. */
function instructions(text: string): Array<{ keyword: string; args: string }> {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
}

const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
const steps = instructions(dockerfile);
/** The stages, each from its FROM (ARGs before the first FROM are global). */
const stages: Array<typeof steps> = [];
for (const step of steps) {
  if (step.keyword === 'FROM') stages.push([step]);
  else stages.at(-1)?.push(step);
}
const runtime = stages.at(-1)!;
const args = (keyword: string) => runtime.filter((s) => s.keyword === keyword).map((s) => s.args);

describe('the Dockerfile (checked by reading it: no docker engine here)', () => {
  it('builds from source in named stages and runs on a slim Node image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages.slice(0, -1)) expect(stage[0]!.args).toMatch(/ AS [a-z]+$/i);
    const build = stages
      .flat()
      .filter((s) => s.keyword === 'RUN')
      .map((s) => s.args)
      .join('\n');
    expect(build).toMatch(/pnpm@[\d.]+ install --frozen-lockfile/);
    expect(build).toMatch(/pnpm@[\d.]+ build/);
    expect(build).toMatch(/pnpm@[\d.]+ pack/);
    expect(build).toMatch(/npm install --omit=dev .*\.tgz/);
    expect(runtime[0]!.args).toMatch(/^node:\$\{NODE_VERSION\}-[a-z]+-slim$/);
    expect(dockerfile).toMatch(/^ARG NODE_VERSION=(20|22|24)$/m);
    // Only what the install stage produced reaches the runtime, not the sources or the toolchain.
    expect(args('COPY')).toEqual([expect.stringMatching(/^--from=\w+ /)]);
  });

  it('runs as a user that is not root, with the database and backup folders as volumes', () => {
    const [user] = args('USER');
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(args('USER')).toHaveLength(1);
    const volumes = JSON.parse(args('VOLUME')[0]!) as string[];
    expect(volumes).toEqual(expect.arrayContaining(['/data', '/backups']));
    expect(args('RUN').join('\n')).toMatch(new RegExp(`chown ${user}:${user} /data /backups`));
  });

  it('checks its health with `stowage status` and runs the daemon by default', () => {
    expect(args('HEALTHCHECK')).toEqual([expect.stringMatching(/ CMD stowage status( |$)/)]);
    expect(args('ENTRYPOINT')).toEqual(['["stowage"]']);
    expect(args('CMD')).toEqual(['["daemon"]']);
    expect(args('ENV').join(' ')).toMatch(/PATH=\/opt\/stowage\/node_modules\/\.bin:\$PATH/);
  });

  it('names the image the compose output uses', () => {
    expect(dockerfile).toContain(`docker build -t ${COMPOSE_IMAGE} .`);
  });

  it('has a .dockerignore that keeps dependencies, builds, data and secrets out of the context', () => {
    const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((line) => line && !line.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['.git', '**/node_modules', '**/dist', '**/*.sqlite3', '**/.stowage', '.env*']));
  });
});
