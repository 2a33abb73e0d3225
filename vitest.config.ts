import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';

// One set of test files, run twice: in Node and in headless Chromium (Debian's /usr/bin/chromium,
// driven by Playwright). The browser project serves pages cross-origin isolated (COOP + COEP) so
// the threaded engine (SharedArrayBuffer) runs there too.
const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// Inline projects do not inherit the root `test` options, so each names its own timeouts.
const timeouts = { testTimeout: 120_000, hookTimeout: 120_000 };
// Examples import the package by name (dist/); in tests it is the SDK's source, so a test that
// reuses an example's helpers shares one engine with the test itself.
const resolve = { alias: { edgegrad: fileURLToPath(new URL('./sdk/index.ts', import.meta.url)) } };

export default defineConfig({
  test: {
    projects: [
      {
        resolve,
        test: {
          name: 'node',
          ...timeouts,
          include: ['tests/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        resolve,
        server: { headers: isolationHeaders },
        preview: { headers: isolationHeaders },
        test: {
          name: 'chromium',
          ...timeouts,
          include: ['tests/**/*.test.ts'],
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({
              launchOptions: {
                executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
                args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
                  '--disable-sync', '--no-first-run', '--disable-gpu', '--disable-quic'],
              },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
