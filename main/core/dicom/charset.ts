/**
 * Maps a SpecificCharacterSet (0008,0005) value to a WHATWG TextDecoder label.
 * Only the first value decides; ISO 2022 code extensions are approximated by the
 * decoder of the extension's character repertoire.
 */
const DECODER_LABELS: Record<string, string> = {
  '': 'latin1',
  'ISO_IR 6': 'latin1',
  'ISO 2022 IR 6': 'latin1',
  'ISO_IR 100': 'latin1',
  'ISO 2022 IR 100': 'latin1',
  'ISO_IR 101': 'iso-8859-2',
  'ISO 2022 IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO 2022 IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO 2022 IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO 2022 IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO 2022 IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO 2022 IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO 2022 IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO 2022 IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15',
  'ISO 2022 IR 203': 'iso-8859-15',
  'ISO_IR 166': 'tis-620',
  'ISO 2022 IR 166': 'tis-620',
  'ISO_IR 13': 'shift_jis',
  'ISO 2022 IR 13': 'shift_jis',
  'ISO 2022 IR 87': 'iso-2022-jp',
  'ISO 2022 IR 159': 'iso-2022-jp',
  'ISO 2022 IR 149': 'euc-kr',
  'ISO 2022 IR 58': 'gb2312',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
};

function decoderLabel(specificCharacterSet: string | undefined): string {
  const values = (specificCharacterSet ?? '').split('\\').map((v) => v.trim());
  // With code extensions the first value may be empty (default repertoire); use the first non-default one.
  const significant = values.find((v) => v !== '' && v !== 'ISO 2022 IR 6') ?? values[0] ?? '';
  return DECODER_LABELS[significant] ?? 'latin1';
}

export function decodeText(bytes: Uint8Array, specificCharacterSet: string | undefined): string {
  const label = decoderLabel(specificCharacterSet);
  const text = new TextDecoder(label).decode(bytes);
  return text.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}
