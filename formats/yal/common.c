/* What the libyal formats share once open: close, reads through the pool,
 * block status and info (yal.h). */
#include <stdlib.h>

#include "io/file.h"
#include "yal/yal.h"

int yal_image_init(struct blk_node *bs, struct yal_image *im, const struct yal_ops *ops,
                   void **first, struct scuse_err *err)
{
    unsigned handles;
    int r = yal_handles_opt(bs, &handles, err);
    if (r == 0)
        r = yal_pool_init(&im->pool, bs->path, ops, im, handles, first, err);
    return r;
}

void yal_info_add(struct yal_image *im, const char *key, const char *label, const char *s)
{
    if (im->n_info < YAL_INFO_MAX)
        im->info[im->n_info++] = (struct blk_info_item){ .key = key, .label = label,
                                                         .kind = BLK_INFO_STR, .s = s };
}

void yal_image_free(struct yal_image *im)
{
    if (!im)
        return;
    if (im->free_own)
        im->free_own(im);
    yal_pool_destroy(&im->pool);
    free(im);
}

void yal_image_attach(struct blk_node *bs, struct yal_image *im)
{
    bs->size = im->size;
    bs->align = 1;
    bs->state = im;
}

void yal_close(struct blk_node *bs)
{
    yal_image_free(bs->state);
    bs->state = NULL;
}

int yal_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v, struct scuse_err *err)
{
    struct yal_image *im = bs->state;
    return yal_read(&im->pool, off, v, err);
}

int yal_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                     struct blk_status *st, struct scuse_err *err)
{
    struct yal_image *im = bs->state;
    if (im->status)
        return im->status(bs, off, len, pnum, st, err);
    *pnum = len;
    st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA;
    return 0;
}

int yal_info(struct blk_node *bs, struct blk_info *info, struct scuse_err *err)
{
    (void)err;
    struct yal_image *im = bs->state;
    for (unsigned i = 0; i < im->n_info; i++)
        info->item[info->n_items++] = im->info[i];
    return 0;
}

int yal_allocated(struct blk_node *bs, uint64_t *bytes)
{
    const struct yal_image *im = bs->state;
    if (im->files_bytes) {
        *bytes = im->files_bytes;
        return 0;
    }
    return file_allocated(bs->fd, bytes);
}
