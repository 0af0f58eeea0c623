/* A small POSIX program that plays the module firmware around libatmail:
 * the host's serial bytes come in on stdin, answers and URCs go out on
 * stdout, and the SMTP connection the engine asks for is a TCP socket,
 * with TLS from mbedTLS, all pumped by one poll() loop on the engine's
 * clock.
 *
 *   firmware [--tls-ca FILE] [--require-tls] [--guard-ms N] [HOST:PORT] < host-bytes
 *
 * HOST:PORT, when given, replaces the server of AT+GTSMTPLAND (for labs
 * and tests); TLS still checks the certificate against the server name
 * of AT+GTSMTPLAND, which is also the SNI. --tls-ca names the PEM file of
 * the CAs to trust (default: the system's bundle); --require-tls refuses
 * servers that do not offer STARTTLS; --guard-ms sets the silence around
 * `+++` (default 1000, the G510's). Every host byte goes to the engine,
 * which edits, echoes and executes command lines itself; this program
 * answers only the commands the engine hands over (AT&K3 here; ERROR for
 * the rest) and gives each mail its Date and Message-ID.
 *
 * TLS is the firmware's, never the engine's: the engine says when to
 * start it (SMTPS: ATMAIL_EVENT_KIND_CONNECT with implicit_tls; STARTTLS:
 * ATMAIL_EVENT_KIND_START_TLS) and hears how it went; between the two the
 * handshake runs here, without blocking the serial line. TLS 1.2 or
 * later, the certificate verified; a failure ends the mail (URC 0) with
 * the reason on stderr, and the connection is never used in plaintext.
 *
 * Build (see tests/c/Makefile):
 *   cc -std=c99 -D_POSIX_C_SOURCE=200809L -Iinclude firmware.c \
 *      target/release/libatmail.a -lmbedtls -lmbedx509 -lmbedcrypto \
 *      -lpthread -ldl -lm -lrt -lutil
 */

#include "atmail.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384
#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

/* Where the connection's TLS stands. */
typedef enum {
    TLS_OFF,       /* plaintext SMTP (or no connection) */
    TLS_IMPLICIT,  /* SMTPS: handshake running, the engine not told yet */
    TLS_STARTTLS,  /* after the 220 to STARTTLS: handshake running */
    TLS_UP,        /* every byte on the socket is a TLS record */
} tls_state;

/* mbedTLS: what every connection shares (loaded at the first TLS one)
 * and the one connection's context. */
typedef struct {
    const char *ca_file;
    int loaded;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_net_context net;
    tls_state state;
    int want_write; /* the handshake waits for the socket to take bytes */
    char name[ATMAIL_HOST_MAX + 1]; /* SNI and the name the certificate must have */
} tls;

typedef struct {
    atmail_session *session;
    const char *connect_to; /* HOST:PORT override, or NULL */
    int sock;               /* -1 when there is no connection */
    tls tls;
    uint8_t serial[BUF]; /* host bytes the engine has not taken yet */
    size_t serial_len;
    uint64_t serial_at;
    uint8_t server[BUF]; /* server bytes the engine has not taken yet */
    size_t server_len;
    /* The server ended the connection (EOF, close_notify, a reset), and
     * the engine has not heard it yet: it is told once it has been
     * offered every byte read before the end, since a server's last
     * reply (421, 554) often comes in the segment that carries its FIN. */
    int server_ended;
    uint64_t start;
} firmware;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t clock_ms(const firmware *fw) { return now_ms() - fw->start; }

static int write_all(int fd, const uint8_t *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return 0;
        }
        bytes += n;
        len -= (size_t)n;
    }
    return 1;
}

static void to_host(const void *bytes, size_t len) { write_all(1, bytes, len); }

/* Waits until the socket can take bytes (or has some, when mbedTLS must
 * read to go on writing); returns 0 when it cannot. */
static int wait_socket(int fd, int ret) {
    struct pollfd p;
    p.fd = fd;
    p.events = ret == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT;
    return poll(&p, 1, 30000) > 0;
}

