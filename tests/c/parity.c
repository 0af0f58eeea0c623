/* The C half of the parity test (tests/test_c_abi.py): the same work as
 * ffi/examples/parity.rs does through the Rust API, here through the C
 * ABI, with the same chunking, printing the same bytes.
 *
 *   parity base64 IN_CHUNK OUT_CHUNK < input    MIME base64 of stdin
 *   parity session IN_CHUNK OUT_CHUNK < input   a whole mail through the
 *       session with stdin as the attachment; prints the host's bytes,
 *       a line "----", then the server's bytes
 */

#include "atmail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *read_all(size_t *len) {
    size_t cap = 1 << 16, n;
    uint8_t *buf = malloc(cap);
    *len = 0;
    while (buf != NULL && (n = fread(buf + *len, 1, cap - *len, stdin)) > 0) {
        *len += n;
        if (*len == cap) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    return buf;
}

static size_t min(size_t a, size_t b) { return a < b ? a : b; }

static int base64(const uint8_t *in, size_t len, size_t in_chunk, size_t out_chunk) {
    atmail_base64_encoder *enc = NULL;
    uint8_t *out = malloc(out_chunk);
    size_t pos = 0, r, w;
    int rc = 1;
    if (out == NULL || atmail_base64_encoder_new(&enc) != ATMAIL_STATUS_OK) {
        goto done;
    }
    for (;;) {
        size_t take = min(in_chunk, len - pos);
        bool last = pos + take == len;
        atmail_status st =
            atmail_base64_encoder_encode(enc, in + pos, take, &r, out, out_chunk, &w, last);
        if (st != ATMAIL_STATUS_OK && st != ATMAIL_STATUS_OUTPUT_FULL) {
            goto done;
        }
        fwrite(out, 1, w, stdout);
        pos += r;
        if (st == ATMAIL_STATUS_OK && last) {
            break;
        }
    }
    rc = 0;
done:
    atmail_base64_encoder_free(enc);
    free(out);
    return rc;
}

typedef struct {
    atmail_session *s;
    uint64_t now;
    size_t out_chunk;
    uint8_t *out;
    /* Serial data needs room for a few encoded lines to make progress. */
    size_t serial_chunk;
    uint8_t *serial_out;
    uint8_t host[1 << 16];
    size_t host_len;
    uint8_t *wire;
    size_t wire_len, wire_cap;
    /* Connections the session asked for. */
    int connects;
} rig;

static int keep(rig *g, const uint8_t *bytes, size_t n) {
    if (g->wire_len + n > g->wire_cap) {
        return 0;
    }
    memcpy(g->wire + g->wire_len, bytes, n);
    g->wire_len += n;
    return 1;
}

/* Drains what the session has for the server and the host; sets *any
 * when anything came. */
static int pump_any(rig *g, int *any) {
    size_t w, h;
    *any = 0;
    do {
        if (atmail_session_poll_server(g->s, g->now, g->out, g->out_chunk, &w) != ATMAIL_STATUS_OK ||
            !keep(g, g->out, w)) {
            return 0;
        }
        if (atmail_session_poll_host(g->s, g->out, min(g->out_chunk, sizeof g->host - g->host_len),
                                     &h) != ATMAIL_STATUS_OK) {
            return 0;
        }
        memcpy(g->host + g->host_len, g->out, h);
        g->host_len += h;
        *any |= w > 0 || h > 0;
    } while (w > 0 || h > 0);
    return 1;
}

static int pump(rig *g) {
    int any;
    return pump_any(g, &any);
}

static int reply(rig *g, const char *text) {
    size_t pos = 0, len = strlen(text), r;
    while (pos < len) {
        if (atmail_session_handle_server(g->s, g->now, (const uint8_t *)text + pos, len - pos, &r) !=
                ATMAIL_STATUS_OK ||
            !pump(g)) {
            return 0;
        }
        pos += r;
    }
    return 1;
}

/* The session's events: commands that are not the engine's get OK, and
 * a connection asked for is counted. */
static int handle_events(rig *g) {
    atmail_event ev;
    uint8_t text[ATMAIL_EVENT_MAX];
    for (;;) {
        if (atmail_session_poll_event(g->s, &ev, text, sizeof text) != ATMAIL_STATUS_OK) {
            return 0;
        }
        if (ev.kind == ATMAIL_EVENT_KIND_NONE) {
            return 1;
        }
        if (ev.kind == ATMAIL_EVENT_KIND_COMMAND &&
            atmail_session_answer_command(g->s, (const uint8_t *)"\r\nOK\r\n", 6) != ATMAIL_STATUS_OK) {
            return 0;
        }
        if (ev.kind == ATMAIL_EVENT_KIND_CONNECT) {
            g->connects++;
        }
    }
}

