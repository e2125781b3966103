/**
 * Reads a Native DICOM Model document (PS3.19 A.1), as `application/dicom+xml` parts of a STOW-RS request
 * carry them, into the DICOM JSON model (PS3.18 F.2): the reverse of native-xml.ts. Values are ordered by
 * their `number`; BulkData's `uri` becomes a BulkDataURI. A document that does not parse, or that breaks
 * the model, is an error saying where.
 */
import { DOMParser } from '@xmldom/xmldom';
import type { DicomJson, DicomJsonElement, DicomJsonValue } from './json-model.js';

export class NativeXmlError extends Error {}

const NUMBER_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV', 'DS', 'IS']);
const NAME_GROUPS = ['Alphabetic', 'Ideographic', 'Phonetic'] as const;
const NAME_COMPONENTS = ['FamilyName', 'GivenName', 'MiddleName', 'NamePrefix', 'NameSuffix'] as const;

export function jsonFromNativeXml(text: string): DicomJson {
  const problems: string[] = [];
  const parser = new DOMParser({
    errorHandler: { warning: () => undefined, error: (m: string) => problems.push(m), fatalError: (m: string) => problems.push(m) },
  });
  let document;
  try {
    document = parser.parseFromString(text, 'text/xml');
  } catch (error) {
    throw new NativeXmlError(`the XML does not parse: ${(error as Error).message}`);
  }
  if (problems.length > 0) throw new NativeXmlError(`the XML does not parse: ${problems[0]}`);
  const root = document?.documentElement;
  if (!root || root.localName !== 'NativeDicomModel') {
    throw new NativeXmlError(`the document's root is ${root ? `<${root.localName}>` : 'missing'}, not <NativeDicomModel>`);
  }
  return attributesOf(root, '');
}

function children(parent: Element, name?: string): Element[] {
  const out: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === 1 && (name === undefined || (node as Element).localName === name)) out.push(node as Element);
  }
  return out;
}

/** PS3.19 names the attributes in lower case; some examples in PS3.18 capitalise them. */
function attr(element: Element, name: string): string | null {
  if (element.hasAttribute(name)) return element.getAttribute(name);
  const capital = name.length <= 2 ? name.toUpperCase() : name[0]!.toUpperCase() + name.slice(1);
  return element.hasAttribute(capital) ? element.getAttribute(capital) : null;
}

function attributesOf(parent: Element, where: string): DicomJson {
  const out: DicomJson = {};
  for (const child of children(parent)) {
    if (child.localName !== 'DicomAttribute') throw new NativeXmlError(`${where || 'the data set'} holds a <${child.localName}>, not a <DicomAttribute>`);
    const tag = (attr(child, 'tag') ?? '').toUpperCase();
    const path = where ? `${where}/${tag}` : tag;
    if (!/^[0-9A-F]{8}$/.test(tag)) throw new NativeXmlError(`a DicomAttribute${where ? ` in ${where}` : ''} has tag "${attr(child, 'tag') ?? ''}", not 8 hexadecimal digits`);
    const vr = attr(child, 'vr') ?? '';
    if (!/^[A-Z]{2}$/.test(vr)) throw new NativeXmlError(`${path} has no valid vr`);
    out[tag] = elementOf(child, vr, path);
  }
  return out;
}

function numbered(element: Element, name: string, path: string): Element[] {
  const list = children(element, name);
  const numbers = list.map((e) => Number(attr(e, 'number')));
  if (numbers.some((n) => !Number.isInteger(n) || n < 1)) throw new NativeXmlError(`${path}: a <${name}> has no number (1, 2, …)`);
  return list.map((e, i) => ({ e, n: numbers[i]! })).sort((a, b) => a.n - b.n).map(({ e }) => e);
}

function elementOf(element: Element, vr: string, path: string): DicomJsonElement {
  const bulk = children(element, 'BulkData');
  if (bulk.length > 0) {
    const uri = attr(bulk[0]!, 'uri') ?? attr(bulk[0]!, 'uuid');
    if (!uri) throw new NativeXmlError(`${path}: <BulkData> has no uri`);
    return { vr, BulkDataURI: uri };
  }
  const inline = children(element, 'InlineBinary');
  if (inline.length > 0) return { vr, InlineBinary: (inline[0]!.textContent ?? '').trim() };
  let values: DicomJsonValue[];
  if (vr === 'SQ') {
    values = numbered(element, 'Item', path).map((item, i) => attributesOf(item, `${path}/${i}`));
  } else if (vr === 'PN') {
    values = numbered(element, 'PersonName', path).map((name) => personName(name));
  } else {
    values = numbered(element, 'Value', path).map((value) => {
      const text = value.textContent ?? '';
      // An empty <Value/> is an empty value, null in DICOM JSON.
      if (text === '' || (NUMBER_VRS.has(vr) && text.trim() === '')) return null;
      if (!NUMBER_VRS.has(vr)) return text;
      const n = Number(text);
      if (!Number.isFinite(n)) throw new NativeXmlError(`${path}: "${text}" is not a ${vr} number`);
      return n;
    });
  }
  return values.length > 0 ? { vr, Value: values } : { vr };
}

function personName(element: Element): DicomJsonValue {
  if (children(element).length === 0) return null;
  const out: Record<string, string> = {};
  for (const group of NAME_GROUPS) {
    const node = children(element, group)[0];
    if (!node) continue;
    const parts = NAME_COMPONENTS.map((component) => children(node, component)[0]?.textContent ?? '');
    while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
    out[group] = parts.join('^');
  }
  return out;
}
