/* vmletctl keys gen / sign / reconcile --sign-key, through ctl_main and
 * the command table; signatures are checked with wolfSSL's own verify
 * against the .pub file the command wrote. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ed25519.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ftw.h>

#include "ctl/args.h"
#include "ctl/commands.h"
#include "ctl/reconcile.h"
#include "ctl/request.h"
#include "ctl/sign.h"
#include "rpc/strict.h"
#include "shared/safefile.h"

static const char desired_json[] =
	"{\"schema_version\":1,\"node_id\":\"node-1\",\"sequence\":7,\"tenants\":[{\"tenant_id\":"
	"\"acme\",\"network\":{\"tenant_net_id\":10,\"ipv4_subnet\":\"10.10.0.0/24\"},\"quotas\":"
	"{\"max_vcpus\":8,\"max_mem_mib\":4096,\"max_running\":4,\"max_warm\":2,\"max_pools\":2,"
	"\"max_instances_per_pool\":8,\"max_disk_gib\":10},\"pools\":[{\"pool_id\":\"web\","
	"\"instance_resources\":{\"vcpus\":1,\"mem_mib\":256},\"desired_counts\":{\"running\":2}}]}]}";

struct fx {
	char dir[64];
	char prefix[96], key[104], pub[104], desired[104], sig[104];
	char *out, *err;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* Run vmletctl with a NULL-terminated argument list; keeps stdout/stderr. */
static int ctl(struct fx *f, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	size_t ol = 0, el = 0;

	argv[argc++] = "vmletctl";
	va_start(ap, f);
	for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	free(f->out);
	free(f->err);
	FILE *o = open_memstream(&f->out, &ol), *e = open_memstream(&f->err, &el);
	int rc = ctl_main(argc, argv, "/nonexistent/agentd.sock", o, e);
	fclose(o);
	fclose(e);
	return rc;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vmlet_err err = { 0 };

	snprintf(f->dir, sizeof(f->dir), "/tmp/vmlet-ctlsign.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->prefix, sizeof(f->prefix), "%s/coord", f->dir);
	snprintf(f->key, sizeof(f->key), "%s.key", f->prefix);
	snprintf(f->pub, sizeof(f->pub), "%s.pub", f->prefix);
	snprintf(f->desired, sizeof(f->desired), "%s/desired.json", f->dir);
	snprintf(f->sig, sizeof(f->sig), "%s/desired.sig", f->dir);
	assert_int_equal(vmlet_write_atomic(f->desired, desired_json, strlen(desired_json), 0644,
					    &err),
			 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->out);
	free(f->err);
	free(f);
	return 0;
}

/* Verify sig over data with the key in the .pub file, by wolfSSL directly. */
static bool verifies(const char *pub_path, const uint8_t *data, size_t len, const uint8_t *sig,
		     size_t sig_len)
{
	char *text = NULL;
	size_t tlen = 0;
	byte pub[40];
	word32 plen = sizeof(pub);
	struct vmlet_err err = { 0 };
	ed25519_key key;
	int ok = 0;

	assert_int_equal(vmlet_read_file(pub_path, 4096, &text, &tlen, &err), 0);
	assert_int_equal(Base64_Decode((byte *)text, (word32)tlen - 1, pub, &plen), 0);
	free(text);
	assert_int_equal(plen, 32);
	assert_int_equal(wc_ed25519_init(&key), 0);
	assert_int_equal(wc_ed25519_import_public(pub, 32, &key), 0);
	int ret = wc_ed25519_verify_msg(sig, (word32)sig_len, data, (word32)len, &ok, &key);
	wc_ed25519_free(&key);
	return ret == 0 && ok == 1;
}

static void load(const char *path, Vmlet__V1__DesiredState **ds)
{
	struct vmlet_err err = { 0 };
	assert_int_equal(ctl_desired_state_load(path, ds, &err), 0);
}

static void keys_gen_command(void **state)
{
	struct fx *f = *state;
	struct stat st;

	assert_int_equal(ctl(f, "keys", "gen", "--out", f->prefix, NULL), CTL_EXIT_OK);
	assert_non_null(strstr(f->out, "coord.key (private, mode 0600)"));
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(f->pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* no overwrite without --force */
	assert_int_equal(ctl(f, "keys", "gen", "--out", f->prefix, NULL), CTL_EXIT_REFUSED);
	assert_non_null(strstr(f->err, "exists (use --force"));
	assert_int_equal(ctl(f, "--json", "keys", "gen", "-o", f->prefix, "--force", NULL),
			 CTL_EXIT_OK);
	assert_non_null(strstr(f->out, "\"pub\": \""));
	/* usage */
	assert_int_equal(ctl(f, "keys", "gen", NULL), CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "'keys gen' needs --out PATH"));
	assert_int_equal(ctl(f, "keys", NULL), CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "'keys' needs a subcommand: gen"));
}

