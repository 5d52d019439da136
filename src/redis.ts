export { redisBackend } from './backends/redis/redis-backend.js';
export type { RedisBackendOptions } from './backends/redis/redis-backend.js';
export type { RedisClientLike } from './backends/redis/envelopes.js';
