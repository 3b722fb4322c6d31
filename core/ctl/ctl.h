/* The control socket of a running daemon (`scuse serve --control`,
 * `scuse tcmu serve --control`): QMP-style JSON, one object a line.
 *
 *   ctl_proto.c   a request line in, its answer out: parsing (jansson),
 *                 the command table, argument checks, error shapes;
 *   ctl_server.c  the listening socket, its clients, line framing and
 *                 events to every client;
 *   ctl_lun.c     the JSON a LUN is described by (query-luns);
 *   ctl_client.c  `scuse ctl` (cmd_ctl in cli.h): one command, or the
 *                 event stream.
 *
 * What a command does is the transport's: it gives a ctl_backend, whose
 * callbacks run on the thread that calls ctl_server_handle() (the
 * daemon's event loop, the thread that submits SCSI commands). */
#ifndef SCUSE_CTL_H
#define SCUSE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "scsi/scsi.h"
#include "util/err.h"

#define CTL_LINE_MAX 65536          /* longest request line, newline excluded */
#define CTL_LUN_MAX 16383           /* LUN numbers 0..16383, as --lun takes them */

enum ctl_device { CTL_DEVICE_DISK, CTL_DEVICE_CDROM };

struct ctl_lun_add {
    uint16_t lun;
    const char *file;
    const char *format;             /* NULL: probed */
    enum ctl_device device;
    bool readonly;
};

/* What the transport does. Each returns 0 or a negative errno with err
 * saying why (the answer's "desc"); -ENODEV answers class DeviceNotFound,
 * anything else GenericError. A NULL callback answers that this daemon
 * does not do it. *ret, when a callback sets it, is the answer's
 * "return" (a reference the protocol takes); left NULL it is {}. */
struct ctl_backend {
    int (*query_luns)(void *opaque, json_t **ret, struct scuse_err *err);
    int (*lun_add)(void *opaque, const struct ctl_lun_add *a, json_t **ret,
                   struct scuse_err *err);
    int (*lun_remove)(void *opaque, uint16_t lun, struct scuse_err *err);
    int (*lun_resize)(void *opaque, uint16_t lun, json_t **ret, struct scuse_err *err);
    int (*medium_eject)(void *opaque, uint16_t lun, bool force, struct scuse_err *err);
    int (*medium_insert)(void *opaque, uint16_t lun, const char *file, const char *format,
                         struct scuse_err *err);
    /* Stop the daemon once the current answers are written. */
    void (*quit)(void *opaque);
    const char *name;               /* "serve", "tcmu serve": in messages */
};

/* ---- ctl_proto.c ---- */

/* The greeting a client gets on connecting (QMP's shape; version is
 * "MAJOR.MINOR.MICRO"), as a line with its newline; the caller frees it. */
char *ctl_greeting(const char *version);
/* Answer one request line (len bytes, no newline; need not be text):
 * returns the answer line with its newline (the caller frees it), or
 * NULL when out of memory. */
char *ctl_handle(const struct ctl_backend *be, void *opaque, const char *line, size_t len);
/* The error line for a request longer than CTL_LINE_MAX. */
char *ctl_oversize_answer(void);
/* An event line {"event", "data", "timestamp"} (data is stolen; NULL: {}). */
char *ctl_event_line(const char *name, json_t *data);
/* Replace every byte of text that is not part of well-formed UTF-8 with
 * '?' (JSON strings must be UTF-8; file names and quoted input may not). */
void ctl_utf8_clean(char *text);
/* A JSON string of text, cleaned that way when it must be; NULL -> null. */
json_t *ctl_string(const char *text);

/* ---- ctl_lun.c ---- */

/* One LUN as query-luns lists it. */
struct ctl_lun_view {
    uint16_t lun;
    const char *name;               /* the TCMU device, or NULL */
    enum ctl_device device;
    struct scsi_lun *slun;          /* NULL: not served (the image failed to open) */
    struct blk_node *bs;            /* NULL: no medium */
    const char *file;               /* as given */
    const struct scsi_lun_config *cfg;
    struct scsi_disp *disp;         /* for the I/O counters, or NULL */
};
json_t *ctl_lun_json(const struct ctl_lun_view *v);
const char *ctl_device_name(enum ctl_device d);

/* ---- ctl_server.c ---- */

struct ctl_server_config {
    const char *path;
    mode_t mode;                    /* 0: 0600, or 0660 with a group */
    gid_t gid;
    bool have_gid;
    const char *version;            /* for the greeting */
};

struct ctl_server;
/* Listen on path (a stale socket file is replaced, anything else
 * refused); the socket gets its mode and group before anyone can
 * connect. */
int ctl_server_create(const struct ctl_server_config *cfg, const struct ctl_backend *be,
                      void *opaque, struct ctl_server **out, struct scuse_err *err);
/* An epoll fd that is readable when ctl_server_handle has work: the
 * daemon's loop watches it. */
int ctl_server_fd(const struct ctl_server *s);
/* Accept, read, answer, write what is pending; never blocks. Loop
 * thread. */
void ctl_server_handle(struct ctl_server *s);
/* Send an event to every client. Any thread; data is stolen. */
void ctl_server_event(struct ctl_server *s, const char *name, json_t *data);
/* Write what is still pending (a short while at most), close every
 * client and the socket, remove the socket file. */
void ctl_server_destroy(struct ctl_server *s);

/* ---- ctl_medium.c: the medium commands on a CD-ROM LUN (id: its name in
 * events), for either transport ---- */

/* Take the medium out and close it, then MEDIUM_EJECTED. -EBUSY while the
 * guest prevents removal and !force. */
int ctl_medium_eject(struct ctl_server *ctl, struct scsi_lun *lun, uint16_t id, bool force,
                     struct scuse_err *err);
/* Open file (format NULL: probed) read-only and put it in the drive, then
 * MEDIUM_INSERTED; *out is the node now in the drive (the LUN's transport
 * closes it at exit unless ejected). */
int ctl_medium_insert(struct ctl_server *ctl, struct scsi_lun *lun, uint16_t id,
                      const char *file, const char *format, struct blk_node **out,
                      struct scuse_err *err);

#endif
