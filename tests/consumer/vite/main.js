// A Vite app that depends on the installed package by name, with no edgegrad-specific config:
// the production build must find the wasm engines and the pool worker on its own.
import * as eg from 'edgegrad';
import { run } from '../program.js';
import { report } from '../page.js';

report(run(eg), eg);
