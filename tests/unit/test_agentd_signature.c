/* Signed desired state: agentd verifies what vmletctl signs.
 *
 * agentd's link layer does not include ctl/, and this test has to prove
 * the two sides agree (keys from `vmletctl keys gen`, signatures from
 * `vmletctl sign`), so the signer's source is compiled into this test. It
 * uses only shared/, rpc/ and wolfSSL, which agentd's layer links. */
#include "ctl/sign.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>

#include "agentd/signature.h"
#include "rpc/json.h"
#include "rpc/strict.h"
#include "shared/validate.h"

static const char desired_json[] =
	"{\"schema_version\":1,\"node_id\":\"node-1\",\"sequence\":42,"
	"\"prune_unknown_pools\":true,\"tenants\":[{\"tenant_id\":\"acme\","
	"\"network\":{\"tenant_net_id\":10,\"ipv4_subnet\":\"10.10.0.0/24\"},"
	"\"quotas\":{\"max_vcpus\":8,\"max_mem_mib\":4096,\"max_running\":4,\"max_warm\":2,"
	"\"max_pools\":2,\"max_instances_per_pool\":8,\"max_disk_gib\":10},"
	"\"pools\":[{\"pool_id\":\"web\",\"flake_ref\":\"github:x/y\",\"profile\":\"\","
	"\"image\":\"base\",\"instance_resources\":{\"vcpus\":1,\"mem_mib\":256},"
	"\"desired_counts\":{\"running\":2,\"warm\":1,\"sleeping\":0},"
	"\"runtime_policy\":{\"min_running_seconds\":0,\"graceful_shutdown_seconds\":5}}]},"
	"{\"tenant_id\":\"beta\",\"network\":{\"tenant_net_id\":11,\"ipv4_subnet\":"
	"\"10.11.0.0/24\"},\"quotas\":{\"max_pools\":1},\"pools\":[]}]}";

