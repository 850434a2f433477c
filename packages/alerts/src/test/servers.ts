import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

const portOf = (server: Server) => (server.address() as AddressInfo).port;
const listen = (server: Server) =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(portOf(server)));
  });

/** A real SMTP server on 127.0.0.1 (smtp-server, its built-in self-signed certificate); received mails parsed by mailparser. */
export async function startSmtp(options: SMTPServerOptions = {}) {
  const mails: ParsedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    logger: false,
    onData(stream, _session, callback) {
      // Accept only once parsed, so a mail is in `mails` when the sender's sendMail resolves.
      simpleParser(stream).then(
        (mail) => {
          mails.push(mail);
          callback();
        },
        (error: Error) => callback(error),
      );
    },
    ...options,
  });
  server.on('error', () => undefined);
  const port = await listen(server.server);
  return { port, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = createTcpServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server that accepts connections and never says a word (an SMTP server that hangs). */
export async function startSilentServer() {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  const port = await listen(server);
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

/** An HTTP server on 127.0.0.1 recording each request; `respond` decides the answer (default 204). */
export async function startWebhook(respond: (res: ServerResponse) => void = (res) => res.writeHead(204).end()) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      respond(res);
    });
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}/hooks/T0123/secret-path`,
    received,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