/* Every byte to the server as TLS records. */
static int tls_write_all(tls *t, const uint8_t *bytes, size_t len) {
    while (len > 0) {
        int n = mbedtls_ssl_write(&t->ssl, bytes, len);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) {
            if (!wait_socket(t->net.fd, n)) {
                return 0;
            }
            continue;
        }
        if (n <= 0) {
            return 0;
        }
        bytes += n;
        len -= (size_t)n;
    }
    return 1;
}

/* The connection's bytes to the server, in TLS once it is up; none while
 * a handshake runs (they would go out in plaintext). After the server
 * ended the connection they go nowhere, as on a closed socket (and a
 * write there could raise SIGPIPE). */
static int to_server(firmware *fw, const uint8_t *bytes, size_t len) {
    if (fw->server_ended) {
        return 1;
    }
    switch (fw->tls.state) {
    case TLS_UP:
        return tls_write_all(&fw->tls, bytes, len);
    case TLS_OFF:
        return write_all(fw->sock, bytes, len);
    default:
        return 0;
    }
}

/* Ends the connection's TLS: close_notify when it was up (so the server
 * reads a clean end, not a truncation), then the context is freed. */
static void tls_end(tls *t) {
    if (t->state == TLS_OFF) {
        return;
    }
    if (t->state == TLS_UP) {
        mbedtls_ssl_close_notify(&t->ssl);
    }
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_init(&t->ssl);
    t->state = TLS_OFF;
    t->want_write = 0;
}

/* The engine said the conversation is over (after QUIT and its 221, or at
 * once for a connection that cannot carry one): the server reads EOF now. */
static void drop_connection(firmware *fw) {
    if (fw->sock >= 0) {
        tls_end(&fw->tls);
        shutdown(fw->sock, SHUT_RDWR);
        close(fw->sock);
        fw->sock = -1;
    }
    fw->server_len = 0;
    fw->server_ended = 0;
}

static void lost_connection(firmware *fw, const char *why) {
    if (why != NULL) {
        fprintf(stderr, "firmware: %s\n", why);
    }
    drop_connection(fw);
    atmail_session_handle_closed(fw->session);
}

/* TLS failed (a refused certificate, no common parameters, a bad record):
 * the engine hears it as TLS, and the connection is not used again. */
static void tls_failed(firmware *fw, const char *why) {
    fprintf(stderr, "firmware: TLS: %s\n", why);
    drop_connection(fw);
    atmail_session_handle_tls_failed(fw->session);
}

static void tls_failed_code(firmware *fw, const char *what, int ret) {
    char text[160], why[256];
    mbedtls_strerror(ret, text, sizeof text);
    snprintf(why, sizeof why, "%s: %s (-0x%04x)", what, text, (unsigned)-ret);
    tls_failed(fw, why);
}

/* Sends everything the engine has for the server; returns whether there
 * was anything. */
static int transmit(firmware *fw) {
    uint8_t buf[BUF];
    size_t n = 0;
    int sent = 0;
    while (fw->sock >= 0 && fw->tls.state != TLS_IMPLICIT && fw->tls.state != TLS_STARTTLS &&
           atmail_session_poll_server(fw->session, clock_ms(fw), buf, sizeof buf, &n) ==
               ATMAIL_STATUS_OK &&
           n > 0) {
        sent = 1;
        if (!to_server(fw, buf, n)) {
            lost_connection(fw, "writing to the server failed");
        }
    }
    return sent;
}

static void flush_host(firmware *fw) {
    uint8_t buf[512];
    size_t n = 0;
    while (atmail_session_poll_host(fw->session, buf, sizeof buf, &n) == ATMAIL_STATUS_OK &&
           n > 0) {
        to_host(buf, n);
    }
}

static int open_socket(const char *host, const char *port) {
    struct addrinfo hints, *list = NULL, *ai;
    int fd = -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &list) != 0) {
        return -1;
    }
    for (ai = list; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    return fd;
}

/* The connection is ready for SMTP; its local address names this host in
 * EHLO ([10.1.2.3]). */
