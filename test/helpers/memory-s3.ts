import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

const s3Error = (name: string) => Object.assign(new Error(name), { name });

/**
 * Just enough S3, in memory, for unit tests of single branches of the commit protocol (a lost
 * PUT answer, a Complete answered NoSuchUpload, a failing DeleteObjects): the integration tests
 * run the same code against the real emulator; these make one answer go wrong at a time.
 */
export class MemoryS3 {
  readonly objects = new Map<string, string>();
  /** Open multipart uploads by upload id. */
  readonly uploads = new Map<string, string>();
  /** Return an error for a command to fail it; undefined lets it through. */
  fail: (command: unknown) => Error | undefined = () => undefined;
  /** Runs after a command succeeded and may replace its answer with an error (a lost answer). */
  loseAnswer: (command: unknown) => Error | undefined = () => undefined;
  listsUploads = true;
  readonly sent: string[] = [];

  readonly client = { send: (command: unknown) => this.send(command) } as unknown as S3Client;

  open(key: string, uploadId: string): void {
    this.uploads.set(uploadId, key);
  }

  private async send(command: unknown): Promise<unknown> {
    this.sent.push((command as object).constructor.name);
    const failure = this.fail(command);
    if (failure) throw failure;
    const out = this.run(command);
    const lost = this.loseAnswer(command);
    if (lost) throw lost;
    return out;
  }

  private run(command: unknown): unknown {
    if (command instanceof PutObjectCommand) {
      this.objects.set(command.input.Key as string, String(command.input.Body));
      return {};
    }
    if (command instanceof GetObjectCommand) {
      const body = this.objects.get(command.input.Key as string);
      if (body === undefined) throw s3Error('NoSuchKey');
      return { Body: { transformToString: async () => body } };
    }
    if (command instanceof HeadObjectCommand) {
      if (!this.objects.has(command.input.Key as string)) throw s3Error('NotFound');
      return {};
    }
    if (command instanceof ListObjectsV2Command) {
      const prefix = command.input.Prefix ?? '';
      return {
        Contents: [...this.objects.keys()]
          .filter((k) => k.startsWith(prefix))
          .sort()
          .map((Key) => ({ Key })),
        IsTruncated: false,
      };
    }
    if (command instanceof DeleteObjectsCommand) {
      for (const { Key } of command.input.Delete?.Objects ?? []) this.objects.delete(Key as string);
      return { Errors: [] };
    }
    if (command instanceof CompleteMultipartUploadCommand) {
      const key = this.uploads.get(command.input.UploadId as string);
      if (key === undefined) throw s3Error('NoSuchUpload');
      this.uploads.delete(command.input.UploadId as string);
      this.objects.set(key, `completed ${key}`);
      return {};
    }
    if (command instanceof AbortMultipartUploadCommand) {
      if (!this.uploads.delete(command.input.UploadId as string)) throw s3Error('NoSuchUpload');
      return {};
    }
    if (command instanceof ListMultipartUploadsCommand) {
      if (!this.listsUploads) throw s3Error('NotImplemented');
      const prefix = command.input.Prefix ?? '';
      return {
        Bucket: 'b',
        IsTruncated: false,
        Uploads: [...this.uploads]
          .filter(([, key]) => key.startsWith(prefix))
          .map(([UploadId, Key]) => ({ Key, UploadId })),
      };
    }
    throw new Error(`MemoryS3 does not know ${(command as object).constructor.name}`);
  }
}