static void sign_command(void **state)
{
	struct fx *f = *state;
	Vmlet__V1__DesiredState *ds = NULL;
	uint8_t *bytes = NULL, sig[80];
	size_t len = 0;
	word32 slen = sizeof(sig);
	struct vmlet_err err = { 0 };
	char *file = NULL;
	size_t flen = 0;

	assert_int_equal(ctl(f, "keys", "gen", "--out", f->prefix, NULL), CTL_EXIT_OK);
	assert_int_equal(ctl(f, "sign", "--key", f->key, "-f", f->desired, NULL), CTL_EXIT_OK);
	/* one line of base64: a 64-byte signature over the packed desired state */
	assert_int_equal(strlen(f->out), 89);
	assert_int_equal(Base64_Decode((byte *)f->out, 88, sig, &slen), 0);
	assert_int_equal(slen, 64);
	load(f->desired, &ds);
	assert_int_equal(vmlet_pack(&ds->base, &bytes, &len, &err), 0);
	assert_true(verifies(f->pub, bytes, len, sig, slen));
	bytes[len / 2] ^= 4;
	assert_false(verifies(f->pub, bytes, len, sig, slen));
	free(bytes);
	protobuf_c_message_free_unpacked(&ds->base, NULL);

	/* -o writes the same line to a file; --key may be given as --key=F */
	char *line = strdup(f->out);
	assert_int_equal(ctl(f, "sign", "--key=", NULL), CTL_EXIT_USAGE);
	assert_int_equal(ctl(f, "sign", "-f", f->desired, "--key", f->key, "-o", f->sig, NULL),
			 CTL_EXIT_OK);
	assert_string_equal(f->out, "");
	assert_int_equal(vmlet_read_file(f->sig, 4096, &file, &flen, &err), 0);
	assert_string_equal(file, line);
	free(file);
	free(line);

	/* refusals */
	assert_int_equal(ctl(f, "sign", "-f", f->desired, NULL), CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "'sign' needs --key FILE"));
	/* before the command, --key is the TLS client key */
	assert_int_equal(ctl(f, "--key", f->key, "sign", "-f", f->desired, NULL), CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "--key only apply with --connect"));
	assert_int_equal(chmod(f->key, 0644), 0);
	assert_int_equal(ctl(f, "sign", "--key", f->key, "-f", f->desired, NULL), CTL_EXIT_REFUSED);
	assert_non_null(strstr(f->err, "accessible by group or others"));
	assert_int_equal(chmod(f->key, 0600), 0);
	assert_int_equal(ctl(f, "sign", "--key", f->key, "-f", f->pub, NULL), CTL_EXIT_REFUSED);
	assert_non_null(strstr(f->err, "vmletctl: sign: "));
}

static const struct ctl_command *command(const char *w0)
{
	for (size_t i = 0; i < ctl_n_commands; i++)
		if (strcmp(ctl_commands[i].words[0], w0) == 0)
			return &ctl_commands[i];
	fail_msg("no command %s", w0);
	return NULL;
}

