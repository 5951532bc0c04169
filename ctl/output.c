#include "ctl/output.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc/json.h"
#include "shared/cleanup.h"

/* ---- safe strings -------------------------------------------------------- */

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

void ctl_put_safe(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_control(*p))
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	}
}

/* Columns on a terminal: code points, escapes counted as printed. The
 * server's strings passed strict decoding, so they are valid UTF-8. */
static size_t display_width(const char *s)
{
	size_t w = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_control(*p))
			w += 4;
		else if ((*p & 0xc0) != 0x80)
			w++;
	}
	return w;
}

/* ---- aligned tables ------------------------------------------------------ */

struct table {
	size_t ncols, nrows; /* row 0 is the header */
	char **cells;        /* nrows * ncols, owned */
};

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->ncols * t->nrows; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

static int table_add(struct table *t, const char *const *row, struct vmlet_err *err)
{
	char **cells = reallocarray(t->cells, (t->nrows + 1) * t->ncols, sizeof(*cells));

	if (!cells)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	t->cells = cells;
	for (size_t c = 0; c < t->ncols; c++) {
		char *dup = strdup(row[c] && row[c][0] ? row[c] : "-");
		if (!dup) {
			for (size_t k = 0; k < c; k++)
				free(cells[t->nrows * t->ncols + k]);
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		}
		cells[t->nrows * t->ncols + c] = dup;
	}
	t->nrows++;
	return 0;
}

/* Columns two spaces apart, each as wide as its widest cell; the last is
 * not padded so lines carry no trailing blanks. */
static int table_print(FILE *out, const struct table *t, struct vmlet_err *err)
{
	_cleanup_free_ size_t *width = calloc(t->ncols, sizeof(*width));

	if (!width)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = display_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			ctl_put_safe(out, cell);
			if (c + 1 < t->ncols)
				fprintf(out, "%*s", (int)(width[c] - display_width(cell) + 2), "");
		}
		fputc('\n', out);
	}
	return 0;
}

/* ---- enum names ---------------------------------------------------------- */

/* "INSTANCE_STATE_RUNNING" -> "running": the enum's common prefix (up to
 * an underscore) dropped and the rest lowercased, as rpc/json.h writes it. */
static void enum_short_name(const ProtobufCEnumDescriptor *ed, int value, char *buf, size_t len)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(ed, value);
	size_t prefix = SIZE_MAX;

	if (!v) {
		snprintf(buf, len, "%d", value);
		return;
	}
	for (unsigned i = 0; i < ed->n_values; i++) {
		const char *a = ed->values[i].name, *b = ed->values[0].name;
		size_t k = 0;
		while (a[k] && a[k] == b[k])
			k++;
		if (k < prefix)
			prefix = k;
	}
	if (ed->n_values < 2)
		prefix = 0;
	while (prefix > 0 && v->name[prefix - 1] != '_')
		prefix--;
	size_t i = 0;
	for (const char *p = v->name + prefix; *p && i + 1 < len; p++)
		buf[i++] = (char)tolower((unsigned char)*p);
	buf[i] = '\0';
}

/* ---- key: value lines ---------------------------------------------------- */

static const void *field_ptr(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	return (const char *)msg + f->offset;
}

/* A singular scalar as text; false for kinds that are not one. */
static bool scalar_text(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, char *buf,
			size_t len)
{
	const void *p = field_ptr(msg, f);

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		snprintf(buf, len, "%" PRId32, *(const int32_t *)p);
		return true;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		snprintf(buf, len, "%" PRIu32, *(const uint32_t *)p);
		return true;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
		return true;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
		return true;
	case PROTOBUF_C_TYPE_FLOAT:
		snprintf(buf, len, "%g", (double)*(const float *)p);
		return true;
	case PROTOBUF_C_TYPE_DOUBLE:
		snprintf(buf, len, "%g", *(const double *)p);
		return true;
	case PROTOBUF_C_TYPE_BOOL:
		snprintf(buf, len, "%s", *(const protobuf_c_boolean *)p ? "yes" : "no");
		return true;
	case PROTOBUF_C_TYPE_ENUM:
		enum_short_name(f->descriptor, *(const int *)p, buf, len);
		return true;
	case PROTOBUF_C_TYPE_BYTES:
		snprintf(buf, len, "<%zu bytes>", ((const ProtobufCBinaryData *)p)->len);
		return true;
	default:
		return false;
	}
}

