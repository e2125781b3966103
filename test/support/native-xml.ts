// A strict reader of Native DICOM Model documents (PS3.19 A.1) for tests: a small XML parser that refuses
// anything not well-formed (unclosed or mismatched tags, a bare & or <, characters XML 1.0 forbids,
// undeclared entities), and the inverse walk back to DICOM JSON (PS3.18 F.2) so an XML answer can be
// compared attribute for attribute with the JSON answer for the same instance. No XML library is declared
// by the project, and these documents use only elements, attributes and text.
import type { DicomJson } from '../../main/core/dicom/json-model.js';
import { readMultipart } from '../../main/core/multipart/reader.js';

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const NOT_XML_1_0 = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const NAME = /^[A-Za-z_][\w.-]*/;

function decode(text: string, where: number): string {
  if (/<|&(?!(#\d+|#x[0-9A-Fa-f]+|amp|lt|gt|quot|apos);)/.test(text)) throw new Error(`bad markup in text near offset ${where}: ${JSON.stringify(text.slice(0, 60))}`);
  return text.replace(/&(#x[0-9A-Fa-f]+|#\d+|\w+);/g, (_, ref: string) => {
    if (ref.startsWith('#')) {
      const char = String.fromCodePoint(ref[1] === 'x' ? parseInt(ref.slice(2), 16) : Number(ref.slice(1)));
      if (NOT_XML_1_0.test(char)) throw new Error(`character reference ${ref} is not allowed in XML 1.0`);
      return char;
    }
    return ENTITIES[ref]!;
  });
}

/** Parses one document: an optional XML declaration, one root element, nothing but whitespace around it. */
export function parseXml(xml: string): XmlElement {
  if (NOT_XML_1_0.test(xml)) throw new Error('document holds a character XML 1.0 does not allow');
  let pos = 0;
  const decl = /^<\?xml[^?]*\?>/.exec(xml);
  if (decl) pos = decl[0].length;
  const skipSpace = () => { while (/\s/.test(xml[pos] ?? '')) pos++; };
  function element(): XmlElement {
    if (xml[pos] !== '<') throw new Error(`element expected at offset ${pos}`);
    pos++;
    const name = NAME.exec(xml.slice(pos))?.[0];
    if (!name) throw new Error(`element name expected at offset ${pos}`);
    pos += name.length;
    const attributes: Record<string, string> = {};
    for (;;) {
      skipSpace();
      if (xml.startsWith('/>', pos)) { pos += 2; return { name, attributes, children: [], text: '' }; }
      if (xml[pos] === '>') { pos++; break; }
      const attr = /^([A-Za-z_][\w.:-]*)\s*=\s*"([^"]*)"/.exec(xml.slice(pos));
      if (!attr) throw new Error(`attribute expected at offset ${pos} in <${name}>`);
      if (attr[1]! in attributes) throw new Error(`attribute ${attr[1]} repeated in <${name}>`);
      attributes[attr[1]!] = decode(attr[2]!, pos);
      pos += attr[0].length;
    }
    const children: XmlElement[] = [];
    let text = '';
    for (;;) {
      const next = xml.indexOf('<', pos);
      if (next < 0) throw new Error(`<${name}> is not closed`);
      text += decode(xml.slice(pos, next), pos);
      pos = next;
      if (xml.startsWith('</', pos)) {
        const close = /^<\/([A-Za-z_][\w.-]*)\s*>/.exec(xml.slice(pos));
        if (!close || close[1] !== name) throw new Error(`</${name}> expected at offset ${pos}`);
        pos += close[0].length;
        return { name, attributes, children, text };
      }
      children.push(element());
    }
  }
  skipSpace();
  const root = element();
  skipSpace();
  if (pos !== xml.length) throw new Error(`content after the root element at offset ${pos}`);
  return root;
}

type Json = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string }>;
const COMPONENTS = ['FamilyName', 'GivenName', 'MiddleName', 'NamePrefix', 'NameSuffix'];

function only(parent: XmlElement, names: string[]): void {
  for (const child of parent.children) if (!names.includes(child.name)) throw new Error(`<${child.name}> not allowed in <${parent.name} ${JSON.stringify(parent.attributes)}>: ${JSON.stringify(child).slice(0, 400)}`);
}

