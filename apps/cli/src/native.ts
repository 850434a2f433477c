/** The compiled modules Stowage loads; npm builds them from source where no prebuilt binary fits. */
const NATIVE_MODULES = ['better-sqlite3', 'zstd-napi'] as const;

const LOAD_FAILURE = /NODE_MODULE_VERSION|Could not locate the bindings file|No native build was found|ERR_DLOPEN_FAILED|invalid ELF header|\.node: /;

/**
 * When `error`, or an error in its cause chain, is a native module that cannot load (never built,
 * built for another Node, wrong platform), the one-line message naming the module and the fix.
 */
export function nativeModuleFailure(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const text = `${e.message}\n${e.stack ?? ''}`;
    if (!LOAD_FAILURE.test(text) && (e as { code?: unknown }).code !== 'ERR_DLOPEN_FAILED') continue;
    const name = NATIVE_MODULES.find((module) => text.includes(module)) ?? 'a native module (better-sqlite3 or zstd-napi)';
    const reason = e.message.split('\n')[0]!.trim();
    return (
      `${name} cannot load on Node ${process.version} (${reason}). ` +
      `Rebuild it for this Node with \`npm rebuild ${NATIVE_MODULES.includes(name as never) ? name : NATIVE_MODULES.join(' ')}\` in the folder stowage is installed in ` +
      '(`npm root -g` for a global install); without a prebuilt binary that compiles it, which needs python3, make and a C++ compiler ' +
      '(Debian/Ubuntu: apt-get install python3 make g++; macOS: xcode-select --install; Windows: Visual Studio Build Tools)'
    );
  }
  return undefined;
}
