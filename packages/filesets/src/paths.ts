/*
 * Path rules shared by config validation, scanning and restore. Every path inside a file set is
 * a canonical relative POSIX path: no leading '/', no '.', '..' or empty segments, no backslash
 * or NUL. Symlink targets are judged by resolving them the way the kernel would, through the
 * other links of the same set, so `a -> .` plus `b -> a/..` is caught although `b` looks harmless.
 */

/** Why `path` is not a canonical relative path, or `undefined` when it is one. */
export function unsafePathReason(path: string): string | undefined {
  if (path === '') return 'it is empty';
  if (path.includes('\0')) return 'it contains a NUL byte';
  if (path.includes('\\')) return 'it contains a backslash';
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'it is absolute';
  for (const segment of path.split('/')) {
    if (segment === '..') return "it contains a '..' segment";
    if (segment === '' || segment === '.') return "it is not in canonical form (empty or '.' segment, or a trailing '/')";
  }
  return undefined;
}

/** The folders above `path`, nearest last: `a/b/c` → `['a', 'a/b']`. */
export function ancestorsOf(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** The parent of a relative path, `'.'` for a top-level name. */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '.' : path.slice(0, slash);
}

/**
 * The first pair of paths where one equals or contains the other (`media` and `media/thumbs`),
 * or `undefined`. Linear in the number of paths times their depth.
 */
export function findOverlap(paths: readonly string[]): [string, string] | undefined {
  const seen = new Set<string>();
  for (const path of paths) {
    if (seen.has(path)) return [path, path];
    seen.add(path);
  }
  for (const path of paths) {
    const ancestor = ancestorsOf(path).find((candidate) => seen.has(candidate));
    if (ancestor !== undefined) return [ancestor, path];
  }
  return undefined;
}

/** Symlink expansions before resolution gives up, as the kernel's ELOOP limit. */
const MAX_EXPANSIONS = 40;

/**
 * Whether the symlink at `linkPath` (relative to its set's root) pointing at `target` can lead
 * outside that root. `links` maps the set's other symlinks (path → target); they are expanded
 * while resolving, `..` climbs, and a component that is not a known link is taken literally.
 * A loop that never resolves cannot be followed, so it does not escape.
 */
export function linkEscapes(linkPath: string, target: string, links: ReadonlyMap<string, string>): boolean {
  let expansions = 0;
  const resolve = (base: readonly string[], to: string): string[] | 'escape' | 'loop' => {
    if (to === '' || to.startsWith('/')) return 'escape';
    const stack = [...base];
    for (const part of to.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (stack.length === 0) return 'escape';
        stack.pop();
        continue;
      }
      stack.push(part);
      const next = links.get(stack.join('/'));
      if (next === undefined) continue;
      if (++expansions > MAX_EXPANSIONS) return 'loop';
      stack.pop();
      const resolved = resolve(stack, next);
      if (typeof resolved === 'string') return resolved;
      stack.splice(0, stack.length, ...resolved);
    }
    return stack;
  };
  const parent = parentOf(linkPath);
  return resolve(parent === '.' ? [] : parent.split('/'), target) === 'escape';
}

/** Entries in path order with the root `.` first, which puts every folder before its contents. */
export function byPath(a: { path: string }, b: { path: string }): number {
  if (a.path === b.path) return 0;
  if (a.path === '.' || b.path === '.') return a.path === '.' ? -1 : 1;
  return a.path < b.path ? -1 : 1;
}