struct fixture {
	char dir[64];     /* mkdtemp'd: keys/ (trusted, root 0755) and the key pair */
	char keys[96];    /* the trusted keys directory */
	char prefix[96];  /* <dir>/coord: coord.key, coord.pub */
	char keyfile[104];
	Vmlet__V1__DesiredState *ds;
	uint8_t sig[CTL_ED25519_SIG_LEN];
	Vmlet__V1__Signature msg;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void install_pub(struct fixture *f, const char *key_id)
{
	char src[128], dst[160], *text = NULL;
	size_t len = 0;
	struct vmlet_err err = { 0 };

	snprintf(src, sizeof(src), "%s.pub", f->prefix);
	snprintf(dst, sizeof(dst), "%s/%s.pub", f->keys, key_id);
	assert_int_equal(vmlet_read_file(src, 4096, &text, &len, &err), 0);
	assert_int_equal(vmlet_write_atomic(dst, text, len, 0644, &err), 0);
	free(text);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vmlet_err err = { 0 };

	snprintf(f->dir, sizeof(f->dir), "/tmp/vmlet-sig.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->dir);
	assert_int_equal(mkdir(f->keys, 0755), 0);
	assert_int_equal(chmod(f->keys, 0755), 0);
	snprintf(f->prefix, sizeof(f->prefix), "%s/coord", f->dir);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s.key", f->prefix);
	if (ctl_keys_gen(f->prefix, false, &err) < 0)
		fail_msg("keys gen: %s", err.msg);
	install_pub(f, "coord-1");
	f->ds = (Vmlet__V1__DesiredState *)vmlet_json_decode(&vmlet__v1__desired_state__descriptor,
							     desired_json, strlen(desired_json), &err);
	if (!f->ds)
		fail_msg("desired: %s", err.msg);
	assert_int_equal(vmlet_validate_desired_state(f->ds, "node-1", &err), 0);
	if (ctl_sign_desired_state(f->keyfile, f->ds, f->sig, &err) < 0)
		fail_msg("sign: %s", err.msg);
	vmlet__v1__signature__init(&f->msg);
	f->msg.key_id = "coord-1";
	f->msg.ed25519.data = f->sig;
	f->msg.ed25519.len = sizeof(f->sig);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	protobuf_c_message_free_unpacked(&f->ds->base, NULL);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

#define NEED_ROOT()                                                                       \
	do {                                                                              \
		if (geteuid() != 0) {                                                     \
			print_message("skipped: trusted keys must be root-owned (not root)\n"); \
			skip();                                                           \
		}                                                                         \
	} while (0)

static void expect_refused(int rc, const struct vmlet_err *err, int code, const char *needle)
{
	assert_int_equal(rc, -1);
	if (err->code != code || !strstr(err->msg, needle))
		fail_msg("expected %d containing \"%s\", got %d: %s", code, needle, err->code,
			 err->msg);
}

/* ---- the key pair ------------------------------------------------------------------ */

static void keys_gen_writes_modes_and_refuses_overwrite(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	struct stat st;
	char pub[128];
	uint8_t raw[32];
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(stat(f->keyfile, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(pub, sizeof(pub), "%s.pub", f->prefix);
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* the .pub file is what agentd parses */
	assert_int_equal(vmlet_read_file(pub, 4096, &text, &len, &err), 0);
	assert_int_equal(len, 45);
	assert_int_equal(agentd_pubkey_parse(text, len, pub, raw, &err), 0);
	free(text);
	/* no silent overwrite */
	expect_refused(ctl_keys_gen(f->prefix, false, &err), &err, VMLET_E_CONFLICT, "exists");
	assert_int_equal(ctl_keys_gen(f->prefix, true, &err), 0);
	/* a new pair: the old signature no longer verifies with the new key */
	if (geteuid() == 0) {
		install_pub(f, "coord-1");
		expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
			       VMLET_E_FORBIDDEN, "bad signature");
	}
}

static void private_key_must_be_private(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	uint8_t sig[CTL_ED25519_SIG_LEN];

	assert_int_equal(chmod(f->keyfile, 0640), 0);
	expect_refused(ctl_sign_bytes(f->keyfile, (const uint8_t *)"x", 1, sig, &err), &err,
		       VMLET_E_FORBIDDEN, "accessible by group or others (mode 0640)");
	assert_int_equal(chmod(f->keyfile, 0600), 0);
	assert_int_equal(ctl_sign_bytes(f->keyfile, (const uint8_t *)"x", 1, sig, &err), 0);
	/* a .pub is not a private key file of the right shape either way */
	char bad[128];
	snprintf(bad, sizeof(bad), "%s/bad.key", f->dir);
	assert_int_equal(vmlet_write_atomic(bad, "not base64\n", 11, 0600, &err), 0);
	expect_refused(ctl_sign_bytes(bad, (const uint8_t *)"x", 1, sig, &err), &err,
		       VMLET_E_INVALID, "not an Ed25519 key file");
	snprintf(bad, sizeof(bad), "%s/missing.key", f->dir);
	expect_refused(ctl_sign_bytes(bad, (const uint8_t *)"x", 1, sig, &err), &err,
		       VMLET_E_INVALID, "open");
}

/* ---- verification ------------------------------------------------------------------ */

static void signed_state_verifies(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };

	NEED_ROOT();
	if (agentd_signature_check(f->ds, &f->msg, f->keys, true, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(agentd_signature_check(f->ds, &f->msg, f->keys, false, &err), 0);
}

static void flipped_bits_are_refused(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	uint8_t *bytes = NULL;
	size_t len = 0;

	NEED_ROOT();
	assert_int_equal(agentd_signature_payload(f->ds, &bytes, &len, &err), 0);
	assert_int_equal(agentd_signature_verify(bytes, len, &f->msg, f->keys, &err), 0);
	for (size_t bit = 0; bit < len * 8; bit += 61) {
		bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		expect_refused(agentd_signature_verify(bytes, len, &f->msg, f->keys, &err), &err,
			       VMLET_E_FORBIDDEN, "bad signature");
		bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < CTL_ED25519_SIG_LEN * 8; bit += 37) {
		f->sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		expect_refused(agentd_signature_verify(bytes, len, &f->msg, f->keys, &err), &err,
			       VMLET_E_FORBIDDEN, "bad signature");
		f->sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* a change in the desired state itself */
	f->ds->sequence++;
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, false, &err), &err,
		       VMLET_E_FORBIDDEN, "bad signature");
	f->ds->sequence--;
	free(bytes);
}

static void bad_length_and_unknown_key(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };

	NEED_ROOT();
	f->msg.ed25519.len = 63;
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "bad length 63 bytes");
	f->msg.ed25519.len = 0;
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "bad length 0 bytes");
	f->msg.ed25519.len = 64;
	f->msg.key_id = "coord-2";
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "unknown key id \"coord-2\"");
	/* signed with one trusted key, claimed as another */
	install_pub(f, "coord-2");
	assert_int_equal(ctl_keys_gen(f->prefix, true, &err), 0);
	install_pub(f, "coord-2");
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "bad signature");
}