int ctl_render_fields(FILE *out, const ProtobufCMessage *msg, const char *prefix,
		      struct vmlet_err *err)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	char val[64];

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)msg + f->quantifier_offset) != f->id)
			continue;
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			const ProtobufCMessage *sub = *(ProtobufCMessage *const *)field_ptr(msg, f);
			if (!sub) {
				fprintf(out, "%s%s: -\n", prefix, f->name);
				continue;
			}
			char sub_prefix[128];
			snprintf(sub_prefix, sizeof(sub_prefix), "%s%s.", prefix, f->name);
			if (ctl_render_fields(out, sub, sub_prefix, err) < 0)
				return -1;
			continue;
		}
		fprintf(out, "%s%s: ", prefix, f->name);
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			const char *s = *(char *const *)field_ptr(msg, f);
			ctl_put_safe(out, s && s[0] ? s : "-");
		} else if (scalar_text(msg, f, val, sizeof(val))) {
			fputs(val, out);
		}
		fputc('\n', out);
	}
	return 0;
}

int ctl_render_node_info(FILE *out, const Vmlet__V1__NodeInfo *m, struct vmlet_err *err)
{
	return ctl_render_fields(out, &m->base, "", err);
}

int ctl_render_node_stats(FILE *out, const Vmlet__V1__NodeStats *m, struct vmlet_err *err)
{
	return ctl_render_fields(out, &m->base, "", err);
}

int ctl_render_wake_instance(FILE *out, const Vmlet__V1__WakeInstanceResult *m,
			     struct vmlet_err *err)
{
	return ctl_render_fields(out, &m->base, "", err);
}

/* ---- lists --------------------------------------------------------------- */

int ctl_render_tenant_list(FILE *out, const Vmlet__V1__TenantListResult *m,
			   struct vmlet_err *err)
{
	static const char *const header[] = { "TENANT", "NET-ID", "SUBNET", "POOLS",
					      "INSTANCES" };
	struct table t = { .ncols = 5 };
	int ret = 0;

	if (m->n_tenants == 0) {
		fputs("no tenants\n", out);
		return 0;
	}
	ret = table_add(&t, header, err);
	for (size_t i = 0; ret == 0 && i < m->n_tenants; i++) {
		const Vmlet__V1__TenantSummary *s = m->tenants[i];
		char net[16], pools[16], insts[16];
		snprintf(net, sizeof(net), "%" PRIu32, s->tenant_net_id);
		snprintf(pools, sizeof(pools), "%" PRIu32, s->pool_count);
		snprintf(insts, sizeof(insts), "%" PRIu32, s->instance_count);
		const char *row[] = { s->tenant_id, net, s->ipv4_subnet, pools, insts };
		ret = table_add(&t, row, err);
	}
	if (ret == 0)
		ret = table_print(out, &t, err);
	table_free(&t);
	return ret;
}

/* A duration for a table cell, two units at most: "42s", "5m06s",
 * "3h04m", "2d03h". */
