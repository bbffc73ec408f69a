// Example upstream for caddy-alipay-notify: receives the Standard Webhooks
// POST the plugin sends for every verified Alipay notification, domestic or
// Antom (cross-border).
// Run: WEBHOOK_SECRET=whsec_... PORT=8081 node server.js
'use strict';

const http = require('node:http');
const { Webhook, WebhookVerificationError } = require('standardwebhooks');

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error('WEBHOOK_SECRET is required (the whsec_... value given to the plugin as webhook_secret)');
  process.exit(2);
}
let wh;
try {
  wh = new Webhook(secret); // strips "whsec_" and base64-decodes the rest into the HMAC key
} catch (err) {
  console.error(`WEBHOOK_SECRET is not a valid whsec_ secret: ${err.message}`);
  process.exit(2);
}
const port = Number(process.env.PORT || 8081);
const MAX_BODY = 1 << 20; // Alipay notifications are a few KiB; refuse anything absurd.

// webhook-ids already processed. Alipay retries keep the same notify_id (Antom's
// the same body, hence the same antom_... id), so this is what makes a retry harmless. In production store it with the order instead
// (e.g. a unique index on notify_id, written in the same transaction).
const seen = new Set();

// On Linux, console.log writes synchronously to a file or pipe, so each line is flushed at once.
const log = (line) => console.log(line);

// The library's error messages, mapped to the short reasons every example prints.
const REASONS = {
  'Missing required headers': 'missing headers',
  'Invalid Signature Headers': 'bad timestamp',
  'Message timestamp too old': 'stale timestamp',
  'Message timestamp too new': 'stale timestamp',
  'No matching signature found': 'bad signature',
};

function reply(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

function handle(req, res, raw) {
  const id = req.headers['webhook-id'];
  try {
    // verify() wants the raw body (a string or a Buffer, which it decodes as
    // UTF-8: the exact bytes that were signed, never re-serialised JSON) and a
    // plain object holding the three headers (it lower-cases the names itself).
    // It enforces the 5-minute tolerance and accepts any matching "v1,..." entry.
    // jsonParse:false because we parse below, where a bad body gets its own answer.
    wh.verify(raw, {
      'webhook-id': id,
      'webhook-timestamp': req.headers['webhook-timestamp'],
      'webhook-signature': req.headers['webhook-signature'],
    }, { jsonParse: false });
  } catch (err) {
    const reason = err instanceof WebhookVerificationError ? REASONS[err.message] || err.message : 'error';
    log(`rejected ${id || '-'} ${reason}`);
    return reply(res, 401, 'invalid signature');
  }

  let event;
  try {
    event = JSON.parse(raw.toString('utf8'));
  } catch {
    event = null;
  }
  if (!event || typeof event !== 'object' || (event.data != null && typeof event.data !== 'object')) {
    // Signed by the plugin yet not a JSON object (with an object as data): a retry would not fix it.
    log(`rejected ${id} malformed payload`);
    return reply(res, 400, 'malformed payload');
  }

  if (seen.has(id)) {
    log(`duplicate ${id}`);
    return reply(res, 200, 'duplicate');
  }

  // Domestic data holds only strings; Antom's is its JSON object as posted (nested).
  const d = event.data || {};
  const antom = String(event.type).startsWith('antom.');
  // A real app does its work here, before answering 2xx (a 2xx becomes Alipay's
  // "success" and stops the retries):
  //  - look up d.out_trade_no (Antom: d.paymentRequestId): it must be one of
  //    its own orders;
  //  - compare d.total_amount with the order amount as strings or decimals,
  //    never as floats ("0.10" must equal the stored 0.10); Antom's
  //    d.paymentAmount is {currency, value in minor units}: both must match;
  //  - mark the order paid only for TRADE_SUCCESS or TRADE_FINISHED (Antom:
  //    d.result.resultStatus "S").
  // If that fails, answer 5xx without marking the id seen, so Alipay retries.
  const fields = antom
    ? [d.paymentRequestId, d.paymentAmount?.value, d.result?.resultStatus]
    : [d.out_trade_no, d.total_amount, d.trade_status];
  log(`accepted ${id} ${event.type || '-'} ${fields.map((v) => String(v ?? '') || '-').join(' ')}`);
  seen.add(id);
  reply(res, 200, 'ok');
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path !== '/hooks/alipay') return reply(res, 404, 'not found');
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    return reply(res, 405, 'method not allowed');
  }
  // Collect the raw bytes: the signature covers them exactly.
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      reply(res, 413, 'too large');
      req.destroy();
    } else {
      chunks.push(chunk);
    }
  });
  req.on('end', () => handle(req, res, Buffer.concat(chunks)));
});

server.listen(port, '127.0.0.1', () => log(`listening on 127.0.0.1:${port}`));