static void connected(firmware *fw) {
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    if (getsockname(fw->sock, (struct sockaddr *)&local, &local_len) == 0 && local.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&local;
        atmail_session_handle_connected(fw->session, clock_ms(fw), (const uint8_t *)&v4->sin_addr, 4);
    } else if (local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&local;
        atmail_session_handle_connected(fw->session, clock_ms(fw), v6->sin6_addr.s6_addr, 16);
    } else {
        atmail_session_handle_connected(fw->session, clock_ms(fw), NULL, 0);
    }
}

/* What every TLS connection shares: the CAs, a seeded DRBG, and a
 * configuration that verifies the server and takes TLS 1.2 or later.
 * Loaded once; returns 0 with the reason in `why` when it cannot be. */
static int tls_load(tls *t, char *why, size_t why_len) {
    static const char personal[] = "atmail firmware";
    int ret;
    const char *ca = t->ca_file != NULL ? t->ca_file : SYSTEM_CA;
    if (t->loaded) {
        return 1;
    }
    ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                (const unsigned char *)personal, sizeof personal - 1);
    if (ret == 0 && (ret = mbedtls_x509_crt_parse_file(&t->ca, ca)) != 0) {
        char text[120];
        mbedtls_strerror(ret, text, sizeof text);
        snprintf(why, why_len, "cannot read the CA file %s: %s", ca, text);
        return 0;
    }
    if (ret == 0) {
        ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    }
    if (ret != 0) {
        mbedtls_strerror(ret, why, why_len);
        return 0;
    }
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    t->loaded = 1;
    return 1;
}

/* One step of the handshake, whenever the socket is ready for it. Done:
 * the engine hears it (SMTPS: connected; STARTTLS: established). */
static void tls_handshake(firmware *fw) {
    tls *t = &fw->tls;
    int ret = mbedtls_ssl_handshake(&t->ssl);
    uint32_t flags;
    t->want_write = ret == MBEDTLS_ERR_SSL_WANT_WRITE;
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return;
    }
    flags = mbedtls_ssl_get_verify_result(&t->ssl);
    if (ret != 0 && flags != 0 && flags != (uint32_t)-1) {
        char info[256], why[ATMAIL_HOST_MAX + 320];
        mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        info[strcspn(info, "\n")] = 0;
        snprintf(why, sizeof why, "the server's certificate for %s was refused: %s", t->name, info);
        tls_failed(fw, why);
        return;
    }
    if (ret != 0) {
        tls_failed_code(fw, "the handshake failed", ret);
        return;
    }
    if (t->state == TLS_IMPLICIT) {
        t->state = TLS_UP;
        connected(fw);
    } else {
        t->state = TLS_UP;
        atmail_session_handle_tls_established(fw->session, clock_ms(fw));
    }
}

/* Starts TLS on the open connection for `name` (the server of
 * AT+GTSMTPLAND, whatever address the socket went to). */
static void tls_start(firmware *fw, tls_state handshake) {
    tls *t = &fw->tls;
    char why[200];
    int ret;
    if (!tls_load(t, why, sizeof why)) {
        tls_failed(fw, why);
        return;
    }
    if ((ret = mbedtls_ssl_setup(&t->ssl, &t->conf)) != 0 ||
        (ret = mbedtls_ssl_set_hostname(&t->ssl, t->name)) != 0) {
        t->state = handshake; /* so the context is freed */
        tls_failed_code(fw, "cannot start", ret);
        return;
    }
    t->net.fd = fw->sock;
    mbedtls_net_set_nonblock(&t->net);
    mbedtls_ssl_set_bio(&t->ssl, &t->net, mbedtls_net_send, mbedtls_net_recv, NULL);
    t->state = handshake;
    tls_handshake(fw);
}

