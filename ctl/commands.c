#include "ctl/commands.h"

#include <jansson.h>
#include <string.h>

#include "certs/certs.h"
#include "ctl/output.h"
#include "ctl/reconcile.h"
#include "ctl/sign.h"
#include "ctl/transport.h"
#include "shared/safefile.h"
#include "shared/validate.h"
#include "shared/version.h"

#define OPTS(a) (a), (sizeof(a) / sizeof((a)[0]))

/* ---- local checks: a bad id never leaves this process ------------------- */

/* Copy a validated id (at most 63 chars; the bound is only a guard). */
static void copy_id(char *dst, size_t size, const char *s)
{
	size_t n = strnlen(s, size - 1);

	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int copy_checked_id(const char *what, const char *s, char *dst, size_t size,
			   struct vmlet_err *err)
{
	if (vmlet_validate_id(what, s, err) < 0)
		return -1;
	copy_id(dst, size, s);
	return 0;
}

static int check_instance_list(struct ctl_invocation *inv, struct vmlet_err *err)
{
	if (copy_checked_id("TENANT", inv->operands[0], inv->tenant, sizeof(inv->tenant), err) < 0)
		return -1;
	if (inv->n_operands > 1 &&
	    copy_checked_id("POOL", inv->operands[1], inv->pool, sizeof(inv->pool), err) < 0)
		return -1;
	return 0;
}

/* TENANT/POOL/INSTANCE: exactly three non-empty parts. */
static int check_wake(struct ctl_invocation *inv, struct vmlet_err *err)
{
	const char *s = inv->operands[0];
	const char *a = strchr(s, '/');
	const char *b = a ? strchr(a + 1, '/') : NULL;
	char part[3][CTL_ID_MAX + 2];
	const char *start[3], *end[3];

	if (!a || !b || strchr(b + 1, '/'))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "'%s': expected TENANT/POOL/INSTANCE (three parts separated by '/')",
				     s);
	start[0] = s, end[0] = a;
	start[1] = a + 1, end[1] = b;
	start[2] = b + 1, end[2] = b + 1 + strlen(b + 1);
	for (int i = 0; i < 3; i++) {
		size_t n = (size_t)(end[i] - start[i]);
		/* One byte beyond the longest valid id keeps "too long" visible
		 * to the validator without copying an unbounded string. */
		if (n > CTL_ID_MAX + 1)
			n = CTL_ID_MAX + 1;
		memcpy(part[i], start[i], n);
		part[i][n] = '\0';
	}
	if (copy_checked_id("TENANT", part[0], inv->tenant, sizeof(inv->tenant), err) < 0 ||
	    copy_checked_id("POOL", part[1], inv->pool, sizeof(inv->pool), err) < 0)
		return -1;
	if (vmlet_validate_instance_id("INSTANCE", part[2], err) < 0)
		return -1;
	copy_id(inv->instance, sizeof(inv->instance), part[2]);
	return 0;
}

static int check_net_verify(struct ctl_invocation *inv, struct vmlet_err *err)
{
	if (inv->n_operands > 0 &&
	    copy_checked_id("TENANT", inv->operands[0], inv->tenant, sizeof(inv->tenant), err) < 0)
		return -1;
	return 0;
}

static int check_certs_init(struct ctl_invocation *inv, struct vmlet_err *err)
{
	return vmlet_validate_id("--node-id", ctl_opt_value(inv, CTL_O_NODE_ID), err);
}

/* Signing is both or nothing: a key without the id agentd should look it
 * up by (or the reverse) is a usage error, as is a malformed id. */
static int check_reconcile(struct ctl_invocation *inv, struct vmlet_err *err)
{
	bool key = ctl_opt_given(inv, CTL_O_SIGN_KEY), id = ctl_opt_given(inv, CTL_O_KEY_ID);

	if (key != id)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "--sign-key and --key-id go together (missing %s)",
				     key ? "--key-id ID" : "--sign-key FILE");
	return id ? vmlet_validate_id("--key-id", ctl_opt_value(inv, CTL_O_KEY_ID), err) : 0;
}

/* ---- building requests -------------------------------------------------- */

static int build_node_info(const struct ctl_invocation *inv, struct ctl_request *r,
			   struct vmlet_err *err)
{
	ctl_request_node_info(r);
	return 0;
}

