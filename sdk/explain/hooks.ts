/**
 * Activation capture: the scoped form of forward hooks. `captureActivations(model, names, fn)`
 * hooks the named submodules, runs `fn` and hands back what each produced.
 */
import { checkFunction, describe, isAsyncFunction } from '../args.js';
import { ArgumentError } from '../errors.js';
import { keep } from '../memory.js';
import { Module, type HookHandle } from '../nn/module.js';
import type { Tensor } from '../tensor.js';

export type { ForwardHook, HookHandle } from '../nn/module.js';

/** What `captureActivations` returns: `fn`'s result and each named module's output. */
export interface Captured<T> {
  /** What `fn` returned. */
  result: T;
  /** Module path → its output during `fn` (the last one, if it ran more than once). Caller-owned. */
  activations: Map<string, Tensor>;
}

/** Levenshtein distance (short names only: module paths). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The known names closest to `name` (suffix matches first, then small edit distances), at most 5. */
export function closeMatches(name: string, known: string[]): string[] {
  if (typeof name !== 'string') throw new ArgumentError(`closeMatches needs a name string, got ${describe(name)}`);
  if (!Array.isArray(known) || known.some((k) => typeof k !== 'string')) throw new ArgumentError(`closeMatches needs the known names as an array of strings, got ${describe(known)}`);
  const suffix = known.filter((k) => k.endsWith(`.${name}`) || name.endsWith(`.${k}`));
  const limit = Math.max(2, Math.floor(name.length / 3));
  const near = known
    .map((k) => [k, distance(name, k)] as const)
    .filter(([k, d]) => d <= limit && !suffix.includes(k))
    .sort((a, b) => a[1] - b[1])
    .map(([k]) => k);
  return [...suffix, ...near].slice(0, 5);
}

/**
 * Resolves module paths (state-dict style, `'features.0'`, `'layer1.0.conv1'`; `''` is the model
 * itself) to modules; an unknown path is an ArgumentError naming the closest known ones.
 */
export function resolveModules(model: Module, names: readonly string[], what: string): Module[] {
  if (!(model instanceof Module)) throw new ArgumentError(`${what} needs a Module, got ${describe(model)}`);
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) throw new ArgumentError(`${what}: the module names must be an array of strings, got ${describe(names)}`);
  const byName = new Map(model.namedModules());
  return names.map((n) => {
    const m = byName.get(n);
    if (m) return m;
    const known = [...byName.keys()].filter((k) => k !== '');
    const close = closeMatches(n, known);
    const hint = close.length > 0 ? `did you mean ${close.map((c) => `'${c}'`).join(', ')}?` : `modules: ${known.slice(0, 12).join(', ')}${known.length > 12 ? `, ... (${known.length} in all)` : ''}`;
    throw new ArgumentError(`${what}: the model has no module '${n.slice(0, 80)}'; ${hint}`);
  });
}

/**
 * Runs `fn` with forward hooks on the named submodules of `model` and returns `fn`'s result with
 * each module's output. The hooks exist only during `fn` (removed also when it throws). Captured
 * tensors are detached (no autograd history, same storage: no copy), exempt from `tidy` and owned by
 * the caller: dispose them (`eg.dispose(activations)`). A named module that did not run during `fn`
 * is an ArgumentError (nothing is kept then).
 *
 * ```ts
 * const { result, activations } = explain.captureActivations(model, ['0', '2'], () => model.forward(x));
 * ```
 */
export function captureActivations<T>(model: Module, names: readonly string[], fn: () => T): Captured<T> {
  const modules = resolveModules(model, names, 'captureActivations()');
  checkFunction(fn, 'captureActivations() function');
  if (isAsyncFunction(fn)) throw new ArgumentError('captureActivations() cannot wrap an async function: the hooks would be removed at its first await');
  const activations = new Map<string, Tensor>();
  const handles: HookHandle[] = [];
  let ok = false;
  try {
    modules.forEach((m, i) => {
      const name = names[i];
      handles.push(m.registerForwardHook((_m, _inputs, output) => {
        activations.get(name)?.dispose();
        activations.set(name, keep(output.detach()));
      }));
    });
    const result = fn();
    const missing = names.filter((n) => !activations.has(n));
    if (missing.length > 0) throw new ArgumentError(`captureActivations(): ${missing.map((n) => `'${n}'`).join(', ')} did not run during the function (no output to capture)`);
    ok = true;
    return { result, activations };
  } finally {
    for (const h of handles) h.remove();
    if (!ok) for (const t of activations.values()) t.dispose();
  }
}