function numbered(children: XmlElement[], name: string): XmlElement[] {
  children.forEach((child, i) => {
    if (child.attributes.number !== String(i + 1)) throw new Error(`<${name}> ${i + 1} has number="${child.attributes.number}"`);
  });
  return children;
}

function personName(node: XmlElement): Record<string, string> | null {
  only(node, ['Alphabetic', 'Ideographic', 'Phonetic']);
  if (node.children.length === 0) return null;
  const out: Record<string, string> = {};
  for (const group of node.children) {
    only(group, COMPONENTS);
    const parts = COMPONENTS.map((c) => group.children.find((g) => g.name === c)?.text ?? '');
    while (parts.length > 0 && parts.at(-1) === '') parts.pop();
    out[group.name] = parts.join('^');
  }
  return out;
}

/** The DICOM JSON a Native DICOM Model data set stands for (the keyword is checked by the caller if at all). */
export function datasetFromXml(node: XmlElement): Json {
  only(node, ['DicomAttribute']);
  const out: Json = {};
  for (const attr of node.children) {
    const { tag, vr } = attr.attributes;
    if (!tag || !/^[0-9A-F]{8}$/.test(tag) || !vr) throw new Error(`DicomAttribute without a valid tag and vr: ${JSON.stringify(attr.attributes)}`);
    if (tag in out) throw new Error(`attribute ${tag} twice`);
    const element: Json[string] = { vr };
    const bulk = attr.children.filter((c) => c.name === 'BulkData');
    const inline = attr.children.filter((c) => c.name === 'InlineBinary');
    if (bulk.length > 0) {
      if (attr.children.length !== 1) throw new Error(`${tag}: BulkData with other content`);
      element.BulkDataURI = bulk[0]!.attributes.uri;
    } else if (inline.length > 0) {
      if (attr.children.length !== 1) throw new Error(`${tag}: InlineBinary with other content`);
      element.InlineBinary = inline[0]!.text;
    } else if (attr.children.length > 0) {
      const kind = vr === 'SQ' ? 'Item' : vr === 'PN' ? 'PersonName' : 'Value';
      only(attr, [kind]);
      element.Value = numbered(attr.children, kind).map((child) => {
        if (kind === 'Item') return datasetFromXml(child);
        if (kind === 'PersonName') return personName(child);
        only(child, []);
        return child.text;
      });
    }
    out[tag] = element;
  }
  return out;
}

/** The XML documents of a multipart/related response, each part checked for its Content-Type. */
export async function xmlParts(res: Response): Promise<XmlElement[]> {
  const type = res.headers.get('content-type') ?? '';
  const boundary = /boundary="?([^";]+)"?/.exec(type)?.[1];
  if (!/^multipart\/related;/.test(type) || !/type="application\/dicom\+xml"/.test(type) || !boundary) throw new Error(`not multipart XML: ${type}`);
  const body = Buffer.from(await res.arrayBuffer());
  const out: XmlElement[] = [];
  for await (const part of readMultipart((async function* () { yield body; })(), boundary)) {
    if (!/^application\/dicom\+xml\b/.test(part.headers['content-type'] ?? '')) throw new Error(`part of type ${part.headers['content-type']}`);
    const chunks: Buffer[] = [];
    for await (const chunk of part.body) chunks.push(chunk);
    const root = parseXml(Buffer.concat(chunks).toString('utf8'));
    if (root.name !== 'NativeDicomModel') throw new Error(`root element <${root.name}>`);
    out.push(root);
  }
  return out;
}

/** What the XML can say of a JSON data set: values as text, empty values as '', PN without trailing '^'. */
export function asXmlSees(json: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const [tag, element] of Object.entries(json)) {
    if (!element.Value) {
      out[tag] = element;
      continue;
    }
    out[tag] = {
      vr: element.vr,
      Value: element.Value.map((v) => {
        if (element.vr === 'SQ') return asXmlSees((v ?? {}) as DicomJson);
        if (element.vr === 'PN') {
          if (v === null || typeof v !== 'object') return null;
          const groups = Object.entries(v).filter(([, text]) => typeof text === 'string');
          if (groups.length === 0) return null;
          return Object.fromEntries(groups.map(([group, text]) => [group, (text as string).replace(/\^+$/, '')]));
        }
        return v === null ? '' : String(v);
      }),
    };
  }
  return out;
}

