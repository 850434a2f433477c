import { describe, expect, it } from 'vitest';
import { XmlSyntaxError, childText, childrenNamed, element, escapeXml, parseXml, textElement, xmlDocument } from './xml.js';

describe('xml', () => {
  it('parses the request bodies OSS accepts, entities and CDATA included', () => {
    const root = parseXml(`<?xml version="1.0" encoding="UTF-8"?>
      <!-- a comment -->
      <Delete>
        <Quiet>true</Quiet>
        <Object><Key>a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&#39; &#x4E2D;</Key></Object>
        <Object><Key><![CDATA[<raw & text>]]></Key></Object>
        <Empty/>
      </Delete>`);
    expect(root.name).toBe('Delete');
    expect(childText(root, 'Quiet')).toBe('true');
    expect(childrenNamed(root, 'Object').map((object) => childText(object, 'Key'))).toEqual([`a&b <c> "d" 'e' 中`, '<raw & text>']);
    expect(childText(root, 'Empty')).toBe('');
    expect(childText(root, 'Missing')).toBeUndefined();
  });

  it.each([
    ['<a><b></a>', 'mismatched tags'],
    ['<a>text', 'an unterminated element'],
    ['<a>&bogus;</a>', 'an unknown entity'],
    ['<a>AT&T</a>', 'a bare ampersand'],
    ['<a></a><b></b>', 'two roots'],
    ['not xml', 'no element'],
  ])('rejects %s (%s)', (source) => {
    expect(() => parseXml(source)).toThrow(XmlSyntaxError);
  });

  it('builds documents with escaped text', () => {
    expect(escapeXml(`<&>"'`)).toBe('&lt;&amp;&gt;&quot;&apos;');
    const document = xmlDocument(element('Root', textElement('Key', 'a<b'), textElement('Absent', undefined), textElement('N', 3)));
    expect(document).toBe('<?xml version="1.0" encoding="UTF-8"?>\n<Root><Key>a&lt;b</Key><N>3</N></Root>');
    expect(childText(parseXml(document), 'Key')).toBe('a<b');
  });
});