/* Host bytes in in_chunk pieces, a millisecond apart. */
static int serial(rig *g, const uint8_t *bytes, size_t len, size_t in_chunk) {
    size_t pos = 0, r, w;
    int any;
    atmail_stopped stopped;
    while (pos < len) {
        size_t take = min(in_chunk, len - pos);
        g->now += 1;
        if (atmail_session_handle_host(g->s, g->now, bytes + pos, take, &r, g->serial_out,
                                       g->serial_chunk, &w, &stopped) != ATMAIL_STATUS_OK ||
            !keep(g, g->serial_out, w) || !handle_events(g)) {
            return 0;
        }
        pos += r;
        if (r == 0 && w == 0 && (!pump_any(g, &any) || !any)) {
            return 0;
        }
    }
    return pump(g);
}

/* A command line as a CRLF host types it, through the serial entry point. */
static int at(rig *g, const char *line, size_t in_chunk) {
    uint8_t bytes[ATMAIL_LINE_MAX + 2];
    size_t len = strlen(line);
    memcpy(bytes, line, len);
    memcpy(bytes + len, "\r\n", 2);
    return serial(g, bytes, len + 2, in_chunk);
}

/* Ends data mode with a guarded `+++`. */
static int escape(rig *g) {
    g->now += 1500;
    if (!serial(g, (const uint8_t *)"+++", 3, 3)) {
        return 0;
    }
    g->now += 1000;
    return atmail_session_handle_timeout(g->s, g->now) == ATMAIL_STATUS_OK && pump(g);
}

static int session(const uint8_t *in, size_t len, size_t in_chunk, size_t out_chunk) {
    static rig g;
    const char *date = "Wed, 25 Nov 2026 10:00:00 +0000", *id = "<parity@fibocom.com>";
    const char *body = "Hello from the G510.\r\n";
    const uint8_t local[4] = {10, 0, 0, 2};
    int rc = 1;

    g.out_chunk = out_chunk;
    g.out = malloc(out_chunk);
    g.serial_chunk = out_chunk < 256 ? 256 : out_chunk;
    g.serial_out = malloc(g.serial_chunk);
    g.wire_cap = len * 2 + 65536;
    g.wire = malloc(g.wire_cap);
    if (g.out == NULL || g.serial_out == NULL || g.wire == NULL || atmail_session_new(&g.s) != ATMAIL_STATUS_OK ||
        atmail_session_set_identity(g.s, (const uint8_t *)date, strlen(date), (const uint8_t *)id,
                                    strlen(id)) != ATMAIL_STATUS_OK) {
        goto done;
    }
    if (!at(&g, "AT&K3", in_chunk) || !at(&g, "AT+GTSMTPLAND=25,\"mail.fibocom.com\",3", in_chunk) ||
        !at(&g, "AT+GTSMTPID=\"wangww@fibocom.com\",\"ght64621178\"", in_chunk) ||
        !at(&g, "AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"", in_chunk) ||
        !at(&g, "AT+GTSMTPDST=1,2,\"cc@fibocom.com\"", in_chunk) ||
        !at(&g, "AT+GTSMTPHEAD=1,\"parity \xe4\xbd\xa0\xe5\xa5\xbd\"", in_chunk) ||
        !at(&g, "AT+GTSMTPSEND=300", in_chunk) ||
        !handle_events(&g) || g.connects != 1 || atmail_session_handle_connected(g.s, g.now, local, sizeof local) != ATMAIL_STATUS_OK ||
        !reply(&g, "220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 AUTH LOGIN\r\n334 VXNlcm5hbWU6\r\n"
                   "334 UGFzc3dvcmQ6\r\n235 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n") ||
        !at(&g, "AT+GTSMTPDATA=300", in_chunk) ||
        !serial(&g, (const uint8_t *)body, strlen(body), in_chunk) || !escape(&g) ||
        !at(&g, "AT+GTSMTPFILE=1,\"parity.bin\"", in_chunk) || !serial(&g, in, len, in_chunk) ||
        !escape(&g) || !at(&g, "AT+GTSMTPFILE?", in_chunk) || !at(&g, "AT+GTSMTPEND", in_chunk) ||
        !reply(&g, "250 queued\r\n221 bye\r\n")) {
        goto done;
    }
    fwrite(g.host, 1, g.host_len, stdout);
    fputs("----\n", stdout);
    fwrite(g.wire, 1, g.wire_len, stdout);
    rc = 0;
done:
    atmail_session_free(g.s);
    free(g.out);
    free(g.serial_out);
    free(g.wire);
    return rc;
}

int main(int argc, char **argv) {
    size_t len = 0, in_chunk, out_chunk;
    uint8_t *in;
    int rc = 2;
    if (argc != 4 || (in_chunk = strtoul(argv[2], NULL, 10)) == 0 ||
        (out_chunk = strtoul(argv[3], NULL, 10)) == 0) {
        fprintf(stderr, "usage: parity base64|session IN_CHUNK OUT_CHUNK < input\n");
        return 2;
    }
    in = read_all(&len);
    if (in == NULL) {
        return 2;
    }
    if (strcmp(argv[1], "base64") == 0) {
        rc = base64(in, len, in_chunk, out_chunk);
    } else if (strcmp(argv[1], "session") == 0) {
        rc = session(in, len, in_chunk, out_chunk);
    }
    free(in);
    return rc;
}
