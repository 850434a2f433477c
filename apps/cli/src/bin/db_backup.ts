#!/usr/bin/env node
import { runProgram } from '../program.js';
import { dbBackupProgram } from '../seed-commands.js';

process.exitCode = await runProgram(dbBackupProgram, process.argv.slice(2));
