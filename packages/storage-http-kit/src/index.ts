export { PartReader } from './parts.js';
export { PartWindow } from './window.js';
export { NETWORK_ERROR_CODES, isNetworkError } from './network.js';
export { resumableGet, type ResumableGetOptions } from './resume.js';
export { CRC64_ECMA, CRC64_NVME, Crc64, Crc64Model } from './crc64.js';
export { PART_MEMORY, PartMemory, uploadParts } from './memory.js';
