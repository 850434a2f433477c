#!/usr/bin/env node
import { tuneHeapForStreaming } from '../heap.js';

// Before the program's modules are loaded and evaluated (see there).
tuneHeapForStreaming();
const [{ runProgram }, { dbBackupProgram }] = await Promise.all([import('../program.js'), import('../seed-commands.js')]);
process.exitCode = await runProgram(dbBackupProgram, process.argv.slice(2));
