/* The C ABI from C: every exported function, the error statuses,
 * streaming with 1-byte and large buffers, and a whole mail through the
 * session against scripted server replies. Built with
 * -std=c99 -Wall -Wextra -Werror -pedantic and run under valgrind by
 * tests/c/Makefile. */

#include "atmail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            goto done;                                                         \
        }                                                                      \
    } while (0)

#define CHECK_STATUS(call, expected) CHECK((call) == (expected))


static const uint8_t SUBJECT_GB2312[] = {0xc4, 0xe3, 0xba, 0xc3, ' ', 's',
                                         'm', 't', 'p'};

/* Deterministic bytes, so every run sees the same input. */
static void fill(uint8_t *buf, size_t len, uint32_t seed) {
    size_t i;
    for (i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
}

static int test_version(void) {
    int ok = 0;
    const char *v = atmail_version();
    CHECK(v != NULL && strlen(v) >= 5);
    CHECK(ATMAIL_ABI_VERSION == 4);
    printf("  atmail_version() = %s, ATMAIL_ABI_VERSION = %d\n", v,
           ATMAIL_ABI_VERSION);
    ok = 1;
done:
    return ok;
}

static int test_status_strings(void) {
    int ok = 0;
    uint32_t a, b;
    for (a = ATMAIL_STATUS_OK; a <= ATMAIL_STATUS_EMPTY; a++) {
        CHECK(atmail_status_str(a) != NULL);
        CHECK(strcmp(atmail_status_str(a), "unknown status") != 0);
        for (b = 0; b < a; b++) {
            CHECK(strcmp(atmail_status_str(a), atmail_status_str(b)) != 0);
        }
    }
    CHECK(strcmp(atmail_status_str(ATMAIL_STATUS_OK), "ok") == 0);
    CHECK(strcmp(atmail_status_str(999), "unknown status") == 0);
    ok = 1;
done:
    return ok;
}

static int test_null_parameters(void) {
    int ok = 0;
    size_t n = 0, r = 0, w = 0;
    uint8_t buf[8];
    uint64_t t = 0;
    const uint8_t *data = NULL;
    atmail_framer_event ev = 0;
    atmail_data_limits limits = {1000, 0, 300000, ATMAIL_MAX_PAYLOAD};
    atmail_base64_encoder *enc = NULL;
    atmail_framer *fr = NULL;
    atmail_session *s = NULL;
    atmail_event event;
    atmail_stopped stopped = ATMAIL_STOPPED_INPUT_EMPTY;

    CHECK_STATUS(atmail_base64_encoded_len(3, NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_base64_encoder_new(NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_base64_encoder_init(NULL, 64, &enc), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_base64_encoder_encode(NULL, buf, 1, &r, buf, 8, &w, false),
                 ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_framer_new(NULL, 0, &fr), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_framer_new(&limits, 0, NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_framer_init(buf, 8, NULL, 0, &fr), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_framer_push(NULL, 0, buf, 1, &r, &ev, &data, &n),
                 ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_framer_poll(NULL, 0, &ev, &data, &n), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_framer_next_deadline(NULL, &t), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_framer_payload_len(NULL, &t), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_header_subject(0, NULL, 3, buf, 8, &w), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_header_subject(0, buf, 1, buf, 8, NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_header_attachment(0, buf, 1, NULL, 8, &w), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_new(NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_init(NULL, 1 << 16, &s), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_verbose_errors(NULL, true), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_guard_ms(NULL, 1), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_require_tls(NULL, true), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_helo_name(NULL, buf, 1), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_identity(NULL, buf, 1, buf, 1), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_network_up(NULL, true), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_transfer(NULL, ATMAIL_TRANSFER_OFF), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_chunk_storage(NULL, buf, sizeof buf), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_chunk_storage(NULL, NULL, 0), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK(!atmail_session_in_data_mode(NULL));
    CHECK(atmail_session_state(NULL) == ATMAIL_STATE_IDLE);
    CHECK_STATUS(atmail_session_handle_host(NULL, 0, buf, 1, &r, buf, 8, &w, &stopped),
                 ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_poll_event(NULL, &event, buf, 8), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_answer_command(NULL, buf, 1), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_poll_host(NULL, buf, 8, &w), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_connected(NULL, 0, NULL, 0), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_closed(NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_tls_established(NULL, 0), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_server(NULL, 0, buf, 1, &r), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_poll_server(NULL, 0, buf, 8, &w), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_timeout(NULL, 0), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_next_deadline(NULL, &t), ATMAIL_STATUS_NULL_PARAMETER);

    /* NULL out-parameters on a live object. */
    CHECK_STATUS(atmail_session_new(&s), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_poll_host(s, buf, 8, NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_poll_event(s, NULL, buf, 8), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_host(s, 0, buf, 1, &r, buf, 8, &w, NULL),
                 ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_next_deadline(s, NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_server(s, 0, NULL, 5, &r), ATMAIL_STATUS_NULL_PARAMETER);
    /* A zero length may come with a NULL pointer. */
    CHECK_STATUS(atmail_session_poll_host(s, NULL, 0, &w), ATMAIL_STATUS_OK);
    CHECK(w == 0);

    /* Freeing NULL is a no-op. */
    atmail_base64_encoder_free(NULL);
    atmail_framer_free(NULL);
    atmail_session_free(NULL);
    ok = 1;
done:
    atmail_session_free(s);
    return ok;
}

/* Encodes `src` through the C ABI with the given chunk sizes. */
static int encode_chunked(const uint8_t *src, size_t len, size_t in_chunk,
                          size_t out_chunk, uint8_t *out, size_t out_cap,
                          size_t *out_len) {
    int ok = 0;
    atmail_base64_encoder *enc = NULL;
    size_t pos = 0, total = 0, r, w;
    atmail_status st;
    CHECK_STATUS(atmail_base64_encoder_new(&enc), ATMAIL_STATUS_OK);
    for (;;) {
        size_t take = len - pos < in_chunk ? len - pos : in_chunk;
        bool last = pos + take == len;
        size_t room = out_cap - total < out_chunk ? out_cap - total : out_chunk;
        st = atmail_base64_encoder_encode(enc, src + pos, take, &r,
                                          out + total, room, &w, last);
        CHECK(st == ATMAIL_STATUS_OK || st == ATMAIL_STATUS_OUTPUT_FULL);
        CHECK(r <= take && w <= room);
        pos += r;
        total += w;
        if (st == ATMAIL_STATUS_OK && last) {
            break;
        }
    }
    *out_len = total;
    ok = 1;
done:
    atmail_base64_encoder_free(enc);
    return ok;
}

static int test_encoder_streaming(void) {
    int ok = 0;
    enum { LEN = 5000 };
    static uint8_t src[LEN], whole[8000], small[8000];
    size_t whole_len = 0, small_len = 0, expected = 0, r, w;
    uint8_t out[16];
    atmail_base64_encoder *enc = NULL;

    fill(src, LEN, 7);
    CHECK_STATUS(atmail_base64_encoded_len(LEN, &expected), ATMAIL_STATUS_OK);
    CHECK(encode_chunked(src, LEN, LEN, sizeof whole, whole, sizeof whole, &whole_len));
    CHECK(whole_len == expected);
    CHECK(encode_chunked(src, LEN, 1, 1, small, sizeof small, &small_len));
    CHECK(small_len == whole_len && memcmp(small, whole, whole_len) == 0);
    CHECK(encode_chunked(src, LEN, 77, 5, small, sizeof small, &small_len));
    CHECK(small_len == whole_len && memcmp(small, whole, whole_len) == 0);
    CHECK(memcmp(whole + 76, "\r\n", 2) == 0);

    CHECK_STATUS(atmail_base64_encoder_new(&enc), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_base64_encoder_encode(enc, (const uint8_t *)"hello", 5, &r,
                                              out, 4, &w, true),
                 ATMAIL_STATUS_OUTPUT_FULL);
    CHECK(w == 4 && memcmp(out, "aGVs", 4) == 0);
    CHECK_STATUS(atmail_base64_encoder_encode(enc, (const uint8_t *)"hello" + r, 5 - r,
                                              &r, out, sizeof out, &w, true),
                 ATMAIL_STATUS_OK);
    CHECK(w == 6 && memcmp(out, "bG8=\r\n", 6) == 0);
    CHECK_STATUS(atmail_base64_encoder_encode(enc, (const uint8_t *)"x", 1, &r, out,
                                              sizeof out, &w, true),
                 ATMAIL_STATUS_WRONG_STATE);
    CHECK_STATUS(atmail_base64_encoded_len((size_t)-1, &expected),
                 ATMAIL_STATUS_INVALID_PARAMETER);
    ok = 1;
done:
    atmail_base64_encoder_free(enc);
    return ok;
}

static int test_in_place(void) {
    int ok = 0;
    /* Firmware memory: a static, generously aligned block. */
    static union {
        uint64_t align;
        uint8_t bytes[8192];
    } mem;
    atmail_base64_encoder *enc = NULL;
    atmail_framer *fr = NULL;
    atmail_session *s = NULL;
    atmail_data_limits limits = {ATMAIL_DEFAULT_GUARD_MS, 0, 1000, 10};
    size_t r, w;
    uint8_t out[8];
    uint64_t deadline = 0;

    CHECK(atmail_base64_encoder_size() > 0 && atmail_base64_encoder_size() <= 64);
    CHECK(atmail_base64_encoder_align() >= 1 && atmail_base64_encoder_align() <= 8);
    CHECK(atmail_framer_size() > 0 && atmail_framer_align() >= 1);
    CHECK(atmail_session_size() <= sizeof mem.bytes);
    CHECK(atmail_session_align() <= 8);
    printf("  atmail_session_size() = %zu, atmail_session_align() = %zu\n",
           atmail_session_size(), atmail_session_align());

    CHECK_STATUS(atmail_session_init(mem.bytes, atmail_session_size() - 1, &s),
                 ATMAIL_STATUS_INSUFFICIENT_SIZE);
    CHECK_STATUS(atmail_session_init(mem.bytes + 1, sizeof mem.bytes - 1, &s),
                 ATMAIL_STATUS_MISALIGNED);
    CHECK_STATUS(atmail_session_init(mem.bytes, sizeof mem.bytes, NULL),
                 ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_init(mem.bytes, sizeof mem.bytes, &s), ATMAIL_STATUS_OK);
    CHECK((void *)s == (void *)mem.bytes);
    CHECK_STATUS(atmail_session_next_deadline(s, &deadline), ATMAIL_STATUS_OK);
    CHECK(deadline == ATMAIL_NO_DEADLINE);

    /* The memory is reused: no free, no resources held. */
    CHECK_STATUS(atmail_base64_encoder_init(mem.bytes, atmail_base64_encoder_size() - 1, &enc),
                 ATMAIL_STATUS_INSUFFICIENT_SIZE);
    CHECK_STATUS(atmail_base64_encoder_init(mem.bytes, sizeof mem.bytes, &enc), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_base64_encoder_encode(enc, (const uint8_t *)"ab", 2, &r, out,
                                              sizeof out, &w, true),
                 ATMAIL_STATUS_OK);
    CHECK(w == 6 && memcmp(out, "YWI=\r\n", 6) == 0);

    CHECK_STATUS(atmail_framer_init(mem.bytes + 1, 64, &limits, 0, &fr), ATMAIL_STATUS_MISALIGNED);
    CHECK_STATUS(atmail_framer_init(mem.bytes, sizeof mem.bytes, &limits, 0, &fr),
                 ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_framer_next_deadline(fr, &deadline), ATMAIL_STATUS_OK);
    CHECK(deadline == 1000);
    ok = 1;
done:
    return ok;
}

static int test_framer(void) {
    int ok = 0;
    atmail_data_limits limits = {ATMAIL_DEFAULT_GUARD_MS, 0, 300000, ATMAIL_MAX_PAYLOAD};
    atmail_data_limits tiny = {ATMAIL_DEFAULT_GUARD_MS, 3000, 300000, 4};
    atmail_framer *fr = NULL;
    const uint8_t hello[] = "hello", pluses[] = "+++";
    const uint8_t *data = NULL;
    size_t read = 0, len = 0;
    atmail_framer_event ev = 0;
    uint64_t t = 0;

    CHECK_STATUS(atmail_framer_new(&limits, 0, &fr), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_framer_push(fr, 10, hello, 5, &read, &ev, &data, &len), ATMAIL_STATUS_OK);
    /* Zero copy: the payload is the caller's own input. */
    CHECK(ev == ATMAIL_FRAMER_EVENT_DATA && read == 5 && data == hello && len == 5);
    CHECK_STATUS(atmail_framer_push(fr, 1500, pluses, 3, &read, &ev, &data, &len), ATMAIL_STATUS_OK);
    CHECK(ev == ATMAIL_FRAMER_EVENT_NEED_MORE && read == 3);
    CHECK_STATUS(atmail_framer_next_deadline(fr, &t), ATMAIL_STATUS_OK);
    CHECK(t == 2500);
    CHECK_STATUS(atmail_framer_poll(fr, 2499, &ev, &data, &len), ATMAIL_STATUS_OK);
    CHECK(ev == ATMAIL_FRAMER_EVENT_NEED_MORE);
    CHECK_STATUS(atmail_framer_poll(fr, 2500, &ev, &data, &len), ATMAIL_STATUS_OK);
    CHECK(ev == ATMAIL_FRAMER_EVENT_END_ESCAPE);
    CHECK_STATUS(atmail_framer_payload_len(fr, &t), ATMAIL_STATUS_OK);
    CHECK(t == 5);
    CHECK_STATUS(atmail_framer_next_deadline(fr, &t), ATMAIL_STATUS_OK);
    CHECK(t == ATMAIL_NO_DEADLINE);
    atmail_framer_free(fr);
    fr = NULL;

    /* `+++` inside flowing data is data; the cap ends data mode. */
    CHECK_STATUS(atmail_framer_new(&tiny, 0, &fr), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_framer_push(fr, 5, (const uint8_t *)"a+", 2, &read, &ev, &data, &len),
                 ATMAIL_STATUS_OK);
    CHECK(ev == ATMAIL_FRAMER_EVENT_DATA && len == 2);
    CHECK_STATUS(atmail_framer_push(fr, 6, (const uint8_t *)"bc", 2, &read, &ev, &data, &len),
                 ATMAIL_STATUS_OK);
    CHECK(ev == ATMAIL_FRAMER_EVENT_DATA && len == 2);
    CHECK_STATUS(atmail_framer_push(fr, 6, (const uint8_t *)"d", 1, &read, &ev, &data, &len),
                 ATMAIL_STATUS_OK);
    CHECK(ev == ATMAIL_FRAMER_EVENT_END_OVERSIZE);
    atmail_framer_free(fr);
    fr = NULL;

    CHECK_STATUS(atmail_framer_new(&tiny, 0, &fr), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_framer_poll(fr, 3000, &ev, &data, &len), ATMAIL_STATUS_OK);
    CHECK(ev == ATMAIL_FRAMER_EVENT_END_IDLE);
    ok = 1;
done:
    atmail_framer_free(fr);
    return ok;
}

static int test_header(void) {
    int ok = 0;
    uint8_t out[512];
    size_t w = 0;
    const char *expected = "Subject: =?GB2312?B?xOO6wyBzbXRw?=\r\n";
    const uint8_t bad_gb[] = {0x80, 0x40};
    char long_subject[201];

    memset(out, 'z', sizeof out);
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_GB2312, SUBJECT_GB2312,
                                       sizeof SUBJECT_GB2312, out, 10, &w),
                 ATMAIL_STATUS_INSUFFICIENT_SIZE);
    CHECK(w == strlen(expected) && out[0] == 'z');
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_GB2312, SUBJECT_GB2312,
                                       sizeof SUBJECT_GB2312, out, w, &w),
                 ATMAIL_STATUS_OK);
    CHECK(w == strlen(expected) && memcmp(out, expected, w) == 0);
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_US_ASCII, (const uint8_t *)"Hi", 2,
                                       out, sizeof out, &w),
                 ATMAIL_STATUS_OK);
    CHECK(w == 13 && memcmp(out, "Subject: Hi\r\n", 13) == 0);
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_GB2312, bad_gb, 2, out, sizeof out, &w),
                 ATMAIL_STATUS_INVALID_TEXT);
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_UTF8, (const uint8_t *)"\xff", 1, out,
                                       sizeof out, &w),
                 ATMAIL_STATUS_INVALID_TEXT);
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_BIG5, (const uint8_t *)"\xff\xff", 2, out,
                                       sizeof out, &w),
                 ATMAIL_STATUS_INVALID_TEXT);
    CHECK_STATUS(atmail_header_subject(9, (const uint8_t *)"a", 1, out, sizeof out, &w),
                 ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_US_ASCII, (const uint8_t *)"a\r\nBcc: x", 9,
                                       out, sizeof out, &w),
                 ATMAIL_STATUS_CONTROL_CHARACTER);
    memset(long_subject, 'a', sizeof long_subject);
    CHECK_STATUS(atmail_header_subject(ATMAIL_CHARSET_US_ASCII, (const uint8_t *)long_subject,
                                       sizeof long_subject, out, sizeof out, &w),
                 ATMAIL_STATUS_TOO_LONG);

    CHECK_STATUS(atmail_header_attachment(ATMAIL_CHARSET_US_ASCII, (const uint8_t *)"eee.wma", 7,
                                          out, sizeof out, &w),
                 ATMAIL_STATUS_OK);
    out[w] = 0;
    CHECK(strstr((char *)out, "Content-Type: audio/x-ms-wma; name=\"eee.wma\"\r\n") == (char *)out);
    CHECK(strstr((char *)out, "Content-Disposition: attachment; filename=\"eee.wma\"\r\n") != NULL);
    CHECK_STATUS(atmail_header_attachment(ATMAIL_CHARSET_UTF8, (const uint8_t *)"", 0, out,
                                          sizeof out, &w),
                 ATMAIL_STATUS_EMPTY);
    ok = 1;
