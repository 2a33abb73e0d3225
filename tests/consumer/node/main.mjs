// Plain Node/Bun ESM consumer: imports the installed package by name and prints the program's
// result as one JSON line (the runner compares it across runtimes).
import * as eg from 'edgegrad';
import { run } from '../program.js';

const threads = Number(process.argv[2] ?? 0) || undefined;
const result = await run(eg, threads);
console.log(JSON.stringify({ ...result, version: process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}` }));
await eg.shutdownWorkers();
