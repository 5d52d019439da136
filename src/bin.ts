#!/usr/bin/env node
import { main } from './cli/main.js';

// Output piped into `head` and the like: a closed pipe ends the output, not with a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});

process.exitCode = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  // Progress bars only on a terminal: piped or redirected, stderr gets no escape codes.
  progress: process.stderr.isTTY ? process.stderr : undefined,
});
