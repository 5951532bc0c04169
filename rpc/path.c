#include "rpc/path.h"

#include <stdarg.h>
#include <stdio.h>

size_t vmlet_path_append(struct vmlet_path *p, const char *fmt, ...)
{
	size_t old = p->len;
	size_t room = sizeof(p->buf) - p->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p->buf + p->len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->len += (size_t)n < room ? (size_t)n : room - 1;
	return old;
}

void vmlet_path_restore(struct vmlet_path *p, size_t old)
{
	p->len = old;
	p->buf[old] = '\0';
}
