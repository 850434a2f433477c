#!/usr/bin/env node
import { tuneHeapForStreaming } from '../heap.js';

// Before the program's modules are loaded and evaluated (see there).
tuneHeapForStreaming();
const { runProgram, stowageProgram } = await import('../program.js');
process.exitCode = await runProgram(stowageProgram, process.argv.slice(2));
