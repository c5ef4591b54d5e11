import { call, type ApiResponse } from './app.js';
import { TestBucket } from './s3-bucket.js';

export function uploadForm(fileName: string, content: Uint8Array, options: { fileFirst?: boolean; filename?: string } = {}): FormData {
  const form = new FormData();
  const blob = new Blob([content]);
  const filename = options.filename ?? fileName;
  if (options.fileFirst) {
    form.append('file', blob, filename);
    form.append('file_name', fileName);
  } else {
    form.append('file_name', fileName);
    form.append('file', blob, filename);
  }
  return form;
}

export function upload(
  baseUrl: string,
  account: { id: string; token: string },
  finetune: string,
  fileName: string,
  content: Uint8Array,
  options: { fileFirst?: boolean; filename?: string } = {},
): Promise<ApiResponse<{ id: string; finetune_id: string; file_name: string; bytes: number; sha256: string; created_at: string }>> {
  return call(baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes/${finetune}/finetune-assets`, {
    token: account.token,
    body: uploadForm(fileName, content, options),
  });
}

/** The suite's s3rver, seen directly (not through the service). */
export function testStorage(bucket: string): TestBucket {
  return new TestBucket(bucket);
}
