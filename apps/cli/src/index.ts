export { ExitCode } from './exit-codes.js';
export { runProgram, stowageProgram } from './program.js';
export { dbBackupProgram, dbRestoreProgram } from './seed-commands.js';
