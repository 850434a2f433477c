export { CryptoError, CryptoErrorCode, isCryptoError } from './errors.js';
export {
  encryptionConfigSchema,
  parseEncryptionConfig,
  type EncryptionConfig,
  type EncryptionConfigInput,
  type PassphraseEncryptionConfig,
  type PublicKeyEncryptionConfig,
} from './config.js';
export { generatePassphrase, readKeyFile, writeKeyFile, type SecretOptions, type SecretSource } from './secrets.js';
export {
  DecryptionKeys,
  EncryptionKeys,
  generateKeyPair,
  keyFingerprints,
  loadDecryptionKeys,
  loadEncryptionKeys,
  type EncryptionMode,
  type GenerateKeyPairOptions,
  type GeneratedKeyPair,
  type LoadKeysOptions,
} from './keys.js';
export { createDecryptStream, createEncryptStream, type EncryptOptions } from './streams.js';
export { S2K_SALT_BYTES } from './s2k.js';
export {
  checkKeys,
  describeKeys,
  probeDecryption,
  type KeyCheckOutcome,
  type KeyCheckReport,
  type KeyDescription,
  type RecipientDescription,
} from './inspect.js';
export { createPassphraseVerifier, matchesPassphraseVerifier, VERIFIER_LIMITS, type PassphraseVerifier } from './verifier.js';
