/* The table of format drivers, probing, and lookup by name. */
#include <string.h>

#include "blk/driver.h"

static const struct blk_driver *const drivers[] = {
    &blk_driver_qcow2,
    &blk_driver_raw,
};

const struct blk_driver *blk_driver_find(const char *name)
{
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}

/* Highest score wins; raw answers 1 for anything, so it is only chosen
 * when no real format recognises the bytes. */
const struct blk_driver *blk_driver_probe(const uint8_t *buf, size_t len)
{
    const struct blk_driver *best = NULL;
    int best_score = 0;
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
        int s = drivers[i]->probe ? drivers[i]->probe(buf, len) : 0;
        if (s > best_score) {
            best_score = s;
            best = drivers[i];
        }
    }
    return best;
}
