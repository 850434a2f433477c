#!/usr/bin/env node
import { tuneHeapForStreaming } from '../heap.js';

// Before the program's modules are loaded and evaluated (see there).
tuneHeapForStreaming();
const [{ runProgram }, { dbRestoreProgram }] = await Promise.all([import('../program.js'), import('../seed-commands.js')]);
process.exitCode = await runProgram(dbRestoreProgram, process.argv.slice(2));
