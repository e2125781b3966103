/**
 * Cuts the socket's byte stream into complete PDUs (PS3.8 9.3: type, reserved, 32-bit length).
 *
 * dcmjs-dimse's own reader concatenates everything received so far with each new socket chunk, so
 * a 256 KB PDU arriving in 64 KB chunks is copied about three times over, and the garbage that
 * leaves behind was the receiver's largest cost. Here a PDU inside one chunk is a view of it, and
 * one spanning chunks is copied exactly once.
 */
/**
 * Far above the 256 KB we announce as our maximum PDU length: a peer that claims more is broken or
 * hostile, and is not allowed to make us buffer it.
 */
const MAX_PDU_BYTES = 16 * 1024 * 1024;

export class PduReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Known PDU types: A-ASSOCIATE-RQ/AC/RJ, P-DATA-TF, A-RELEASE-RQ/RP, A-ABORT. */
  static readonly TYPES = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);

  /**
   * Adds a chunk and hands every PDU it completes to `onPdu`, in order. Throws on an unknown PDU
   * type or an oversized PDU (the connection cannot be resynchronised).
   */
  push(chunk: Buffer, onPdu: (pdu: Buffer) => void): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 6) return;
      if (this.chunks[0]!.length < 6) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
      const head = this.chunks[0]!;
      if (!PduReader.TYPES.has(head[0]!)) throw new Error(`Unknown PDU type: ${head[0]}`);
      const total = 6 + head.readUInt32BE(2);
      if (total > MAX_PDU_BYTES) throw new Error(`PDU of ${total} bytes exceeds the ${MAX_PDU_BYTES} we accept`);
      if (this.buffered < total) return;
      onPdu(this.take(total));
    }
  }

  private take(total: number): Buffer {
    this.buffered -= total;
    const head = this.chunks[0]!;
    if (head.length >= total) {
      if (head.length === total) this.chunks.shift();
      else this.chunks[0] = head.subarray(total);
      return head.subarray(0, total);
    }
    const pdu = Buffer.allocUnsafe(total);
    let filled = 0;
    while (filled < total) {
      const chunk = this.chunks[0]!;
      const used = Math.min(chunk.length, total - filled);
      chunk.copy(pdu, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    return pdu;
  }
}
