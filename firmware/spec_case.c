/* The spec's case (design note, section 3) played against the engine with
 * no operating system: a scripted host on the serial side, a scripted SMTP
 * server on the other, and a clock this program advances. It prints every
 * byte the engine writes (H: to the host, S: to the server), the server's
 * replies (R:) and the results of the other entry points (E:), in hex, so
 * the same program built for x86-64 and for a Cortex-M4 under QEMU can be
 * compared byte for byte (tests/test_firmware.py).
 *
 * On ARM every atmail call is measured: the stack below the caller is
 * painted before the call and scanned after it, and the deepest call is
 * printed as "stack <bytes> <call>".
 *
 * Mails: the spec case (GB2312 subject, a body, an attachment with "+++"
 * inside, over a server offering AUTH), the same over a server offering
 * CHUNKING and BINARYMIME with 1,024 bytes of chunk storage (BDAT chunks,
 * so the measured calls cover BDAT's path as well as DATA's), one the
 * server refuses at RCPT,
 * so failure paths run too, then two that sign in with an OAuth 2.0
 * token from storage the firmware gives: a 2,600-byte XOAUTH2 token sent
 * after the server's 334 and refused after an error challenge, and a
 * short OAUTHBEARER token on the AUTH line, accepted. */

#include "atmail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- measurement (ARM only) ---- */

#if defined(__arm__)
#define PAINT 0xA5A5A5A5u
#define PROBE 16384u
/* What the painting function's own frame may hide between the caller's
 * stack pointer and its own: the figure is an upper bound by this much. */
#define MARGIN 32u
static uint32_t paint_sp;
/* The deepest use seen at each call site. */
static struct {
    const char *call;
    uint32_t used;
} sites[64];

__attribute__((noinline)) static void paint(void) {
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    paint_sp = sp;
    for (volatile uint32_t *p = (uint32_t *)(sp - PROBE); p < (uint32_t *)(sp - 64); p++) {
        *p = PAINT;
    }
}

__attribute__((noinline)) static void depth(const char *call) {
    volatile uint32_t *p = (uint32_t *)(paint_sp - PROBE);
    uint32_t used;
    while (p < (uint32_t *)(paint_sp - 64) && *p == PAINT) {
        p++;
    }
    used = paint_sp + MARGIN - (uint32_t)p;
    for (unsigned i = 0; i < sizeof sites / sizeof *sites; i++) {
        if (sites[i].call == call || sites[i].call == NULL) {
            sites[i].call = call;
            sites[i].used = used > sites[i].used ? used : sites[i].used;
            return;
        }
    }
}

/* Every call site, then the worst one, as "stack <bytes> <call>". */
static void report_stack(void) {
    unsigned i, worst = 0;
    for (i = 0; i < sizeof sites / sizeof *sites && sites[i].call != NULL; i++) {
        printf("stack_site %lu %s\n", (unsigned long)sites[i].used, sites[i].call);
        worst = sites[i].used > sites[worst].used ? i : worst;
    }
    printf("stack %lu %s\n", (unsigned long)sites[worst].used, sites[worst].call);
}
#else
static void paint(void) {}
static void depth(const char *call) { (void)call; }
#endif

static atmail_status st;
static bool flag_result;
static size_t size_result;
static atmail_status done(const char *call) { depth(call); return st; }
static bool done_bool(const char *call) { depth(call); return flag_result; }
static size_t done_size(const char *call) { depth(call); return size_result; }
/* A measured call returning a status, a bool, a size, or nothing. */
#define M(call) (paint(), st = (call), done(#call))
#define MB(call) (paint(), flag_result = (call), done_bool(#call))
#define MZ(call) (paint(), size_result = (call), done_size(#call))
#define MV(call) (paint(), (call), depth(#call))

/* ---- output ---- */

static void dump(char tag, const uint8_t *bytes, size_t len) {
    static const char hex[] = "0123456789abcdef";
    while (len > 0) {
        char line[2 + 128 + 2];
        size_t n = len < 64 ? len : 64, i;
        line[0] = tag;
        line[1] = ' ';
        for (i = 0; i < n; i++) {
            line[2 + 2 * i] = hex[bytes[i] >> 4];
            line[3 + 2 * i] = hex[bytes[i] & 15];
        }
        line[2 + 2 * n] = '\n';
        line[3 + 2 * n] = 0;
        fputs(line, stdout);
        bytes += n;
        len -= n;
    }
}