/* Opens the connection the engine asks for (ATMAIL_EVENT_KIND_CONNECT). */
static void open_connection(firmware *fw, const uint8_t *host, size_t host_len, uint16_t port,
                            bool implicit_tls) {
    char target[ATMAIL_HOST_MAX + 8], port_text[8];
    char *colon;
    if (fw->connect_to != NULL) {
        snprintf(target, sizeof target, "%s", fw->connect_to);
    } else {
        snprintf(target, sizeof target, "%.*s:%u", (int)host_len, (const char *)host, port);
    }
    snprintf(fw->tls.name, sizeof fw->tls.name, "%.*s", (int)host_len, (const char *)host);
    colon = strrchr(target, ':');
    if (colon == NULL) {
        lost_connection(fw, "no port in the server address");
        return;
    }
    *colon = 0;
    snprintf(port_text, sizeof port_text, "%s", colon + 1);
    fw->sock = open_socket(target, port_text);
    if (fw->sock < 0) {
        lost_connection(fw, "cannot connect to the server");
    } else if (implicit_tls) {
        tls_start(fw, TLS_IMPLICIT);
    } else {
        connected(fw);
    }
}

/* Server bytes: the engine reads a reply only once the command it
 * answers is sent, so unread bytes wait for a transmit. */
static void feed_server(firmware *fw) {
    size_t used = 0;
    while (fw->server_len > 0 && fw->sock >= 0) {
        if (atmail_session_handle_server(fw->session, clock_ms(fw), fw->server, fw->server_len,
                                         &used) != ATMAIL_STATUS_OK) {
            return;
        }
        memmove(fw->server, fw->server + used, fw->server_len - used);
        fw->server_len -= used;
        if (used == 0 && !transmit(fw)) {
            return;
        }
    }
}

/* Plaintext from TLS records, as much as there is and fits. */
static void tls_receive(firmware *fw) {
    while (fw->sock >= 0 && fw->server_len < sizeof fw->server) {
        int n = mbedtls_ssl_read(&fw->tls.ssl, fw->server + fw->server_len,
                                 sizeof fw->server - fw->server_len);
        if (n > 0) {
            fw->server_len += (size_t)n;
        } else if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) {
            return;
        } else if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_NET_CONN_RESET) {
            fw->server_ended = 1; /* heard once what came before it is read */
            return;
        } else {
            tls_failed_code(fw, "reading from the server", n);
        }
    }
}

/* The socket is readable (or writable, for a handshake that waits on it). */
static void receive(firmware *fw) {
    ssize_t got;
    switch (fw->tls.state) {
    case TLS_IMPLICIT:
    case TLS_STARTTLS:
        tls_handshake(fw);
        return;
    case TLS_UP:
        tls_receive(fw);
        return;
    case TLS_OFF:
        break;
    }
    got = read(fw->sock, fw->server + fw->server_len, sizeof fw->server - fw->server_len);
    if (got > 0) {
        fw->server_len += (size_t)got;
    } else {
        fw->server_ended = 1; /* heard once what came before it is read */
    }
}

/* The server's end, once the engine has been offered every byte that
 * came before it (feed_server stops only when all are taken or the
 * engine takes no more). */
static void hear_server_end(firmware *fw) {
    if (fw->server_ended) {
        lost_connection(fw, NULL);
    }
}

/* Each mail's Date and Message-ID: the firmware's clock and entropy. */
static void give_identity(firmware *fw) {
    static unsigned counter;
    char date[64], id[96];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(id, sizeof id, "<%ld.%ld.%u@atmail.invalid>", (long)t, (long)getpid(), ++counter);
    if (atmail_session_set_identity(fw->session, (const uint8_t *)date, strlen(date),
                                    (const uint8_t *)id, strlen(id)) != ATMAIL_STATUS_OK) {
        /* Never leave SEND waiting: it fails with a clear error. */
        atmail_session_refuse_identity(fw->session);
    }
}

/* A command line that is not the engine's: the firmware's own AT
 * dispatcher (AT&K3 here; ERROR for the rest). */
static void answer_command(firmware *fw, const uint8_t *line, size_t len) {
    int known = len == 5 && strncasecmp((const char *)line, "AT&K3", 5) == 0;
    const char *answer = known ? "\r\nOK\r\n" : "\r\nERROR\r\n";
    atmail_session_answer_command(fw->session, (const uint8_t *)answer, strlen(answer));
}

