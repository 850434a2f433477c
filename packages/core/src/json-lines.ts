import { readFile } from 'node:fs/promises';

/** The records of a JSON-lines file, in file order; a missing file is empty and a damaged line is skipped. */
export async function readJsonLines<T>(path: string): Promise<T[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').flatMap((line) => {
    try {
      return line ? [JSON.parse(line) as T] : [];
    } catch {
      return [];
    }
  });
}
