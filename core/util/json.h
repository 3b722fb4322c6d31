/* A small streaming JSON writer with qemu-img's layout (4-space indent). */
#ifndef SCUSE_JSON_H
#define SCUSE_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json_out {
    FILE *f;
    int depth;
    bool first[JSON_MAX_DEPTH]; /* no member written yet at this depth */
    bool compact;               /* single line, as qemu-img map prints rows */
};

void json_init(struct json_out *j, FILE *f, bool compact);
void json_obj_begin(struct json_out *j, const char *key);  /* key NULL in arrays */
void json_obj_end(struct json_out *j);
void json_arr_begin(struct json_out *j, const char *key);
void json_arr_end(struct json_out *j);
void json_str(struct json_out *j, const char *key, const char *val);
void json_int(struct json_out *j, const char *key, int64_t val);
void json_uint(struct json_out *j, const char *key, uint64_t val);
void json_bool(struct json_out *j, const char *key, bool val);
void json_end(struct json_out *j); /* final newline */

#endif
