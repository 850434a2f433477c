#!/usr/bin/env node
import { runProgram, stowageProgram } from '../program.js';

process.exitCode = await runProgram(stowageProgram, process.argv.slice(2));
