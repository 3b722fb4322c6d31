/* The per-LUN command policy from a string, as the command line and the
 * domain XML give it:
 *     deny=0x9e/0x12,0x35        refuse these, serve the rest
 *     allow=0x00,0x12,0x25,0x28  serve only these
 * An item is an opcode, or opcode/service action for opcodes that have
 * service actions (an opcode alone then covers all of them). Numbers are
 * hexadecimal with 0x, or decimal. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi_int.h"

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static int parse_num(const char **pp, unsigned long max, unsigned long *out, const char *what,
                     const char *spec, struct scuse_err *err)
{
    const char *p = skip_space(*pp);
    if (!isdigit((unsigned char)*p))
        return err_set(err, -EINVAL, "command policy '%s': expected a number for the %s at '%s'",
                       spec, what, p);
    char *end;
    errno = 0;
    unsigned long v = strtoul(p, &end, 0);
    if (errno || v > max)
        return err_set(err, -EINVAL, "command policy '%s': %s '%.*s' is out of range (0..%#lx)",
                       spec, what, (int)(end - p), p, max);
    *out = v;
    *pp = skip_space(end);
    return 0;
}

int scsi_policy_parse(const char *spec, struct scsi_lun_config *cfg, struct scuse_err *err)
{
    const char *p = skip_space(spec);
    bool allow;
    if (strncmp(p, "allow=", 6) == 0)
        allow = true;
    else if (strncmp(p, "deny=", 5) == 0)
        allow = false;
    else
        return err_set(err, -EINVAL, "command policy '%s': must start with allow= or deny=", spec);
    p += allow ? 6 : 5;

    uint32_t list[sizeof(cfg->policy) / sizeof(cfg->policy[0])];
    unsigned n = 0;
    for (;;) {
        unsigned long op, sa = 0xffff;
        int r = parse_num(&p, 0xff, &op, "opcode", spec, err);
        if (r < 0)
            return r;
        if (*p == '/') {
            p++;
            r = parse_num(&p, 0x1f, &sa, "service action", spec, err);
            if (r < 0)
                return r;
            if (!scsi_opcode_has_sa((uint8_t)op))
                return err_set(err, -EINVAL, "command policy '%s': opcode %#04lx has no "
                               "service actions", spec, op);
        }
        bool known = false;
        for (unsigned i = 0; i < scsi_n_ops; i++)
            if (scsi_ops[i].opcode == op && (sa == 0xffff || scsi_ops[i].sa == sa))
                known = true;
        if (!known)
            return err_set(err, -EINVAL, "command policy '%s': %#04lx%s is not a command "
                           "scuse serves", spec, op,
                           sa == 0xffff ? "" : " with that service action");
        if (n == sizeof(list) / sizeof(list[0]))
            return err_set(err, -EINVAL, "command policy '%s': more than %zu entries", spec,
                           sizeof(list) / sizeof(list[0]));
        list[n++] = (uint32_t)op << 16 | (uint32_t)sa;
        if (*p == '\0')
            break;
        if (*p != ',')
            return err_set(err, -EINVAL, "command policy '%s': unexpected '%c' (items are "
                           "separated by commas)", spec, *p);
        p++;
    }
    cfg->policy_allow = allow;
    memcpy(cfg->policy, list, n * sizeof(list[0]));
    cfg->n_policy = n;
    return 0;
}