static void malformed_key_ids_are_400(void **state)
{
	static const char *const bad[] = { "../x", "..", "a/b", "", "Coord", "-x",
					   "x-", "a.pub", "/etc/passwd" };
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	char long_id[70];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->msg.key_id = (char *)bad[i];
		expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
			       VMLET_E_INVALID, "signature.key_id");
	}
	memset(long_id, 'a', 64);
	long_id[64] = '\0';
	f->msg.key_id = long_id;
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_INVALID, "signature.key_id");
}

static void unsafe_key_dir_and_files_are_refused(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	char path[160], link[160];

	NEED_ROOT();
	assert_int_equal(chmod(f->keys, 0775), 0);
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "writable by its group (mode 0775)");
	assert_int_equal(chmod(f->keys, 0757), 0);
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "writable by others");
	assert_int_equal(chmod(f->keys, 0755), 0);
	assert_int_equal(chown(f->keys, 65534, 65534), 0);
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "owned by uid 65534, not root");
	assert_int_equal(chown(f->keys, 0, 0), 0);
	assert_int_equal(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), 0);

	/* the key file itself */
	snprintf(path, sizeof(path), "%s/coord-1.pub", f->keys);
	assert_int_equal(chmod(path, 0664), 0);
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "trusted key");
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(chown(path, 65534, 0), 0);
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "not root");
	assert_int_equal(chown(path, 0, 0), 0);

	/* a symlink planted as a key, pointing at a valid key elsewhere */
	snprintf(link, sizeof(link), "%s/linked.pub", f->keys);
	snprintf(path, sizeof(path), "%s.pub", f->prefix);
	assert_int_equal(symlink(path, link), 0);
	f->msg.key_id = "linked";
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "symbolic link");
	/* a directory where a key should be */
	snprintf(path, sizeof(path), "%s/dir.pub", f->keys);
	assert_int_equal(mkdir(path, 0755), 0);
	f->msg.key_id = "dir";
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "not a regular file");
	/* a key file that is not a key */
	snprintf(path, sizeof(path), "%s/junk.pub", f->keys);
	assert_int_equal(vmlet_write_atomic(path, "hello\n", 6, 0644, &err), 0);
	f->msg.key_id = "junk";
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "not an Ed25519 public key");
	/* no directory configured, or a missing one */
	f->msg.key_id = "coord-1";
	expect_refused(agentd_signature_check(f->ds, &f->msg, NULL, false, &err), &err,
		       VMLET_E_FORBIDDEN, "no trusted keys directory");
	snprintf(path, sizeof(path), "%s/nope", f->dir);
	expect_refused(agentd_signature_check(f->ds, &f->msg, path, false, &err), &err,
		       VMLET_E_FORBIDDEN, "trusted keys directory");
}

static void pubkey_format_is_strict(void **state)
{
	struct vmlet_err err = { 0 };
	uint8_t raw[32];
	/* 32 zero bytes */
	const char *ok = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

	assert_int_equal(agentd_pubkey_parse(ok, strlen(ok), "k", raw, &err), 0);
	assert_int_equal(agentd_pubkey_parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 45, "k",
					     raw, &err),
			 0);
	static const char *const bad[] = {
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"AAAAAAAAAAAAAAAAAAAA\nAAAAAAAAAAAAAAAAAAAAAA=",
		" AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-=",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused(agentd_pubkey_parse(bad[i], strlen(bad[i]), "k", raw, &err), &err,
			       VMLET_E_FORBIDDEN, "not an Ed25519 public key");
}

static void production_requires_a_signature(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };

	expect_refused(agentd_signature_check(f->ds, NULL, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "signature_required(production)");
	/* development: unsigned is accepted, but a bad signature is not */
	assert_int_equal(agentd_signature_check(f->ds, NULL, f->keys, false, &err), 0);
	if (geteuid() != 0)
		return;
	f->sig[0] ^= 1;
	expect_refused(agentd_signature_check(f->ds, &f->msg, f->keys, false, &err), &err,
		       VMLET_E_FORBIDDEN, "bad signature");
	f->sig[0] ^= 1;
}

/* ---- the bytes: what vmletctl signs is what agentd re-packs ---------------------------------- */