/* reconcile --sign-key: the request carries {key_id, ed25519} over the
 * exact bytes of the desired state it carries. */
static void reconcile_signs_the_request(void **state)
{
	struct fx *f = *state;
	struct ctl_invocation inv;
	struct ctl_request req;
	struct vmlet_err err = { 0 };
	uint8_t *ds_bytes = NULL, *wire = NULL;
	size_t ds_len = 0, wire_len = 0;
	char *argv[] = { "vmletctl", "--connect", "node:7443", "--ca", "ca.pem", "--cert", "c.pem",
			 "--key", "tls.key", "reconcile", "-f", f->desired, "--sign-key", f->key,
			 "--key-id", "coord-1", NULL };

	assert_int_equal(ctl(f, "keys", "gen", "--out", f->prefix, NULL), CTL_EXIT_OK);
	assert_int_equal(ctl_parse_args(16, argv, NULL, &inv, &err), 0);
	assert_ptr_equal(inv.cmd, command("reconcile"));
	assert_string_equal(inv.target.key, "tls.key"); /* the TLS key stays the TLS key */
	ctl_request_init(&req);
	if (inv.cmd->build(&inv, &req, &err) < 0)
		fail_msg("%s", err.msg);
	Vmlet__V1__Signature *sig = req.msg.reconcile->signature;
	assert_non_null(sig);
	assert_string_equal(sig->key_id, "coord-1");
	assert_int_equal(sig->ed25519.len, 64);
	assert_int_equal(vmlet_pack(&req.msg.reconcile->desired_state->base, &ds_bytes, &ds_len,
				    &err),
			 0);
	assert_true(verifies(f->pub, ds_bytes, ds_len, sig->ed25519.data, sig->ed25519.len));
	/* those bytes are, verbatim, inside the request that goes out */
	assert_int_equal(vmlet_pack(&req.msg.base, &wire, &wire_len, &err), 0);
	assert_non_null(memmem(wire, wire_len, ds_bytes, ds_len));
	free(ds_bytes);
	free(wire);
	ctl_request_clear(&req);

	/* unsigned unless asked */
	char *plain[] = { "vmletctl", "reconcile", "-f", f->desired, NULL };
	assert_int_equal(ctl_parse_args(4, plain, NULL, &inv, &err), 0);
	ctl_request_init(&req);
	assert_int_equal(inv.cmd->build(&inv, &req, &err), 0);
	assert_null(req.msg.reconcile->signature);
	ctl_request_clear(&req);

	/* both or neither, and a well-formed id */
	assert_int_equal(ctl(f, "reconcile", "-f", f->desired, "--sign-key", f->key, NULL),
			 CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "--sign-key and --key-id go together (missing --key-id ID)"));
	assert_int_equal(ctl(f, "reconcile", "-f", f->desired, "--key-id", "coord-1", NULL),
			 CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "(missing --sign-key FILE)"));
	assert_int_equal(ctl(f, "reconcile", "-f", f->desired, "--sign-key", f->key, "--key-id",
			     "../x", NULL),
			 CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "--key-id: \"../x\" must match"));
	/* a bad signing key is refused before anything is sent */
	assert_int_equal(ctl(f, "reconcile", "-f", f->desired, "--sign-key", f->pub, "--key-id",
			     "coord-1", NULL),
			 CTL_EXIT_REFUSED);
	assert_non_null(strstr(f->err, "--sign-key: "));
	/* sign-only options do not leak into other commands */
	assert_int_equal(ctl(f, "node", "info", "--key-id", "x", NULL), CTL_EXIT_USAGE);
	assert_non_null(strstr(f->err, "option --key-id does not apply to 'node info'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(keys_gen_command, setup, teardown),
		cmocka_unit_test_setup_teardown(sign_command, setup, teardown),
		cmocka_unit_test_setup_teardown(reconcile_signs_the_request, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
