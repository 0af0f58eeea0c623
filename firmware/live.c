/* A live G510 on QEMU's mps2-an386 (a Cortex-M4): the engine serves a
 * host on UART0 while the SMTP connection's bytes travel over UART1 to a
 * bridge (firmware/live.py) that stands in for the module's TCP/IP stack
 * and radio. `python3 firmware/live.py` builds and runs it.
 *
 * What it has, as a module's firmware would: an interrupt-driven receive
 * ring per UART, SysTick for the engine's clock (1 ms), and one service
 * loop (the README's) that sleeps in `wfi` when nothing is due. Flow
 * control: a ring that fills stops its receive interrupt, so the byte
 * stays in the UART, QEMU stops reading the pty (or socket) behind it and
 * the sender blocks; nothing is dropped, and the ring's fill is bounded by
 * its size. The loop offers the engine only what it can take (the ring's
 * bytes are handed over in place, not copied).
 *
 * What it has not: TLS (the firmware's stack; ffi/examples/firmware.c
 * shows mbedTLS) and a heap (the session lives in a static block).
 *
 * The link to the bridge is framed: type, connection id, 16-bit length
 * (big-endian), payload.
 *   chip -> bridge: 'O' open (port, host), 'D' data, 'X' close,
 *                   'L' a log line, 'M' the figures after each mail.
 *   bridge -> chip: 'H' hello (Unix time, the data call's IPv4, the
 *                   `+++` guard time),
 *                   'C' connected (local IPv4), 'D' data, 'X' closed (why),
 *                   'W' window: the server took this many more bytes.
 * The window is the TCP stack's send buffer: the chip sends a connection
 * at most WINDOW bytes the server has not taken yet. When the network is
 * slower than the host, the window closes, the engine is offered no more
 * host bytes, and the host ring fills and holds the UART.
 * Frames for any connection but the current one are dropped, so bytes in
 * flight when a connection ends never reach the next. */

#include "atmail.h"

#include <stdint.h>
#include <string.h>

/* ---- the board: CMSDK APB UARTs, SysTick, NVIC ---- */

#define UART0 0x40004000u
#define UART1 0x40005000u
#define UART_DATA 0x00u
#define UART_STATE 0x04u
#define UART_CTRL 0x08u
#define UART_INT 0x0Cu
#define UART_BAUDDIV 0x10u
#define STATE_TXFULL 1u
#define STATE_RXFULL 2u
#define CTRL_TX_EN 1u
#define CTRL_RX_EN 2u
#define CTRL_RX_INTEN 8u
#define INT_RX 2u
#define REG(base, off) (*(volatile uint32_t *)((base) + (off)))
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define NVIC_ISER (*(volatile uint32_t *)0xE000E100u)
#define CPU_HZ 25000000u /* mps2-an386 SYSCLK */

/* ---- the clock ---- */

static volatile uint32_t ticks; /* ms since reset; wraps after 49 days */
static uint32_t ticks_high;      /* how often it wrapped, seen by the loop */
static uint32_t ticks_last;

void systick_handler(void) { ticks++; }

/* The engine's clock: 64-bit ms, read by the loop only. */
static uint64_t now_ms(void) {
    uint32_t t = ticks;
    if (t < ticks_last) {
        ticks_high++;
    }
    ticks_last = t;
    return ((uint64_t)ticks_high << 32) | t;
}

/* ---- receive rings, filled by the interrupts ---- */

typedef struct {
    uint32_t uart;
    uint8_t *bytes;
    uint32_t size; /* a power of two */
    volatile uint32_t head; /* written by the interrupt */
    uint32_t tail;          /* written by the loop */
    volatile uint32_t at;   /* ms of the newest byte */
    volatile int held;      /* the interrupt is off: the ring was full */
    uint32_t peak;          /* the most it held */
} ring;

static uint8_t host_bytes[512], link_bytes[2048];
static ring host_rx = {UART0, host_bytes, sizeof host_bytes, 0, 0, 0, 0, 0};
static ring link_rx = {UART1, link_bytes, sizeof link_bytes, 0, 0, 0, 0, 0};

