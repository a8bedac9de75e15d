/**
 * S3 checksums on the multipart path, command by command, with a recording stand-in for the S3
 * client: both settings of requestChecksumCalculation. The integration suites run the SDK's
 * default (WHEN_SUPPORTED) end to end against the local S3 server; this pins down what is sent.
 */
import { crc32 } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { completeFiles } from '../../lambda/snapshot/commit';
import { crc32Base64, GzipMultipartFile } from '../../lambda/snapshot/gzip-multipart-file';

interface Sent {
  readonly command: string;
  readonly input: Record<string, unknown>;
}

/**
 * Answers like S3 would and records every command with its input. The object it completes is
 * the parts it received, and its composite CRC32 is computed from their bytes, as S3 does.
 */
function recordingS3(mode: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED'): { s3: S3Client; sent: Sent[] } {
  const sent: Sent[] = [];
  const received = new Map<number, Buffer>();
  let etag = 0;
  const s3 = {
    config: { requestChecksumCalculation: async () => mode },
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      sent.push({ command: command.constructor.name, input: command.input });
      const { input } = command;
      if (command.constructor.name === 'CreateMultipartUploadCommand') return { UploadId: 'upload-1' };
      if (command.constructor.name === 'UploadPartCommand') {
        received.set(input.PartNumber as number, input.Body as Buffer);
        return { ETag: `"etag-${++etag}"` };
      }
      const bodies = [...received].sort(([a], [b]) => a - b).map(([, body]) => body);
      const composite = `${crc32Base64(Buffer.concat(bodies.map((b) => Buffer.from(crc32Base64(b), 'base64'))))}-${bodies.length}`;
      const checksum = mode === 'WHEN_SUPPORTED' ? { ChecksumCRC32: composite } : {};
      if (command.constructor.name === 'CompleteMultipartUploadCommand') return checksum;
      if (command.constructor.name === 'HeadObjectCommand')
        return { ContentLength: bodies.reduce((sum, b) => sum + b.length, 0), ...checksum };
      return {};
    },
  } as unknown as S3Client;
  return { s3, sent };
}

/** Incompressible text, so a few hundred KiB of input make several 64 KiB parts. */
const noise = (bytes: number) => {
  let text = '';
  let x = 12345;
  while (text.length < bytes) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    text += x.toString(36);
  }
  return `${text}\n`;
};

async function writeFile(s3: S3Client) {
  const file = new GzipMultipartFile({
    s3,
    bucket: 'b',
    key: 'k.ndjson.gz',
    partBytes: 64 * 1024,
    gzipLevel: 1,
  });
  for (let i = 0; i < 8; i++) await file.write(noise(40_000), 1);
  return file.close();
}

describe('GzipMultipartFile checksums', () => {
  it('crc32Base64 is the big-endian CRC32, base64, as S3 expects', () => {
    expect(crc32Base64(Buffer.from('hello'))).toBe(Buffer.from([0x36, 0x10, 0xa6, 0x86]).toString('base64'));
    expect(crc32(Buffer.from('hello'))).toBe(0x3610a686);
  });

  it('asks for CRC32 at CreateMultipartUpload, sends each part with its CRC32 and lists them at Complete', async () => {
    const { s3, sent } = recordingS3('WHEN_SUPPORTED');

    const pending = await writeFile(s3);
    await completeFiles(s3, 'b', [pending]);

    const create = sent.find((c) => c.command === 'CreateMultipartUploadCommand');
    expect(create?.input).toMatchObject({ ChecksumAlgorithm: 'CRC32' });
    const parts = sent.filter((c) => c.command === 'UploadPartCommand');
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) {
      expect(part.input.ChecksumAlgorithm).toBe('CRC32');
      expect(part.input.ChecksumCRC32).toBe(crc32Base64(part.input.Body as Buffer));
    }
    const complete = sent.find((c) => c.command === 'CompleteMultipartUploadCommand');
    const listed = (complete?.input.MultipartUpload as { Parts: unknown[] } | undefined)?.Parts;
    expect(listed).toEqual(
      parts
        .map((p) => ({
          PartNumber: p.input.PartNumber,
          ETag: expect.stringMatching(/^"etag-\d+"$/),
          ChecksumCRC32: p.input.ChecksumCRC32,
        }))
        .sort((a, b) => Number(a.PartNumber) - Number(b.PartNumber)),
    );
    expect(pending.parts.every((p) => typeof p.ChecksumCRC32 === 'string')).toBe(true);
    // Complete's composite CRC32 and the object's size, checked against what the writer recorded.
    expect(sent.filter((c) => c.command === 'HeadObjectCommand').map((c) => c.input)).toEqual([
      { Bucket: 'b', Key: 'k.ndjson.gz', ChecksumMode: 'ENABLED' },
    ]);
  });

  it('leaves checksums out when the client says WHEN_REQUIRED (local S3 servers)', async () => {
    const { s3, sent } = recordingS3('WHEN_REQUIRED');

    const pending = await writeFile(s3);
    await completeFiles(s3, 'b', [pending]);

    expect(sent.find((c) => c.command === 'CreateMultipartUploadCommand')?.input).not.toHaveProperty(
      'ChecksumAlgorithm',
    );
    for (const part of sent.filter((c) => c.command === 'UploadPartCommand')) {
      expect(part.input).not.toHaveProperty('ChecksumCRC32');
    }
    expect(pending.parts.every((p) => !('ChecksumCRC32' in p))).toBe(true);
  });
});
