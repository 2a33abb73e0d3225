/**
 * The one typed validator every file format uses (model.json, safetensors headers, quantized and
 * binary graphs, optimizer and trainer state). A schema checks an `unknown` value and returns it
 * typed; a failure names the path and what was expected, quoting at most a few dozen characters
 * of the offending value (never file contents):
 *
 *   model.json: model.layers[3].inFeatures must be an integer in [1, 536870911], got "abc"
 *
 * Declaring a schema:
 *
 *   const Ckpt = v.object({ epoch: v.int({ min: 0 }), lr: v.number({ min: 0 }) }, { optional: { note: v.string() } });
 *   type Ckpt = Infer<typeof Ckpt>;                 // { epoch: number; lr: number; note?: string }
 *   const c = validate(Ckpt, parsed, 'checkpoint.json');   // FormatError on any mismatch
 *
 * Records and free-form JSON come back in objects without a prototype, so names such as
 * `__proto__` or `constructor` stay ordinary keys. Values are expected to be depth-bounded
 * already (see `parseJson`); `v.json()` bounds the depth of caller-built objects too.
 */
import { EdgegradError, FormatError } from '../errors.js';
import { describe } from '../args.js';

/**
 * Where a value sits in the checked document: built as a cheap linked list while checking and
 * rendered (`model.layers[3].inFeatures`) only when a check fails. `null` is the root.
 */
export type Path = { readonly up: Path; readonly key: string | number } | null;

/** The path of `key` below `path`. */
export function keyPath(path: Path, key: string | number): Path {
  return { up: path, key };
}