done:
    return ok;
}

/* ---- the session ---- */

typedef struct {
    atmail_session *s;
    uint64_t now;
    char host[4096];
    size_t host_len;
    char wire[1 << 16];
    size_t wire_len;
    /* The last event's text and connection details. */
    uint8_t text[ATMAIL_EVENT_MAX];
    size_t text_len;
    uint16_t port;
    bool implicit_tls;
} rig;

static void clear_host(rig *g) {
    g->host_len = 0;
    g->host[0] = 0;
}

/* Drains both outputs through 1-byte buffers. */
static int pump(rig *g) {
    int ok = 0;
    uint8_t b;
    size_t w;
    for (;;) {
        size_t moved = 0;
        CHECK_STATUS(atmail_session_poll_server(g->s, g->now, &b, 1, &w), ATMAIL_STATUS_OK);
        if (w == 1) {
            CHECK(g->wire_len < sizeof g->wire);
            g->wire[g->wire_len++] = (char)b;
            moved++;
        }
        CHECK_STATUS(atmail_session_poll_host(g->s, &b, 1, &w), ATMAIL_STATUS_OK);
        if (w == 1) {
            CHECK(g->host_len + 1 < sizeof g->host);
            g->host[g->host_len++] = (char)b;
            g->host[g->host_len] = 0;
            moved++;
        }
        if (moved == 0) {
            break;
        }
    }
    ok = 1;
done:
    return ok;
}

