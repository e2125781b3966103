declare module 'dicom-character-set' {
  /** Decodes DICOM text bytes under a Specific Character Set (0008,0005) value, code extensions included. */
  export function convertBytes(specificCharacterSet: string | undefined, bytes: Uint8Array, options?: { vr?: string }): string;
}
