export { LocalStorage, removeDeadTemporaries, type LocalStorageOptions } from './local.js';
export { localStorageFactory } from './factory.js';