static void duration_text(uint64_t secs, char *buf, size_t len)
{
	if (secs < 60)
		snprintf(buf, len, "%" PRIu64 "s", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", secs / 60, secs % 60);
	else if (secs < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", secs / 3600, secs % 3600 / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", secs / 86400, secs % 86400 / 3600);
}

/* now - since, or "-" when since is unset; a timestamp ahead of our clock
 * (another host's skew) reads as 0s, never as a huge number. */
static void age_text(uint64_t now, uint64_t since, char *buf, size_t len)
{
	if (!since) {
		snprintf(buf, len, "-");
		return;
	}
	duration_text(now > since ? now - since : 0, buf, len);
}

int ctl_render_instance_list(FILE *out, const Vmlet__V1__InstanceListResult *m,
			     struct vmlet_err *err)
{
	return ctl_render_instance_list_at(out, m, (uint64_t)time(NULL), err);
}

int ctl_render_instance_list_at(FILE *out, const Vmlet__V1__InstanceListResult *m,
				uint64_t now_unix, struct vmlet_err *err)
{
	static const char *const header[] = { "TENANT", "POOL", "INSTANCE", "STATE",   "UPTIME",
					      "AGE",    "IPV4", "VCPUS",    "MEM-MIB", "PID",
					      "ERROR" };
	struct table t = { .ncols = 10 };
	int ret = 0;

	if (m->n_instances == 0) {
		fputs("no instances\n", out);
		return 0;
	}
	/* The ERROR column only when some instance has one. */
	for (size_t i = 0; i < m->n_instances; i++)
		if (m->instances[i]->last_error && m->instances[i]->last_error[0])
			t.ncols = 11;
	ret = table_add(&t, header, err);
	for (size_t i = 0; ret == 0 && i < m->n_instances; i++) {
		const Vmlet__V1__InstanceInfo *s = m->instances[i];
		char state[32], uptime[24], age[24], vcpus[16], mem[16], pid[16];
		enum_short_name(&vmlet__v1__instance_state__descriptor, (int)s->state, state,
				sizeof(state));
		/* UPTIME: how long it has been running since its last start,
		 * resume or wake (hostd's state_since); only a running
		 * instance has one. AGE: since it was created. */
		if (s->state == VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING)
			age_text(now_unix, s->state_since_unix, uptime, sizeof(uptime));
		else
			snprintf(uptime, sizeof(uptime), "-");
		age_text(now_unix, s->created_unix, age, sizeof(age));
		snprintf(vcpus, sizeof(vcpus), "%" PRIu32, s->vcpus);
		snprintf(mem, sizeof(mem), "%" PRIu32, s->mem_mib);
		snprintf(pid, sizeof(pid), "%" PRIu32, s->pid);
		const char *row[] = { s->tenant_id, s->pool_id, s->instance_id, state,
				      uptime,	    age,	s->ipv4_address, vcpus,
				      mem,	    s->pid ? pid : "-", s->last_error };
		ret = table_add(&t, row, err);
	}
	if (ret == 0)
		ret = table_print(out, &t, err);
	table_free(&t);
	return ret;
}

int ctl_render_reconcile_report(FILE *out, const Vmlet__V1__ReconcileReport *m,
				struct vmlet_err *err)
{
	if (ctl_render_fields(out, &m->base, "", err) < 0)
		return -1;
	fprintf(out, "errors: %zu\n", m->n_errors);
	for (size_t i = 0; i < m->n_errors; i++) {
		const Vmlet__V1__ReconcileError *e = m->errors[i];
		fputs("  ", out);
		ctl_put_safe(out, e->tenant_id[0] ? e->tenant_id : "-");
		fputc('/', out);
		ctl_put_safe(out, e->pool_id[0] ? e->pool_id : "-");
		fputc('/', out);
		ctl_put_safe(out, e->instance_id[0] ? e->instance_id : "-");
		fputs(": ", out);
		ctl_put_safe(out, e->message);
		fputc('\n', out);
	}
	fprintf(out, "deferred: %zu\n", m->n_deferred);
	for (size_t i = 0; i < m->n_deferred; i++) {
		fputs("  ", out);
		ctl_put_safe(out, m->deferred[i]);
		fputc('\n', out);
	}
	return 0;
}

void ctl_render_error(FILE *errf, const Vmlet__V1__Error *e)
{
	fprintf(errf, "error %" PRIu32 " %s: ", e->code, vmlet_code_name((int)e->code));
	ctl_put_safe(errf, e->message);
	fputc('\n', errf);
}

int ctl_render_json(FILE *out, const ProtobufCMessage *msg, struct vmlet_err *err)
{
	_cleanup_free_ char *text = vmlet_json_encode(msg, VMLET_JSON_PRETTY, err);

	if (!text)
		return vmlet_err_prefix(err, "encoding JSON: ");
	fputs(text, out);
	fputc('\n', out);
	return 0;
}

/* One line per check, PASS or FAIL, with what was expected and found
 * under every failure (and under every check with --deep, where hostd
 * sends the rules themselves); 1 when any check failed. */
int ctl_render_net_verify(FILE *out, const Vmlet__V1__NetVerifyResult *m, struct vmlet_err *err)
{
	for (size_t i = 0; i < m->n_checks; i++) {
		const Vmlet__V1__NetCheck *c = m->checks[i];

		fputs(c->ok ? "PASS " : "FAIL ", out);
		ctl_put_safe(out, c->name);
		fputc('\n', out);
		if (c->expected && c->expected[0]) {
			fputs("     expected: ", out);
			ctl_put_safe(out, c->expected);
			fputs("\n     found:    ", out);
			ctl_put_safe(out, c->found);
			fputc('\n', out);
		}
	}
	fprintf(out, "%zu checks, %u failed\n", m->n_checks, m->failed);
	return m->failed ? 1 : 0;
}

/* ---- responses ----------------------------------------------------------- */

typedef int (*render_fn)(FILE *out, const ProtobufCMessage *m, struct vmlet_err *err);

#define RENDER_ADAPTER(fn, type)                                                        \
	static int fn##_msg(FILE *out, const ProtobufCMessage *m, struct vmlet_err *err) \
	{                                                                               \
		return fn(out, (const type *)m, err);                                   \
	}
RENDER_ADAPTER(ctl_render_reconcile_report, Vmlet__V1__ReconcileReport)
RENDER_ADAPTER(ctl_render_node_info, Vmlet__V1__NodeInfo)
RENDER_ADAPTER(ctl_render_node_stats, Vmlet__V1__NodeStats)
RENDER_ADAPTER(ctl_render_tenant_list, Vmlet__V1__TenantListResult)
RENDER_ADAPTER(ctl_render_instance_list, Vmlet__V1__InstanceListResult)
RENDER_ADAPTER(ctl_render_wake_instance, Vmlet__V1__WakeInstanceResult)
RENDER_ADAPTER(ctl_render_net_verify, Vmlet__V1__NetVerifyResult)

/* How each kind of answer is shown to a person; errors go to stderr. */
static const struct {
	Vmlet__V1__AgentResponse__ResponseCase which;
	render_fn render;
} renderers[] = {
	{ VMLET__V1__AGENT_RESPONSE__RESPONSE_RECONCILE, ctl_render_reconcile_report_msg },
	{ VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO, ctl_render_node_info_msg },
	{ VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS, ctl_render_node_stats_msg },
	{ VMLET__V1__AGENT_RESPONSE__RESPONSE_TENANT_LIST, ctl_render_tenant_list_msg },
	{ VMLET__V1__AGENT_RESPONSE__RESPONSE_INSTANCE_LIST, ctl_render_instance_list_msg },
	{ VMLET__V1__AGENT_RESPONSE__RESPONSE_WAKE_INSTANCE, ctl_render_wake_instance_msg },
	{ VMLET__V1__AGENT_RESPONSE__RESPONSE_NET_VERIFY, ctl_render_net_verify_msg },
};

/* The oneof case is the member's field number. */
const ProtobufCMessage *ctl_response_body(const Vmlet__V1__AgentResponse *resp)
{
	const ProtobufCFieldDescriptor *f;

	if (resp->response_case == VMLET__V1__AGENT_RESPONSE__RESPONSE__NOT_SET)
		return NULL;
	f = protobuf_c_message_descriptor_get_field(resp->base.descriptor,
						    (unsigned)resp->response_case);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	return *(ProtobufCMessage *const *)((const char *)resp + f->offset);
}

const char *ctl_response_case_name(Vmlet__V1__AgentResponse__ResponseCase c)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field(&vmlet__v1__agent_response__descriptor,
							(unsigned)c);
	return f ? f->name : "nothing";
}

