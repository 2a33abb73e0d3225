/**
 * Builds small ONNX models for the benchmarks' ONNX Runtime Web peers (so no binary model files
 * ship), serialised by eg.onnx's protobuf layer: protobufjs with the official onnx.proto.
 */
import { AttrType, encodeModel, type AttributeProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../../sdk/onnx/proto.js';

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

function valueInfo(v: ValueInfo): ValueInfoProto {
  const dim = v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name: v.name, type: { tensorType: { elemType: v.elemType, shape: { dim } } } };
}

function attribute(a: Attr): AttributeProto {
  if ('i' in a) return { name: a.name, type: AttrType.INT, i: a.i };
  if ('f' in a) return { name: a.name, type: AttrType.FLOAT, f: a.f };
  if ('s' in a) return { name: a.name, type: AttrType.STRING, s: new TextEncoder().encode(a.s) };
  return { name: a.name, type: AttrType.INTS, ints: a.ints };
}

function initializer(t: Initializer): TensorProto {
  const rawData = new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  return { name: t.name, dims: t.dims, dataType: t.dataType, rawData };
}

/** Serialises a model with one graph (opset 17, plus com.microsoft for quantized ops). */
export function buildModel(o: { nodes: Node[]; inputs: ValueInfo[]; outputs: ValueInfo[]; initializers: Initializer[] }): Uint8Array {
  const node: NodeProto[] = o.nodes.map((n) => ({
    input: n.inputs, output: n.outputs, opType: n.op, attribute: (n.attrs ?? []).map(attribute), ...(n.domain ? { domain: n.domain } : {}),
  }));
  return encodeModel({
    irVersion: 8,
    producerName: 'edgegrad-bench',
    opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: { name: 'bench', node, initializer: o.initializers.map(initializer), input: o.inputs.map(valueInfo), output: o.outputs.map(valueInfo) },
  });
}
