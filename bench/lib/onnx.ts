/**
 * A minimal ONNX model writer (protobuf wire format by hand), so the benchmarks build their own
 * models for ONNX Runtime Web instead of shipping binary files.
 */

class Writer {
  private parts: number[] = [];
  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x) b |= 0x80;
      this.parts.push(b);
    } while (x);
    return this;
  }
  key(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, v: number | bigint): this {
    return this.key(field, 0).varint(v);
  }
  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2).varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, w: Writer): this {
    return this.bytes(field, w.finish());
  }
  float(field: number, f: number): this {
    this.key(field, 5);
    const b = new Uint8Array(new Float32Array([f]).buffer);
    for (const x of b) this.parts.push(x);
    return this;
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;

export interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  data: Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;
}
export type Attr = { name: string } & ({ i: number } | { f: number } | { ints: number[] } | { s: string });
export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Attr[];
  domain?: string;
}
export interface ValueInfo {
  name: string;
  elemType: number;
  shape: (number | string)[];
}

function valueInfo(v: ValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.shape) shape.msg(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().str(2, d));
  const tensorType = new Writer().int(1, v.elemType).msg(2, shape);
  return new Writer().str(1, v.name).msg(2, new Writer().msg(1, tensorType));
}

function attribute(a: Attr): Writer {
  const w = new Writer().str(1, a.name);
  if ('i' in a) return w.int(3, a.i).int(20, 2);
  if ('f' in a) return w.float(2, a.f).int(20, 1);
  if ('s' in a) return w.str(4, a.s).int(20, 3);
  for (const x of a.ints) w.int(8, x);
  return w.int(20, 7);
}

/** Serialises a model with one graph (opset 17, plus com.microsoft for quantized ops). */
export function buildModel(o: { nodes: Node[]; inputs: ValueInfo[]; outputs: ValueInfo[]; initializers: Initializer[] }): Uint8Array {
  const g = new Writer();
  for (const n of o.nodes) {
    const nw = new Writer();
    n.inputs.forEach((x) => nw.str(1, x));
    n.outputs.forEach((x) => nw.str(2, x));
    nw.str(4, n.op);
    (n.attrs ?? []).forEach((a) => nw.msg(5, attribute(a)));
    if (n.domain) nw.str(7, n.domain);
    g.msg(1, nw);
  }
  g.str(2, 'bench');
  for (const t of o.initializers) {
    const tw = new Writer();
    t.dims.forEach((d) => tw.int(1, d));
    tw.int(2, t.dataType).str(8, t.name).bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    g.msg(5, tw);
  }
  o.inputs.forEach((v) => g.msg(11, valueInfo(v)));
  o.outputs.forEach((v) => g.msg(12, valueInfo(v)));
  return new Writer()
    .int(1, 8)
    .str(2, 'edgegrad-bench')
    .msg(7, g)
    .msg(8, new Writer().str(1, '').int(2, 17))
    .msg(8, new Writer().str(1, 'com.microsoft').int(2, 1))
    .finish();
}
