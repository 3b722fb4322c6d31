/* libxml2 helpers of the domain parser: messages with line numbers,
 * attributes, children by name and namespace. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/dom_int.h"

void dom_one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

int dom_fail(const struct dom_ctx *c, const xmlNode *n, const char *fmt, ...)
{
    char msg[SCUSE_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dom_one_line(msg);              /* values quoted from the file may hold newlines */
    const char *pre = n && n->ns && n->ns->prefix ? (const char *)n->ns->prefix : NULL;
    return err_set(c->err, -EINVAL, "%s:%ld: <%s%s%s>: %s", c->file, n ? xmlGetLineNo(n) : 0L,
                   pre ? pre : "", pre ? ":" : "", n ? (const char *)n->name : "?", msg);
}

const char *dom_attr(const xmlNode *n, const char *name)
{
    /* Documents with a DTD are refused, so a value is one text node
     * (character and predefined entity references are resolved). */
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        if (a->ns || strcmp((const char *)a->name, name) != 0)
            continue;
        if (!a->children)
            return "";
        if (a->children->type == XML_TEXT_NODE && !a->children->next && a->children->content)
            return (const char *)a->children->content;
        return "";
    }
    return NULL;
}

static bool in_scuse_ns(const xmlNode *n)
{
    return n->ns && n->ns->href && strcmp((const char *)n->ns->href, DOM_NS) == 0;
}

bool dom_is(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && !n->ns && strcmp((const char *)n->name, name) == 0;
}

bool dom_is_ns(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && in_scuse_ns(n) &&
           strcmp((const char *)n->name, name) == 0;
}

xmlNode *dom_child(const xmlNode *n, const char *name)
{
    for (xmlNode *k = n->children; k; k = k->next)
        if (dom_is(k, name))
            return k;
    return NULL;
}

xmlNode *dom_child_ns(const xmlNode *n, const char *name)
{
    for (xmlNode *k = n->children; k; k = k->next)
        if (dom_is_ns(k, name))
            return k;
    return NULL;
}

xmlNode *dom_next(const xmlNode *n)
{
    bool ns = in_scuse_ns(n);
    for (xmlNode *k = n->next; k; k = k->next)
        if (ns ? dom_is_ns(k, (const char *)n->name) : dom_is(k, (const char *)n->name))
            return k;
    return NULL;
}

char *dom_text(const xmlNode *n)
{
    char *s = (char *)xmlNodeGetContent(n);
    if (!s)
        return NULL;
    size_t len = strlen(s), b = 0;
    while (b < len && isspace((unsigned char)s[b]))
        b++;
    while (len > b && isspace((unsigned char)s[len - 1]))
        len--;
    memmove(s, s + b, len - b);
    s[len - b] = '\0';
    return s;
}

int dom_attr_uint(const struct dom_ctx *c, const xmlNode *n, const char *name, unsigned def,
                  unsigned max, unsigned *out)
{
    const char *v = dom_attr(n, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long x = isdigit((unsigned char)v[0]) ? strtoul(v, &end, 10) : 0;
    if (!isdigit((unsigned char)v[0]) || *end || errno || x > max)
        return dom_fail(c, n, "%s='%s': a number from 0 to %u", name, v, max);
    *out = (unsigned)x;
    return 0;
}