static void repack_gives_the_signed_bytes(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__ReconcileRequest rec = VMLET__V1__RECONCILE_REQUEST__INIT;
	uint8_t *signed_bytes = NULL, *wire = NULL, *repacked = NULL;
	size_t signed_len = 0, wire_len = 0, repacked_len = 0;

	/* vmletctl: JSON -> message -> the signed bytes, sent in a request */
	assert_int_equal(ctl_sign_payload(f->ds, &signed_bytes, &signed_len, &err), 0);
	rec.desired_state = f->ds;
	rec.signature = &f->msg;
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE;
	req.reconcile = &rec;
	assert_int_equal(vmlet_pack(&req.base, &wire, &wire_len, &err), 0);
	/* the signed bytes appear verbatim inside what goes on the wire */
	assert_non_null(memmem(wire, wire_len, signed_bytes, signed_len));

	/* agentd: strict decode of the request, re-pack of its desired state */
	Vmlet__V1__AgentRequest *got = (Vmlet__V1__AgentRequest *)vmlet_strict_unpack(
		&vmlet__v1__agent_request__descriptor, wire, wire_len, &err);
	assert_non_null(got);
	assert_int_equal(agentd_signature_payload(got->reconcile->desired_state, &repacked,
						  &repacked_len, &err),
			 0);
	assert_int_equal(repacked_len, signed_len);
	assert_memory_equal(repacked, signed_bytes, signed_len);
	if (geteuid() == 0)
		assert_int_equal(agentd_signature_check(got->reconcile->desired_state,
							got->reconcile->signature, f->keys, true, &err),
				 0);
	/* and a second round trip changes nothing */
	free(wire);
	assert_int_equal(vmlet_pack(&got->base, &wire, &wire_len, &err), 0);
	Vmlet__V1__AgentRequest *again = (Vmlet__V1__AgentRequest *)vmlet_strict_unpack(
		&vmlet__v1__agent_request__descriptor, wire, wire_len, &err);
	assert_non_null(again);
	free(repacked);
	assert_int_equal(agentd_signature_payload(again->reconcile->desired_state, &repacked,
						  &repacked_len, &err),
			 0);
	assert_memory_equal(repacked, signed_bytes, signed_len);
	protobuf_c_message_free_unpacked(&again->base, NULL);
	protobuf_c_message_free_unpacked(&got->base, NULL);
	free(signed_bytes);
	free(wire);
	free(repacked);
}

/* The canonical-encoding requirement, shown: a sender that writes a
 * default value explicitly (prune_unknown_tenants = false) signs bytes
 * agentd cannot reproduce, and is refused -- never silently accepted. */
static void non_canonical_signed_bytes_are_refused(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	uint8_t *canon = NULL, *odd, sig[CTL_ED25519_SIG_LEN];
	size_t len = 0;

	NEED_ROOT();
	assert_int_equal(ctl_sign_payload(f->ds, &canon, &len, &err), 0);
	odd = malloc(len + 2);
	memcpy(odd, canon, len);
	odd[len] = 0x20; /* field 4 (prune_unknown_tenants), varint */
	odd[len + 1] = 0x00;
	Vmlet__V1__DesiredState *ds = (Vmlet__V1__DesiredState *)vmlet_strict_unpack(
		&vmlet__v1__desired_state__descriptor, odd, len + 2, &err);
	assert_non_null(ds); /* a valid encoding ... */
	assert_int_equal(ctl_sign_bytes(f->keyfile, odd, len + 2, sig, &err), 0);
	f->msg.ed25519.data = sig;
	expect_refused(agentd_signature_check(ds, &f->msg, f->keys, true, &err), &err,
		       VMLET_E_FORBIDDEN, "bad signature"); /* ... but not the canonical one */
	f->msg.ed25519.data = f->sig;
	protobuf_c_message_free_unpacked(&ds->base, NULL);
	free(odd);
	free(canon);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(keys_gen_writes_modes_and_refuses_overwrite, setup,
						teardown),
		cmocka_unit_test_setup_teardown(private_key_must_be_private, setup, teardown),
		cmocka_unit_test_setup_teardown(signed_state_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(flipped_bits_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_length_and_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_key_ids_are_400, setup, teardown),
		cmocka_unit_test_setup_teardown(unsafe_key_dir_and_files_are_refused, setup, teardown),
		cmocka_unit_test(pubkey_format_is_strict),
		cmocka_unit_test_setup_teardown(production_requires_a_signature, setup, teardown),
		cmocka_unit_test_setup_teardown(repack_gives_the_signed_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(non_canonical_signed_bytes_are_refused, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