/* Everything the engine asks of the firmware, in the engine's order. */
static void handle_events(firmware *fw) {
    atmail_event ev;
    uint8_t text[ATMAIL_EVENT_MAX];
    while (atmail_session_poll_event(fw->session, &ev, text, sizeof text) == ATMAIL_STATUS_OK &&
           ev.kind != ATMAIL_EVENT_KIND_NONE) {
        switch (ev.kind) {
        case ATMAIL_EVENT_KIND_COMMAND:
            answer_command(fw, text, ev.len);
            break;
        case ATMAIL_EVENT_KIND_IDENTITY:
            give_identity(fw);
            break;
        case ATMAIL_EVENT_KIND_CONNECT:
            open_connection(fw, text, ev.len, ev.port, ev.implicit_tls);
            break;
        case ATMAIL_EVENT_KIND_START_TLS:
            tls_start(fw, TLS_STARTTLS);
            break;
        case ATMAIL_EVENT_KIND_CLOSE:
            drop_connection(fw);
            break;
        case ATMAIL_EVENT_KIND_MAIL_FAILED:
            fprintf(stderr, "firmware: mail failed: %.*s\n", (int)ev.len, (const char *)text);
            break;
        default:
            break;
        }
    }
}

/* Host bytes, all of them to the engine; payload it encodes goes to the
 * server. What it cannot take yet waits (backpressure: the UART is held),
 * and why it stopped says what frees it. */
static void feed_serial(firmware *fw) {
    uint8_t out[BUF];
    size_t pos = 0, read = 0, written = 0;
    atmail_stopped stopped = ATMAIL_STOPPED_INPUT_EMPTY;
    while (pos < fw->serial_len) {
        transmit(fw); /* what poll_server has goes first */
        if (atmail_session_handle_host(fw->session, fw->serial_at, fw->serial + pos,
                                       fw->serial_len - pos, &read, out, sizeof out, &written,
                                       &stopped) != ATMAIL_STATUS_OK) {
            break;
        }
        if (fw->sock >= 0 && written > 0 && !to_server(fw, out, written)) {
            lost_connection(fw, "writing to the server failed");
        }
        pos += read;
        if (stopped == ATMAIL_STOPPED_CALLER) {
            handle_events(fw);
        } else if (stopped == ATMAIL_STOPPED_HOST_FULL) {
            flush_host(fw);
        } else if (read == 0 && written == 0) {
            break; /* the server must take bytes first */
        }
    }
    memmove(fw->serial, fw->serial + pos, fw->serial_len - pos);
    fw->serial_len -= pos;
}

/* One turn of the engine: the clock, both inputs, what it asks, output. */
static void service(firmware *fw) {
    atmail_session_handle_timeout(fw->session, clock_ms(fw));
    feed_server(fw);
    hear_server_end(fw);
    feed_serial(fw);
    handle_events(fw);
    transmit(fw);
    flush_host(fw);
}

/* Plaintext mbedTLS has decrypted but not handed over yet: the socket
 * will not say so. */
static int tls_pending(const firmware *fw) {
    return fw->tls.state == TLS_UP && !fw->server_ended && fw->server_len < sizeof fw->server &&
           mbedtls_ssl_get_bytes_avail(&fw->tls.ssl) > 0;
}

static int poll_timeout(const firmware *fw) {
    uint64_t deadline = ATMAIL_NO_DEADLINE, now = clock_ms(fw);
    atmail_session_next_deadline(fw->session, &deadline);
    if (tls_pending(fw)) {
        return 0;
    }
    if (fw->serial_len > 0) {
        return 5; /* the engine is holding host bytes back */
    }
    if (deadline == ATMAIL_NO_DEADLINE) {
        return 1000;
    }
    return deadline <= now ? 0 : (int)(deadline - now < 1000 ? deadline - now : 1000);
}