static int build_node_stats(const struct ctl_invocation *inv, struct ctl_request *r,
			    struct vmlet_err *err)
{
	ctl_request_node_stats(r);
	return 0;
}

static int build_tenant_list(const struct ctl_invocation *inv, struct ctl_request *r,
			     struct vmlet_err *err)
{
	ctl_request_tenant_list(r);
	return 0;
}

static int build_instance_list(const struct ctl_invocation *inv, struct ctl_request *r,
			       struct vmlet_err *err)
{
	return ctl_request_instance_list(r, inv->tenant, inv->pool, err);
}

static int build_wake(const struct ctl_invocation *inv, struct ctl_request *r,
		      struct vmlet_err *err)
{
	return ctl_request_wake_instance(r, inv->tenant, inv->pool, inv->instance, err);
}

static int build_net_verify(const struct ctl_invocation *inv, struct ctl_request *r,
			    struct vmlet_err *err)
{
	return ctl_request_net_verify(r, inv->tenant, ctl_opt_given(inv, CTL_O_DEEP), err);
}

static int build_reconcile(const struct ctl_invocation *inv, struct ctl_request *r,
			   struct vmlet_err *err)
{
	Vmlet__V1__DesiredState *ds = NULL;

	if (ctl_desired_state_load(ctl_opt_value(inv, CTL_O_FILE), &ds, err) < 0)
		return -1;
	ctl_request_reconcile(r, ds);
	if (!ctl_opt_given(inv, CTL_O_SIGN_KEY))
		return 0;
	/* Signed over vmlet_pack(ds): the exact bytes of the desired state
	 * inside the request being sent (agentd re-packs what it decodes and
	 * gets the same bytes; agentd/signature.h). */
	if (ctl_sign_desired_state(ctl_opt_value(inv, CTL_O_SIGN_KEY), ds, r->signature_bytes,
				   err) < 0)
		return vmlet_err_prefix(err, "--sign-key: ");
	vmlet__v1__signature__init(&r->signature);
	copy_id(r->signature_key_id, sizeof(r->signature_key_id), ctl_opt_value(inv, CTL_O_KEY_ID));
	r->signature.key_id = r->signature_key_id;
	r->signature.ed25519.data = r->signature_bytes;
	r->signature.ed25519.len = sizeof(r->signature_bytes);
	r->reconcile.signature = &r->signature;
	return 0;
}

/* ---- local commands ----------------------------------------------------- */