static int serial(rig *g, const uint8_t *bytes, size_t len);

/* The session's next event, its text into g->text. */
static atmail_event_kind next_event(rig *g) {
    atmail_event ev;
    if (atmail_session_poll_event(g->s, &ev, g->text, sizeof g->text) != ATMAIL_STATUS_OK) {
        return (atmail_event_kind)-1;
    }
    g->text_len = ev.len;
    g->port = ev.port;
    g->implicit_tls = ev.implicit_tls;
    return ev.kind;
}

/* A command line and its CR, through the serial entry point. */
static int at(rig *g, const char *line) {
    int ok = 0;
    CHECK(serial(g, (const uint8_t *)line, strlen(line)));
    CHECK(serial(g, (const uint8_t *)"\r", 1));
    CHECK(pump(g));
    ok = 1;
done:
    return ok;
}

static int reply(rig *g, const char *text) {
    int ok = 0;
    size_t pos = 0, len = strlen(text), r;
    while (pos < len) {
        CHECK_STATUS(atmail_session_handle_server(g->s, g->now, (const uint8_t *)text + pos, 1, &r),
                     ATMAIL_STATUS_OK);
        pos += r;
        CHECK(pump(g));
    }
    ok = 1;
done:
    return ok;
}

static int serial(rig *g, const uint8_t *bytes, size_t len) {
    int ok = 0;
    uint8_t out[200];
    size_t pos = 0, r, w;
    atmail_stopped stopped;
    while (pos < len) {
        CHECK_STATUS(atmail_session_handle_host(g->s, g->now, bytes + pos, len - pos, &r, out,
                                                sizeof out, &w, &stopped),
                     ATMAIL_STATUS_OK);
        CHECK(g->wire_len + w <= sizeof g->wire);
        memcpy(g->wire + g->wire_len, out, w);
        g->wire_len += w;
        pos += r;
        if (stopped == ATMAIL_STOPPED_HOST_FULL) {
            /* The host must read its answers first (backpressure). */
            CHECK(pump(g));
        }
        CHECK(stopped != ATMAIL_STOPPED_CALLER);
    }
    ok = 1;
done:
    return ok;
}