static void dump_text(char tag, const char *text) { dump(tag, (const uint8_t *)text, strlen(text)); }

/* ---- the scripted server ---- */

typedef struct {
    int connected;
    int in_data;
    int login_step; /* AUTH LOGIN: 1 after the user name prompt, 2 after the password's */
    int refuse_rcpt;
    int oauth;      /* offers XOAUTH2 and OAUTHBEARER */
    int sasl_step;  /* 1: the response is due after 334; 2: the answer to the error challenge */
    int closing; /* said 221: closes once the engine has read it, as servers do */
    int chunking; /* offers CHUNKING and BINARYMIME, and takes BDAT */
    unsigned long bdat_left; /* octets of the current BDAT chunk still to come */
    int bdat_last;           /* the current chunk is the LAST */
    char line[1024];
    size_t line_len;
    uint8_t out[2048]; /* replies the engine has not read yet */
    size_t out_len;
} server;

static void reply(server *s, const char *text) {
    size_t n = strlen(text);
    if (s->out_len + n <= sizeof s->out) {
        memcpy(s->out + s->out_len, text, n);
        s->out_len += n;
    }
    dump_text('R', text);
}

static int starts(const char *line, const char *prefix) {
    size_t i;
    for (i = 0; prefix[i] != 0; i++) {
        char c = line[i];
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 32);
        }
        if (c != prefix[i]) {
            return 0;
        }
    }
    return 1;
}

/* A BDAT chunk's octets have all come: its reply. */
static void chunk_done(server *s) {
    reply(s, s->bdat_last ? "250 2.0.0 Ok: queued as 1A2B3D\r\n" : "250 2.0.0 Ok: chunk taken\r\n");
}

