export { CompressionError, CompressionErrorCode, decodeError } from './errors.js';
export { DEFAULT_LEVEL, DEFAULT_WORKERS, createCompressStream, type CompressOptions } from './zstd.js';
export { createDecompressStream, startDecodeThread, stopDecodeThread, type Recycling } from './zstd-thread.js';