static int ends_with(const char *s, size_t len, const char *tail) {
    size_t n = strlen(tail);
    return len >= n && memcmp(s + len - n, tail, n) == 0;
}

static int configure(rig *g) {
    char head[64];
    const char *date = "Wed, 25 Nov 2026 10:00:00 +0000";
    const char *id = "<1@fibocom.com>";
    int ok = 0;
    CHECK_STATUS(atmail_session_set_identity(g->s, (const uint8_t *)date, strlen(date),
                                             (const uint8_t *)id, strlen(id)),
                 ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_set_helo_name(g->s, (const uint8_t *)"[10.0.0.2]", 10),
                 ATMAIL_STATUS_OK);
    CHECK(at(g, "ATE0"));
    CHECK(strcmp(g->host, "ATE0\r\r\nOK\r\n") == 0);
    clear_host(g);
    /* Mode 3: these servers offer AUTH without STARTTLS. */
    CHECK(at(g, "at+gtsmtpland=25,\"mail.fibocom.com\",3"));
    CHECK(at(g, "at+gtsmtpid=\"wangww@fibocom.com\",\"ght64621178\""));
    CHECK(at(g, "at+gtsmtpdst=1,1,\"xiangj@fibocom.com\""));
    memcpy(head, "AT+GTSMTPEHEAD=2,\"", 18);
    memcpy(head + 18, SUBJECT_GB2312, sizeof SUBJECT_GB2312);
    memcpy(head + 18 + sizeof SUBJECT_GB2312, "\"", 2);
    CHECK(at(g, head));
    CHECK(strcmp(g->host, "\r\nOK\r\n\r\nOK\r\n\r\nOK\r\n\r\nOK\r\n") == 0);
    clear_host(g);
    ok = 1;
done:
    return ok;
}

static int connect_and_greet(rig *g, const char *ehlo) {
    static const uint8_t local[4] = {192, 0, 2, 7};
    int ok = 0;
    uint8_t small[4];
    atmail_event ev;
    CHECK(at(g, "AT+GTSMTPSEND=300"));
    CHECK(strcmp(g->host, "\r\nOK\r\n") == 0);
    clear_host(g);
    /* Too small a buffer: the size needed, and the event stays. */
    CHECK_STATUS(atmail_session_poll_event(g->s, &ev, small, sizeof small),
                 ATMAIL_STATUS_INSUFFICIENT_SIZE);
    CHECK(ev.kind == ATMAIL_EVENT_KIND_CONNECT && ev.len == 16);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_CONNECT);
    CHECK(g->text_len == 16 && memcmp(g->text, "mail.fibocom.com", 16) == 0);
    CHECK(g->port == 25 && !g->implicit_tls);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    /* The local address is 4 or 16 bytes; the EHLO name set wins over it. */
    CHECK_STATUS(atmail_session_handle_connected(g->s, g->now, local, 3),
                 ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_session_handle_connected(g->s, g->now, local, sizeof local), ATMAIL_STATUS_OK);
    CHECK(reply(g, "220 mx ESMTP\r\n"));
    CHECK(ends_with(g->wire, g->wire_len, "EHLO [10.0.0.2]\r\n"));
    CHECK(reply(g, ehlo));
    ok = 1;
done:
    return ok;
}

