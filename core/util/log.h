/* The one logging facility: leveled messages to stderr (a daemon in the
 * foreground, under systemd or at a terminal), to syslog (a datagram per
 * message to /dev/log, RFC 3164 form, facility daemon) or to the systemd
 * journal (its native protocol: a datagram of FIELD=value lines to
 * /run/systemd/journal/socket, with PRIORITY, SYSLOG_IDENTIFIER and
 * SYSLOG_PID). The level and the target are per process, set once at
 * start-up before any thread starts; a message the target cannot take
 * goes to stderr instead. SCUSE_SYSLOG_SOCKET and SCUSE_JOURNAL_SOCKET
 * name other sockets (tests). */
#ifndef SCUSE_LOG_H
#define SCUSE_LOG_H

enum log_level { LOG_LVL_OFF, LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_JOURNAL };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "stderr", "syslog", "journal": the target, or -1. */
int log_parse_target(const char *name);
/* Send messages to t from now on, as ident ("scuse"). Returns 0, or
 * -errno when t's socket cannot be reached (the target stays stderr). */
int log_open(enum log_target t, const char *ident);
enum log_target log_get_target(void);
/* The socket the target t uses (the environment's, else the standard one). */
const char *log_socket_path(enum log_target t);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
