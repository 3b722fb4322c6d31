/* Deterministic disk-like content for the convert benchmark.
 *   gen FILE SIZE_MIB [SEED]
 * Writes SIZE_MIB MiB in 64 KiB blocks, each of one kind chosen by a hash
 * of its index, a mix that deflates about 2:1 overall, like a used disk:
 *   5%  never written (holes: the file is sparse there)
 *   40% text: words from a small vocabulary, lines, some numbers
 *   25% "binary": skewed bytes (many 0x00/0xff/small values, some noise)
 *   18% structured records: counters, flags, timestamps, ids
 *   12% incompressible (already-compressed media and archives) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 65536

static uint64_t s;
static uint64_t rnd(void)
{
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
}

static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on",
    "be", "at", "by", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they",
    "which", "one", "you", "were", "her", "all", "she", "there", "would", "their", "we", "him",
    "been", "has", "when", "who", "will", "more", "no", "if", "out", "so", "said", "what",
    "up", "its", "about", "into", "than", "them", "can", "only", "other", "new", "some",
    "could", "time", "these", "two", "may", "then", "do", "first", "any", "my", "now", "such",
    "like", "our", "over", "man", "me", "even", "most", "made", "after", "also", "did", "many",
    "before", "must", "through", "back", "years", "where", "much", "your", "way", "well",
    "down", "should", "because", "each", "just", "those", "people", "kernel", "device",
    "buffer", "cluster", "sector", "mount", "error", "return", "static", "struct", "const",
    "unsigned", "include", "define", "value", "offset", "length", "status", "request",
    "config", "server", "client", "process", "thread", "memory", "network", "package",
};

static void text_block(unsigned char *b)
{
    size_t n = 0, nw = sizeof(words) / sizeof(words[0]);
    int col = 0;
    while (n < BLOCK) {
        uint64_t r = rnd();
        char tok[32];
        int len;
        if ((r & 31) == 0)
            len = snprintf(tok, sizeof(tok), "%u", (unsigned)(r >> 40) % 100000);
        else
            len = snprintf(tok, sizeof(tok), "%s", words[(r >> 8) % nw]);
        for (int i = 0; i < len && n < BLOCK; i++)
            b[n++] = (unsigned char)tok[i];
        col += len + 1;
        if (n < BLOCK)
            b[n++] = col > 72 ? '\n' : ((r >> 20) & 15) == 0 ? ',' : ' ';
        if (col > 72)
            col = 0;
    }
}

static void binary_block(unsigned char *b)
{
    for (size_t i = 0; i < BLOCK; i += 8) {
        uint64_t r = rnd();
        for (int k = 0; k < 8; k++) {
            unsigned v = (unsigned)(r >> (8 * k)) & 0xff;
            unsigned char c;
            if (v < 90)
                c = 0;
            else if (v < 120)
                c = 0xff;
            else if (v < 190)
                c = (unsigned char)(v & 0x0f);
            else
                c = (unsigned char)(rnd() & 0xff);
            b[i + k] = c;
        }
    }
}

static void record_block(unsigned char *b, uint64_t blk)
{
    for (size_t i = 0; i < BLOCK; i += 32) {
        uint64_t id = blk * (BLOCK / 32) + i / 32;
        uint64_t r = rnd();
        uint32_t ts = 1700000000u + (uint32_t)(id * 3);
        memcpy(b + i, &id, 8);
        memcpy(b + i + 8, &ts, 4);
        b[i + 12] = (unsigned char)(r & 3);
        b[i + 13] = 0;
        b[i + 14] = 0x80;
        b[i + 15] = (unsigned char)(id & 0x7f);
        uint64_t val = (r >> 16) & 0xffff;
        memcpy(b + i + 16, &val, 8);
        memset(b + i + 24, 0, 8);
    }
}

static void random_block(unsigned char *b)
{
    for (size_t i = 0; i < BLOCK; i += 8) {
        uint64_t r = rnd();
        memcpy(b + i, &r, 8);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gen FILE SIZE_MIB [SEED]\n");
        return 2;
    }
    uint64_t mib = strtoull(argv[2], NULL, 0);
    s = argc > 3 ? strtoull(argv[3], NULL, 0) : 0x5c05eULL;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    uint64_t size = mib << 20;
    if (ftruncate(fd, (off_t)size) < 0) {
        perror("ftruncate");
        return 1;
    }
    static unsigned char buf[BLOCK];
    uint64_t counts[5] = { 0 };
    for (uint64_t blk = 0; blk < size / BLOCK; blk++) {
        uint64_t h = (blk + 1) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 31;
        unsigned kind = (unsigned)(h % 100);
        int k;
        if (kind < 5) {
            counts[0]++;
            continue;
        } else if (kind < 45) {
            text_block(buf);
            k = 1;
        } else if (kind < 70) {
            binary_block(buf);
            k = 2;
        } else if (kind < 88) {
            record_block(buf, blk);
            k = 3;
        } else {
            random_block(buf);
            k = 4;
        }
        counts[k]++;
        if (pwrite(fd, buf, BLOCK, (off_t)(blk * BLOCK)) != BLOCK) {
            perror("pwrite");
            return 1;
        }
    }
    if (close(fd) < 0) {
        perror("close");
        return 1;
    }
    printf("gen: %llu MiB: holes %llu, text %llu, binary %llu, records %llu, random %llu blocks\n",
           (unsigned long long)mib, (unsigned long long)counts[0], (unsigned long long)counts[1],
           (unsigned long long)counts[2], (unsigned long long)counts[3],
           (unsigned long long)counts[4]);
    return 0;
}
