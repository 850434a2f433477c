/*
 * Core is adapter-blind: a program that uses @stowage/core with its own adapter installs no cloud
 * SDK. Walks core's runtime dependencies transitively through the workspace (what `npm i
 * @stowage/core` would install of ours) and checks what they pull in from the registry.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
type Manifest = { name: string; dependencies?: Record<string, string> };
const workspace = new Map<string, Manifest>(
  ['packages', 'apps'].flatMap((folder) =>
    readdirSync(join(ROOT, folder)).flatMap((name) => {
      try {
        const manifest = JSON.parse(readFileSync(join(ROOT, folder, name, 'package.json'), 'utf8')) as Manifest;
        return [[manifest.name, manifest] as const];
      } catch {
        return [];
      }
    }),
  ),
);

/** Workspace packages and registry packages `name` needs at run time, transitively through the workspace. */
function runtimeClosure(name: string): { ours: Set<string>; external: Set<string> } {
  const ours = new Set<string>();
  const external = new Set<string>();
  const visit = (pkg: string) => {
    if (ours.has(pkg)) return;
    ours.add(pkg);
    for (const dependency of Object.keys(workspace.get(pkg)?.dependencies ?? {})) {
      if (workspace.has(dependency)) visit(dependency);
      else external.add(dependency);
    }
  };
  visit(name);
  return { ours, external };
}

const CLOUD = /^(@aws-sdk\/|@smithy\/|ali-oss$|@alicloud\/|@google-cloud\/|@azure\/)/;

describe('@stowage/core depends on no cloud SDK and no concrete adapter but the local one', () => {
  it('its runtime dependency closure in the workspace holds no S3 or OSS adapter', () => {
    const { ours } = runtimeClosure('@stowage/core');
    const adapters = [...ours].filter((pkg) => /^@stowage\/(storage-|adapters$)/.test(pkg) && pkg !== '@stowage/storage-local');
    expect(adapters).toEqual([]);
  });

  it('pulls in no cloud SDK from the registry', () => {
    const { external } = runtimeClosure('@stowage/core');
    expect([...external].filter((pkg) => CLOUD.test(pkg))).toEqual([]);
  });

  it('the check can fail: the CLI, which bundles the built-in adapters, does pull them in', () => {
    const { ours, external } = runtimeClosure('@stowage/cli');
    expect(ours).toContain('@stowage/storage-s3');
    expect([...external].filter((pkg) => CLOUD.test(pkg))).toEqual(expect.arrayContaining(['@aws-sdk/client-s3', 'ali-oss']));
  });
});
