/// <reference types="vite/client" />
/**
 * Runs every ```ts block of the guides in docs/guides/ (in Node and in Chromium), so the docs
 * cannot rot. A block is a complete program: `import * as eg from 'edgegrad'` (or named imports
 * from it) and plain JavaScript-compatible TypeScript (no type annotations, so it also runs here
 * without a compiler). `console.log(x); // → text` lines are checked: the logged value, written as
 * JSON (strings as they are), must equal `text`. Each block must free the tensors it creates.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';

const pages = import.meta.glob('../docs/guides/*.md', { query: '?raw', import: 'default', eager: true }) as Record<string, string>;

/** The ```ts blocks of a markdown page, with the line each starts on. */
function tsBlocks(markdown: string): { code: string; line: number }[] {
  const out: { code: string; line: number }[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```ts') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trim() !== '```') end++;
    out.push({ code: lines.slice(start, end).join('\n'), line: start + 1 });
    i = end;
  }
  return out;
}

const show = (v: unknown): string => {
  if (typeof v === 'string') return v;
  if (ArrayBuffer.isView(v)) return JSON.stringify(Array.from(v as unknown as ArrayLike<number>));
  return JSON.stringify(v);
};

/** Turns a block into the body of an async function of `eg` and `__expect`; names what it cannot take. */
function toFunctionBody(code: string): string {
  return code.split('\n').map((line) => {
    const ns = /^import \* as eg from 'edgegrad';\s*$/.exec(line);
    if (ns) return '';
    const named = /^import \{([^}]+)\} from 'edgegrad';\s*$/.exec(line);
    if (named) return `const {${named[1].replace(/\bas\b/g, ':')}} = eg;`;
    if (/^\s*import\b/.test(line)) throw new Error(`docs example: only imports from 'edgegrad' can run here: ${line}`);
    const checked = /^(\s*)console\.log\((.*)\);\s*\/\/ → (.*)$/.exec(line);
    if (checked) return `${checked[1]}__expect(${JSON.stringify(checked[3].trim())}, ${checked[2]});`;
    return line;
  }).join('\n');
}

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<void>;

describe('docs/guides examples', () => {
  beforeAll(async () => {
    await setup();
  });
  expectEachTestFreesItsTensors();

  it('finds the guides and their examples', () => {
    const names = Object.keys(pages).map((p) => p.split('/').pop());
    expect(names).toEqual(expect.arrayContaining(['tensors.md', 'training.md', 'models.md', 'compression.md', 'explain.md', 'robustness.md', 'privacy.md', 'viz.md', 'onnx.md', 'he.md', 'text.md']));
    for (const [path, text] of Object.entries(pages)) expect(tsBlocks(text).length, `${path} has a runnable example`).toBeGreaterThan(0);
  });

  it('checks what examples print and rejects what cannot run', () => {
    expect(toFunctionBody("import { tensor as t } from 'edgegrad';\nconsole.log(1); // → 1")).toBe('const { tensor : t } = eg;\n__expect("1", 1);');
    expect(() => toFunctionBody("import fs from 'node:fs';")).toThrow(/only imports from 'edgegrad'/);
  });

  for (const [path, text] of Object.entries(pages)) {
    for (const { code, line } of tsBlocks(text)) {
      it(`${path.replace('../', '')}:${line}`, async () => {
        const checks: [string, string][] = [];
        const __expect = (want: string, ...got: unknown[]) => checks.push([want, got.map(show).join(' ')]);
        const quiet = { ...console, log: () => {} };
        await new AsyncFunction('eg', '__expect', 'console', toFunctionBody(code))(eg, __expect, quiet);
        for (const [want, got] of checks) expect(got, `${path}:${line} prints`).toBe(want);
      });
    }
  }
});
