/* Leaked space in sparse extents (leaks.c), found and given back by check. */
#ifndef SCUSE_VMDK_LEAKS_H
#define SCUSE_VMDK_LEAKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmdk/vmdk.h"

enum { VMDK_SPAN_META = 0, VMDK_SPAN_GRAIN = 1, VMDK_SPAN_BAD = 2 /* a grain already reported */ };

/* A byte range of an extent file that something uses: metadata (id: the
 * GD entry of a table, UINT64_MAX for the rest) or a grain (id: its number). */
struct vmdk_span { uint64_t start, end; int kind; uint64_t id; };

/* Count the unreferenced bytes of sp's file past its metadata, given every
 * used span s[0..n) sorted by start and not overlapping (res->leaks); with
 * fix, move grains down into the holes and cut the file (res->leaks_fixed,
 * and res->leaks what is left). s is reordered. */
int vmdk_leaks(struct vmdk_sparse *sp, struct vmdk_span *s, size_t n, bool fix,
               struct blk_check_result *res, struct scuse_err *err);

#endif
