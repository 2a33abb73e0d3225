/**
 * The bench page (bench/browser.ts serves it cross-origin isolated and drives it): exposes the
 * workloads of bench/workloads/ to the driver, which lists a workload's jobs and runs one job per
 * fresh page, as bench/run.ts runs one job per Node process.
 */
import type { BenchRecord, Job, Workload } from '../harness.js';

const files = import.meta.glob('../workloads/*.ts') as Record<string, () => Promise<{ default: Workload }>>;

async function workload(name: string): Promise<Workload> {
  const load = files[`../workloads/${name}.ts`];
  if (!load) throw new Error(`no workload ${name}`);
  return (await load()).default;
}

const api = {
  jobs: async (name: string): Promise<Job[]> => (await workload(name)).jobs(),
  run: async (name: string, job: Job): Promise<BenchRecord[]> => (await workload(name)).run(job),
  isolated: () => globalThis.crossOriginIsolated === true,
};
Object.assign(globalThis, { edgegradBench: api });
document.title = 'ready';