int ctl_render_response(FILE *out, FILE *errf, const Vmlet__V1__AgentResponse *resp,
			Vmlet__V1__AgentResponse__ResponseCase expect, bool json,
			struct vmlet_err *err)
{
	const ProtobufCMessage *body = ctl_response_body(resp);

	if (!body)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "agentd answered with an empty response");
	if (resp->response_case == VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR) {
		if (json) {
			if (ctl_render_json(out, body, err) < 0)
				return -1;
		} else {
			ctl_render_error(errf, resp->error);
		}
		return 1;
	}
	if (resp->response_case != expect)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "agentd answered with %s where %s was expected",
				     ctl_response_case_name(resp->response_case),
				     ctl_response_case_name(expect));
	if (json) {
		if (ctl_render_json(out, body, err) < 0)
			return -1;
		/* a failed check is a failure in JSON too (exit 1) */
		return resp->response_case == VMLET__V1__AGENT_RESPONSE__RESPONSE_NET_VERIFY &&
		       resp->net_verify->failed;
	}
	for (size_t i = 0; i < sizeof(renderers) / sizeof(renderers[0]); i++)
		if (renderers[i].which == resp->response_case)
			return renderers[i].render(out, body, err);
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "no way to show %s",
			     ctl_response_case_name(resp->response_case));
}
