export { OssStorage, type OssCredentials, type OssStorageClass, type OssStorageOptions } from './oss.js';
export { ossStorageFactory, parseOssUrl, type OssDestinationOptions } from './factory.js';
export { Crc64Ecma, crc64ecma, crc64ecmaCombine } from './crc64.js';
