import { describe, expect, it, vi } from 'vitest';
import { ExitCode } from './exit-codes.js';
import { runProgram, stowageProgram } from './program.js';
import { dbBackupProgram, dbRestoreProgram } from './seed-commands.js';

describe('usage errors', () => {
  it.each([
    [stowageProgram, ['backup', '--type', 'weekly']],
    [stowageProgram, ['list', '--bogus']],
    [stowageProgram, ['key', 'generate', '--bogus']],
    [stowageProgram, ['schedule', 'print', '--format', 'launchd']],
    [stowageProgram, ['schedule', 'print']],
    [stowageProgram, ['frobnicate']],
    [dbBackupProgram, ['--type=weekly']],
    [dbRestoreProgram, ['--bogus']],
  ])('exit 2 for every subcommand: %#', async (program, argv) => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await runProgram(program, argv)).toBe(ExitCode.Usage);
      expect(stderr.mock.calls.map(([text]) => String(text)).join('')).toMatch(/error: /);
    } finally {
      stderr.mockRestore();
    }
  });
});
