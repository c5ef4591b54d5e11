import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { LocalFile } from './adapter-folder.js';
import { CliError, reason } from './errors.js';
import { formatBytes } from './format.js';

export interface RawAnswer {
  status: number;
  text: string;
}

/**
 * POSTs `file_name` and `file` as multipart/form-data, streaming the file from disk with a precomputed
 * Content-Length. (fetch would buffer the whole body first, even a FormData of an `openAsBlob` file, and an adapter
 * may be hundreds of megabytes.) `onProgress` gets the file bytes handed to the socket so far.
 * Rejects with a CliError when the file cannot be read or the connection breaks mid-upload, and with the socket's
 * error when connecting fails.
 */
export function postFile(url: URL, headers: Record<string, string>, file: LocalFile, onProgress: (sent: number) => void): Promise<RawAnswer> {
  const boundary = `lora-${randomBytes(16).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\n${file.name}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  let sent = 0;
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    try {
      for await (const chunk of createReadStream(file.path)) {
        yield chunk as Buffer;
        sent += (chunk as Buffer).length;
        onProgress(sent);
      }
    } catch (error) {
      throw new CliError(`cannot read ${file.path}: ${reason(error)}`);
    }
    if (sent !== file.size) throw new CliError(`${file.path} changed while it was being uploaded`);
    yield tail;
  }

  return new Promise((resolve, reject) => {
    const body = Readable.from(parts());
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      headers: {
        ...headers,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(head.length + file.size + tail.length),
      },
    });
    let connected = false;
    request.on('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => (connected = true));
    });
    let answered = false;
    request.on('response', (response) => {
      answered = true;
      // The service may reject a file before it has all of it: sending the rest would be wasted.
      body.unpipe(request);
      body.destroy();
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        // A body cut short leaves the connection unusable for another request.
        if (!request.writableFinished) request.destroy();
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    request.on('error', (error) => {
      // Once answered, the server closing the connection on the rest of an unwanted body is not a failure.
      if (answered) return;
      if (!connected) return reject(error);
      // The service may well have answered, but a server that closes a connection with unread data resets it, and
      // the reset can discard the answer before it is read.
      const progress = `after ${formatBytes(sent)} of ${formatBytes(file.size)}`;
      reject(new CliError(`the connection was closed during the upload of ${file.name}, ${progress} (${reason(error)})`));
    });
    body.on('error', (error) => {
      request.destroy();
      reject(error);
    });
    body.pipe(request);
  });
}
