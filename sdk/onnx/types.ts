/** Element types shared by the exporter and the importer. */
import { DataType } from './proto.js';

/** The ONNX element type code of an edgegrad dtype (uint8 for quantized activations). */
export function elemType(dtype: 'float32' | 'int32' | 'int8' | 'uint8'): number {
  return { float32: DataType.FLOAT, int32: DataType.INT32, int8: DataType.INT8, uint8: DataType.UINT8 }[dtype];
}
