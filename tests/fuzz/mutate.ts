/**
 * Seeded mutators for the fuzz suite: byte-level (bit flips, byte sets, truncation, extension,
 * chunk duplication/deletion, splices between two valid files, header-length tampering) and
 * structure-aware (JSON values: type changes, hostile numbers, deep nesting, long strings,
 * `__proto__`/`constructor` keys, deleted and duplicated keys; quantized/binary graphs: cycles and
 * references out of range; safetensors headers: dtype/shape/offset mismatches, hostile names).
 * Every mutator takes an `Rng` and returns a short description of what it did, for the report.
 */
import type { Rng } from './prng.js';

// ------------------------------------------------------------------------------ JSON as text

/** Literal JSON text, emitted as is (`1e999`, `NaN`, deep nesting, …). */
export class Raw {
  constructor(readonly text: string) {}
}
/** An object whose entries may repeat a key (JSON allows it; the last one wins in JSON.parse). */
export class Dup {
  constructor(readonly entries: [string, unknown][]) {}
}

export type Json = unknown;

/** Serialises a tree that may contain `Raw` and `Dup` nodes. */
export function toText(v: Json): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Dup) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${toText(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(toText).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    // Own keys, `__proto__` included (it is an own key when the tree came from JSON.parse).
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${toText((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) return v > 0 ? '1e999' : v < 0 ? '-1e999' : 'NaN';
  return v === undefined ? 'null' : JSON.stringify(v);
}

/** A deep copy of plain JSON (the corpus is never mutated in place). */
export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

type Path = (string | number)[];

/** Every path in the tree (objects and arrays), the root excluded; at most `max`. */
function paths(v: Json, max = 4000): Path[] {
  const out: Path[] = [];
  const walk = (x: Json, p: Path) => {
    if (out.length >= max || x === null || typeof x !== 'object' || x instanceof Raw || x instanceof Dup) return;
    const keys: (string | number)[] = Array.isArray(x) ? x.map((_, i) => i) : Object.keys(x);
    for (const k of keys) {
      const q = [...p, k];
      out.push(q);
      walk((x as Record<string | number, Json>)[k], q);
    }
  };
  walk(v, []);
  return out;
}

function parentOf(root: Json, p: Path): Record<string | number, Json> {
  let x = root as Record<string | number, Json>;
  for (const k of p.slice(0, -1)) x = x[k] as Record<string | number, Json>;
  return x;
}

function setAt(root: Json, p: Path, value: Json): void {
  parentOf(root, p)[p[p.length - 1]] = value;
}
function getAt(root: Json, p: Path): Json {
  return parentOf(root, p)[p[p.length - 1]];
}

const HOSTILE_NUMBERS: Json[] = [
  -1, 0, 0.5, 1.5, -0.5, 1e308, -1e308, 2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 + 2, 4e9, 1e-320, -(2 ** 31) - 1, 65536, 20000,
  new Raw('1e999'), new Raw('-1e999'), new Raw('NaN'), 'NaN', 'Infinity', '1', '', true, null,
];
const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', 'valueOf'];

function hostileValue(rng: Rng): Json {
  switch (rng.int(12)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return 'x'.repeat(rng.pick([1, 50, 1000]));
    case 3: return [];
    case 4: return {};
    case 5: return [1, 2, 3];
    case 6: return { className: 'Linear', config: {} };
    case 7: return rng.pick(HOSTILE_NUMBERS);
    case 8: return rng.pick(HOSTILE_NUMBERS);
    case 9: return [rng.pick(HOSTILE_NUMBERS), rng.pick(HOSTILE_NUMBERS)];
    case 10: return { __proto__: null, a: 1 } as Json;
    default: return rng.range(-3, 300);
  }
}

function deepNest(rng: Rng): Raw {
  // Depths past V8's JSON.parse limit (~10^4 here) are rare: each costs milliseconds.
  const d = rng.chance(0.9) ? rng.pick([64, 1000, 5000]) : rng.pick([20_000, 100_000]);
  return rng.chance(0.5) ? new Raw('['.repeat(d) + ']'.repeat(d)) : new Raw('{"a":'.repeat(d) + '1' + '}'.repeat(d));
}

/**
 * One generic structure-aware mutation of a JSON tree (in place; the root may be replaced, so use
 * the returned tree). Returns [tree, description].
 */
export function mutateJson(root: Json, rng: Rng): [Json, string] {
  const ps = paths(root);
  if (ps.length === 0) return [hostileValue(rng), 'root replaced'];
  const p = rng.pick(ps);
  const where = p.join('.');
  const parent = parentOf(root, p);
  const key = p[p.length - 1];
  switch (rng.int(12)) {
    case 0: {
      const v = hostileValue(rng);
      setAt(root, p, v);
      return [root, `type change at ${where}`];
    }
    case 1:
    case 2: {
      const v = rng.pick(HOSTILE_NUMBERS);
      setAt(root, p, v);
      return [root, `number ${toText(v).slice(0, 12)} at ${where}`];
    }
    case 3:
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      return [root, `deleted ${where}`];
    case 4: {
      if (Array.isArray(parent)) {
        parent.splice(key as number, 0, clone(parent[key as number]));
        return [root, `duplicated element ${where}`];
      }
      const entries = Object.entries(parent).map(([k, v]) => [k, v] as [string, unknown]);
      entries.push([String(key), hostileValue(rng)]);
      const dup = new Dup(entries);
      if (p.length === 1) return [dup, `duplicate key ${where}`];
      setAt(root, p.slice(0, -1), dup);
      return [root, `duplicate key ${where}`];
    }
    case 5: {
      const k = rng.pick(HOSTILE_KEYS);
      const target = getAt(root, p);
      const obj = target !== null && typeof target === 'object' && !Array.isArray(target) ? target as Record<string, Json> : parent;
      if (Array.isArray(obj)) {
        const o = {};
        Object.defineProperty(o, k, { value: hostileValue(rng), enumerable: true, writable: true, configurable: true });
        setAt(root, p, o);
        return [root, `object with key ${k} at ${where}`];
      }
      // JSON.parse makes `__proto__` an own key; assigning it would set the prototype instead.
      Object.defineProperty(obj, k, { value: rng.chance(0.5) ? clone(getAt(root, p)) : hostileValue(rng), enumerable: true, writable: true, configurable: true });
      return [root, `key ${k} added near ${where}`];
    }
    case 6: {
      if (Array.isArray(parent)) return mutateJson(root, rng);
      const v = parent[key];
      delete parent[key];
      Object.defineProperty(parent, rng.pick(HOSTILE_KEYS), { value: v, enumerable: true, writable: true, configurable: true });
      return [root, `renamed ${where} to a hostile key`];
    }
    case 7:
      setAt(root, p, deepNest(rng));
      return [root, `deep nesting at ${where}`];
    case 8:
      setAt(root, p, 'A'.repeat(rng.chance(0.9) ? rng.pick([1000, 100_000]) : 1_000_000));
      return [root, `long string at ${where}`];
    case 9:
      setAt(root, p, new Raw(`[${new Array(rng.chance(0.9) ? 1000 : 100_000).fill(rng.pick(['0', '1e308', '"a"', '[]'])).join(',')}]`));
      return [root, `big array at ${where}`];
    case 10: {
      // Copy another subtree here (e.g. one layer's config into another, a shape into an offset).
      const q = rng.pick(ps);
      setAt(root, p, clone(getAt(root, q) ?? null));
      return [root, `copied ${q.join('.')} to ${where}`];
    }
    default: {
      const v = getAt(root, p);
      if (typeof v === 'number') {
        const w = rng.pick([v + 1, v - 1, v * 2, -v, v * 1000, Math.floor(v / 2)]);
        setAt(root, p, w);
        return [root, `number ${v} -> ${w} at ${where}`];
      }
      if (typeof v === 'string') {
        setAt(root, p, rng.pick([v + 'x', v.slice(0, -1), v.toUpperCase(), '../' + v, '']));
        return [root, `string edit at ${where}`];
      }
      if (Array.isArray(v)) {
        v.reverse();
        if (rng.chance(0.5)) v.push(clone(v[0] ?? 0));
        return [root, `array reordered/extended at ${where}`];
      }
      setAt(root, p, hostileValue(rng));
      return [root, `type change at ${where}`];
    }
  }
}

/** Text-level damage to a JSON document: truncation, stray characters, BOM, invalid UTF-16. */
export function mutateJsonText(text: string, rng: Rng): [string, string] {
  const at = rng.int(text.length + 1);
  switch (rng.int(7)) {
    case 0: return [text.slice(0, at), `json truncated at ${at}`];
    case 1: return [text.slice(0, at) + rng.pick(['{', '}', '[', ']', ',', ':', '"', '\\', '\u0000', 'e', '-']) + text.slice(at), `json char inserted at ${at}`];
    case 2: return [text.slice(0, at) + text.slice(at + 1), `json char deleted at ${at}`];
    case 3: return ['\uFEFF' + text, 'json with BOM'];
    case 4: return [text.slice(0, at) + '\uD800' + text.slice(at), 'lone surrogate'];
    case 5: return [rng.pick(['', 'null', '[]', '0', '"x"', 'true', '{}']), 'json replaced by a bare value'];
    default: return [text + rng.pick([' ', '}', ',{}', '\n\n']), 'json with trailing text'];
  }
}

// -------------------------------------------------------------------------- graph-aware JSON

interface GraphLike {
  nodes?: Record<string, Json>[];
  shapes?: Json[];
  output?: Json;
  qparams?: Record<string, Json>;
}

/** Graph-specific damage: cycles, references out of range, inconsistent shapes and params. */
export function mutateGraph(graph: Json, rng: Rng): [Json, string] {
  const g = graph as GraphLike;
  if (!g || !Array.isArray(g.nodes) || g.nodes.length === 0 || !Array.isArray(g.shapes)) return mutateJson(graph, rng);
  const nodes = g.nodes;
  const i = rng.int(nodes.length);
  const n = nodes[i];
  // An earlier mutation may have replaced this node by a non-object: damage it generically instead.
  if (n === null || typeof n !== 'object' || Array.isArray(n) || n instanceof Raw || n instanceof Dup) return mutateJson(graph, rng);
  const nv = g.shapes.length;
  const inputKey = Array.isArray(n.ins) ? 'ins' : 'in';
  switch (rng.int(9)) {
    case 0: {
      // A cycle: this node reads its own output, or the output of a later node.
      const j = rng.range(i, nodes.length - 1);
      const target = (nodes[j] as Record<string, Json> | null)?.out ?? n.out;
      if (inputKey === 'ins') (n.ins as Json[])[0] = target;
      else n.in = target;
      if (rng.chance(0.5) && j > i) nodes.reverse();
      return [g, `cycle: node ${i} reads node ${j}'s output`];
    }
    case 1: {
      // Two nodes write the same value, or a node writes the input.
      n.out = rng.chance(0.5) ? 0 : (nodes[rng.int(nodes.length)] as Record<string, Json> | null)?.out ?? 0;
      return [g, `node ${i} writes an existing value`];
    }
    case 2: {
      const v = rng.pick([-1, nv, nv + 1, 2 ** 32, 1.5, '0', null, 1e9]);
      if (inputKey === 'ins') (n.ins as Json[])[rng.int((n.ins as Json[]).length)] = v;
      else if (rng.chance(0.5)) n.in = v;
      else n.out = v;
      return [g, `node ${i} reference ${toText(v)} out of range`];
    }
    case 3:
      g.output = rng.pick([-1, nv, 2 ** 32, 0, 1.5, null]);
      return [g, `graph output ${toText(g.output)}`];
    case 4: {
      const s = g.shapes[rng.int(nv)];
      if (Array.isArray(s) && s.length) s[rng.int(s.length)] = rng.pick([0, -1, 2 ** 32 + 1, 2 ** 31, 1e6, 1.5, 65536]);
      else g.shapes[rng.int(nv)] = rng.pick([[], [0], null, [2 ** 32 + 1]]);
      return [g, 'shape entry changed'];
    }
    case 5:
      nodes.splice(rng.int(nodes.length + 1), 0, clone(n));
      return [g, `node ${i} duplicated`];
    case 6: {
      const j = rng.int(nodes.length);
      [nodes[i], nodes[j]] = [nodes[j], nodes[i]];
      return [g, `nodes ${i} and ${j} swapped`];
    }
    case 7: {
      const k = rng.pick(['kernel', 'stride', 'padding', 'dilation', 'groups', 'op', 'name', 'relu', 'hasBias', 'binary', 'countIncludePad']);
      n[k] = rng.pick([0, -1, [0, 0], [2 ** 31, 1], [1], [1, 1, 1, 1, 1], 'conv', 'linear', 'add', 'nope', null, 3, 1e9, '__proto__', true]);
      return [g, `node ${i}.${k} changed`];
    }
    default: {
      const q = g.qparams;
      if (q && typeof q === 'object' && !(q instanceof Dup) && !(q instanceof Raw)) {
        const ks = Object.keys(q);
        const k = ks.length ? rng.pick(ks) : '0';
        q[k] = rng.pick([[0, 0], [-1, 0], [1e-45, 0], [1, 300], [1, -200], [new Raw('NaN'), 0], [1e38, 0], null, [1], 'x']);
        if (rng.chance(0.3)) delete q[ks[0]];
        return [g, `qparams ${k} changed`];
      }
      return mutateJson(graph, rng);
    }
  }
}

// ------------------------------------------------------------------------------ safetensors

export interface Safetensors {
  header: Record<string, Json>;
  data: Uint8Array;
}

/** Splits a valid safetensors file into its parsed header and data section. */
export function splitSafetensors(bytes: Uint8Array): Safetensors {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, Json>;
  return { header, data: bytes.subarray(8 + n) };
}

/** Reassembles a file from header text and data, with a correct length field. */
export function joinSafetensors(headerText: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const DTYPES = ['F32', 'I32', 'I8', 'U8', 'F16', 'BF16', 'F64', 'I64', 'BOOL', 'F8_E4M3', 'x', ''];
const HOSTILE_NAMES = ['__proto__', 'constructor', 'prototype', '', '__metadata__', 'a'.repeat(100_000), 'optimizer.0.m', '..', 'toString'];

/** Safetensors-aware damage to a header (in place). */
export function mutateSafetensorsHeader(h: Record<string, Json>, dataLen: number, rng: Rng): [Record<string, Json>, string] {
  const names = Object.keys(h).filter((k) => k !== '__metadata__');
  if (names.length === 0 || rng.chance(0.1)) {
    const [v, d] = mutateJson(h, rng);
    return [v as Record<string, Json>, `header: ${d}`];
  }
  const name = rng.pick(names);
  const e = h[name] as { dtype: Json; shape: Json[]; data_offsets: Json[] };
  switch (rng.int(8)) {
    case 0:
      e.dtype = rng.pick(DTYPES);
      return [h, `'${name}' dtype ${String(e.dtype)}`];
    case 1: {
      const s = e.shape;
      const op = rng.int(4);
      if (op === 0 && s.length) s[rng.int(s.length)] = rng.pick([0, -1, 2 ** 32 + 1, 2 ** 32, 2 ** 31, 1.5, 2 ** 53 + 2, 1e6, 'x']);
      else if (op === 1) s.push(rng.pick([1, 2, 0, 2 ** 32]));
      else if (op === 2) s.pop();
      else e.shape = [2 ** 32 + 1, 0] as Json[]; // zero elements, but a dim above 2^32
      return [h, `'${name}' shape ${JSON.stringify(e.shape).slice(0, 40)}`];
    }
    case 2: {
      const k = rng.int(2);
      e.data_offsets[k] = rng.pick([-1, 0, dataLen, dataLen + 1, 2 ** 32, 2 ** 53, 1.5, (e.data_offsets[k] as number) + rng.pick([-4, -1, 1, 4, 8])]);
      return [h, `'${name}' data_offsets ${JSON.stringify(e.data_offsets)}`];
    }
    case 3: {
      // Shape and offsets consistent with each other, but overlapping another tensor's bytes.
      const other = h[rng.pick(names)] as typeof e;
      e.data_offsets = [...other.data_offsets];
      e.shape = [...other.shape];
      e.dtype = other.dtype;
      return [h, `'${name}' overlaps another tensor`];
    }
    case 4: {
      const v = h[name];
      delete h[name];
      const to = rng.pick(HOSTILE_NAMES);
      Object.defineProperty(h, to, { value: v, enumerable: true, writable: true, configurable: true });
      return [h, `'${name}' renamed to '${to.slice(0, 20)}'`];
    }
    case 5: {
      const md = rng.pick<Json>([null, 'x', [], { format: 1 }, { format: 'edgegrad-model', graph: 5 }, { a: { b: 'c' } }, { __proto__: 'x' } as Json]);
      h.__metadata__ = md;
      return [h, `metadata ${toText(md).slice(0, 40)}`];
    }
    case 6: {
      // Many tiny entries (the 10^6-entries attack, scaled down to stay fast).
      const n = rng.chance(0.9) ? rng.pick([10, 300]) : 3000;
      for (let i = 0; i < n; i++) h[`z${i}`] = { dtype: 'I8', shape: [0], data_offsets: [0, 0] };
      return [h, `${n} empty entries added`];
    }
    default: {
      const [v, d] = mutateJson(e, rng);
      h[name] = v;
      return [h, `'${name}': ${d}`];
    }
  }
}

// ----------------------------------------------------------------------------------- bytes

/** One byte-level mutation (returns a new array; `other` is a second valid file for splices). */
export function mutateBytes(b: Uint8Array, rng: Rng, other?: Uint8Array): [Uint8Array, string] {
  const n = b.length;
  const at = rng.int(n);
  const len = rng.range(1, Math.max(1, Math.min(64, n >> 2)));
  const out = () => b.slice();
  switch (rng.int(10)) {
    case 0: {
      const c = out();
      // Bit flips cluster in the header (the first few hundred bytes) half of the time.
      const pos = rng.chance(0.5) ? rng.int(Math.min(n, 400)) : at;
      c[pos] ^= 1 << rng.int(8);
      return [c, `bit flip at ${pos}`];
    }
    case 1: {
      const c = out();
      const v = rng.pick([0, 0xff, rng.int(256), 0x22, 0x7b, 0x5d]);
      c[at] = v;
      return [c, `byte ${at} set to ${v}`];
    }
    case 2:
      return [b.slice(0, at), `truncated to ${at}`];
    case 3: {
      const extra = new Uint8Array(rng.pick([1, 7, 8, 64, 4096]));
      if (rng.chance(0.5)) for (let i = 0; i < extra.length; i++) extra[i] = rng.int(256);
      const c = new Uint8Array(n + extra.length);
      c.set(b);
      c.set(extra, n);
      return [c, `extended by ${extra.length}`];
    }
    case 4: {
      const end = Math.min(n, at + len);
      const c = new Uint8Array(n + end - at);
      c.set(b.subarray(0, end));
      c.set(b.subarray(at, end), end);
      c.set(b.subarray(end), 2 * end - at);
      return [c, `chunk [${at}, ${end}) duplicated`];
    }
    case 5: {
      const c = new Uint8Array(n - Math.min(len, n - at));
      c.set(b.subarray(0, at));
      c.set(b.subarray(at + len), at);
      return [c, `chunk [${at}, ${at + len}) deleted`];
    }
    case 6: {
      if (!other || other.length === 0) return mutateBytes(b, rng);
      const cut = rng.int(Math.min(n, other.length) + 1);
      const c = new Uint8Array(cut + other.length - cut);
      c.set(b.subarray(0, cut));
      c.set(other.subarray(cut), cut);
      return [c, `spliced with another file at ${cut}`];
    }
    case 7:
    case 8: {
      const c = out();
      if (n < 8) return [c, 'unchanged (short)'];
      const dv = new DataView(c.buffer);
      const cur = dv.getBigUint64(0, true);
      const v = rng.pick([0n, 1n, cur - 1n, cur + 1n, cur + 8n, BigInt(n), BigInt(n - 8), 2n ** 32n + cur, 2n ** 63n, 2n ** 64n - 1n, 2n ** 53n + 1n]);
      dv.setBigUint64(0, v < 0n ? 0n : v, true);
      return [c, `header length set to ${v}`];
    }
    default: {
      const c = out();
      for (let i = 0; i < len && at + i < n; i++) c[at + i] = rng.int(256);
      return [c, `random bytes at [${at}, ${at + len})`];
    }
  }
}