/* Moves what the UART holds into the ring; a full ring turns the receive
 * interrupt off and leaves the byte in the UART (the sender waits). */
static void ring_take(ring *r) {
    while (REG(r->uart, UART_STATE) & STATE_RXFULL) {
        uint32_t fill = r->head - r->tail;
        if (fill == r->size) {
            REG(r->uart, UART_CTRL) &= ~CTRL_RX_INTEN;
            r->held = 1;
            return;
        }
        r->bytes[r->head & (r->size - 1)] = (uint8_t)REG(r->uart, UART_DATA);
        r->head++;
        r->at = ticks;
        if (fill + 1 > r->peak) {
            r->peak = fill + 1;
        }
    }
}

static void ring_irq(ring *r) {
    REG(r->uart, UART_INT) = INT_RX;
    ring_take(r);
}

void uart0_rx_handler(void) { ring_irq(&host_rx); }
void uart1_rx_handler(void) { ring_irq(&link_rx); }

/* The bytes from the tail to the ring's end or its head, in place. */
static uint32_t ring_span(const ring *r, const uint8_t **bytes) {
    uint32_t fill = r->head - r->tail, at = r->tail & (r->size - 1);
    *bytes = r->bytes + at;
    return fill < r->size - at ? fill : r->size - at;
}

/* The loop took `n` bytes; a held ring reads the UART again, with the
 * interrupt back on first so no byte arrives unseen. */
static void ring_consume(ring *r, uint32_t n) {
    r->tail += n;
    if (r->held && n > 0) {
        __asm__ volatile("cpsid i" ::: "memory");
        r->held = 0;
        REG(r->uart, UART_CTRL) |= CTRL_RX_INTEN;
        ring_take(r);
        __asm__ volatile("cpsie i" ::: "memory");
    }
}

