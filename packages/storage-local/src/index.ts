export { LocalStorage, type LocalStorageOptions } from './local.js';
export { localStorageFactory } from './factory.js';
