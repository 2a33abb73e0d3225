/**
 * Progress display for `fit`: a live bar (the `cli-progress` library) in a Node terminal, a plain
 * log line per epoch everywhere else (pipes, CI logs, browsers).
 */
import type { Logs } from './callbacks.js';

interface Bar {
  start(total: number, value: number, payload?: object): void;
  update(value: number, payload?: object): void;
  stop(): void;
}

export function formatLogs(logs: Logs): string {
  return Object.entries(logs).map(([k, v]) => `${k} ${Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2)}`).join(' · ');
}

export class Progress {
  #bar: Bar | null = null;
  #total = 0;
  #t0 = 0;
  private constructor(private readonly tty: boolean, private readonly barClass: (new (o: object) => Bar) | null) {}

  static async create(verbose: number): Promise<Progress | null> {
    if (verbose === 0) return null;
    const out = typeof process !== 'undefined' ? (process.stdout as { isTTY?: boolean } | undefined) : undefined;
    const tty = verbose === 1 && !!out?.isTTY && typeof window === 'undefined';
    if (!tty) return new Progress(false, null);
    const name = 'cli-progress';
    const mod = (await import(/* @vite-ignore */ name)) as { SingleBar: new (o: object) => Bar; default?: { SingleBar: new (o: object) => Bar } };
    return new Progress(true, mod.SingleBar ?? mod.default!.SingleBar);
  }

  epochBegin(epoch: number, epochs: number, batches: number | null): void {
    this.#t0 = performance.now();
    if (this.tty && this.barClass && batches) {
      this.#bar = new this.barClass({
        format: `epoch ${epoch + 1}/${epochs} [{bar}] {value}/{total} · {logs}`,
        barCompleteChar: '█', barIncompleteChar: '░', hideCursor: true, clearOnComplete: false,
      });
      this.#total = batches;
      this.#bar.start(batches, 0, { logs: '' });
    }
  }
  batchEnd(batch: number, logs: Logs): void {
    this.#bar?.update(batch + 1, { logs: formatLogs(logs) });
  }
  epochEnd(epoch: number, epochs: number, logs: Logs): void {
    const secs = ((performance.now() - this.#t0) / 1000).toFixed(1);
    if (this.#bar) {
      this.#bar.update(this.#total, { logs: `${formatLogs(logs)} · ${secs}s` });
      this.#bar.stop();
      this.#bar = null;
    } else {
      console.log(`epoch ${epoch + 1}/${epochs} · ${formatLogs(logs)} · ${secs}s`);
    }
  }
}
