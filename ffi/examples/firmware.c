/* A small POSIX program that plays the module firmware around libatmail:
 * the host's serial bytes come in on stdin, answers and URCs go out on
 * stdout, and the SMTP connection the engine asks for is a TCP socket,
 * all pumped by one poll() loop on the engine's clock.
 *
 *   firmware [HOST:PORT] < host-bytes
 *
 * HOST:PORT, when given, replaces the server of AT+GTSMTPLAND (for labs
 * and tests). Every host byte goes to the engine, which edits, echoes and
 * executes command lines itself; this program answers only the commands
 * the engine hands over (AT&K3 here; ERROR for the rest) and gives each
 * mail its Date and Message-ID. Plain SMTP only: a firmware with a TLS
 * stack starts it where this one reports that it has none.
 *
 * Build (see tests/c/Makefile):
 *   cc -std=c99 -D_POSIX_C_SOURCE=200809L -Iinclude firmware.c \
 *      target/release/libatmail.a -lpthread -ldl -lm -lrt -lutil
 */

#include "atmail.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384

typedef struct {
    atmail_session *session;
    const char *connect_to; /* HOST:PORT override, or NULL */
    int sock;               /* -1 when there is no connection */
    uint8_t serial[BUF]; /* host bytes the engine has not taken yet */
    size_t serial_len;
    uint64_t serial_at;
    uint8_t server[BUF]; /* server bytes the engine has not taken yet */
    size_t server_len;
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

/* The engine said the conversation is over (after QUIT and its 221, or at
 * once for a connection that cannot carry one): the server reads EOF now. */
static void drop_connection(firmware *fw) {
    if (fw->sock >= 0) {
        shutdown(fw->sock, SHUT_RDWR);
        close(fw->sock);
        fw->sock = -1;
    }
    fw->server_len = 0;
}

static void lost_connection(firmware *fw, const char *why) {
    if (why != NULL) {
        fprintf(stderr, "firmware: %s\n", why);
    }
    drop_connection(fw);
    atmail_session_handle_closed(fw->session);
}

/* Sends everything the engine has for the server; returns whether there
 * was anything. */
static int transmit(firmware *fw) {
    uint8_t buf[BUF];
    size_t n = 0;
    int sent = 0;
    while (fw->sock >= 0 &&
           atmail_session_poll_server(fw->session, clock_ms(fw), buf, sizeof buf, &n) ==
               ATMAIL_STATUS_OK &&
           n > 0) {
        sent = 1;
        if (!write_all(fw->sock, buf, n)) {
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

/* Opens the connection the engine asks for (ATMAIL_EVENT_KIND_CONNECT). */
static void open_connection(firmware *fw, const uint8_t *host, size_t host_len, uint16_t port,
                            bool tls) {
    char target[ATMAIL_HOST_MAX + 8], port_text[8];
    char *colon;
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    if (tls) {
        lost_connection(fw, "SMTPS needs a TLS stack, which this example has not");
        return;
    }
    if (fw->connect_to != NULL) {
        snprintf(target, sizeof target, "%s", fw->connect_to);
    } else {
        snprintf(target, sizeof target, "%.*s:%u", (int)host_len, (const char *)host, port);
    }
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
        return;
    }
    /* The local address names this host in EHLO ([10.1.2.3]). */
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
            lost_connection(fw, "STARTTLS needs a TLS stack, which this example has not");
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
        if (fw->sock >= 0 && written > 0 && !write_all(fw->sock, out, written)) {
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
    feed_serial(fw);
    handle_events(fw);
    transmit(fw);
    flush_host(fw);
}

static int poll_timeout(const firmware *fw) {
    uint64_t deadline = ATMAIL_NO_DEADLINE, now = clock_ms(fw);
    atmail_session_next_deadline(fw->session, &deadline);
    if (fw->serial_len > 0) {
        return 5; /* the engine is holding host bytes back */
    }
    if (deadline == ATMAIL_NO_DEADLINE) {
        return 1000;
    }
    return deadline <= now ? 0 : (int)(deadline - now < 1000 ? deadline - now : 1000);
}

int main(int argc, char **argv) {
    static firmware fw;
    int stdin_open = 1;
    fw.connect_to = argc > 1 ? argv[1] : NULL;
    fw.sock = -1;
    fw.start = now_ms();
    /* The OAuth 2.0 token of AT+GTSMTPTOKEN lives in the firmware's own
     * memory: 3 KiB holds a Microsoft access token. */
    static uint8_t token[3072];
    if (atmail_session_new(&fw.session) != ATMAIL_STATUS_OK ||
        atmail_session_set_token_storage(fw.session, token, sizeof token) != ATMAIL_STATUS_OK) {
        return 1;
    }
    for (;;) {
        struct pollfd fds[2];
        uint64_t deadline = ATMAIL_NO_DEADLINE;
        /* Hold the UART while earlier bytes wait (flow control). */
        fds[0].fd = stdin_open && fw.serial_len < sizeof fw.serial ? 0 : -1;
        fds[0].events = POLLIN;
        fds[1].fd = fw.sock;
        fds[1].events = POLLIN;
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
        if (fw.sock >= 0 && fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got = read(fw.sock, fw.server + fw.server_len, sizeof fw.server - fw.server_len);
            if (got > 0) {
                fw.server_len += (size_t)got;
            } else {
                lost_connection(&fw, NULL);
            }
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
    return 0;
}
