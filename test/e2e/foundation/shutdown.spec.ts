import { describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { startTestApp } from '../../helpers/app.js';

describe('graceful shutdown', () => {
  it('closes connections still open after the grace period instead of waiting on them forever', async () => {
    const t = await startTestApp({ SHUTDOWN_GRACE_MS: '300' });
    const port = (t.app.getHttpServer().address() as { port: number }).port;
    // A client that sends half a request body and then stalls.
    const received = new Promise((resolve) => t.app.getHttpServer().once('request', resolve));
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST /client/v4/admin/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na');
    await received;
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await t.close();
    await closed;
    expect(socket.destroyed).toBe(true);
  });
});
