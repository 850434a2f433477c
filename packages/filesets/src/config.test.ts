import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fileSetsConfigSchema } from './config.js';

const messages = (input: unknown): string[] => {
  const parsed = fileSetsConfigSchema.safeParse(input);
  return parsed.success ? [] : parsed.error.issues.map((issue) => issue.message);
};

describe('fileSetsConfigSchema', () => {
  it("accepts GreaterWMS's media folder, config files and filtered logs", () => {
    const config = {
      media: { path: 'media' },
      config: { files: ['greaterwms/settings.py', 'supervisord.conf', '.env'] },
      logs: { path: 'logs', include: ['*.log'], exclude: ['debug/**'] },
      'static_files-2': { path: 'static/files' },
    };
    expect(fileSetsConfigSchema.parse(config)).toEqual(config);
  });

  it('rejects bad and reserved set names', () => {
    for (const name of ['database', 'Media', 'my media', 'media.bak', '']) {
      expect(messages({ [name]: { path: 'media' } }), name).not.toEqual([]);
    }
    expect(messages({ database: { path: 'media' } }).join()).toMatch(/reserved/);
  });

  it('rejects paths that are absolute, climb out of the base folder or are not canonical', () => {
    for (const path of ['/var/media', '../media', 'a/../b', '.', 'media/', './media', 'a//b', 'C:/media', 'a\\b', '']) {
      expect(messages({ media: { path } }), path).not.toEqual([]);
      expect(messages({ config: { files: [path] } }), path).not.toEqual([]);
    }
    expect(messages({ media: { path: '../media' } }).join()).toMatch(/inside the base folder/);
  });

  it('rejects overlapping sets, repeated files, empty lists and unknown keys', () => {
    expect(messages({ media: { path: 'media' }, thumbs: { path: 'media/thumbs' } }).join()).toMatch(/"media\/thumbs" lies inside "media"/);
    expect(messages({ media: { path: 'media' }, config: { files: ['media/settings.ini'] } })).not.toEqual([]);
    expect(messages({ config: { files: ['a.ini', 'a.ini'] } }).join()).toMatch(/more than once/);
    expect(messages({ config: { files: [] } })).not.toEqual([]);
    expect(messages({ logs: { path: 'logs', include: [] } })).not.toEqual([]);
    expect(messages({ media: { path: 'media', follow: true } })).not.toEqual([]);
    expect(messages({ media: { path: 'media', files: ['x'] } })).not.toEqual([]);
  });

  it('converts to JSON Schema for the config file schema', () => {
    const schema = z.toJSONSchema(fileSetsConfigSchema, { io: 'input' }) as { propertyNames?: { pattern?: string } };
    expect(schema.propertyNames?.pattern).toBe('^[a-z0-9_-]+$');
  });
});