static void uart_start(uint32_t uart) {
    REG(uart, UART_BAUDDIV) = 16;
    REG(uart, UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INTEN;
}

/* Transmit: the UART takes one byte at a time; a full one is waited for
 * (the host or the bridge is reading slower). */
static void uart_write(uint32_t uart, const uint8_t *bytes, size_t len) {
    while (len-- > 0) {
        while (REG(uart, UART_STATE) & STATE_TXFULL) {
        }
        REG(uart, UART_DATA) = *bytes++;
    }
}

/* ---- the link to the bridge ---- */

#define FRAME_MAX 1024
#define WINDOW 4096

static void frame(uint8_t type, uint8_t id, const uint8_t *a, size_t a_len, const uint8_t *b,
                  size_t b_len) {
    uint8_t head[4];
    size_t len = a_len + b_len;
    head[0] = type;
    head[1] = id;
    head[2] = (uint8_t)(len >> 8);
    head[3] = (uint8_t)len;
    uart_write(UART1, head, sizeof head);
    uart_write(UART1, a, a_len);
    uart_write(UART1, b, b_len);
}

static void log_line(const char *text, const uint8_t *more, size_t more_len) {
    frame('L', 0, (const uint8_t *)text, strlen(text), more, more_len);
}

/* ---- the module ---- */

/* LINK_ENDED: the bridge said the connection ended ('X'); the engine
 * hears it once it has been offered every server byte that came before
 * (a server's last reply often travels with its FIN). */
typedef enum { LINK_NONE, LINK_OPENING, LINK_OPEN, LINK_ENDED } link_state;

static struct {
    atmail_session *session;
    link_state link;
    uint8_t id;           /* the current connection's */
    uint32_t window;      /* bytes it may still send (see 'W') */
    uint8_t network_ip[4]; /* the data call's address, from the bridge */
    int network_up;
    uint64_t epoch_ms;    /* Unix time at tick 0, from the bridge's hello */
    unsigned mails;
    /* the frame being read from the link */
    uint8_t head[4];
    uint32_t head_len, left;
    uint8_t small[64]; /* a control frame's payload */
    uint32_t small_len;
    /* server bytes the engine has not read yet */
    uint8_t server[1024];
    size_t server_len;
} m;

void firmware_exit(int code) __attribute__((noreturn));

static uint8_t out[FRAME_MAX];
static uint8_t event_text[ATMAIL_EVENT_MAX];

/* How much of `out` the engine may fill for the server now: no more
 * than the window, so `m.window -= len` never wraps. */
static size_t server_room(void) {
    return m.window < sizeof out ? m.window : sizeof out;
}

/* Bytes to the server close the window by as much (never more than it
 * has: every caller asked for at most server_room()). */
static void send_data(const uint8_t *bytes, size_t len) {
    frame('D', m.id, bytes, len, NULL, 0);
    m.window -= (uint32_t)len;
}

/* What the engine has for the server, as far as the window lets. Once
 * the connection has ended, its bytes go nowhere (as on a closed socket),
 * so the engine can still read the replies to what it believes sent. */
static int transmit(void) {
    size_t n = 0;
    int sent = 0;
    while (((m.link == LINK_OPEN && m.window > 0) || m.link == LINK_ENDED) &&
           atmail_session_poll_server(m.session, now_ms(), out,
                                      m.link == LINK_OPEN ? server_room() : sizeof out, &n) == ATMAIL_STATUS_OK &&
           n > 0) {
        if (m.link == LINK_OPEN) {
            send_data(out, n);
        }
        sent = 1;
    }
    return sent;
}

/* Server bytes: the engine reads a reply once the command it answers is
 * sent, so unread bytes wait for a transmit. */
static void feed_server(void) {
    size_t used = 0;
    while (m.server_len > 0 && (m.link == LINK_OPEN || m.link == LINK_ENDED)) {
        if (atmail_session_handle_server(m.session, now_ms(), m.server, m.server_len, &used) !=
            ATMAIL_STATUS_OK) {
            return;
        }
        memmove(m.server, m.server + used, m.server_len - used);
        m.server_len -= used;
        if (used == 0 && !transmit()) {
            return;
        }
    }
}

static void control_frame(void) {
    uint8_t type = m.head[0], id = m.head[1];
    if (type == 'H' && m.small_len == 16) {
        uint64_t secs = 0;
        uint32_t guard = 0;
        for (int i = 0; i < 8; i++) {
            secs = secs << 8 | m.small[i];
        }
        for (int i = 12; i < 16; i++) {
            guard = guard << 8 | m.small[i];
        }
        m.epoch_ms = secs * 1000u - now_ms();
        memcpy(m.network_ip, m.small + 8, 4);
        atmail_session_set_guard_ms(m.session, guard);
    } else if (id != m.id) {
        return; /* a connection that has ended */
    } else if (type == 'W' && m.small_len == 2) {
        m.window += (uint32_t)m.small[0] << 8 | m.small[1];
    } else if (type == 'C' && m.link == LINK_OPENING) {
        m.link = LINK_OPEN;
        m.window = WINDOW;
        atmail_session_handle_connected(m.session, now_ms(), m.small, m.small_len == 4 ? 4 : 0);
    } else if (type == 'X' && (m.link == LINK_OPENING || m.link == LINK_OPEN)) {
        log_line("the connection ended: ", m.small, m.small_len);
        m.link = LINK_ENDED; /* heard in hear_server_end */
    }
}

/* The bridge's 'X', once the engine has been offered every byte that
 * came before it (feed_server stops only when all are taken or the
 * engine takes no more). */
static void hear_server_end(void) {
    if (m.link == LINK_ENDED) {
        m.link = LINK_NONE;
        m.server_len = 0;
        atmail_session_handle_closed(m.session);
    }
}

/* Frames from the link ring; data goes to the server buffer while it has
 * room (the rest waits in the ring, then in the UART). */
static int read_link(void) {
    const uint8_t *bytes;
    uint32_t n, took = 0, total = 0;
    do {
        n = ring_span(&link_rx, &bytes);
        for (took = 0; took < n;) {
            if (m.head_len < 4) {
                m.head[m.head_len++] = bytes[took++];
                if (m.head_len == 4) {
                    m.left = (uint32_t)m.head[2] << 8 | m.head[3];
                    m.small_len = 0;
                }
            } else if (m.head[0] == 'D') {
                uint32_t room = sizeof m.server - m.server_len, k = n - took;
                k = k < m.left ? k : m.left;
                if (m.head[1] == m.id && m.link == LINK_OPEN) {
                    k = k < room ? k : room;
                    memcpy(m.server + m.server_len, bytes + took, k);
                    m.server_len += k;
                } /* else: a connection that has ended; dropped */
                if (k == 0) {
                    break;
                }
                took += k;
                m.left -= k;
            } else {
                if (m.small_len < sizeof m.small) {
                    m.small[m.small_len++] = bytes[took];
                }
                took++;
                m.left--;
            }
            if (m.head_len == 4 && m.left == 0) {
                m.head_len = 0;
                if (m.head[0] != 'D') {
                    control_frame();
                }
            }
        }
        ring_consume(&link_rx, took);
        total += took;
    } while (took == n && n > 0);
    return total > 0;
}

/* ---- what the engine asks ----
 * The answers are built in static buffers: the loop is the only caller,
 * and a frame here adds to the stack of the engine call beneath it. */

static size_t put_decimal(uint8_t *at, uint64_t value, int width) {
    uint8_t digits[20];
    int n = 0;
    do {
        digits[n++] = (uint8_t)('0' + value % 10);
        value /= 10;
    } while (value > 0 || n < width);
    for (int i = 0; i < n; i++) {
        at[i] = digits[n - 1 - i];
    }
    return (size_t)n;
}

/* RFC 5322 date of Unix time `secs` (UTC), e.g. "Mon, 07 Dec 2026 10:40:00 +0000". */
static size_t format_date(uint8_t *at, uint64_t secs) {
    static const char days[] = "ThuFriSatSunMonTueWed", months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    uint64_t z = secs / 86400 + 719468, era = z / 146097, doe = z - era * 146097;
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    uint64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    uint64_t year = yoe + era * 400 + (month <= 2), rest = secs % 86400;
    uint8_t *p = at;
    memcpy(p, days + (secs / 86400 % 7) * 3, 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p += put_decimal(p, day, 2);
    *p++ = ' ';
    memcpy(p, months + (month - 1) * 3, 3);
    p += 3;
    *p++ = ' ';
    p += put_decimal(p, year, 4);
    *p++ = ' ';
    p += put_decimal(p, rest / 3600, 2);
    *p++ = ':';
    p += put_decimal(p, rest / 60 % 60, 2);
    *p++ = ':';
    p += put_decimal(p, rest % 60, 2);
    memcpy(p, " +0000", 6);
    return (size_t)(p + 6 - at);
}

/* Date from the network's time (the bridge's hello), Message-ID from it
 * and the count of mails. */
static void give_identity(void) {
    static uint8_t date[40], id[64];
    uint8_t *p = id;
    uint64_t now = m.epoch_ms + now_ms();
    size_t date_len = format_date(date, now / 1000);
    *p++ = '<';
    p += put_decimal(p, now, 1);
    *p++ = '.';
    p += put_decimal(p, ++m.mails, 1);
    memcpy(p, "@live.atmail.invalid>", 21);
    p += 21;
    if (atmail_session_set_identity(m.session, date, date_len, id, (size_t)(p - id)) != ATMAIL_STATUS_OK) {
        atmail_session_refuse_identity(m.session);
    }
}

static int line_is(const uint8_t *line, size_t len, const char *text) {
    size_t n = strlen(text);
    if (len != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = line[i] >= 'a' && line[i] <= 'z' ? (uint8_t)(line[i] - 32) : line[i];
        if (c != (uint8_t)text[i]) {
            return 0;
        }
    }
    return 1;
}

/* The G510's identity and network commands, answered from a table with
 * the values `atmail modem` has by default (docs/modem.md), so host code
 * that checks the module first runs on the live chip too. */
static const struct {
    const char *line, *answer;
} basics[] = {
    {"ATI", "\r\n20150426Sun1200\r\n\r\nOK\r\n"},
    {"ATI0", "\r\n20150426Sun1200\r\n\r\nOK\r\n"},
    {"ATI3", "\r\nG510 GPRS Module\r\n\r\nOK\r\n"},
    {"ATI7", "\r\nGSM900 1800 850 1900\r\n\r\nOK\r\n"},
    {"ATI8", "\r\nG510_V0D.00.19\r\n\r\nOK\r\n"},
    {"ATI9", "\r\nG510 Q50_V1.02\r\n\r\nOK\r\n"},
    {"AT+CGMI", "\r\n+CGMI: \"Fibocom\"\r\n\r\nOK\r\n"},
    {"AT+CGMM", "\r\n+CGMM: \"GPRS\",\"G510\"\r\n\r\nOK\r\n"},
    {"AT+CGMR", "\r\n+CGMR: \"G510_V0D.00.19\"\r\n\r\nOK\r\n"},
    {"AT+CGSN", "\r\n+CGSN: \"352656100012346\"\r\n\r\nOK\r\n"},
    {"AT+CIMI", "\r\n+CIMI: 001010123456789\r\n\r\nOK\r\n"},
    {"AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n"},
    {"AT+CSQ", "\r\n+CSQ: 20,0\r\n\r\nOK\r\n"},
    {"AT+CGREG?", "\r\n+CGREG: 0,1\r\n\r\nOK\r\n"},
    {"AT+COPS?", "\r\n+COPS: 0,0,\"atmail\"\r\n\r\nOK\r\n"},
    {"AT&K3", "\r\nOK\r\n"},
    {"AT&K0", "\r\nOK\r\n"},
};

/* The module's own commands: identity and network from the table, the
 * registration's URC setting, and the data call. */
static void answer_command(const uint8_t *line, size_t len) {
    static uint8_t answer[48];
    static uint8_t creg; /* AT+CREG=<n> */
    uint8_t *p = answer;
    const char *fixed = "\r\nERROR\r\n";
    for (size_t i = 0; i < sizeof basics / sizeof *basics; i++) {
        if (line_is(line, len, basics[i].line)) {
            fixed = basics[i].answer;
        }
    }
    if (len == 9 && line_is(line, 8, "AT+CREG=") && line[8] >= '0' && line[8] <= '2') {
        creg = (uint8_t)(line[8] - '0');
        fixed = "\r\nOK\r\n";
    } else if (line_is(line, len, "AT+CREG?")) {
        fixed = creg == 0   ? "\r\n+CREG: 0,1\r\n\r\nOK\r\n"
                : creg == 1 ? "\r\n+CREG: 1,1\r\n\r\nOK\r\n"
                            : "\r\n+CREG: 2,1,\"2A4F\",\"0B12\"\r\n\r\nOK\r\n";
    } else if (line_is(line, len, "AT+MIPCALL=0")) {
        m.network_up = 0;
        fixed = "\r\nOK\r\n";
    } else if (line_is(line, len, "AT+MIPCALL?") && !m.network_up) {
        fixed = "\r\n+MIPCALL: 0\r\n\r\nOK\r\n";
    } else if (line_is(line, len, "AT+MIPCALL?")) {
        fixed = NULL;
        memcpy(p, "\r\n+MIPCALL: 1,", 14);
        p += 14;
        for (int i = 0; i < 4; i++) {
            p += put_decimal(p, m.network_ip[i], 1);
            *p++ = i < 3 ? '.' : '\r';
        }
        memcpy(p, "\n\r\nOK\r\n", 7);
        p += 7;
    } else if (len > 14 && line_is(line, 13, "AT+MIPCALL=1,") && line[13] == '"' && line[len - 1] == '"') {
        m.network_up = 1;
        fixed = NULL;
        memcpy(p, "\r\nOK\r\n\r\n+MIPCALL: ", 18);
        p += 18;
        for (int i = 0; i < 4; i++) {
            p += put_decimal(p, m.network_ip[i], 1);
            *p++ = i < 3 ? '.' : '\r';
        }
        *p++ = '\n';
    }
    atmail_session_set_network_up(m.session, m.network_up);
    if (fixed != NULL) {
        atmail_session_answer_command(m.session, (const uint8_t *)fixed, strlen(fixed));
    } else {
        atmail_session_answer_command(m.session, answer, (size_t)(p - answer));
    }
}

static void open_connection(const uint8_t *host, size_t host_len, uint16_t port, bool tls) {
    uint8_t p[2];
    if (tls) {
        log_line("SMTPS needs the firmware's TLS stack, which this image has not", NULL, 0);
        atmail_session_handle_closed(m.session);
        return;
    }
    m.id++;
    m.link = LINK_OPENING;
    m.server_len = 0;
    p[0] = (uint8_t)(port >> 8);
    p[1] = (uint8_t)port;
    frame('O', m.id, p, 2, host, host_len);
}

static void report_figures(void);

static void close_connection(void) {
    if (m.link == LINK_OPENING || m.link == LINK_OPEN) {
        frame('X', m.id, NULL, 0, NULL, 0);
    }
    m.link = LINK_NONE;
    m.server_len = 0;
    report_figures();
}

static int handle_events(void) {
    atmail_event ev;
    int any = 0;
    while (atmail_session_poll_event(m.session, &ev, event_text, sizeof event_text) == ATMAIL_STATUS_OK &&
           ev.kind != ATMAIL_EVENT_KIND_NONE) {
        any = 1;
        switch (ev.kind) {
        case ATMAIL_EVENT_KIND_COMMAND:
            answer_command(event_text, ev.len);
            break;
        case ATMAIL_EVENT_KIND_IDENTITY:
            give_identity();
            break;
        case ATMAIL_EVENT_KIND_CONNECT:
            open_connection(event_text, ev.len, ev.port, ev.implicit_tls);
            break;
        case ATMAIL_EVENT_KIND_START_TLS:
            log_line("STARTTLS needs the firmware's TLS stack, which this image has not", NULL, 0);
            atmail_session_handle_tls_failed(m.session);
            break;
        case ATMAIL_EVENT_KIND_CLOSE:
            close_connection();
            break;
        case ATMAIL_EVENT_KIND_MAIL_FAILED:
            log_line("mail failed: ", event_text, ev.len);
            break;
        default:
            break;
        }
    }
    return any;
}

static int flush_host(void) {
    static uint8_t buf[256];
    size_t n = 0;
    int any = 0;
    while (atmail_session_poll_host(m.session, buf, sizeof buf, &n) == ATMAIL_STATUS_OK && n > 0) {
        uart_write(UART0, buf, n);
        any = 1;
    }
    return any;
}

/* Host bytes from the ring, in place; payload the engine encodes goes to
 * the server. What it does not take stays in the ring (flow control). */
static int feed_host(void) {
    const uint8_t *bytes;
    size_t read = 0, written = 0;
    atmail_stopped stopped = ATMAIL_STOPPED_INPUT_EMPTY;
    int any = 0;
    uint32_t n;
    while ((n = ring_span(&host_rx, &bytes)) > 0) {
        size_t room = sizeof out;
        transmit(); /* what poll_server has goes first */
        if (m.link == LINK_OPEN) {
            if (m.window < sizeof out && atmail_session_in_data_mode(m.session)) {
                break; /* the network is behind: the host waits */
            }
            /* Outside data mode too: a data command and its first payload
             * may come in one span, and the payload is encoded in this
             * call. */
            room = server_room();
        }
        /* The bytes' time is when the newest came, not when the engine
         * got to them: bytes held back never look like a guard time. */
        uint64_t at = now_ms() - (uint32_t)(ticks - host_rx.at);
        if (atmail_session_handle_host(m.session, at, bytes, n, &read, out, room, &written,
                                       &stopped) != ATMAIL_STATUS_OK) {
            break;
        }
        if (written > 0 && m.link == LINK_OPEN) {
            send_data(out, written);
        }
        ring_consume(&host_rx, (uint32_t)read);
        any |= read > 0 || written > 0;
        if (stopped == ATMAIL_STOPPED_CALLER) {
            handle_events();
        } else if (stopped == ATMAIL_STOPPED_HOST_FULL) {
            flush_host();
        } else if (read == 0 && written == 0) {
            break; /* the server must take bytes first */
        }
    }
    return any;
}

/* ---- figures ---- */

#define PAINT 0xA5A5A5A5u
#define STACK_PAINTED 16384u
extern uint32_t _stack_top;
static uint32_t loop_sp;

/* Paints the stack below the loop's frame; the deepest word touched since
 * is the worst stack any call from the loop (and any interrupt on top of
 * it) used. */
static void paint_stack(void) {
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    loop_sp = sp;
    for (volatile uint32_t *p = (uint32_t *)(sp - STACK_PAINTED); p < (uint32_t *)(sp - 64); p++) {
        *p = PAINT;
    }
}

static uint32_t stack_used(void) {
    volatile uint32_t *p = (uint32_t *)(loop_sp - STACK_PAINTED);
    while (p < (uint32_t *)(loop_sp - 64) && *p == PAINT) {
        p++;
    }
    return (uint32_t)&_stack_top - (uint32_t)p;
}

/* "stack <below the top> loop <below the loop> session <bytes> host-ring
 * <peak>/<size> link-ring <peak>/<size> mails <n>" */
__attribute__((noinline)) static void report_figures(void) {
    static uint8_t text[160];
    uint8_t *p = text;
    uint32_t used = stack_used();
    const struct {
        const char *name;
        uint32_t value;
    } items[] = {
        {"stack ", used},
        {" loop ", used - ((uint32_t)&_stack_top - loop_sp)},
        {" session ", (uint32_t)atmail_session_size()},
        {" host-ring ", host_rx.peak},
        {"/", host_rx.size},
        {" link-ring ", link_rx.peak},
        {"/", link_rx.size},
        {" mails ", m.mails},
    };
    for (size_t i = 0; i < sizeof items / sizeof *items; i++) {
        size_t n = strlen(items[i].name);
        memcpy(p, items[i].name, n);
        p += n;
        p += put_decimal(p, items[i].value, 1);
    }
    frame('M', 0, text, (size_t)(p - text), NULL, 0);
}

/* ---- the service loop ---- */

/* A bug in the engine: said to the bridge, then the chip stops (QEMU
 * exits 86, as for a fault). */
static void panic(const uint8_t *file, size_t file_len, uint32_t line) {
    (void)line;
    log_line("panic in ", file, file_len);
    firmware_exit(86);
}

int main(void) {
    static uint8_t session_memory[8192] __attribute__((aligned(16)));
    /* AT+GTSMTPTOKEN's storage: 3 KiB holds a Microsoft access token. */
    static uint8_t token[3072];
    atmail_set_panic_hook(panic);
    if (atmail_session_init(session_memory, sizeof session_memory, &m.session) != ATMAIL_STATUS_OK ||
        atmail_session_set_token_storage(m.session, token, sizeof token) != ATMAIL_STATUS_OK) {
        return 1;
    }
    atmail_session_set_network_up(m.session, 0);
    SYST_RVR = CPU_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* the processor clock, the interrupt, on */
    uart_start(UART0);
    uart_start(UART1);
    NVIC_ISER = 1u << 0 | 1u << 2; /* UART0 RX, UART1 RX */
    paint_stack();
    for (;;) {
        int busy = feed_host();
        busy |= read_link();
        feed_server();
        hear_server_end();
        atmail_session_handle_timeout(m.session, now_ms());
        busy |= handle_events();
        busy |= transmit();
        busy |= flush_host();
        if (!busy) {
            /* Nothing moved: the next interrupt (a byte, or the 1 ms tick
             * for the engine's deadlines) is the next thing to do. */
            __asm__ volatile("wfi");
        }
    }
}
