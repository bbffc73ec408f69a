<?php
// Example upstream for caddy-alipay-notify: receives the Standard Webhooks POST
// the plugin sends for every verified Alipay notification, domestic or Antom
// (cross-border).
//
//   WEBHOOK_SECRET=whsec_... PORT=8081 ./run.sh     (php -S with this file as router)
//
// Standard library only (hash_hmac, hash_equals) so it runs without Composer;
// in an application prefer the official standard-webhooks/standard-webhooks
// package, which does what verify() below does (see README.md).
declare(strict_types=1);

const TOLERANCE = 300; // seconds, either way, as the Standard Webhooks libraries use

// The HMAC key is the base64 decoding of the secret after its whsec_ prefix.
function load_key(): string {
    $secret = (string) getenv('WEBHOOK_SECRET');
    if ($secret === '') {
        throw new RuntimeException('WEBHOOK_SECRET is required (the whsec_... value given to the plugin as webhook_secret)');
    }
    $key = base64_decode(str_starts_with($secret, 'whsec_') ? substr($secret, 6) : $secret, true);
    if ($key === false || $key === '') {
        throw new RuntimeException('WEBHOOK_SECRET is not a valid whsec_ secret');
    }
    return $key;
}

// Returns null when verified, else the reason it is not.
function verify(string $key, string $id, string $ts, string $sigs, string $raw): ?string {
    if ($id === '' || $ts === '' || $sigs === '') return 'missing headers';
    if (!preg_match('/^[0-9]{1,15}\z/', $ts)) return 'bad timestamp';
    if (abs(time() - (int) $ts) > TOLERANCE) return 'stale timestamp'; // replayed, or a wrong clock
    // Over the raw body bytes, never re-encoded JSON.
    $expected = base64_encode(hash_hmac('sha256', "$id.$ts.$raw", $key, true));
    // Space-separated "v1,<base64>" entries; any one match will do (the plugin
    // signs with two secrets while one is being rotated).
    foreach (preg_split('/ +/', trim($sigs)) as $entry) {
        [$version, $sig] = array_pad(explode(',', $entry, 2), 2, '');
        if ($version === 'v1' && hash_equals($expected, $sig)) return null;
    }
    return 'bad signature';
}

// php -S sends echo to the client, so contract lines go to the process's stdout (unbuffered).
function out(string $line): void { file_put_contents('php://stdout', $line . "\n"); }

function reply(int $status, string $text): void {
    http_response_code($status);
    header('Content-Type: text/plain; charset=utf-8');
    echo $text;
}

if (PHP_SAPI === 'cli') { // `php receiver.php`: run.sh checks the configuration this way first
    try { load_key(); } catch (RuntimeException $e) { fwrite(STDERR, $e->getMessage() . "\n"); exit(2); }
    exit(0);
}

if (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) !== '/hooks/alipay') return reply(404, 'not found');
if ($_SERVER['REQUEST_METHOD'] !== 'POST') { header('Allow: POST'); return reply(405, 'method not allowed'); }

$raw = (string) file_get_contents('php://input');
$id = $_SERVER['HTTP_WEBHOOK_ID'] ?? '';
$reason = verify(load_key(), $id, $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '', $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '', $raw);
if ($reason !== null) {
    out('rejected ' . ($id === '' ? '-' : $id) . " $reason");
    return reply(401, 'invalid signature');
}
$event = json_decode($raw, true);
if (!is_array($event) || !is_array($event['data'] ?? [])) {
    out("rejected $id malformed payload"); // signed, yet a retry would not fix it
    return reply(400, 'malformed payload');
}

// Every request is a fresh PHP run, so "seen" lives on disk: one marker file per
// webhook-id, created with mode 'x' (fails if it exists: atomic, even across
// PHP_CLI_SERVER_WORKERS). Alipay retries keep the same notify_id (Antom's the same
// body, hence the same antom_... id); this makes them harmless. In production store it with the order (a unique index on notify_id).
$dir = getenv('SEEN_DIR') ?: sys_get_temp_dir() . '/caddy-alipay-notify-seen';
@mkdir($dir, 0700, true);
$marker = $dir . '/' . hash('sha256', $id);
$fh = @fopen($marker, 'x');
if ($fh === false) {
    if (!file_exists($marker)) return reply(500, 'cannot record webhook-id'); // not a duplicate: let Alipay retry
    out("duplicate $id");
    return reply(200, 'duplicate');
}
fclose($fh);

// Domestic data holds only strings; Antom's is its JSON object as posted (nested).
$d = $event['data'] ?? [];
// A real app does its work here, before answering 2xx (a 2xx becomes Alipay's
// "success" and stops the retries):
//  - $d['out_trade_no'] (Antom: $d['paymentRequestId']) must be one of its own orders;
//  - $d['total_amount'] must equal the order amount, compared as strings or with
//    bcmath (bccomp), never as floats ("0.10" must equal the stored 0.10);
//    Antom's $d['paymentAmount'] has 'currency' and 'value' (minor units): both must match;
//  - mark the order paid only for TRADE_SUCCESS or TRADE_FINISHED (Antom:
//    $d['result']['resultStatus'] === 'S').
// If that fails, unlink($marker) and answer 5xx, so Alipay retries.
$f = function (string ...$path) use ($d): string { // the value at $path as text, '-' when absent
    $v = $d;
    foreach ($path as $k) $v = is_array($v) ? ($v[$k] ?? null) : null;
    return is_scalar($v) && (string) $v !== '' ? (string) $v : '-';
};
$type = (string) ($event['type'] ?? '-');
$fields = str_starts_with($type, 'antom.')
    ? [$f('paymentRequestId'), $f('paymentAmount', 'value'), $f('result', 'resultStatus')]
    : [$f('out_trade_no'), $f('total_amount'), $f('trade_status')];
out("accepted $id $type " . implode(' ', $fields));
reply(200, 'ok');
