#!/usr/bin/env node
import { runProgram } from '../program.js';
import { dbRestoreProgram } from '../seed-commands.js';

process.exitCode = await runProgram(dbRestoreProgram, process.argv.slice(2));
