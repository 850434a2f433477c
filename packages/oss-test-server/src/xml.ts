/*
 * Just enough XML for the OSS protocol: a builder for response documents and a small parser for
 * the request bodies OSS accepts (DeleteMultipleObjects, CompleteMultipartUpload). The parser
 * handles elements, text, the five predefined entities, character references, CDATA, comments and
 * the XML declaration; it rejects anything malformed so the server can answer MalformedXML.
 */

/** An element of a parsed document. */
export interface XmlElement {
  name: string;
  children: XmlElement[];
  /** The element's own text, entities decoded (text of child elements excluded). */
  text: string;
}

/** Escapes text for element content or attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`);
}

/** `<name>escaped text</name>`; nothing for `undefined`. */
export function textElement(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** `<name>` around already-built child elements. */
export function element(name: string, ...children: string[]): string {
  return `<${name}>${children.join('')}</${name}>`;
}

/** A whole response document with its declaration. */
export function xmlDocument(root: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root}`;
}

/** The parse failed: the body is not well-formed XML. */
export class XmlSyntaxError extends Error {
  override readonly name = 'XmlSyntaxError';
}

/** Parses a document and returns its root element. */
export function parseXml(source: string): XmlElement {
  let position = 0;
  const fail = (what: string): never => {
    throw new XmlSyntaxError(`${what} at offset ${position}`);
  };
  /** Matches `pattern` (sticky) at the current position and moves past it. */
  const take = (pattern: RegExp): RegExpExecArray | null => {
    pattern.lastIndex = position;
    const match = pattern.exec(source);
    if (match) position = pattern.lastIndex;
    return match;
  };
  /** Moves past the next `terminator`, failing with `what` when there is none. */
  const skipPast = (terminator: string, what: string) => {
    const end = source.indexOf(terminator, position);
    if (end < 0) fail(`unterminated ${what}`);
    const skipped = source.slice(position, end);
    position = end + terminator.length;
    return skipped;
  };

  const skipMisc = () => {
    for (;;) {
      take(/\s*/y);
      if (source.startsWith('<?', position)) skipPast('?>', 'processing instruction');
      else if (source.startsWith('<!--', position)) skipPast('-->', 'comment');
      else return;
    }
  };

  const parseElement = (): XmlElement => {
    const open = take(/<([A-Za-z_][\w.:-]*)(?:\s[^>]*?)?(\/?)>/y);
    if (!open) return fail('expected an element');
    const node: XmlElement = { name: open[1]!, children: [], text: '' };
    if (open[2] === '/') return node;
    for (;;) {
      const next = source.indexOf('<', position);
      if (next < 0) fail(`unterminated element <${node.name}>`);
      node.text += decodeEntities(source.slice(position, next), fail);
      position = next;
      if (source.startsWith('</', position)) {
        const close = take(/<\/([^\s>]+)\s*>/y);
        if (close?.[1] !== node.name) fail(`expected </${node.name}>`);
        return node;
      } else if (source.startsWith('<![CDATA[', position)) {
        position += 9;
        node.text += skipPast(']]>', 'CDATA section');
      } else if (source.startsWith('<!--', position)) {
        skipPast('-->', 'comment');
      } else {
        node.children.push(parseElement());
      }
    }
  };

  skipMisc();
  const root = parseElement();
  skipMisc();
  if (position !== source.length) fail('content after the root element');
  return root;
}

function decodeEntities(text: string, fail: (what: string) => never): string {
  return text.replace(/&([^;]*);|&/g, (match, name: string | undefined) => {
    if (name === undefined) return fail('a bare &');
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (name in named) return named[name]!;
    const code = /^#x([0-9a-f]+)$/i.exec(name) ? parseInt(name.slice(2), 16) : /^#(\d+)$/.test(name) ? Number(name.slice(1)) : NaN;
    if (!Number.isInteger(code) || code > 0x10ffff) return fail(`unknown entity ${match}`);
    return String.fromCodePoint(code);
  });
}

/** The child elements called `name`. */
export function childrenNamed(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((child) => child.name === name);
}

/** The text of the first child called `name`, or undefined. */
export function childText(parent: XmlElement, name: string): string | undefined {
  return parent.children.find((child) => child.name === name)?.text;
}
