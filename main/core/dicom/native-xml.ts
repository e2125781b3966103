/**
 * The Native DICOM Model (PS3.19 A.1) of a data set, written from its DICOM JSON (PS3.18 F.2): the XML that
 * `application/dicom+xml` carries. Both models hold the same things, so the conversion is one walk: an
 * attribute per element (tag, VR, keyword), a numbered Value, PersonName or Item per value, BulkData for a
 * BulkDataURI and InlineBinary for inline bytes.
 */
import { keywordOfTag } from './dictionary.js';
import type { DicomJson, DicomJsonElement, DicomJsonValue, PersonNameJson } from './json-model.js';

const NAMESPACE = 'http://dicom.nema.org/PS3.19/models/NativeDICOM';
const NAME_COMPONENTS = ['FamilyName', 'GivenName', 'MiddleName', 'NamePrefix', 'NameSuffix'] as const;
const NAME_GROUPS = ['Alphabetic', 'Ideographic', 'Phonetic'] as const;

/**
 * Characters XML 1.0 (section 2.2) does not allow, not even as character references: C0 controls other than
 * TAB, LF and CR, lone surrogates, U+FFFE and U+FFFF. DICOM text can hold one (FF is allowed in ST, LT and UT);
 * it becomes U+FFFD, the replacement character, since the document would not parse with it.
 */
const NOT_XML_1_0 = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text content and attribute values: the markup characters as entities, the characters XML 1.0 forbids replaced. */
export function escapeXml(text: string): string {
  return text
    .replace(NOT_XML_1_0, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** One data set as a whole XML document. */
export function nativeXmlFromJson(dataset: DicomJson): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xmlns="${NAMESPACE}">${attributes(dataset)}</NativeDicomModel>\n`;
}

function attributes(dataset: DicomJson): string {
  return Object.keys(dataset)
    .sort((a, b) => a.toUpperCase().localeCompare(b.toUpperCase()))
    .map((tag) => attribute(tag.toUpperCase(), dataset[tag]!))
    .join('');
}

function attribute(tag: string, element: DicomJsonElement): string {
  const keyword = keywordOfTag(tag);
  const head = `<DicomAttribute tag="${escapeXml(tag)}" vr="${escapeXml(element.vr)}"${keyword ? ` keyword="${escapeXml(keyword)}"` : ''}`;
  const body = content(element);
  return body === '' ? `${head}/>` : `${head}>${body}</DicomAttribute>`;
}

function content(element: DicomJsonElement): string {
  if (element.BulkDataURI !== undefined) return `<BulkData uri="${escapeXml(element.BulkDataURI)}"/>`;
  if (element.InlineBinary !== undefined) return `<InlineBinary>${escapeXml(element.InlineBinary)}</InlineBinary>`;
  const values = element.Value ?? [];
  return values.map((value, i) => valueOf(element.vr, value, i + 1)).join('');
}

function valueOf(vr: string, value: DicomJsonValue, number: number): string {
  if (vr === 'SQ') {
    const item = value && typeof value === 'object' ? attributes(value as DicomJson) : '';
    return item === '' ? `<Item number="${number}"/>` : `<Item number="${number}">${item}</Item>`;
  }
  if (vr === 'PN') {
    const name = value && typeof value === 'object' ? personName(value as PersonNameJson) : '';
    return name === '' ? `<PersonName number="${number}"/>` : `<PersonName number="${number}">${name}</PersonName>`;
  }
  if (value === null || value === undefined) return `<Value number="${number}"/>`;
  return `<Value number="${number}">${escapeXml(String(value))}</Value>`;
}

/** PS3.19 A.1.1: each group (Alphabetic, Ideographic, Phonetic) split into its five components, empty ones left out. */
function personName(name: PersonNameJson): string {
  let out = '';
  for (const group of NAME_GROUPS) {
    const text = name[group];
    if (text === undefined || text === null) continue;
    const components = text.split('^');
    const inner = NAME_COMPONENTS.map((component, i) => {
      const part = components[i];
      return part ? `<${component}>${escapeXml(part)}</${component}>` : '';
    }).join('');
    out += inner === '' ? `<${group}/>` : `<${group}>${inner}</${group}>`;
  }
  return out;
}