static int test_session_whole_mail(void) {
    int ok = 0;
    rig *g = calloc(1, sizeof *g);
    uint8_t blob[3000];
    const char *body = "hello body\r\n";
    uint64_t deadline = 0;
    size_t w = 0;
    uint8_t out[8];
    atmail_stopped stopped;

    CHECK(g != NULL);
    CHECK_STATUS(atmail_session_new(&g->s), ATMAIL_STATUS_OK);
    CHECK(configure(g));
    CHECK(connect_and_greet(g, "250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"));
    CHECK(ends_with(g->wire, g->wire_len,
                    "AUTH PLAIN AHdhbmd3d0BmaWJvY29tLmNvbQBnaHQ2NDYyMTE3OA==\r\n"));
    CHECK(reply(g, "235 ok\r\n"));
    CHECK(ends_with(g->wire, g->wire_len,
                    "MAIL FROM:<wangww@fibocom.com>\r\nRCPT TO:<xiangj@fibocom.com>\r\nDATA\r\n"));
    CHECK(reply(g, "250 ok\r\n250 ok\r\n354 go\r\n"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPSEND: 2\r\n") == 0);
    CHECK(strstr(g->wire, "Subject: =?GB2312?B?xOO6wyBzbXRw?=\r\n") != NULL);

    CHECK(atmail_session_state(g->s) == ATMAIL_STATE_READY);
    CHECK(!atmail_session_in_data_mode(g->s));
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPDATA=300"));
    CHECK(strcmp(g->host, "\r\n> ") == 0);
    CHECK(atmail_session_in_data_mode(g->s));
    CHECK(atmail_session_state(g->s) == ATMAIL_STATE_DATA_MODE);
    /* In command mode a zero-length server buffer is fine; in data mode
     * nothing fits, so nothing is taken. */
    CHECK_STATUS(atmail_session_handle_host(g->s, g->now, (const uint8_t *)"x", 1, &w, out, 0, &w,
                                            &stopped),
                 ATMAIL_STATUS_OK);
    CHECK(w == 0 && stopped == ATMAIL_STOPPED_SERVER_FULL);
    g->now += 10;
    CHECK(serial(g, (const uint8_t *)body, strlen(body)));
    g->now += 1500;
    CHECK(serial(g, (const uint8_t *)"+++", 3));
    CHECK_STATUS(atmail_session_next_deadline(g->s, &deadline), ATMAIL_STATUS_OK);
    CHECK(deadline == g->now + 1000);
    g->now = deadline;
    CHECK_STATUS(atmail_session_handle_timeout(g->s, g->now), ATMAIL_STATUS_OK);
    clear_host(g);
    CHECK(pump(g));
    CHECK(strcmp(g->host, "\r\n+GTSMTPDATA: 12\r\n\r\nOK\r\n") == 0);

    fill(blob, sizeof blob, 3);
    blob[100] = blob[101] = blob[102] = '+';
    CHECK(at(g, "at+gtsmtplib=1,\"eee.wma\""));
    g->now += 5;
    CHECK(serial(g, blob, sizeof blob));
    g->now += 2000;
    CHECK(serial(g, (const uint8_t *)"+++", 3));
    g->now += 1000;
    CHECK_STATUS(atmail_session_handle_timeout(g->s, g->now), ATMAIL_STATUS_OK);
    clear_host(g);
    CHECK(pump(g));
    CHECK(strcmp(g->host, "\r\n+GTSMTPFILE: 3000\r\n\r\nOK\r\n") == 0);

    clear_host(g);
    CHECK(at(g, "at+gtsmtpend"));
    CHECK(ends_with(g->wire, g->wire_len, "--\r\n.\r\n"));
    CHECK(reply(g, "250 queued\r\n"));
    CHECK(strcmp(g->host, "\r\nOK\r\n\r\n+GTSMTPSEND: 1\r\n") == 0);
    CHECK(ends_with(g->wire, g->wire_len, "QUIT\r\n"));
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    CHECK(reply(g, "221 bye\r\n"));
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_CLOSE);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    CHECK(strstr(g->wire, "ght64621178") == NULL);
    ok = 1;
done:
    if (g != NULL) {
        atmail_session_free(g->s);
    }
    free(g);
    return ok;
}

static int test_session_states_and_failures(void) {
    int ok = 0;
    rig *g = calloc(1, sizeof *g);
    uint64_t deadline = 0;
    size_t r = 0, w = 0;
    uint8_t small[8];
    atmail_event ev;
    atmail_stopped stopped;

    CHECK(g != NULL);
    CHECK_STATUS(atmail_session_new(&g->s), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_set_helo_name(g->s, (const uint8_t *)"bad name", 8),
                 ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_session_set_identity(g->s, (const uint8_t *)"d\r\n", 3,
                                             (const uint8_t *)"<1@x>", 5),
                 ATMAIL_STATUS_CONTROL_CHARACTER);
    CHECK_STATUS(atmail_session_set_identity(g->s, (const uint8_t *)"d", 1,
                                             (const uint8_t *)"no brackets", 11),
                 ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_session_set_verbose_errors(g->s, true), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_set_guard_ms(g->s, 500), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_set_require_tls(g->s, false), ATMAIL_STATUS_OK);

    /* A command that is not the engine's waits for the caller's answer,
     * which keeps its place in the host stream. */
    CHECK_STATUS(atmail_session_answer_command(g->s, (const uint8_t *)"x", 1),
                 ATMAIL_STATUS_WRONG_STATE);
    CHECK_STATUS(atmail_session_handle_host(g->s, 0, (const uint8_t *)"AT+MIPCALL?\rAT\r", 15, &r,
                                            NULL, 0, &w, &stopped),
                 ATMAIL_STATUS_OK);
    CHECK(r == 12 && w == 0 && stopped == ATMAIL_STOPPED_CALLER);
    CHECK_STATUS(atmail_session_poll_event(g->s, &ev, small, 4), ATMAIL_STATUS_INSUFFICIENT_SIZE);
    CHECK(ev.kind == ATMAIL_EVENT_KIND_COMMAND && ev.len == 11);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_COMMAND);
    CHECK(g->text_len == 11 && memcmp(g->text, "AT+MIPCALL?", 11) == 0);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    CHECK_STATUS(atmail_session_answer_command(g->s, (const uint8_t *)"\r\nERROR\r\n", 9),
                 ATMAIL_STATUS_OK);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    /* A NULL out-parameter is refused before any output is taken. */
    CHECK_STATUS(atmail_session_poll_host(g->s, (uint8_t *)g->host, sizeof g->host, NULL),
                 ATMAIL_STATUS_NULL_PARAMETER);
    CHECK(pump(g));
    CHECK(strcmp(g->host, "AT+MIPCALL?\r\r\nERROR\r\n") == 0);
    clear_host(g);

    CHECK(at(g, "AT+GTSMTPSEND=1"));
    CHECK(strcmp(g->host, "AT+GTSMTPSEND=1\r\r\n+CME ERROR: parameter out of range\r\n") == 0);
    clear_host(g);
    CHECK(configure(g));
    /* The network is down: SEND is refused. */
    CHECK_STATUS(atmail_session_set_network_up(g->s, false), ATMAIL_STATUS_OK);
    CHECK(at(g, "AT+GTSMTPSEND=100"));
    CHECK(strcmp(g->host, "\r\n+CME ERROR: network not up (AT+MIPCALL)\r\n") == 0);
    CHECK_STATUS(atmail_session_set_network_up(g->s, true), ATMAIL_STATUS_OK);
    clear_host(g);
    /* STARTTLS is an event for the caller; then EHLO again. */
    CHECK(connect_and_greet(g, "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"));
    CHECK(ends_with(g->wire, g->wire_len, "STARTTLS\r\n"));
    CHECK(reply(g, "220 go ahead\r\n"));
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_START_TLS);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    CHECK_STATUS(atmail_session_handle_tls_established(g->s, g->now), ATMAIL_STATUS_OK);
    CHECK(pump(g));
    CHECK(ends_with(g->wire, g->wire_len, "STARTTLS\r\nEHLO [10.0.0.2]\r\n"));
    CHECK_STATUS(atmail_session_next_deadline(g->s, &deadline), ATMAIL_STATUS_OK);
    CHECK(deadline != ATMAIL_NO_DEADLINE);

    /* The server goes away: URC 0 and its reason, configuration kept. */
    CHECK_STATUS(atmail_session_handle_closed(g->s), ATMAIL_STATUS_OK);
    CHECK(pump(g));
    CHECK(strcmp(g->host, "\r\n+GTSMTPSEND: 0\r\n") == 0);
    CHECK_STATUS(atmail_session_poll_event(g->s, &ev, small, sizeof small),
                 ATMAIL_STATUS_INSUFFICIENT_SIZE);
    CHECK(ev.kind == ATMAIL_EVENT_KIND_MAIL_FAILED && ev.len == 39);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_MAIL_FAILED);
    CHECK(g->text_len == 39 && memcmp(g->text, "connection closed by the server at EHLO", 39) == 0);
    /* Then the close of the connection it was on, once. */
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_CLOSE);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPDST?"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPDST: 1,\"xiangj@fibocom.com\"\r\n\r\nOK\r\n") == 0);
    ok = 1;
done:
    if (g != NULL) {
        atmail_session_free(g->s);
    }
    free(g);
    return ok;
}

/* The end of a conversation and what the firmware can say about it: QUIT
 * after a refusal (the close after its 221), a SEND the firmware has no
 * identity for, a TLS handshake that failed, and the buffers' edges. */
/* AT+GTSMTPTOKEN into storage the caller gives: refused without it, read
 * without echo, its length in the read form, wiped by CLR and when the
 * storage is taken back. */
