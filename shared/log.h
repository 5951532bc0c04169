/* One line per event on stderr: ts=... level=... prog=... event=... k=v ...
 * Values given through vlog_str() are quoted and escaped, so a hostile
 * string cannot forge a field or a line. Secrets never go through here. */
#ifndef VMLET_LOG_H
#define VMLET_LOG_H

#include <stddef.h>

enum vlog_level { VLOG_DEBUG = 0, VLOG_INFO, VLOG_WARN, VLOG_ERROR };

void vlog_init(const char *prog);
void vlog_set_level(enum vlog_level lvl);

/* fmt is the key=value tail, printf-style, may be NULL or "". */
void vlog(enum vlog_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Quote and escape s into buf ("..." with \" \\ \n and \xHH for controls);
 * returns buf. Truncates long strings with "...". */
const char *vlog_str(const char *s, char *buf, size_t len);

#define VLOG_STR_MAX 300

#endif
