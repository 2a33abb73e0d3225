/**
 * Where runners leave their rows of the digest table: target/engines/<name>.json, read by
 * tests/engines/table.ts after all engines ran (scripts/test.sh). Node writes with node:fs, Bun
 * too; a Vitest browser page asks the test server to write (vitest/browser `commands.writeFile`).
 */
import type { DigestRow } from './program.js';

/** The engine's name and version as the table shows it: `node v22.23.3`, `bun 1.4.5`, `firefox 153.0`… */
export function engineName(): string {
  const g = globalThis as { Bun?: { version: string }; process?: { version: string; versions?: { node?: string } }; navigator?: { userAgent: string } };
  if (g.Bun) return `bun ${g.Bun.version}`;
  if (typeof window === 'undefined' && g.process?.versions?.node) return `node ${g.process.version}`;
  const ua = g.navigator?.userAgent ?? '';
  const m = /Firefox\/([\d.]+)/.exec(ua) ?? /(?:HeadlessChrome|Chrome)\/([\d.]+)/.exec(ua) ?? /Version\/([\d.]+).*Safari/.exec(ua);
  const kind = /Firefox\//.test(ua) ? 'firefox' : /Chrome\//.test(ua) ? 'chromium' : /Safari\//.test(ua) ? 'webkit' : 'browser';
  return m ? `${kind} ${m[1]}` : kind;
}

/** A file name for the rows: the engine's name without spaces plus the build. */
export function rowsFile(rows: DigestRow[]): string {
  return `target/engines/${rows[0].engine.replace(/[^\w.-]+/g, '-')}-${rows[0].build}.json`;
}

/** Writes the rows for the closing table (a failure to write is reported, never fatal to the check itself). */
export async function recordRows(rows: DigestRow[]): Promise<void> {
  if (rows.length === 0) return;
  const text = `${JSON.stringify(rows, null, 1)}\n`;
  try {
    if (typeof window !== 'undefined') {
      const { commands } = await import('vitest/browser');
      await commands.writeFile(rowsFile(rows), text);
    } else {
      const fs = await import('node:fs');
      fs.mkdirSync('target/engines', { recursive: true });
      fs.writeFileSync(rowsFile(rows), text);
    }
  } catch (e) {
    console.warn(`could not record the digest rows: ${(e as Error).message}`);
  }
}