static int test_session_token_storage(void) {
    int ok = 0;
    rig *g = calloc(1, sizeof *g);
    static uint8_t mem[64];
    size_t i;
    CHECK(g != NULL);
    CHECK_STATUS(atmail_session_set_token_storage(NULL, mem, sizeof mem), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_new(&g->s), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_set_token_storage(g->s, NULL, 8), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_verbose_errors(g->s, true), ATMAIL_STATUS_OK);
    CHECK(at(g, "AT+GTSMTPTOKEN=5"));
    CHECK(strcmp(g->host, "AT+GTSMTPTOKEN=5\r\r\n+CME ERROR: no token storage (the firmware gives none)\r\n") == 0);
    clear_host(g);
    memset(mem, 0xA5, sizeof mem);
    CHECK_STATUS(atmail_session_set_token_storage(g->s, mem, sizeof mem), ATMAIL_STATUS_OK);
    CHECK(at(g, "AT+GTSMTPTOKEN=65"));
    CHECK(strcmp(g->host, "AT+GTSMTPTOKEN=65\r\r\n+CME ERROR: token longer than the token storage\r\n") == 0);
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPTOKEN=5"));
    CHECK(atmail_session_state(g->s) == ATMAIL_STATE_TOKEN_INPUT && atmail_session_in_data_mode(g->s));
    CHECK(serial(g, (const uint8_t *)"s3cr+", 5));
    CHECK(pump(g));
    /* Echo is on: the line is echoed, the token is not. */
    CHECK(strcmp(g->host, "AT+GTSMTPTOKEN=5\r\r\n> \r\nOK\r\n") == 0);
    CHECK(memcmp(mem, "s3cr+", 5) == 0);
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPTOKEN?"));
    CHECK(ends_with(g->host, g->host_len, "\r\n+GTSMTPTOKEN: 5\r\n\r\nOK\r\n"));
    CHECK(at(g, "AT+GTSMTPCLR"));
    for (i = 0; i < sizeof mem; i++) {
        CHECK(mem[i] == 0);
    }
    CHECK(at(g, "AT+GTSMTPTOKEN=2"));
    CHECK(serial(g, (const uint8_t *)"ok", 2));
    CHECK_STATUS(atmail_session_set_token_storage(g->s, NULL, 0), ATMAIL_STATUS_OK);
    CHECK(mem[0] == 0 && mem[1] == 0);
    ok = 1;
done:
    if (g != NULL) {
        atmail_session_free(g->s);
    }
    free(g);
    return ok;
}

/* AT+GTSMTPBDAT and the caller's default: a bad code is refused and
 * changes nothing, the host's mode stands over a later default until CLR,
 * CLR restores the default; chunk storage given, replaced and taken back
 * wiped. */