static void server_line(server *s, const char *line) {
    if (s->in_data) {
        if (strcmp(line, ".") == 0) {
            s->in_data = 0;
            reply(s, "250 2.0.0 Ok: queued as 1A2B3C\r\n");
        }
    } else if (s->sasl_step == 1) {
        s->sasl_step = 2;
        /* {"status":"401","schemes":"bearer","scope":"mail"} */
        reply(s, "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=\r\n");
    } else if (s->sasl_step == 2) {
        s->sasl_step = 0;
        reply(s, "535 5.7.8 Error: authentication failed\r\n");
    } else if (starts(line, "AUTH XOAUTH2") && line[12] == 0) {
        s->sasl_step = 1;
        reply(s, "334 \r\n");
    } else if (starts(line, "AUTH OAUTHBEARER ")) {
        reply(s, "235 2.7.0 Authentication successful\r\n");
    } else if (s->login_step == 1) {
        s->login_step = 2;
        reply(s, "334 UGFzc3dvcmQ6\r\n");
    } else if (s->login_step == 2) {
        s->login_step = 0;
        reply(s, "235 2.7.0 Authentication successful\r\n");
    } else if (starts(line, "EHLO") && s->chunking) {
        reply(s, "250-mail.fibocom.com\r\n250-AUTH PLAIN LOGIN\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n");
    } else if (starts(line, "EHLO")) {
        reply(s, s->oauth ? "250-mail.fibocom.com\r\n250-AUTH PLAIN XOAUTH2 OAUTHBEARER\r\n250 8BITMIME\r\n"
                          : "250-mail.fibocom.com\r\n250-SIZE 20971520\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
    } else if (starts(line, "AUTH LOGIN")) {
        s->login_step = 1;
        reply(s, "334 VXNlcm5hbWU6\r\n");
    } else if (starts(line, "AUTH PLAIN")) {
        reply(s, "235 2.7.0 Authentication successful\r\n");
    } else if (starts(line, "MAIL FROM:")) {
        reply(s, "250 2.1.0 Ok\r\n");
    } else if (starts(line, "RCPT TO:")) {
        reply(s, s->refuse_rcpt ? "550 5.1.1 Recipient address rejected\r\n" : "250 2.1.5 Ok\r\n");
    } else if (starts(line, "BDAT ") && s->chunking) {
        char *end = NULL;
        s->bdat_left = strtoul(line + 5, &end, 10);
        s->bdat_last = starts(end, " LAST");
        if (s->bdat_left == 0) {
            chunk_done(s);
        }
    } else if (starts(line, "DATA")) {
        s->in_data = 1;
        reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
    } else if (starts(line, "QUIT")) {
        s->closing = 1;
        reply(s, "221 2.0.0 Bye\r\n");
    } else if (starts(line, "RSET")) {
        reply(s, "250 2.0.0 Ok\r\n");
    } else {
        reply(s, "502 5.5.2 Error: command not recognized\r\n");
    }
}

/* Bytes from the engine: whole lines are answered. */
static void server_receive(server *s, const uint8_t *bytes, size_t len) {
    size_t i;
    dump('S', bytes, len);
    for (i = 0; i < len; i++) {
        if (s->bdat_left > 0) {
            /* A chunk's octets: counted, not read as lines. */
            if (--s->bdat_left == 0) {
                chunk_done(s);
            }
        } else if (bytes[i] == '\n' && s->line_len > 0 && s->line[s->line_len - 1] == '\r') {
            s->line[s->line_len - 1] = 0;
            server_line(s, s->line);
            s->line_len = 0;
        } else if (s->line_len < sizeof s->line - 1) {
            s->line[s->line_len++] = (char)bytes[i];
        } else {
            /* A longer line (a token's SASL response) keeps its start and
             * its last byte, so its CR still ends it. */
            s->line[s->line_len - 1] = (char)bytes[i];
        }
    }
}

/* ---- the firmware side ---- */

static int holds(const uint8_t *mem, size_t len, const char *needle) {
    size_t n = strlen(needle), i;
    for (i = 0; i + n <= len; i++) {
        if (memcmp(mem + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static struct {
    uint64_t mem[16384 / 8];
} session_memory;
static atmail_session *session;
static server srv;
static uint64_t now;
/* The firmware has no Date or Message-ID to give the next SEND. */
static int no_identity;
/* The next connection's TLS fails (the certificate is refused). */
static int tls_fails;

/* Each SEND's Date and Message-ID, unless the test takes them away. */
static void give_identity(void) {
    static const char date[] = "Thu, 26 Nov 2026 08:00:00 +0800";
    static const char id[] = "<1.g510@fibocom.com>";
    if (no_identity) {
        M(atmail_session_refuse_identity(session));
        return;
    }
    M(atmail_session_set_identity(session, (const uint8_t *)date, strlen(date),
                                  (const uint8_t *)id, strlen(id)));
}

/* The firmware's own commands: AT+MIPCALL brings the network up. */
static void answer_command(const uint8_t *line, size_t len) {
    const char *answer = "\r\nERROR\r\n";
    if (len >= 10 && memcmp(line, "AT+MIPCALL", 10) == 0) {
        M(atmail_session_set_network_up(session, 1));
        answer = "\r\nOK\r\n\r\n+MIPCALL: 10.0.0.7\r\n";
    }
    M(atmail_session_answer_command(session, (const uint8_t *)answer, strlen(answer)));
}

static void open_connection(const uint8_t *host, size_t host_len, uint16_t port, bool tls) {
    static const uint8_t local_ip[4] = {10, 0, 0, 7};
    char note[ATMAIL_HOST_MAX + 32];
    sprintf(note, "connect %.*s:%u tls=%d", (int)host_len, (const char *)host, port, tls);
    dump_text('E', note);
    if (tls_fails) {
        tls_fails = 0;
        M(atmail_session_handle_tls_failed(session));
        return;
    }
    srv.connected = 1;
    srv.closing = 0;
    srv.in_data = 0;
    srv.bdat_left = 0;
    srv.line_len = 0;
    M(atmail_session_handle_connected(session, now, local_ip, sizeof local_ip));
    reply(&srv, "220 mail.fibocom.com ESMTP Postfix\r\n");
}

/* Everything the engine asks of the firmware, in the engine's order. */
static int handle_events(void) {
    static uint8_t text[ATMAIL_EVENT_MAX];
    atmail_event ev;
    int any = 0;
    for (;;) {
        M(atmail_session_poll_event(session, &ev, text, sizeof text));
        switch (ev.kind) {
        case ATMAIL_EVENT_KIND_NONE:
            return any;
        case ATMAIL_EVENT_KIND_COMMAND:
            answer_command(text, ev.len);
            break;
        case ATMAIL_EVENT_KIND_IDENTITY:
            give_identity();
            break;
        case ATMAIL_EVENT_KIND_CONNECT:
            open_connection(text, ev.len, ev.port, ev.implicit_tls);
            break;
        case ATMAIL_EVENT_KIND_START_TLS:
            dump_text('E', "starttls asked, not offered by this server");
            M(atmail_session_handle_closed(session));
            break;
        case ATMAIL_EVENT_KIND_CLOSE:
            dump_text('E', "close");
            srv.connected = 0;
            srv.out_len = 0;
            break;
        case ATMAIL_EVENT_KIND_MAIL_FAILED:
            dump('F', text, ev.len);
            break;
        default:
            break;
        }
        any = 1;
    }
}

static int transmit(void) {
    static uint8_t buf[4096];
    size_t n = 0;
    int any = 0;
    while (M(atmail_session_poll_server(session, now, buf, sizeof buf, &n)) == ATMAIL_STATUS_OK && n > 0) {
        server_receive(&srv, buf, n);
        any = 1;
    }
    return any;
}

static int feed_server(void) {
    size_t used = 0;
    if (srv.out_len == 0) {
        return 0;
    }
    M(atmail_session_handle_server(session, now, srv.out, srv.out_len, &used));
    memmove(srv.out, srv.out + used, srv.out_len - used);
    srv.out_len -= used;
    if (srv.closing && srv.out_len == 0) {
        /* The server's FIN after its 221 races the engine's own close. */
        srv.closing = 0;
        srv.connected = 0;
        dump_text('E', "server closed");
        M(atmail_session_handle_closed(session));
    }
    return used > 0;
}

static int flush_host(void) {
    uint8_t buf[256];
    size_t n = 0;
    int any = 0;
    while (M(atmail_session_poll_host(session, buf, sizeof buf, &n)) == ATMAIL_STATUS_OK && n > 0) {
        dump('H', buf, n);
        any = 1;
    }
    return any;
}

/* Runs the engine until nothing moves. */
static void pump(void) {
    int progress = 1;
    while (progress) {
        progress = handle_events();
        progress |= transmit();
        progress |= feed_server();
        progress |= flush_host();
    }
}

/* Moves the clock, firing every deadline on the way. */
static void advance(uint64_t ms) {
    uint64_t end = now + ms, deadline = ATMAIL_NO_DEADLINE;
    for (;;) {
        M(atmail_session_next_deadline(session, &deadline));
        if (deadline > end) {
            break;
        }
        now = deadline > now ? deadline : now;
        M(atmail_session_handle_timeout(session, now));
        pump();
    }
    now = end;
    M(atmail_session_handle_timeout(session, now));
    pump();
}

/* Host bytes that arrive together at `now`. */
static void host(const void *bytes, size_t len) {
    static uint8_t out[2048];
    const uint8_t *p = bytes;
    while (len > 0) {
        size_t read = 0, written = 0;
        atmail_stopped stopped = ATMAIL_STOPPED_INPUT_EMPTY;
        M(atmail_session_handle_host(session, now, p, len, &read, out, sizeof out, &written,
                                     &stopped));
        if (written > 0) {
            server_receive(&srv, out, written);
        }
        p += read;
        len -= read;
        pump();
    }
    pump();
}

/* Whether the password or the token's start is anywhere in the session's
 * memory or the token storage, and how many bytes of the session are not
 * zero: "scan <when> password <0|1> token <0|1> nonzero <n>". */
static void scan(const char *when, const uint8_t *token_mem, size_t token_len) {
    const uint8_t *mem = (const uint8_t *)&session_memory;
    size_t len = atmail_session_size(), i, nonzero = 0;
    char note[96];
    for (i = 0; i < len; i++) {
        nonzero += mem[i] != 0;
    }
    sprintf(note, "scan %s password %d token %d nonzero %u", when, holds(mem, len, "ght64621178"),
            holds(mem, len, "abcdefghijklmnop") || holds(token_mem, token_len, "abcdefghijklmnop"),
            (unsigned)nonzero);
    puts(note);
}

static void line(const char *text) {
    char state[32];
    host(text, strlen(text));
    host("\r", 1);
    advance(10);
    sprintf(state, "state %d data %d", (int)atmail_session_state(session),
            (int)MB(atmail_session_in_data_mode(session)));
    dump_text('E', state);
}

/* Payload in data mode, then `+++` with its guard times. */
static void payload(const uint8_t *bytes, size_t len, size_t chunk) {
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        host(bytes, n);
        bytes += n;
        len -= n;
        advance(1);
    }
    advance(ATMAIL_DEFAULT_GUARD_MS + 100);
    host("+++", 3);
    advance(ATMAIL_DEFAULT_GUARD_MS + 100);
}

/* ---- the layers on their own ---- */

static void standalone_layers(void) {
    static struct {
        uint64_t mem[4096 / 8];
    } encoder_mem, framer_mem;
    static const atmail_data_limits limits = {1000, 0, 600000, 1000};
    atmail_base64_encoder *encoder = NULL;
    atmail_framer *framer = NULL;
    atmail_framer_event event = ATMAIL_FRAMER_EVENT_NEED_MORE;
    const uint8_t *data = NULL;
    uint8_t out[512];
    size_t read = 0, written = 0, len = 0;
    uint64_t deadline = 0, total = 0;
    size_t sizes[6];
    char note[96];
    static const uint8_t subject[] = {0xc4, 0xe3, 0xba, 0xc3, ' ', 's', 'm', 't', 'p'}; /* 你好 smtp, GB2312 */

    dump_text('E', atmail_version());
    dump_text('E', atmail_status_str(ATMAIL_STATUS_INVALID_TEXT));
    M(atmail_base64_encoded_len(100, &len));
    sizes[0] = MZ(atmail_base64_encoder_size());
    sizes[1] = MZ(atmail_framer_size());
    sizes[2] = MZ(atmail_session_size());
    sizes[3] = MZ(atmail_base64_encoder_align());
    sizes[4] = MZ(atmail_framer_align());
    sizes[5] = MZ(atmail_session_align());
    sprintf(note, "encoded_len %u", (unsigned)len);
    dump_text('E', note);
    /* Sizes differ between targets: printed outside the compared lines. */
    printf("sizes %u %u %u aligns %u %u %u\n", (unsigned)sizes[0], (unsigned)sizes[1],
           (unsigned)sizes[2], (unsigned)sizes[3], (unsigned)sizes[4], (unsigned)sizes[5]);

    M(atmail_base64_encoder_init(&encoder_mem, sizeof encoder_mem, &encoder));
    M(atmail_base64_encoder_encode(encoder, subject, sizeof subject, &read, out, sizeof out, &written, 1));
    dump('E', out, written);

    M(atmail_framer_init(&framer_mem, sizeof framer_mem, &limits, 0, &framer));
    M(atmail_framer_push(framer, 5, (const uint8_t *)"abc+++", 6, &read, &event, &data, &len));
    sprintf(note, "framer push read %u event %d len %u", (unsigned)read, (int)event, (unsigned)len);
    dump_text('E', note);
    M(atmail_framer_poll(framer, 2000, &event, &data, &len));
    M(atmail_framer_next_deadline(framer, &deadline));
    M(atmail_framer_payload_len(framer, &total));
    sprintf(note, "framer poll event %d len %u total %u", (int)event, (unsigned)len, (unsigned)total);
    dump_text('E', note);

    M(atmail_header_subject(ATMAIL_CHARSET_GB2312, subject, sizeof subject, out, sizeof out, &written));
    dump('E', out, written);
    M(atmail_header_attachment(ATMAIL_CHARSET_GB2312, subject, 4, out, sizeof out, &written));
    dump('E', out, written);
}

int main(void) {
    static uint8_t attachment[256 * 64 + 23];
    static uint8_t token_memory[3072];
    static uint8_t chunk_memory[1024];
    static uint8_t token[2600];
    static const char body[] = "Hello from the G510.\r\n";
    size_t i;
    char note[64];
#if defined(__arm__)
    extern void initialise_monitor_handles(void);
    initialise_monitor_handles();
#endif
    for (i = 0; i < 256 * 64; i++) {
        attachment[i] = (uint8_t)i;
    }
    memcpy(attachment + 256 * 64, "+++ inside the data +++", 23);

    MV(atmail_set_panic_hook(NULL));
    standalone_layers();

    if (M(atmail_session_init(&session_memory, sizeof session_memory, &session)) != ATMAIL_STATUS_OK) {
        return 1;
    }
    M(atmail_session_set_guard_ms(session, ATMAIL_DEFAULT_GUARD_MS));
    M(atmail_session_set_require_tls(session, 0));
    M(atmail_session_set_verbose_errors(session, 0));
    /* BDAT's settings, measured, then the chunk storage taken back: the
     * spec case is the firmware that gives none (DATA, as before); the
     * BDAT mail further down gives it again. */
    M(atmail_session_set_transfer(session, ATMAIL_TRANSFER_AUTO));
    M(atmail_session_set_chunk_storage(session, chunk_memory, sizeof chunk_memory));
    M(atmail_session_set_chunk_storage(session, NULL, 0));

    line("ATE0");
    line("AT+MIPCALL=1,\"cmnet\"");
    /* Mode 3: this server offers AUTH without STARTTLS. */
    line("AT+GTSMTPLAND=25,\"mail.fibocom.com\",3");
    line("AT+GTSMTPID=\"wangww@fibocom.com\",\"ght64621178\"");
    line("AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"");
    line("AT+GTSMTPEHEAD=2,\"\xc4\xe3\xba\xc3 smtp\"");
    line("AT+GTSMTPSEND=300");
    line("AT+GTSMTPPDATA=300");
    payload((const uint8_t *)body, strlen(body), 512);
    line("AT+GTSMTPLIB=1,\"eee.wma\"");
    payload(attachment, sizeof attachment, 512);
    line("AT+GTSMTPEND");
    advance(100);

    /* The same mail over CHUNKING and BINARYMIME: 1,024 bytes of chunk
     * storage (512 would not hold this header block's bound, with its
     * GB2312 subject, and the mail would go by DATA), so the attachment
     * goes in 17 BDAT chunks, its bytes as they are; the storage taken
     * back after it. */
    M(atmail_session_set_chunk_storage(session, chunk_memory, sizeof chunk_memory));
    srv.chunking = 1;
    line("AT+GTSMTPSEND=300");
    line("AT+GTSMTPDATA=300");
    payload((const uint8_t *)body, strlen(body), 512);
    line("AT+GTSMTPFILE=1,\"g510.bin\"");
    payload(attachment, sizeof attachment, 512);
    line("AT+GTSMTPEND");
    advance(100);
    srv.chunking = 0;
    M(atmail_session_set_chunk_storage(session, NULL, 0));

    /* The third mail: the server refuses the recipient. */
    srv.refuse_rcpt = 1;
    line("AT+CMEE=2");
    line("AT+GTSMTPDST=9");
    M(atmail_session_set_helo_name(session, (const uint8_t *)"g510.example", 12));
    line("AT+GTSMTPSEND=300");
    advance(1000);
    M(atmail_session_handle_tls_established(session, now));

    /* The fourth SEND has no identity; the fifth is SMTPS whose
     * certificate the firmware refuses. */
    no_identity = 1;
    line("AT+GTSMTPSEND=300");
    no_identity = 0;
    line("AT+GTSMTPLAND=465,\"mail.fibocom.com\",1");
    tls_fails = 1;
    line("AT+GTSMTPSEND=300");
    advance(100);
    scan("set", token_memory, sizeof token_memory);
    line("AT+GTSMTPCLR");
    scan("clr", token_memory, sizeof token_memory);

    /* OAuth 2.0: the token lives in the firmware's memory, not the
     * session's. */
    M(atmail_session_set_token_storage(session, token_memory, sizeof token_memory));
    for (i = 0; i < 2600; i++) {
        token[i] = (uint8_t)("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/"[i % 66]);
    }
    srv.refuse_rcpt = 0;
    srv.oauth = 1;
    line("AT+GTSMTPLAND=587,\"mail.fibocom.com\",3");
    line("AT+GTSMTPID=\"wangww@fibocom.com\",\"\"");
    line("AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"");
    line("AT+GTSMTPAUTH=1");
    line("AT+GTSMTPTOKEN=2600");
    host(token, 1000);
    host(token + 1000, 1600);
    line("AT+GTSMTPTOKEN?");
    line("AT+GTSMTPSEND=300");
    advance(100);
    line("AT+GTSMTPAUTH=2");
    line("AT+GTSMTPTOKEN=40");
    host(token, 40);
    line("AT+GTSMTPSEND=300");
    line("AT+GTSMTPDATA=300");
    payload((const uint8_t *)body, strlen(body), 512);
    line("AT+GTSMTPEND");
    advance(100);
    scan("token", token_memory, sizeof token_memory);
    line("AT+GTSMTPCLR");
    line("AT+GTSMTPTOKEN?");
    scan("clr-token", token_memory, sizeof token_memory);
    /* The end call wipes every byte of the caller's memory. */
    line("AT+GTSMTPID=\"wangww@fibocom.com\",\"ght64621178\"");
    line("AT+GTSMTPTOKEN=40");
    host(token, 40);
    scan("again", token_memory, sizeof token_memory);
    MV(atmail_session_deinit(session));
    scan("deinit", token_memory, sizeof token_memory);

    sprintf(note, "session_size %u", (unsigned)atmail_session_size());
    puts(note);
#if defined(__arm__)
    report_stack();
#endif
    return 0;
}
