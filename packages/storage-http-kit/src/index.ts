export { PartReader } from './parts.js';
export { PartWindow } from './window.js';
export { NETWORK_ERROR_CODES, isNetworkError } from './network.js';
export { resumableGet, type ResumableGetOptions } from './resume.js';
