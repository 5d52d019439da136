import fs from 'node:fs/promises';
import path from 'node:path';
import { FileBackend } from '../../../src/backends/file/file-backend.js';
import { defaultIo, operationsIo } from '../../../src/backends/file/io.js';
import { listFiles, tempDir } from '../../helpers/temp-dir.js';
import { backendContract } from '../contract.js';

backendContract('file backend', async (t) => {
  const dir = await tempDir(t);
  const backend = () => new FileBackend({ dir, io: defaultIo, operationsIo, lock: { staleMs: 10_000, waitMs: 15_000 }, maxReadBytes: 16 * 1024 * 1024 });
  return {
    backend,
    corrupt: async (name) => {
      const file = path.join(dir, name.slice(0, 2), `${name}.sess`);
      const bytes = await fs.readFile(file);
      bytes[bytes.length - 1]! ^= 0x01;
      await fs.writeFile(file, bytes);
    },
    count: async () => (await listFiles(dir).catch(() => [])).length,
  };
});