/* Options, then HOST:PORT, applied to the session; returns 0 for a
 * command line it cannot read. */
static int parse_args(firmware *fw, int argc, char **argv) {
    int i, ok = 1;
    char *end;
    for (i = 1; i < argc && ok; i++) {
        if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc) {
            fw->tls.ca_file = argv[++i];
        } else if (strcmp(argv[i], "--require-tls") == 0) {
            ok = atmail_session_set_require_tls(fw->session, true) == ATMAIL_STATUS_OK;
        } else if (strcmp(argv[i], "--guard-ms") == 0 && i + 1 < argc) {
            unsigned long ms = strtoul(argv[++i], &end, 10);
            ok = *end == 0 && ms <= 0xFFFFFFFFul &&
                 atmail_session_set_guard_ms(fw->session, (uint32_t)ms) == ATMAIL_STATUS_OK;
        } else if (argv[i][0] != '-' && fw->connect_to == NULL) {
            fw->connect_to = argv[i];
        } else {
            ok = 0;
        }
    }
    if (!ok) {
        fprintf(stderr, "usage: firmware [--tls-ca FILE] [--require-tls] [--guard-ms N] [HOST:PORT]\n");
    }
    return ok;
}

static void tls_init(tls *t) {
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_ssl_init(&t->ssl);
    mbedtls_net_init(&t->net);
}

static void tls_free(tls *t) {
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
}

int main(int argc, char **argv) {
    static firmware fw;
    int stdin_open = 1;
    /* The OAuth 2.0 token of AT+GTSMTPTOKEN lives in the firmware's own
     * memory: 3 KiB holds a Microsoft access token. */
    static uint8_t token[3072];
    /* A write to a connection the server has just closed fails with
     * EPIPE, which this loop handles; the signal would end the program
     * before the mail's URC. */
    signal(SIGPIPE, SIG_IGN);
    fw.sock = -1;
    fw.start = now_ms();
    tls_init(&fw.tls);
    if (atmail_session_new(&fw.session) != ATMAIL_STATUS_OK ||
        atmail_session_set_token_storage(fw.session, token, sizeof token) != ATMAIL_STATUS_OK) {
        return 1;
    }
    if (!parse_args(&fw, argc, argv)) {
        atmail_session_free(fw.session);
        tls_free(&fw.tls);
        return 2;
    }
    for (;;) {
        struct pollfd fds[2];
        uint64_t deadline = ATMAIL_NO_DEADLINE;
        /* Hold the UART while earlier bytes wait (flow control). */
        fds[0].fd = stdin_open && fw.serial_len < sizeof fw.serial ? 0 : -1;
        fds[0].events = POLLIN;
        fds[1].fd = fw.server_len < sizeof fw.server && !fw.server_ended ? fw.sock : -1;
        fds[1].events = POLLIN | (fw.tls.want_write ? POLLOUT : 0);
        if (poll(fds, 2, poll_timeout(&fw)) < 0 && errno != EINTR) {
            break;
        }
        if (fds[0].fd >= 0 && fds[0].revents & (POLLIN | POLLHUP)) {
            ssize_t got = read(0, fw.serial + fw.serial_len, sizeof fw.serial - fw.serial_len);
            if (got > 0) {
                fw.serial_len += (size_t)got;
                fw.serial_at = clock_ms(&fw);
            } else {
                stdin_open = 0;
            }
        }
        if (fds[1].fd >= 0 && fw.sock >= 0 &&
            (fds[1].revents & (POLLIN | POLLOUT | POLLHUP | POLLERR) || tls_pending(&fw))) {
            receive(&fw);
        }
        service(&fw);
        atmail_session_next_deadline(fw.session, &deadline);
        if (!stdin_open && fw.serial_len == 0 && fw.sock < 0 &&
            !atmail_session_in_data_mode(fw.session) && deadline == ATMAIL_NO_DEADLINE) {
            break;
        }
    }
    flush_host(&fw);
    drop_connection(&fw);
    atmail_session_free(fw.session);
    tls_free(&fw.tls);
    return 0;
}
