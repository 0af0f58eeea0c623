/* The C ABI's MIME base64 encoder as a C firmware or host calls it: 20 MiB
 * pushed 64 KiB at a time into one output buffer, as criterion's
 * mime_base64/20MiB/atmail_push64KiB does from Rust. Prints the median of
 * the runs in seconds and GiB/s; benches/scripts/python_bench compares it
 * with criterion's figure of the same session. */
#include "atmail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const size_t len = 20u << 20, push = 64u << 10;
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    if (runs < 1) runs = 1;
    uint8_t *src = malloc(len);
    size_t out_len = 0;
    if (!src || atmail_base64_encoded_len(len, &out_len) != ATMAIL_STATUS_OK) return 1;
    uint8_t *dst = malloc(out_len);
    double *times = malloc(sizeof *times * (size_t)runs);
    if (!dst || !times) return 1;
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        src[i] = (uint8_t)x;
    }
    for (int r = 0; r < runs; r++) {
        atmail_base64_encoder *enc = NULL;
        if (atmail_base64_encoder_new(&enc) != ATMAIL_STATUS_OK) return 1;
        size_t written = 0;
        double start = now_s();
        for (size_t at = 0; at < len; at += push) {
            size_t n = len - at < push ? len - at : push, read = 0, w = 0;
            atmail_status s = atmail_base64_encoder_encode(enc, src + at, n, &read, dst + written,
                                                           out_len - written, &w, at + n == len);
            if (s != ATMAIL_STATUS_OK || read != n) return 2;
            written += w;
        }
        times[r] = now_s() - start;
        atmail_base64_encoder_free(enc);
        if (written != out_len) return 3;
    }
    qsort(times, (size_t)runs, sizeof *times, by_value);
    double median = times[runs / 2];
    printf("%.9f %.3f\n", median, (double)len / median / (double)(1u << 30));
    free(times);
    free(dst);
    free(src);
    return 0;
}
