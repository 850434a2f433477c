#!/usr/bin/env node
import { keepYoungGenerationSmall } from '../young-generation.js';

// Before the program's modules are loaded and evaluated (see there).
keepYoungGenerationSmall();
const { runProgram, stowageProgram } = await import('../program.js');
process.exitCode = await runProgram(stowageProgram, process.argv.slice(2));