static int test_session_transfer(void) {
    int ok = 0;
    rig *g = calloc(1, sizeof *g);
    static uint8_t mem[32], other[16];
    size_t i;
    CHECK(g != NULL);
    CHECK_STATUS(atmail_session_new(&g->s), ATMAIL_STATUS_OK);
    CHECK(at(g, "ATE0"));
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPBDAT?"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n") == 0);
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPBDAT=?"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPBDAT: (0-2)\r\n\r\nOK\r\n") == 0);
    clear_host(g);
    CHECK_STATUS(atmail_session_set_transfer(g->s, 3), ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_session_set_transfer(g->s, 256), ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_session_set_transfer(g->s, UINT32_MAX), ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK(at(g, "AT+GTSMTPBDAT?"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n") == 0);
    clear_host(g);
    CHECK_STATUS(atmail_session_set_transfer(g->s, ATMAIL_TRANSFER_OFF), ATMAIL_STATUS_OK);
    CHECK(at(g, "AT+GTSMTPBDAT?"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPBDAT: 0\r\n\r\nOK\r\n") == 0);
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPBDAT=2"));
    CHECK(at(g, "AT+GTSMTPBDAT=3"));
    CHECK(strcmp(g->host, "\r\nOK\r\n\r\nERROR\r\n") == 0);
    clear_host(g);
    CHECK_STATUS(atmail_session_set_transfer(g->s, ATMAIL_TRANSFER_AUTO), ATMAIL_STATUS_OK);
    CHECK(at(g, "AT+GTSMTPBDAT?"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPBDAT: 2\r\n\r\nOK\r\n") == 0);
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPCLR"));
    CHECK(at(g, "AT+GTSMTPBDAT?"));
    CHECK(strcmp(g->host, "\r\nOK\r\n\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n") == 0);
    clear_host(g);
    CHECK_STATUS(atmail_session_set_transfer(g->s, ATMAIL_TRANSFER_FORCE), ATMAIL_STATUS_OK);
    CHECK(at(g, "AT+GTSMTPCLR"));
    CHECK(at(g, "AT+GTSMTPBDAT?"));
    CHECK(strcmp(g->host, "\r\nOK\r\n\r\n+GTSMTPBDAT: 2\r\n\r\nOK\r\n") == 0);
    clear_host(g);

    CHECK_STATUS(atmail_session_set_chunk_storage(g->s, NULL, 8), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_set_chunk_storage(g->s, NULL, 0), ATMAIL_STATUS_OK);
    memset(mem, 0xA5, sizeof mem);
    memset(other, 0x5A, sizeof other);
    CHECK_STATUS(atmail_session_set_chunk_storage(g->s, mem, sizeof mem), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_set_chunk_storage(g->s, other, sizeof other), ATMAIL_STATUS_OK);
    for (i = 0; i < sizeof mem; i++) {
        CHECK(mem[i] == 0);
    }
    CHECK_STATUS(atmail_session_set_chunk_storage(g->s, NULL, 0), ATMAIL_STATUS_OK);
    for (i = 0; i < sizeof other; i++) {
        CHECK(other[i] == 0);
    }
    ok = 1;
done:
    if (g != NULL) {
        atmail_session_free(g->s);
    }
    free(g);
    return ok;
}

/* The scan reads the session's padding too, which Rust leaves undefined:
 * under valgrind (the host build), the bytes are declared read. */
#ifdef ATMAIL_MEMCHECK
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)(addr), (void)(len))
#endif

static int holds(const uint8_t *mem, size_t len, const char *needle) {
    size_t n = strlen(needle), i;
    VALGRIND_MAKE_MEM_DEFINED(mem, len);
    for (i = 0; i + n <= len; i++) {
        if (memcmp(mem + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The password, the token and the lines that carried them are in no byte
 * of the caller's session memory after AT+GTSMTPCLR and after
 * atmail_session_deinit; the token storage is wiped too. */
static int test_session_wiped(void) {
    int ok = 0;
    rig *g = calloc(1, sizeof *g);
    static uint8_t token_mem[64];
    uint8_t *mem = NULL;
    const char *password = "pw-6f1c2a9e-secret";
    const char *token = "ya29.tok-4d5e6f7a8b9c";
    int round;
    size_t i;
    CHECK(g != NULL);
    mem = calloc(1, atmail_session_size());
    CHECK(mem != NULL && (uintptr_t)mem % atmail_session_align() == 0);
    CHECK_STATUS(atmail_session_init(mem, atmail_session_size(), &g->s), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_set_token_storage(g->s, token_mem, sizeof token_mem), ATMAIL_STATUS_OK);
    for (round = 0; round < 2; round++) {
        CHECK(at(g, "AT+GTSMTPID=\"u@x.com\",\"pw-6f1c2a9e-secret\""));
        CHECK(at(g, "AT+GTSMTPTOKEN=21"));
        CHECK(serial(g, (const uint8_t *)token, strlen(token)));
        CHECK(pump(g));
        CHECK(holds(mem, atmail_session_size(), password));
        CHECK(holds(token_mem, sizeof token_mem, "ya29.tok"));
        if (round == 0) {
            CHECK(at(g, "AT+GTSMTPCLR"));
        } else {
            atmail_session_deinit(g->s);
            g->s = NULL;
        }
        CHECK(!holds(mem, atmail_session_size(), "pw-6f1c2"));
        CHECK(!holds(mem, atmail_session_size(), "ya29.tok"));
        CHECK(!holds(token_mem, sizeof token_mem, "ya29.tok"));
        clear_host(g);
    }
    /* After deinit every byte is zero, and the memory takes a new session. */
    for (i = 0; i < atmail_session_size(); i++) {
        CHECK(mem[i] == 0);
    }
    atmail_session_deinit(NULL);
    CHECK_STATUS(atmail_session_init(mem, atmail_session_size(), &g->s), ATMAIL_STATUS_OK);
    atmail_session_deinit(g->s);
    ok = 1;
done:
    free(mem);
    free(g);
    return ok;
}

static int test_session_endings(void) {
    int ok = 0;
    rig *g = calloc(1, sizeof *g);
    uint8_t small[4];
    size_t r = 0, w = 0;
    atmail_event ev;
    atmail_stopped stopped;
    static const char long_host[] =
        "at+gtsmtpland=465,\"a-server-name-far-longer-than-the-four-bytes.example.com\",1";

    CHECK(g != NULL);
    CHECK_STATUS(atmail_session_new(&g->s), ATMAIL_STATUS_OK);
    CHECK(configure(g));
    /* Refused at RCPT: the URC at once, then QUIT, then the close. */
    CHECK(connect_and_greet(g, "250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n"));
    CHECK(reply(g, "235 ok\r\n"));
    CHECK(reply(g, "250 ok\r\n550 no such user\r\n"));
    CHECK(strcmp(g->host, "\r\n+GTSMTPSEND: 550\r\n") == 0);
    CHECK(reply(g, "554 no valid recipients\r\n"));
    CHECK(ends_with(g->wire, g->wire_len, "DATA\r\nQUIT\r\n"));
    /* Every failed mail says why: its code and the server's words. */
    CHECK_STATUS(atmail_session_poll_event(g->s, &ev, g->text, sizeof g->text), ATMAIL_STATUS_OK);
    CHECK(ev.kind == ATMAIL_EVENT_KIND_MAIL_FAILED && ev.code == 550);
    CHECK(ev.len == strlen("the server refused the mail at MAIL, RCPT or DATA: 550 no such user"));
    CHECK(memcmp(g->text, "the server refused the mail at MAIL, RCPT or DATA: 550 no such user", ev.len) == 0);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    CHECK(reply(g, "221 bye\r\n"));
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_CLOSE);

    /* A long server name is no error while no connection is asked for. */
    clear_host(g);
    CHECK(at(g, long_host));
    CHECK_STATUS(atmail_session_poll_event(g->s, &ev, small, sizeof small), ATMAIL_STATUS_OK);
    CHECK(ev.kind == ATMAIL_EVENT_KIND_NONE);

    /* No identity to give: SEND fails clearly, and nothing hangs. */
    CHECK_STATUS(atmail_session_set_verbose_errors(g->s, true), ATMAIL_STATUS_OK);
    clear_host(g);
    CHECK_STATUS(atmail_session_handle_host(g->s, 0, (const uint8_t *)"AT+GTSMTPSEND=300\rAT\r", 21,
                                            &r, NULL, 0, &w, &stopped),
                 ATMAIL_STATUS_OK);
    CHECK(r == 18 && stopped == ATMAIL_STOPPED_CALLER);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_IDENTITY && g->text_len == 0);
    CHECK_STATUS(atmail_session_refuse_identity(NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_refuse_identity(g->s), ATMAIL_STATUS_OK);
    CHECK(pump(g));
    CHECK(strcmp(g->host, "\r\n+CME ERROR: no Date or Message-ID for the mail"
                          "\r\n\r\n+GTSMTPSEND: 0\r\n") == 0);
    /* Told like every failed mail. */
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_MAIL_FAILED);
    CHECK(g->text_len == strlen("the mail ended on this side: no Date or Message-ID for the mail"));
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);

    /* A buffer too small for a handed-over line still says what waits. */
    CHECK_STATUS(atmail_session_handle_host(g->s, 0, (const uint8_t *)"AT+MIPCALL?\r", 12, &r, NULL,
                                            0, &w, &stopped),
                 ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_session_poll_event(g->s, &ev, small, sizeof small),
                 ATMAIL_STATUS_INSUFFICIENT_SIZE);
    CHECK(ev.kind == ATMAIL_EVENT_KIND_COMMAND && ev.len == 11);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_COMMAND);
    CHECK_STATUS(atmail_session_answer_command(g->s, (const uint8_t *)"\r\nOK\r\n", 6),
                 ATMAIL_STATUS_OK);

    /* SMTPS whose certificate the firmware refused: the reason says TLS. */
    CHECK_STATUS(atmail_session_set_identity(g->s, (const uint8_t *)"d", 1,
                                             (const uint8_t *)"<1@x>", 5),
                 ATMAIL_STATUS_OK);
    clear_host(g);
    CHECK(at(g, "AT+GTSMTPSEND=300"));
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_CONNECT);
    CHECK(g->implicit_tls && g->port == 465 && g->text_len == 56);
    CHECK_STATUS(atmail_session_handle_tls_failed(NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_session_handle_tls_failed(g->s), ATMAIL_STATUS_OK);
    CHECK(pump(g));
    CHECK(ends_with(g->host, g->host_len, "\r\n+GTSMTPSEND: 0\r\n"));
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_MAIL_FAILED);
    CHECK(g->text_len > 20 && memcmp(g->text, "the TLS handshake failed", 24) == 0);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_CLOSE);
    CHECK(next_event(g) == ATMAIL_EVENT_KIND_NONE);
    ok = 1;
done:
    if (g != NULL) {
        atmail_session_free(g->s);
    }
    free(g);
    return ok;
}

/* The host-only composer and transcoder: NULLs, order, a whole message
 * streamed through a 100-byte buffer, and text a charset cannot hold. */
static int test_message_and_transcode(void) {
    int ok = 0;
    atmail_message *m = NULL;
    uint8_t out[100], gb[16], *mail = NULL;
    size_t w = 0, r = 0, len = 0, cap = 1 << 16, at = 0;
    uint32_t bad = 0;
    uint64_t offset = 0;
    atmail_status s;
    const char *subject = "\xe4\xbd\xa0\xe5\xa5\xbd smtp"; /* UTF-8 */
    const uint8_t body[] = "line\nline\r\n";
    uint8_t blob[300];
    fill(blob, sizeof blob, 7);

    CHECK_STATUS(atmail_transcode(2, (const uint8_t *)subject, strlen(subject), gb, sizeof gb, &w, &bad),
                 ATMAIL_STATUS_OK);
    CHECK(w == sizeof SUBJECT_GB2312 && memcmp(gb, SUBJECT_GB2312, w) == 0);
    CHECK_STATUS(atmail_transcode(2, (const uint8_t *)"\xe2\x82\xac", 3, gb, sizeof gb, &w, &bad),
                 ATMAIL_STATUS_INVALID_TEXT);
    CHECK(bad == 0x20AC);
    CHECK_STATUS(atmail_transcode(9, NULL, 0, gb, sizeof gb, &w, &bad), ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_transcode(1, NULL, 0, gb, sizeof gb, NULL, &bad), ATMAIL_STATUS_NULL_PARAMETER);

    CHECK_STATUS(atmail_message_new(7, &m), ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_message_new(2, NULL), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_message_new(2, &m), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_set_from(NULL, (const uint8_t *)"a@b.c", 5), ATMAIL_STATUS_NULL_PARAMETER);
    CHECK_STATUS(atmail_message_set_from(m, (const uint8_t *)"nobody", 6), ATMAIL_STATUS_INVALID_PARAMETER);
    /* Nothing set yet: no header block. */
    CHECK_STATUS(atmail_message_head(m, out, sizeof out, &w), ATMAIL_STATUS_EMPTY);
    CHECK_STATUS(atmail_message_body(m, body, 4, &r, out, sizeof out, &w, false), ATMAIL_STATUS_WRONG_STATE);
    CHECK_STATUS(atmail_message_set_from(m, (const uint8_t *)"wangww@fibocom.com", 18), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_set_date(m, (const uint8_t *)"Wed, 25 Nov 2026 10:00:00 +0000", 31),
                 ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_set_message_id(m, (const uint8_t *)"<1@fibocom.com>", 15), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_add_recipient(m, 4, (const uint8_t *)"x@fibocom.com", 13),
                 ATMAIL_STATUS_INVALID_PARAMETER);
    CHECK_STATUS(atmail_message_add_recipient(m, 1, (const uint8_t *)"xiangj@fibocom.com", 18), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_set_subject(m, SUBJECT_GB2312, sizeof SUBJECT_GB2312), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_check_body(m, body, sizeof body - 1, true, &offset), ATMAIL_STATUS_OK);

    mail = malloc(cap);
    CHECK(mail != NULL);
    do {
        s = atmail_message_head(m, out, sizeof out, &w);
        CHECK(s == ATMAIL_STATUS_OK || s == ATMAIL_STATUS_OUTPUT_FULL);
        memcpy(mail + len, out, w), len += w;
    } while (s == ATMAIL_STATUS_OUTPUT_FULL);
    CHECK_STATUS(atmail_message_set_subject(m, NULL, 0), ATMAIL_STATUS_WRONG_STATE);
    at = 0;
    do {
        s = atmail_message_body(m, body + at, sizeof body - 1 - at, &r, out, sizeof out, &w, true);
        CHECK(s == ATMAIL_STATUS_OK || s == ATMAIL_STATUS_OUTPUT_FULL);
        memcpy(mail + len, out, w), len += w, at += r;
    } while (s == ATMAIL_STATUS_OUTPUT_FULL);
    at = 0;
    do {
        s = atmail_message_attachment(m, (const uint8_t *)"a.bin", 5, blob + at, sizeof blob - at, &r, out,
                                      sizeof out, &w, true);
        CHECK(s == ATMAIL_STATUS_OK || s == ATMAIL_STATUS_OUTPUT_FULL);
        memcpy(mail + len, out, w), len += w, at += r;
    } while (s == ATMAIL_STATUS_OUTPUT_FULL);
    do {
        s = atmail_message_finish(m, out, sizeof out, &w);
        CHECK(s == ATMAIL_STATUS_OK || s == ATMAIL_STATUS_OUTPUT_FULL);
        memcpy(mail + len, out, w), len += w;
    } while (s == ATMAIL_STATUS_OUTPUT_FULL);
    mail[len] = 0;
    CHECK(strstr((char *)mail, "Subject: =?GB2312?B?xOO6wyBzbXRw?=\r\n") != NULL);
    CHECK(strstr((char *)mail, "bGluZQ0KbGluZQ0K\r\n") != NULL); /* the body, canonical CRLF */
    CHECK(len > 2 && memcmp(mail + len - 4, "--\r\n", 4) == 0);
    /* A body not valid in the charset is refused in the first pass, with
     * its offset. */
    atmail_message_free(m);
    m = NULL;
    CHECK_STATUS(atmail_message_new(1, &m), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_check_body(m, (const uint8_t *)"ok\xc3", 3, false, &offset), ATMAIL_STATUS_OK);
    CHECK_STATUS(atmail_message_check_body(m, (const uint8_t *)"(", 1, true, &offset), ATMAIL_STATUS_INVALID_TEXT);
    CHECK(offset == 2);
    ok = 1;
done:
    atmail_message_free(m);
    atmail_message_free(NULL);
    free(mail);
    return ok;
}

typedef struct {
    int (*fn)(void);
    const char *name;
} test_case;

int main(void) {
    static const test_case tests[] = {
        {test_version, "version"},
        {test_status_strings, "status strings"},
        {test_null_parameters, "NULL parameters"},
        {test_encoder_streaming, "encoder streaming, 1-byte and large buffers"},
        {test_in_place, "objects in caller memory"},
        {test_framer, "framer"},
        {test_header, "header encoder"},
        {test_session_whole_mail, "session: a whole mail"},
        {test_session_states_and_failures, "session: states, STARTTLS, failures"},
        {test_session_endings, "session: QUIT, refused identity, TLS failure, buffer edges"},
        {test_session_token_storage, "session: token storage, AT+GTSMTPTOKEN"},
        {test_session_transfer, "session: AT+GTSMTPBDAT, the caller's default, chunk storage"},
        {test_session_wiped, "session: secrets wiped by AT+GTSMTPCLR and deinit"},
        {test_message_and_transcode, "message composer and transcoder"},
    };
    size_t i, failed = 0;
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int ok = tests[i].fn();
        printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
        failed += !ok;
    }
    return failed == 0 ? 0 : 1;
}
