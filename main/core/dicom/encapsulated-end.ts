/**
 * Where encapsulated Pixel Data ends (PS3.5 A.4): its items, then a Sequence Delimitation Item, then at
 * most Data Set Trailing Padding (FFFC,FFFC), which PS3.5 7.1.1 allows at the very end of a data set.
 * Walked item by item through a reader, so that a file need not be in memory.
 */

/** Reads `length` bytes at `position` (fewer only at the end of the file). */
export type ReadAt = (position: number, length: number) => Promise<Uint8Array>;

const u16 = (bytes: Uint8Array, at: number) => bytes[at]! | (bytes[at + 1]! << 8);
const u32 = (bytes: Uint8Array, at: number) => (u16(bytes, at) | (u16(bytes, at + 2) << 16)) >>> 0;

/**
 * Why the encapsulated Pixel Data whose first item starts at `itemsAt` is not complete, or undefined when
 * it is: every item whole, the delimiter present, and nothing after it but trailing padding to the end.
 * Encapsulated syntaxes are all little endian.
 */
export async function encapsulatedEndProblem(read: ReadAt, itemsAt: number, fileSize: number): Promise<string | undefined> {
  let at = itemsAt;
  while (at + 8 <= fileSize) {
    const head = await read(at, 8);
    if (head.length < 8) break;
    const [group, element, length] = [u16(head, 0), u16(head, 2), u32(head, 4)];
    if (group === 0xfffe && element === 0xe0dd) return trailingProblem(read, at + 8, fileSize);
    if (group !== 0xfffe || element !== 0xe000) {
      return `encapsulated Pixel Data holds (${hex(group)},${hex(element)}) at byte ${at} where an item or the sequence delimiter belongs`;
    }
    if (length === 0xffffffff) return `encapsulated Pixel Data has an item of undefined length at byte ${at}`;
    at += 8 + length;
  }
  return 'truncated dataset: encapsulated Pixel Data has no sequence delimiter';
}

async function trailingProblem(read: ReadAt, at: number, fileSize: number): Promise<string | undefined> {
  const rest = fileSize - at;
  if (rest === 0) return undefined;
  const head = await read(at, Math.min(12, rest));
  const isPadding = head.length >= 8 && u16(head, 0) === 0xfffc && u16(head, 2) === 0xfffc;
  if (isPadding) {
    // Explicit VR: tag, 'OB', two reserved bytes, 4-byte length; implicit VR: tag, 4-byte length.
    const explicit = head.length >= 12 && head[4] === 0x4f && head[5] === 0x42 && 12 + u32(head, 8) === rest;
    const implicit = 8 + u32(head, 4) === rest;
    if (explicit || implicit) return undefined;
    return `Data Set Trailing Padding after the Pixel Data does not end where the file does (${rest} bytes follow the delimiter)`;
  }
  return `${rest} bytes after the encapsulated Pixel Data are not Data Set Trailing Padding`;
}

const hex = (value: number) => value.toString(16).toUpperCase().padStart(4, '0');
