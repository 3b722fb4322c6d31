/* Shared pieces of the `scuse` command line. */
#ifndef SCUSE_CLI_H
#define SCUSE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "blk/blk.h"
#include "scsi/scsi.h"

/* Exit codes, as qemu-img users expect them. */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_IMAGE = 2 };

int cmd_info(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_io(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_tcmu(int argc, char **argv);
int cmd_domain(int argc, char **argv);
int cmd_libvirt_hook(int argc, char **argv);
/* `scuse serve --domain FILE` (cmd_serve_domain.c). */
int cmd_serve_domain(int argc, char **argv);

/* One LUN of a vhost-user-scsi daemon, described whole (serve --domain). */
struct serve_lun_spec {
    uint16_t id;
    const char *what;               /* names it in messages: "vm1.xml: sda" */
    const char *file, *fmt;
    unsigned flags;                 /* blk_open's: BLK_OPEN_RW, SHARE, NO_FLUSH */
    struct blk_opts opts;           /* chain, format options (the caller's strings) */
    struct scsi_lun_config cfg;
};
struct serve_daemon_opts {
    const char *socket, *pidfile;
    bool once;
    unsigned workers;               /* 0: the dispatcher's choice */
    int ready_fd;                   /* gets a byte once the socket listens; -1: none */
};
/* Serve specs on socket until SIGTERM/SIGINT (or, with once, the VM's
 * disconnection), as `scuse serve --lun` does. Returns the exit status. */
int serve_luns(const struct serve_daemon_opts *o, const struct serve_lun_spec *specs,
               unsigned n);
/* `scuse tcmu serve` (argv[0] "serve"), also what `scuse serve --tcmu` runs. */
int cmd_tcmu_serve(int argc, char **argv);

/* Take --log=TARGET (or --log TARGET) out of argv and send the log
 * there (log_open): EXIT_OK, or EXIT_USAGE with the line printed (an
 * unknown target, a socket that cannot be reached). */
int cli_log_option(int *argc, char **argv, const char *cmd);

/* "64k", "1M", "2G", "512": bytes. Returns 0 or -EINVAL. */
int cli_parse_size(const char *s, uint64_t *out);
/* qemu-img's style: "388 KiB", "1 MiB", "1.5 GiB". */
void cli_human_size(uint64_t bytes, char *buf, size_t len);
/* One-line error to stderr, returns code (usage errors add a hint). */
int cli_fail(int code, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Open an image for a tool: read-only unless rw, messages on failure. */
int cli_open(const char *cmd, const char *file, const char *fmt, unsigned flags,
             const struct blk_opts *opts, struct blk_node **out);
/* Why a call failed: the reason it put in err (which names the image and
 * the field), else strerror(-r). */
const char *cli_reason(const struct scuse_err *err, int r);
/* Split "a=1,b=2" into kv (pointers into s, which is modified). Returns
 * EXIT_OK or the usage error it printed. */
int cli_split_kv(const char *cmd, char *s, struct blk_kv *kv);
void cli_kv_remove(struct blk_kv *kv, int i);
/* Parse --output=human|json; returns 0 for human, 1 for json, -1 bad. */
int cli_output_format(const char *arg);

/* The options the image tools share: -f FMT, --output=human|json, -U. */
struct cli_image_opts {
    const char *fmt; /* -f: NULL probes */
    int json;        /* --output=json */
    bool share;      /* -U: take no image locks */
};
/* What cli_image_opt returns when parsing goes on. */
#define CLI_OPT_NEXT (-1)
/* Takes a getopt result that the tool's own options did not: 'f', 'o'
 * (--output), 'U'; 'h' prints usage to stdout and gives EXIT_OK, anything
 * else prints it to stderr and gives EXIT_USAGE. Returns CLI_OPT_NEXT or
 * the exit code for the tool to return. */
int cli_image_opt(const char *cmd, int c, struct cli_image_opts *o, void (*usage)(FILE *));

#endif
