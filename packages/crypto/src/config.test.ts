import { describe, expect, it } from 'vitest';
import { encryptionConfigSchema, parseEncryptionConfig } from './config.js';
import { CryptoErrorCode, isCryptoError } from './errors.js';

function problems(input: unknown): string[] {
  try {
    parseEncryptionConfig(input);
  } catch (error) {
    if (isCryptoError(error, CryptoErrorCode.InvalidConfig)) return error.context.problems as string[];
    throw error;
  }
  return [];
}

describe('encryptionConfigSchema', () => {
  it('accepts a passphrase config with exactly one source and defaults aead to false', () => {
    expect(parseEncryptionConfig({ mode: 'passphrase', passphraseFile: 'keys/passphrase' })).toEqual({
      mode: 'passphrase',
      passphraseFile: 'keys/passphrase',
      aead: false,
    });
    expect(encryptionConfigSchema.parse({ mode: 'passphrase', passphraseEnv: 'STOWAGE_PASSPHRASE', aead: true }).aead).toBe(true);
  });

  it('requires exactly one passphrase source', () => {
    expect(problems({ mode: 'passphrase' })).toEqual(['encryption.passphraseFile: set exactly one of passphraseFile or passphraseEnv for the passphrase']);
    expect(problems({ mode: 'passphrase', passphraseFile: 'f', passphraseEnv: 'E' })).toHaveLength(1);
  });

  it('accepts a public-key config with and without a private key', () => {
    expect(parseEncryptionConfig({ mode: 'public-key', recipients: ['ops.asc', 'escrow.asc'] })).toMatchObject({ recipients: ['ops.asc', 'escrow.asc'] });
    expect(
      parseEncryptionConfig({
        mode: 'public-key',
        recipients: ['ops.asc'],
        privateKeyFile: 'ops.key',
        privateKeyPassphraseEnv: 'OPS_KEY_PASSPHRASE',
      }),
    ).toMatchObject({ privateKeyFile: 'ops.key', privateKeyPassphraseEnv: 'OPS_KEY_PASSPHRASE' });
  });

  it('rejects two sources for one secret, a key passphrase without a key, and no recipients', () => {
    expect(problems({ mode: 'public-key', recipients: ['a'], privateKeyFile: 'k', privateKeyEnv: 'K' })).toEqual([
      'encryption.privateKeyFile: set at most one of privateKeyFile or privateKeyEnv',
    ]);
    expect(problems({ mode: 'public-key', recipients: ['a'], privateKeyPassphraseFile: 'p' })).toEqual([
      'encryption.privateKeyPassphraseFile: a private key passphrase needs privateKeyFile or privateKeyEnv',
    ]);
    expect(problems({ mode: 'public-key', recipients: [] })).toEqual(['encryption.recipients: name at least one recipient public key file']);
  });

  it('rejects a secret written into the config, without echoing it', () => {
    const found = problems({ mode: 'passphrase', passphraseEnv: 'P', passphrase: 'hunter2-secret' });
    expect(found).toHaveLength(1);
    expect(found[0]).toContain('secrets never go in the config');
    expect(found.join('\n')).not.toContain('hunter2-secret');
  });

  it('rejects unknown modes and bad environment variable names', () => {
    expect(problems({ mode: 'rot13' })).toHaveLength(1);
    expect(problems({ mode: 'passphrase', passphraseEnv: 'not a name' })[0]).toContain('expected an environment variable name');
  });
});