static int run_certs_init(const struct ctl_invocation *inv, FILE *out, FILE *errf)
{
	static const char *const files[] = { "ca.pem",		"ca.key",
					     "node.pem",	"node.key",
					     "coordinator.pem", "coordinator.key" };
	const char *dir = ctl_opt_value(inv, CTL_O_DIR);
	struct vmlet_err err = { 0 };

	if (vmlet_certs_init_dev(dir, ctl_opt_value(inv, CTL_O_NODE_ID), inv->opt[CTL_O_SAN].v,
				 inv->opt[CTL_O_SAN].n, ctl_opt_given(inv, CTL_O_FORCE), &err) < 0) {
		fprintf(errf, "vmletctl: certs init: %s\n", err.msg);
		return CTL_EXIT_REFUSED;
	}
	if (inv->json) {
		json_t *arr = json_array();
		for (size_t i = 0; arr && i < sizeof(files) / sizeof(files[0]); i++)
			json_array_append_new(arr, json_string(files[i]));
		json_t *o = json_pack("{s:s, s:o*}", "dir", dir, "files", arr);
		char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
		if (!text) {
			json_decref(o);
			fprintf(errf, "vmletctl: certs init: cannot encode JSON\n");
			return CTL_EXIT_REFUSED;
		}
		fprintf(out, "%s\n", text);
		free(text);
		json_decref(o);
		return CTL_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		fprintf(out, "wrote %s/%s\n", dir, files[i]);
	return CTL_EXIT_OK;
}

static int print_json(FILE *out, FILE *errf, const char *what, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;

	json_decref(o);
	if (!text) {
		fprintf(errf, "vmletctl: %s: cannot encode JSON\n", what);
		return CTL_EXIT_REFUSED;
	}
	fprintf(out, "%s\n", text);
	free(text);
	return CTL_EXIT_OK;
}

static int run_keys_gen(const struct ctl_invocation *inv, FILE *out, FILE *errf)
{
	const char *prefix = ctl_opt_value(inv, CTL_O_OUT);
	struct vmlet_err err = { 0 };

	if (ctl_keys_gen(prefix, ctl_opt_given(inv, CTL_O_FORCE), &err) < 0) {
		fprintf(errf, "vmletctl: keys gen: %s\n", err.msg);
		return CTL_EXIT_REFUSED;
	}
	if (inv->json)
		return print_json(out, errf, "keys gen",
				  json_pack("{s:s+, s:s+}", "key", prefix, ".key", "pub", prefix,
					    ".pub"));
	fprintf(out,
		"wrote %s.key (private, mode 0600)\n"
		"wrote %s.pub (install it on nodes as <trusted keys dir>/<key id>.pub)\n",
		prefix, prefix);
	return CTL_EXIT_OK;
}

/* Prints (or writes to -o) the base64 Ed25519 signature of the desired
 * state's canonical bytes: what `reconcile --sign-key` would attach. */
static int run_sign(const struct ctl_invocation *inv, FILE *out, FILE *errf)
{
	const char *file = ctl_opt_value(inv, CTL_O_OUT);
	Vmlet__V1__DesiredState *ds = NULL;
	uint8_t sig[CTL_ED25519_SIG_LEN];
	char b64[CTL_SIG_B64_MAX + 1];
	struct vmlet_err err = { 0 };
	size_t n;
	int rc = CTL_EXIT_REFUSED;

	if (ctl_desired_state_load(ctl_opt_value(inv, CTL_O_FILE), &ds, &err) < 0 ||
	    ctl_sign_desired_state(ctl_opt_value(inv, CTL_O_SIGNING_KEY), ds, sig, &err) < 0 ||
	    ctl_sig_base64(sig, b64, &err) < 0) {
		fprintf(errf, "vmletctl: sign: %s\n", err.msg);
		goto out;
	}
	n = strlen(b64);
	b64[n] = '\n';
	if (file && vmlet_write_atomic(file, b64, n + 1, 0644, &err) < 0) {
		fprintf(errf, "vmletctl: sign: %s\n", err.msg);
		goto out;
	}
	b64[n] = '\0';
	if (inv->json)
		rc = print_json(out, errf, "sign",
				json_pack("{s:s, s:s*}", "ed25519", b64, "file", file));
	else {
		if (!file)
			fprintf(out, "%s\n", b64);
		rc = CTL_EXIT_OK;
	}
out:
	if (ds)
		protobuf_c_message_free_unpacked(&ds->base, NULL);
	return rc;
}

static int run_help(const struct ctl_invocation *inv, FILE *out, FILE *errf)
{
	ctl_print_help(out);
	return CTL_EXIT_OK;
}

/* ---- the table ---------------------------------------------------------- */

static const struct ctl_cmd_opt reconcile_opts[] = {
	{ CTL_O_FILE, true },
	{ CTL_O_SIGN_KEY, false },
	{ CTL_O_KEY_ID, false },
};
static const struct ctl_cmd_opt keys_gen_opts[] = { { CTL_O_OUT, true }, { CTL_O_FORCE, false } };
static const struct ctl_cmd_opt sign_opts[] = {
	{ CTL_O_SIGNING_KEY, true },
	{ CTL_O_FILE, true },
	{ CTL_O_OUT, false },
};
static const struct ctl_cmd_opt net_verify_opts[] = { { CTL_O_DEEP, false } };
static const struct ctl_cmd_opt certs_init_opts[] = {
	{ CTL_O_DIR, true },
	{ CTL_O_NODE_ID, true },
	{ CTL_O_SAN, false },
	{ CTL_O_FORCE, false },
};

const struct ctl_command ctl_commands[] = {
	{ .words = { "node", "info" },
	  .synopsis = "",
	  .build = build_node_info,
	  .expect = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO,
	  .help = "this node's facts (CPU, memory, VMM, KVM, cgroups)" },
	{ .words = { "node", "stats" },
	  .synopsis = "",
	  .build = build_node_stats,
	  .expect = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS,
	  .help = "instance counts and resources in use" },
	{ .words = { "tenant", "list" },
	  .synopsis = "",
	  .build = build_tenant_list,
	  .expect = VMLET__V1__AGENT_RESPONSE__RESPONSE_TENANT_LIST,
	  .help = "the tenants on this node" },
	{ .words = { "instance", "list" },
	  .synopsis = "TENANT [POOL]",
	  .min_operands = 1,
	  .max_operands = 2,
	  .check = check_instance_list,
	  .build = build_instance_list,
	  .expect = VMLET__V1__AGENT_RESPONSE__RESPONSE_INSTANCE_LIST,
	  .help = "a tenant's instances (in one pool)" },
	{ .words = { "instance", "wake" },
	  .synopsis = "TENANT/POOL/INSTANCE",
	  .min_operands = 1,
	  .max_operands = 1,
	  .check = check_wake,
	  .build = build_wake,
	  .expect = VMLET__V1__AGENT_RESPONSE__RESPONSE_WAKE_INSTANCE,
	  .help = "wake a warm or sleeping instance" },
	{ .words = { "net", "verify" },
	  .synopsis = "[TENANT] [--deep]",
	  .min_operands = 0,
	  .max_operands = 1,
	  .opts = OPTS(net_verify_opts),
	  .check = check_net_verify,
	  .build = build_net_verify,
	  .expect = VMLET__V1__AGENT_RESPONSE__RESPONSE_NET_VERIFY,
	  .help = "check the tenant networks against the kernel (local admin; exit 1 if any "
		  "check fails)" },
	{ .words = { "reconcile" },
	  .synopsis = "-f FILE [--sign-key KEY --key-id ID]",
	  .opts = OPTS(reconcile_opts),
	  .check = check_reconcile,
	  .build = build_reconcile,
	  .expect = VMLET__V1__AGENT_RESPONSE__RESPONSE_RECONCILE,
	  .help = "send a desired state (JSON file, - for stdin), signed with KEY as ID" },
	{ .words = { "certs", "init" },
	  .synopsis = "--dir DIR --node-id ID [--san S]... [--force]",
	  .opts = OPTS(certs_init_opts),
	  .check = check_certs_init,
	  .run_local = run_certs_init,
	  .help = "create a development CA, node and coordinator certificates" },
	{ .words = { "keys", "gen" },
	  .synopsis = "--out PREFIX [--force]",
	  .opts = OPTS(keys_gen_opts),
	  .run_local = run_keys_gen,
	  .help = "make an Ed25519 key pair: PREFIX.key (0600) and PREFIX.pub" },
	{ .words = { "sign" },
	  .synopsis = "--key KEY -f FILE [-o OUT]",
	  .opts = OPTS(sign_opts),
	  .run_local = run_sign,
	  .help = "print (or write to OUT) the base64 signature of a desired state" },
	{ .words = { "help" },
	  .synopsis = "",
	  .run_local = run_help,
	  .help = "show this help" },
};
const size_t ctl_n_commands = sizeof(ctl_commands) / sizeof(ctl_commands[0]);

void ctl_command_name(const struct ctl_command *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", c->words[0], c->words[1] ? " " : "",
		 c->words[1] ? c->words[1] : "");
}

