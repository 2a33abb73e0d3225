import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';

// One set of test files, run twice: in Node and in headless Chromium (Debian's /usr/bin/chromium,
// driven by Playwright). The browser project serves pages cross-origin isolated (COOP + COEP) so
// the threaded engine (SharedArrayBuffer) runs there too.
const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        test: {
          name: 'node',
          include: ['tests/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        server: { headers: isolationHeaders },
        preview: { headers: isolationHeaders },
        test: {
          name: 'chromium',
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
