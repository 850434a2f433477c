import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { EncryptionKeys, OPENPGP_CONFIG } from './keys.js';
import { quickCheck, scanForSeipd } from './quick-check.js';
import { encrypt } from './test/helpers.js';

describe('scanForSeipd', () => {
  it('finds the SEIPD version and prefix behind the session key packets', async () => {
    const v1 = await encrypt(Buffer.from('hello'), EncryptionKeys.fromPassphrase('p'));
    expect(scanForSeipd(v1)).toMatchObject({ state: 'found', version: 1 });
    const v2 = await encrypt(Buffer.from('hello'), EncryptionKeys.fromPassphrase('p', { aead: true }));
    expect(scanForSeipd(v2)).toMatchObject({ state: 'found', version: 2 });
    expect(scanForSeipd(v1.subarray(0, 20))).toEqual({ state: 'need-more' });
    expect(scanForSeipd(Buffer.from('SQLite format 3'))).toEqual({ state: 'none' });
  });

  it('reads old-format packet headers', () => {
    // Old-format SKESK (tag 3, one-octet length 2), then a new-format SEIPD with a 20-octet body.
    const message = Buffer.concat([Buffer.from([0x8c, 2, 4, 9]), Buffer.from([0xd2, 20, 1]), Buffer.alloc(19, 7)]);
    expect(scanForSeipd(message)).toEqual({ state: 'found', version: 1, prefix: Buffer.alloc(19, 7), start: 4 });
  });
});

describe('quickCheck', () => {
  it('accepts the right session key and rejects another AES-256 key', async () => {
    const encrypted = await encrypt(Buffer.from('hello'), EncryptionKeys.fromPassphrase('right'));
    const scan = scanForSeipd(encrypted);
    if (scan.state !== 'found') throw new Error('no SEIPD found');
    const message = await openpgp.readMessage({ binaryMessage: encrypted, config: OPENPGP_CONFIG });
    const [right] = await openpgp.decryptSessionKeys({ message, passwords: ['right'], config: OPENPGP_CONFIG });
    expect(quickCheck(right!, scan.prefix)).toBe(true);
    // A wrong key of the right algorithm, as a wrong passphrase yields one time in 256.
    const wrong = { data: Uint8Array.from(right!.data, (byte) => byte ^ 0x5a), algorithm: 'aes256' };
    expect(quickCheck(wrong, scan.prefix)).toBe(false);
    expect(quickCheck({ data: right!.data, algorithm: 'twofish' }, scan.prefix)).toBeUndefined();
  });
});