/* ---- help ---------------------------------------------------------------- */

static const char global_synopsis[] =
	"vmletctl [--socket PATH | --connect HOST:PORT --ca F --cert F --key F] [--json] "
	"[--timeout MS] COMMAND";

void ctl_print_help(FILE *f)
{
	fprintf(f, "usage: %s\n\ncommands:\n", global_synopsis);
	for (size_t i = 0; i < ctl_n_commands; i++) {
		const struct ctl_command *c = &ctl_commands[i];
		char line[128];
		ctl_command_name(c, line, sizeof(line));
		size_t n = strlen(line);
		if (c->synopsis[0])
			snprintf(line + n, sizeof(line) - n, " %s", c->synopsis);
		if (strlen(line) > 34)
			fprintf(f, "  %s\n  %-34s  %s\n", line, "", c->help);
		else
			fprintf(f, "  %-34s  %s\n", line, c->help);
	}
	fputs("\noptions:\n", f);
	for (size_t i = 0; i < ctl_n_opts; i++) {
		const struct ctl_opt *o = &ctl_opts[i];
		char name[48];
		if (!o->global || !o->help)
			continue;
		snprintf(name, sizeof(name), "%s%s%s", o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
		fprintf(f, "  %-34s  %s\n", name, o->help);
	}
	fputs("\nexit status: 0 ok; 1 the request was refused (by agentd, or locally\n"
	      "before sending), printed as \"error CODE NAME: MESSAGE\"; 2 usage error;\n"
	      "3 cannot connect, or the exchange with agentd failed.\n",
	      f);
}

void ctl_print_short_usage(FILE *f, const struct ctl_command *cmd)
{
	if (cmd) {
		char name[64];
		ctl_command_name(cmd, name, sizeof(name));
		fprintf(f, "usage: vmletctl [OPTIONS] %s%s%s\n", name, cmd->synopsis[0] ? " " : "",
			cmd->synopsis);
	} else {
		fprintf(f, "usage: %s\n", global_synopsis);
	}
	fputs("Try 'vmletctl --help' for more.\n", f);
}

/* ---- running a command -------------------------------------------------- */

/* A request that failed before it was sent is shown exactly like agentd's
 * refusal, so scripts see one format whoever said no. */
static int refuse_locally(const struct ctl_invocation *inv, const struct vmlet_err *e,
			  FILE *out, FILE *errf)
{
	Vmlet__V1__Error msg = VMLET__V1__ERROR__INIT;
	struct vmlet_err jerr = { 0 };

	msg.code = (uint32_t)(e->code ? e->code : VMLET_E_INVALID);
	msg.message = (char *)e->msg;
	if (inv->json && ctl_render_json(out, &msg.base, &jerr) == 0)
		return CTL_EXIT_REFUSED;
	ctl_render_error(errf, &msg);
	return CTL_EXIT_REFUSED;
}

static int transport_failure(const struct ctl_invocation *inv, const struct vmlet_err *e,
			     FILE *errf)
{
	fprintf(errf, "vmletctl: cannot connect to %s: ", inv->target.where);
	ctl_put_safe(errf, e->msg);
	fputc('\n', errf);
	return CTL_EXIT_TRANSPORT;
}

static int run_remote(const struct ctl_invocation *inv, FILE *out, FILE *errf)
{
	const struct ctl_command *cmd = inv->cmd;
	struct ctl_request req;
	Vmlet__V1__AgentResponse *resp = NULL;
	struct vmlet_err err = { 0 };
	int rc;

	ctl_request_init(&req);
	if (cmd->build(inv, &req, &err) < 0) {
		rc = refuse_locally(inv, &err, out, errf);
		goto out;
	}
	if (ctl_call(&inv->target, &req.msg, &resp, &err) < 0) {
		rc = transport_failure(inv, &err, errf);
		goto out;
	}
	if (resp->response_case != VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR &&
	    resp->response_case != cmd->expect) {
		vmlet_err_set(&err, VMLET_E_INVALID, 0, "agentd answered with %s where %s was expected",
			      ctl_response_case_name(resp->response_case),
			      ctl_response_case_name(cmd->expect));
		rc = transport_failure(inv, &err, errf);
		goto out;
	}
	rc = ctl_render_response(out, errf, resp, cmd->expect, inv->json, &err);
	if (rc < 0) {
		fprintf(errf, "vmletctl: %s\n", err.msg);
		rc = CTL_EXIT_REFUSED;
	} else {
		rc = rc ? CTL_EXIT_REFUSED : CTL_EXIT_OK;
	}
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	ctl_request_clear(&req);
	return rc;
}

int ctl_main(int argc, char *const argv[], const char *env_socket, FILE *out, FILE *errf)
{
	struct ctl_invocation inv;
	struct vmlet_err err = { 0 };
	int rc;

	if (ctl_parse_args(argc, argv, env_socket, &inv, &err) < 0) {
		fprintf(errf, "vmletctl: %s\n", err.msg);
		ctl_print_short_usage(errf, inv.cmd);
		return CTL_EXIT_USAGE;
	}
	if (inv.version) {
		fprintf(out, "vmletctl %s\n", VMLET_VERSION);
		return CTL_EXIT_OK;
	}
	if (inv.help) {
		ctl_print_help(out);
		return CTL_EXIT_OK;
	}
	rc = inv.cmd->run_local ? inv.cmd->run_local(&inv, out, errf) : run_remote(&inv, out, errf);
	if (fflush(out) != 0 && rc == CTL_EXIT_OK) {
		fprintf(errf, "vmletctl: writing output failed\n");
		rc = CTL_EXIT_REFUSED;
	}
	return rc;
}
