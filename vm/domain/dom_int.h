/* Inside the domain parser: libxml2 helpers and the pieces' entry points. */
#ifndef SCUSE_DOM_INT_H
#define SCUSE_DOM_INT_H

#include <libxml/tree.h>

#include "domain/domain.h"

struct dom_ctx {
    const char *file;
    struct scuse_err *err;
};

/* err gets "FILE:LINE: <ELEMENT>: why"; returns -EINVAL. */
int dom_fail(const struct dom_ctx *c, const xmlNode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Control characters (a quoted value's newlines) become '?'. */
void dom_one_line(char *s);
/* An attribute's value as written ("" for an empty one), NULL if absent;
 * points into the document. */
const char *dom_attr(const xmlNode *n, const char *name);
/* The first child element of n with this name in libvirt's (no)
 * namespace, or in scuse's with dom_child_ns; NULL if none. */
xmlNode *dom_child(const xmlNode *n, const char *name);
xmlNode *dom_child_ns(const xmlNode *n, const char *name);
/* The next sibling element after n with the same name and namespace. */
xmlNode *dom_next(const xmlNode *n);
bool dom_is(const xmlNode *n, const char *name);     /* libvirt's element */
bool dom_is_ns(const xmlNode *n, const char *name);  /* scuse's element */
/* An element's text (xmlFree it), trimmed of surrounding white space. */
char *dom_text(const xmlNode *n);
/* An unsigned decimal attribute: absent gives def; bad or above max fails. */
int dom_attr_uint(const struct dom_ctx *c, const xmlNode *n, const char *name, unsigned def,
                  unsigned max, unsigned *out);

/* Where a <disk> sits: whether it is on the SCSI bus at all and its
 * (possibly derived) address. Returns 0 with *scsi false for disks on
 * other buses. */
int dom_disk_where(const struct dom_ctx *c, xmlNode *n, bool *scsi, struct dom_disk *d);
/* The rest of one of scuse's disks, every element checked. */
int dom_disk_parse(const struct dom_ctx *c, xmlNode *n, struct dom_disk *d);
void dom_disk_release(struct dom_disk *d);

#endif
