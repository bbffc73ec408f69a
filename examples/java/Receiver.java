// Example upstream for caddy-alipay-notify: receives the Standard Webhooks POST
// the plugin sends for every verified Alipay notification, domestic or Antom
// (cross-border).
//
//   WEBHOOK_SECRET=whsec_... PORT=8081 java Receiver.java
//
// JDK only (HttpServer, javax.crypto.Mac) so it runs without a build tool; in an
// application prefer the official Standard Webhooks Java library and your JSON
// library (Jackson, Gson) instead of the small parser at the end.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.*;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Receiver {
    static final long TOLERANCE = 300; // seconds, either way, as the Standard Webhooks libraries use
    static final int MAX_BODY = 1 << 20; // Alipay notifications are a few KiB
    static byte[] key;
    // webhook-ids already processed: Alipay retries keep the same notify_id (Antom's the
    // same body, hence the same antom_... id), so this makes a retry harmless. In production store it with the order instead (e.g. a
    // unique index on notify_id, written in the transaction that marks it paid).
    static final Set<String> seen = new HashSet<>();

    static void log(String line) { System.out.println(line); System.out.flush(); }

    /** Returns null when verified, else the reason it is not. */
    static String verify(String id, String ts, String sigs, byte[] raw) throws Exception {
        if (id == null || ts == null || sigs == null || id.isEmpty() || ts.isEmpty() || sigs.isBlank()) return "missing headers";
        if (!ts.matches("[0-9]{1,15}")) return "bad timestamp";
        if (Math.abs(System.currentTimeMillis() / 1000 - Long.parseLong(ts)) > TOLERANCE) return "stale timestamp";
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        mac.update((id + "." + ts + ".").getBytes(StandardCharsets.UTF_8));
        byte[] expected = Base64.getEncoder().encode(mac.doFinal(raw)); // the raw bytes, never re-encoded JSON
        // Space-separated "v1,<base64>" entries; any one match will do (the plugin
        // signs with two secrets while one is being rotated). isEqual is constant-time.
        for (String entry : sigs.trim().split(" +")) {
            int comma = entry.indexOf(',');
            if (comma > 0 && entry.substring(0, comma).equals("v1")
                    && MessageDigest.isEqual(expected, entry.substring(comma + 1).getBytes(StandardCharsets.UTF_8))) return null;
        }
        return "bad signature";
    }

    /** The value at path in data as text, "-" when absent (Antom's data is nested). */
    static String field(Map<String, Object> data, String... path) {
        Object v = data;
        for (String k : path) v = v instanceof Map<?, ?> m ? m.get(k) : null;
        return v instanceof String s && !s.isEmpty() ? s : "-"; // the parser keeps numbers as text
    }

    static void reply(HttpExchange ex, int status, String text) throws IOException {
        byte[] body = text.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(status, body.length);
        ex.getResponseBody().write(body);
        ex.close();
    }

    @SuppressWarnings("unchecked")
    static void handle(HttpExchange ex) throws Exception {
        if (!ex.getRequestURI().getPath().equals("/hooks/alipay")) { reply(ex, 404, "not found"); return; }
        if (!ex.getRequestMethod().equals("POST")) { reply(ex, 405, "method not allowed"); return; }
        byte[] raw = ex.getRequestBody().readNBytes(MAX_BODY + 1);
        if (raw.length > MAX_BODY) { reply(ex, 413, "too large"); return; }
        var h = ex.getRequestHeaders(); // case-insensitive
        String id = h.getFirst("webhook-id");
        String reason = verify(id, h.getFirst("webhook-timestamp"), h.getFirst("webhook-signature"), raw);
        if (reason != null) {
            log("rejected " + (id == null || id.isEmpty() ? "-" : id) + " " + reason);
            reply(ex, 401, "invalid signature");
            return;
        }
        Map<String, Object> event, data;
        try {
            event = new Json(new String(raw, StandardCharsets.UTF_8)).object();
            data = (Map<String, Object>) event.getOrDefault("data", Map.of()); // not an object: ClassCastException
        } catch (RuntimeException e) {
            log("rejected " + id + " malformed payload"); // signed, yet a retry would not fix it
            reply(ex, 400, "malformed payload");
            return;
        }
        synchronized (seen) { // check, process and mark as one step
            if (seen.contains(id)) { log("duplicate " + id); reply(ex, 200, "duplicate"); return; }
            // A real app does its work here, before answering 2xx (a 2xx becomes
            // Alipay's "success" and stops the retries):
            //  - data "out_trade_no" (Antom: "paymentRequestId") must be one of its own orders;
            //  - "total_amount" must equal the order amount, compared as a String or
            //    BigDecimal (compareTo), never a double ("0.10" must equal the stored 0.10);
            //    Antom's "paymentAmount" is {currency, value in minor units}: both must match;
            //  - mark the order paid only for TRADE_SUCCESS or TRADE_FINISHED (Antom:
            //    "result" "resultStatus" is "S").
            // If that fails, answer 5xx without marking the id seen: Alipay retries.
            // Domestic data holds only strings; Antom's is its JSON object as posted (nested).
            String type = String.valueOf(event.getOrDefault("type", "-"));
            List<String> fields = type.startsWith("antom.")
                    ? List.of(field(data, "paymentRequestId"), field(data, "paymentAmount", "value"), field(data, "result", "resultStatus"))
                    : List.of(field(data, "out_trade_no"), field(data, "total_amount"), field(data, "trade_status"));
            log("accepted " + id + " " + type + " " + String.join(" ", fields));
            seen.add(id);
        }
        reply(ex, 200, "ok");
    }

    public static void main(String[] args) throws Exception {
        String secret = System.getenv("WEBHOOK_SECRET");
        if (secret == null || secret.isEmpty()) {
            System.err.println("WEBHOOK_SECRET is required (the whsec_... value given to the plugin as webhook_secret)");
            System.exit(2);
        }
        try { // the HMAC key is the base64 decoding of the secret after its whsec_ prefix
            key = Base64.getDecoder().decode(secret.startsWith("whsec_") ? secret.substring(6) : secret);
            if (key.length == 0) throw new IllegalArgumentException("empty key");
        } catch (IllegalArgumentException e) {
            System.err.println("WEBHOOK_SECRET is not a valid whsec_ secret: " + e.getMessage());
            System.exit(2);
        }
        String port = Optional.ofNullable(System.getenv("PORT")).filter(p -> !p.isEmpty()).orElse("8081");
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), Integer.parseInt(port)), 0);
        server.createContext("/", ex -> {
            try { handle(ex); } catch (Exception e) { e.printStackTrace(); reply(ex, 500, "error"); }
        });
        server.start(); // bound in create(), serving now
        log("listening on 127.0.0.1:" + port);
    }

    /** Just enough JSON for this body (a real app uses Jackson or Gson): objects, arrays, strings, literals. */
    static final class Json {
        final String s; int i;
        Json(String s) { this.s = s; }
        char peek() { while (Character.isWhitespace(s.charAt(i))) i++; return s.charAt(i); }
        void expect(char c) { if (peek() != c) throw new IllegalArgumentException("expected " + c); i++; }
        Object value() {
            char c = peek();
            if (c == '{') return object();
            if (c == '"') return string();
            if (c == '[') {
                List<Object> l = new ArrayList<>();
                i++;
                if (peek() == ']') { i++; return l; }
                for (l.add(value()); peek() == ','; i++, l.add(value())) { }
                expect(']');
                return l;
            }
            int start = i; // number, true, false or null: kept as its text
            while (i < s.length() && "{}[],: \t\r\n".indexOf(s.charAt(i)) < 0) i++;
            String t = s.substring(start, i);
            if (!t.matches("true|false|null|-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?")) throw new IllegalArgumentException(t);
            return t;
        }
        Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            expect('{');
            if (peek() == '}') { i++; return m; }
            for (member(m); peek() == ','; i++, member(m)) { }
            expect('}');
            return m;
        }
        void member(Map<String, Object> m) { String k = string(); expect(':'); m.put(k, value()); }
        String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            for (char c; (c = s.charAt(i++)) != '"'; ) {
                if (c != '\\') { b.append(c); continue; }
                c = s.charAt(i++);
                switch (c) {
                    case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                    case 'n': b.append('\n'); break; case 't': b.append('\t'); break; case 'r': b.append('\r'); break;
                    case 'b': b.append('\b'); break; case 'f': b.append('\f'); break; default: b.append(c);
                }
            }
            return b.toString();
        }
    }
}
