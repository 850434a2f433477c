#!/usr/bin/env node
import { keepYoungGenerationSmall } from '../young-generation.js';

// Before the program's modules are loaded and evaluated (see there).
keepYoungGenerationSmall();
const [{ runProgram }, { dbBackupProgram }] = await Promise.all([import('../program.js'), import('../seed-commands.js')]);
process.exitCode = await runProgram(dbBackupProgram, process.argv.slice(2));
