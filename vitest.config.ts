import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { webdriverio } from '@vitest/browser-webdriverio';

// One set of test files, run in Node and in headless Chromium (Debian's /usr/bin/chromium, driven
// by Playwright); a conformance subset of them also runs in headless Firefox ESR (SpiderMonkey,
// driven by geckodriver through WebdriverIO) and, as project `conformance`, under Node 22 and 24
// (scripts/test.sh starts Vitest with those binaries). Browser projects serve pages cross-origin
// isolated (COOP + COEP) so the threaded engine (SharedArrayBuffer) runs there too.
const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// Inline projects do not inherit the root `test` options, so each names its own timeouts.
const timeouts = { testTimeout: 120_000, hookTimeout: 120_000 };
// Examples import the package by name (dist/); in tests it is the SDK's source, so a test that
// reuses an example's helpers shares one engine with the test itself.
const resolve = { alias: { edgegrad: fileURLToPath(new URL('./sdk/index.ts', import.meta.url)) } };

/**
 * The conformance subset: the determinism digest (tests/engines, every op family, training, int8,
 * seeded random draws, attributions, DP) plus the suites of each op family, autograd, layers,
 * training, int8, explainers and DP. Runs on every engine: Node 20/22/24, Chromium, Firefox.
 */
export const conformance = [
  'tests/engines/*.test.ts',
  'tests/determinism.test.ts', 'tests/single-thread-build.test.ts',
  'tests/tensor.test.ts', 'tests/ops-property.test.ts', 'tests/gradients.test.ts', 'tests/memory.test.ts', 'tests/errors.test.ts',
  'tests/nn.test.ts', 'tests/attention.test.ts', 'tests/recurrent.test.ts', 'tests/groupnorm.test.ts',
  'tests/optim.test.ts', 'tests/fit.test.ts', 'tests/resume.test.ts', 'tests/io.test.ts',
  'tests/compress-quant.test.ts', 'tests/compress-kernels.test.ts',
  'tests/explain-gradient.test.ts', 'tests/explain-layer.test.ts',
  'tests/privacy-engine.test.ts', 'tests/privacy-grad-sample.test.ts',
];

/** Files only the Node 22/24 runs add to the subset (for checks that depend on the Node/V8 version). */
export const nodeLtsOnly: string[] = ['tests/relaxed-engine.test.ts'];

const firefoxBinary = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
const geckodriverBinary = process.env.GECKODRIVER_PATH ?? `${homedir()}/.cargo/bin/geckodriver`;

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
        test: {
          name: 'conformance',
          ...timeouts,
          include: [...conformance, ...nodeLtsOnly],
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
      {
        resolve,
        server: { headers: isolationHeaders },
        preview: { headers: isolationHeaders },
        test: {
          name: 'firefox',
          ...timeouts,
          // FIREFOX_SUITE=all runs the whole suite in Firefox (measured in the README), not only the subset.
          include: process.env.FIREFOX_SUITE === 'all' ? ['tests/**/*.test.ts'] : conformance,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: webdriverio({
              capabilities: {
                'moz:firefoxOptions': {
                  binary: firefoxBinary,
                  // No update checks, telemetry or first-run pages from a test profile.
                  prefs: { 'app.update.auto': false, 'datareporting.policy.dataSubmissionEnabled': false, 'browser.shell.checkDefaultBrowser': false },
                },
                'wdio:geckodriverOptions': { binary: geckodriverBinary },
              },
            }),
            instances: [{ browser: 'firefox' }],
          },
        },
      },
    ],
  },
});