/** `a.b[3]["odd key"]`: identifiers after dots, other keys quoted (at most 40 characters). */
function render(path: Path): string {
  const keys: (string | number)[] = [];
  for (let p = path; p; p = p.up) keys.push(p.key);
  let out = '';
  for (let i = keys.length - 1; i >= 0; i--) {
    const k = keys[i];
    if (typeof k === 'number') out += `[${k}]`;
    else if (k.length <= 40 && /^[A-Za-z_$][\w$]*$/.test(k)) out += out ? `.${k}` : k;
    else out += `[${JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}...` : k)}]`;
  }
  return out;
}

/** A check failure at a path; `validate` turns it into the caller's error class. */
class Issue extends Error {
  constructor(readonly path: Path, readonly phrase: string) {
    super(phrase);
  }
}

export interface Schema<T> {
  /** Checks `value` found at `path` (null is the root) and returns it typed; throws on mismatch. */
  check(value: unknown, path: Path): T;
  /** What the schema accepts, for messages ("an integer in [0, 10]"). */
  readonly expect: string;
}
export type Infer<S> = S extends Schema<infer T> ? T : never;

/** Fails a check at `path` with `must ...` wording. */
export function fail(path: Path, message: string): never {
  throw new Issue(path, message);
}
function mismatch(path: Path, expect: string, got: unknown): never {
  return fail(path, `must be ${expect}, got ${describe(got)}`);
}

const isPlainObject = (x: unknown): x is Record<string, unknown> => {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const p = Object.getPrototypeOf(x);
  return p === Object.prototype || p === null;
};

/**
 * Runs `schema` on `value`. A mismatch throws `ErrorClass` (FormatError by default) as
 * `<source>: <path> must be ...`.
 */
export function validate<T>(schema: Schema<T>, value: unknown, source: string, ErrorClass: new (m: string) => EdgegradError = FormatError): T {
  try {
    return schema.check(value, null);
  } catch (e) {
    if (e instanceof Issue) {
      // Deeply nested paths are shown by their end, which names the field.
      const full = render(e.path);
      const path = full.length > 120 ? `...${full.slice(-100)}` : full;
      throw new ErrorClass(path ? `${source}: ${path} ${e.phrase}` : `${source} ${e.phrase}`);
    }
    if (e instanceof RangeError) throw new ErrorClass(`${source}: nested too deeply to check`);
    throw e;
  }
}

const range = (lo: number | undefined, hi: number | undefined) => {
  if (lo !== undefined && hi !== undefined) return ` in [${lo}, ${hi}]`;
  if (lo !== undefined) return ` >= ${lo}`;
  if (hi !== undefined) return ` <= ${hi}`;
  return '';
};

/** Schema constructors. */
export const v = {
  /** A finite number in [min, max] (`gt`: strictly above). */
  number(o: { min?: number; max?: number; gt?: number } = {}): Schema<number> {
    const expect = `a finite number${o.gt !== undefined ? ` > ${o.gt}` : ''}${range(o.min, o.max)}`;
    return {
      expect,
      check(x, path) {
        if (typeof x !== 'number' || !Number.isFinite(x) || (o.min !== undefined && x < o.min) || (o.max !== undefined && x > o.max)
          || (o.gt !== undefined && !(x > o.gt))) mismatch(path, expect, x);
        return x;
      },
    };
  },
  /** A safe integer in [min, max]. */
  int(o: { min?: number; max?: number } = {}): Schema<number> {
    const expect = `an integer${range(o.min, o.max)}`;
    return {
      expect,
      check(x, path) {
        if (!Number.isSafeInteger(x) || (o.min !== undefined && (x as number) < o.min) || (o.max !== undefined && (x as number) > o.max)) mismatch(path, expect, x);
        return x as number;
      },
    };
  },
  /** A string of at most `maxLength` characters (default 4096), optionally matching `pattern`. */
  string(o: { maxLength?: number; minLength?: number; pattern?: RegExp; patternName?: string } = {}): Schema<string> {
    const max = o.maxLength ?? 4096;
    const expect = o.patternName ?? `a string of ${o.minLength ? `${o.minLength} to ` : 'at most '}${max} characters`;
    return {
      expect,
      check(x, path) {
        if (typeof x !== 'string' || x.length > max || x.length < (o.minLength ?? 0) || (o.pattern && !o.pattern.test(x))) mismatch(path, expect, x);
        return x;
      },
    };
  },
  boolean(): Schema<boolean> {
    return {
      expect: 'true or false',
      check(x, path) {
        if (typeof x !== 'boolean') mismatch(path, 'true or false', x);
        return x;
      },
    };
  },
  /** Exactly `value`. */
  literal<L extends string | number | boolean | null>(value: L): Schema<L> {
    const expect = JSON.stringify(value);
    return {
      expect,
      check(x, path) {
        if (x !== value) mismatch(path, expect, x);
        return value;
      },
    };
  },
  /** One of `values`. */
  oneOf<L extends string | number>(values: readonly L[]): Schema<L> {
    const expect = `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
    return {
      expect,
      check(x, path) {
        if (!values.includes(x as L)) mismatch(path, expect, x);
        return x as L;
      },
    };
  },
  /** An array of `item` with a length in [min, max] (default max 2^20). */
  array<T>(item: Schema<T>, o: { min?: number; max?: number; length?: number } = {}): Schema<T[]> {
    const lo = o.length ?? o.min ?? 0;
    const hi = o.length ?? o.max ?? 2 ** 20;
    const expect = `an array of ${lo === hi ? `${lo}` : lo > 0 ? `${lo} to ${hi}` : `at most ${hi}`} items`;
    return {
      expect,
      check(x, path) {
        if (!Array.isArray(x) || x.length < lo || x.length > hi) mismatch(path, expect, x);
        const out = new Array<T>(x.length);
        for (let i = 0; i < x.length; i++) out[i] = item.check(x[i], keyPath(path, i));
        return out;
      },
    };
  },
  /** A fixed-length array with a schema per position. */
  tuple<T extends unknown[]>(items: { [K in keyof T]: Schema<T[K]> }): Schema<T> {
    const expect = `an array of ${items.length} items`;
    return {
      expect,
      check(x, path) {
        if (!Array.isArray(x) || x.length !== items.length) mismatch(path, expect, x);
        const out = new Array(items.length);
        for (let i = 0; i < items.length; i++) out[i] = items[i].check(x[i], keyPath(path, i));
        return out as T;
      },
    };
  },
  /**
   * A plain object with `required` keys and `optional` ones (absent or undefined). Unknown keys
   * are refused (`unknown: 'reject'`, the default) or dropped (`'strip'`).
   */
  object<R extends Record<string, unknown>, O extends Record<string, unknown> = Record<never, never>>(
    required: { [K in keyof R]: Schema<R[K]> },
    o: { optional?: { [K in keyof O]: Schema<O[K]> }; unknown?: 'reject' | 'strip' } = {},
  ): Schema<R & Partial<O>> {
    const opt = (o.optional ?? {}) as Record<string, Schema<unknown>>;
    const req = required as Record<string, Schema<unknown>>;
    const reqKeys = Object.keys(req);
    const optKeys = Object.keys(opt);
    return {
      expect: 'an object',
      check(x, path) {
        if (!isPlainObject(x)) mismatch(path, 'an object', x);
        const out: Record<string, unknown> = {};
        let seen = reqKeys.length;
        for (const k of reqKeys) {
          if (!Object.hasOwn(x, k)) fail(keyPath(path, k), 'is missing');
          out[k] = req[k].check(x[k], keyPath(path, k));
        }
        for (const k of optKeys) {
          if (!Object.hasOwn(x, k)) continue;
          seen++;
          if (x[k] !== undefined) out[k] = opt[k].check(x[k], keyPath(path, k));
        }
        if (o.unknown !== 'strip') {
          const keys = Object.keys(x);
          // Every key known: the common case costs one count.
          if (keys.length !== seen) for (const k of keys) if (!Object.hasOwn(req, k) && !Object.hasOwn(opt, k)) fail(keyPath(path, k), 'is not a known field');
        }
        return out as R & Partial<O>;
      },
    };
  },
  /** An object used as a map from names to `value` (at most `maxKeys`); returned without a prototype. */
  record<T>(value: Schema<T>, o: { maxKeys?: number; key?: Schema<string> } = {}): Schema<Record<string, T>> {
    const max = o.maxKeys ?? 2 ** 20;
    const expect = `an object of at most ${max} entries`;
    return {
      expect,
      check(x, path) {
        if (!isPlainObject(x)) mismatch(path, expect, x);
        const keys = Object.keys(x);
        if (keys.length > max) fail(path, `has ${keys.length} entries, more than the ${max} allowed`);
        const out: Record<string, T> = Object.create(null);
        for (const k of keys) {
          o.key?.check(k, keyPath(path, k));
          out[k] = value.check(x[k], keyPath(path, k));
        }
        return out;
      },
    };
  },
  /** An object whose field `tag` picks the schema of the rest (`{ op: 'conv', ... }`). */
  tagged<T>(tag: string, cases: Record<string, Schema<T>>): Schema<T> {
    const names = Object.keys(cases);
    const expect = `one of ${names.map((n) => JSON.stringify(n)).join(', ')}`;
    return {
      expect: 'an object',
      check(x, path) {
        if (!isPlainObject(x)) mismatch(path, 'an object', x);
        const t = x[tag];
        if (typeof t !== 'string' || !Object.hasOwn(cases, t)) mismatch(keyPath(path, tag), expect, t);
        return cases[t].check(x, path);
      },
    };
  },
  /** The first of `schemas` that accepts the value. */
  union<T>(...schemas: Schema<T>[]): Schema<T> {
    const expect = schemas.map((x) => x.expect).join(' or ');
    return {
      expect,
      check(x, path) {
        for (const s of schemas) {
          try {
            return s.check(x, path);
          } catch (e) {
            if (!(e instanceof Issue)) throw e;
          }
        }
        return mismatch(path, expect, x);
      },
    };
  },
  /** `schema`, then `test` on the typed value: a message (a `must ...` phrase) when it fails. */
  refine<T>(schema: Schema<T>, test: (x: T) => string | null): Schema<T> {
    return {
      expect: schema.expect,
      check(x, path) {
        const y = schema.check(x, path);
        const msg = test(y);
        if (msg !== null) fail(path, msg);
        return y;
      },
    };
  },
  /**
   * Any JSON-like value (null, booleans, numbers, strings, arrays, plain objects; `undefined`
   * inside objects) at most `maxDepth` levels deep and without cycles; returned as it is.
   */
  json(o: { maxDepth?: number } = {}): Schema<unknown> {
    const maxDepth = o.maxDepth ?? 64;
    const walk = (x: unknown, path: Path, depth: number, open: Set<object>): void => {
      if (x === null || typeof x === 'boolean' || typeof x === 'string' || typeof x === 'number') return;
      if (x === undefined && depth > 0) return;
      if (typeof x !== 'object' || !(Array.isArray(x) || isPlainObject(x))) mismatch(path, 'a JSON value', x);
      if (depth >= maxDepth) fail(path, `is nested more than ${maxDepth} levels deep`);
      if (open.has(x)) fail(path, 'refers to itself (a cycle)');
      open.add(x);
      if (Array.isArray(x)) for (let i = 0; i < x.length; i++) walk(x[i], keyPath(path, i), depth + 1, open);
      else for (const k of Object.keys(x)) walk((x as Record<string, unknown>)[k], keyPath(path, k), depth + 1, open);
      open.delete(x);
    };
    return {
      expect: 'a JSON value',
      check(x, path) {
        walk(x, path, 0, new Set());
        return x;
      },
    };
  },
};
