/* hostd/images.c: a good image opens with hashed fds; everything hostile
 * is refused with a message naming what and why: bad image names, path
 * traversal and odd names in the manifest, symlinked image files and
 * dirs, FIFOs, hash mismatches, unknown/duplicate keys, wrong types,
 * oversize manifests, untrusted ownership. deploy/install-image.sh builds
 * a store image_open accepts. Runs as any user (the store must be owned
 * by the caller); the foreign-owner case needs root. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "hostd/images.h"

static char tmp[] = "/tmp/test_hostd_images.XXXXXX";
static char store[PATH_MAX];

static const char kernel_data[] = "not really a kernel\n";
static const char initrd_data[] = "not really an initrd\n";

static void fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char d[32];

	assert_int_equal(wc_Sha256Hash((const unsigned char *)data, (word32)len, d), 0);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void put(const char *dir, const char *name, const char *data, size_t len, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	fmt(path, sizeof(path), "%s/%s", dir, name);
	/* Replace, not rewrite: the old file may be 0444 (and we not root). */
	if (unlink(path) < 0)
		assert_int_equal(errno, ENOENT);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* An image dir with vmlinuz + initrd.gz and the given manifest; NULL
 * manifest: a correct one. Returns the image dir. */
static const char *make_image(const char *name, const char *manifest)
{
	static char dir[PATH_MAX];
	char kh[65], ih[65], m[2048];

	fmt(dir, sizeof(dir), "%s/%s", store, name);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	put(dir, "vmlinuz", kernel_data, strlen(kernel_data), 0444);
	put(dir, "initrd.gz", initrd_data, strlen(initrd_data), 0444);
	if (!manifest) {
		sha256_hex(kernel_data, strlen(kernel_data), kh);
		sha256_hex(initrd_data, strlen(initrd_data), ih);
		fmt(m, sizeof(m),
		    "{\"name\": \"%s\", \"kernel\": \"vmlinuz\", \"initrd\": \"initrd.gz\", "
		    "\"rootfs\": \"\", \"sha256\": {\"vmlinuz\": \"%s\", \"initrd.gz\": \"%s\"}, "
		    "\"cmdline\": \"console=ttyS0 panic=-1\"}",
		    name, kh, ih);
		manifest = m;
	}
	put(dir, "manifest.json", manifest, strlen(manifest), 0444);
	return dir;
}

static int setup(void **state)
{
	if (!mkdtemp(tmp))
		return -1;
	snprintf(store, sizeof(store), "%s/images", tmp);
	if (mkdir(store, 0755) < 0 || chmod(store, 0755) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void expect_refused(const char *name, int code, const char *needle)
{
	struct image img;
	struct vmlet_err err;

	assert_int_equal(image_open(store, name, &img, &err), -1);
	if (err.code != code || !strstr(err.msg, needle))
		fail_msg("image %s: expected %d \"%s\", got %d: %s", name, code, needle, err.code,
			 err.msg);
	/* Nothing left open. */
	for (int r = 0; r < IMAGE_ROLES; r++)
		assert_int_equal(img.files[r].fd, -1);
}

/* ---- good images ------------------------------------------------------------- */

static void good_image_opens(void **state)
{
	struct image img;
	struct vmlet_err err;
	char kh[65], path[PATH_MAX], buf[64];
	int kfd;

	make_image("good", NULL);
	if (image_open(store, "good", &img, &err) < 0)
		fail_msg("image_open: %s", err.msg);
	sha256_hex(kernel_data, strlen(kernel_data), kh);
	assert_string_equal(img.name, "good");
	assert_true(img.files[IMAGE_KERNEL].present);
	assert_string_equal(img.files[IMAGE_KERNEL].name, "vmlinuz");
	assert_string_equal(img.files[IMAGE_KERNEL].sha256, kh);
	assert_int_equal(img.files[IMAGE_KERNEL].size, strlen(kernel_data));
	fmt(path, sizeof(path), "%s/good/vmlinuz", store);
	assert_string_equal(img.files[IMAGE_KERNEL].path, path);
	assert_true(img.files[IMAGE_INITRD].present);
	assert_false(img.files[IMAGE_ROOTFS].present);
	assert_int_equal(img.files[IMAGE_ROOTFS].fd, -1);
	assert_string_equal(img.cmdline, "console=ttyS0 panic=-1");
	/* The fd is the checked file, at offset 0, close-on-exec. */
	kfd = img.files[IMAGE_KERNEL].fd;
	assert_true(fcntl(kfd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(read(kfd, buf, sizeof(buf)), (ssize_t)strlen(kernel_data));
	image_close(&img);
	assert_int_equal(fcntl(kfd, F_GETFD), -1);
	image_close(&img); /* idempotent */
}

static void kernel_only_image(void **state)
{
	char kh[65], m[512];
	struct image img;
	struct vmlet_err err;

	sha256_hex(kernel_data, strlen(kernel_data), kh);
	fmt(m, sizeof(m), "{\"name\": \"konly\", \"kernel\": \"vmlinuz\", \"sha256\": {\"vmlinuz\": \"%s\"}}", kh);
	make_image("konly", m);
	if (image_open(store, "konly", &img, &err) < 0)
		fail_msg("image_open: %s", err.msg);
	assert_false(img.files[IMAGE_INITRD].present);
	assert_int_equal(img.files[IMAGE_INITRD].fd, -1);
	assert_string_equal(img.cmdline, "");
	image_close(&img);
}

/* ---- names and missing images -------------------------------------------------- */

static void bad_names_refused(void **state)
{
	const char *bad[] = { "", "..", "../etc", "a/b", "Bad", "-x", "x-", "a b", "good\n",
			      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	struct image img;
	struct vmlet_err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused(bad[i], 400, "must match");
	/* Checked before the store is touched: 400, not 404. */
	assert_int_equal(image_open("/nonexistent-store", "../x", &img, &err), -1);
	assert_int_equal(err.code, 400);
	assert_int_equal(image_open(store, NULL, &img, &err), -1);
	assert_int_equal(err.code, 400);
}

static void missing_image_is_404(void **state)
{
	struct image img;
	struct vmlet_err err;

	expect_refused("nope", 404, "image nope not found");
	assert_int_equal(image_open("/nonexistent-store", "nope", &img, &err), -1);
	assert_int_equal(err.code, 404);
	assert_non_null(strstr(err.msg, "image nope not found"));
}

/* ---- hostile manifests ----------------------------------------------------------- */

#define H64 "0000000000000000000000000000000000000000000000000000000000000000"

static void manifest_file_names_refused(void **state)
{
	static const struct {
		const char *image, *kernel, *needle;
	} cases[] = {
		{ "trav1", "../../../etc/passwd", "\"kernel\"" },
		{ "trav2", "../good/vmlinuz", "\"kernel\"" },
		{ "trav3", "/etc/passwd", "\"kernel\"" },
		{ "trav4", "sub/vmlinuz", "\"kernel\"" },
		{ "trav5", "..", "\"kernel\"" },
		{ "trav6", ".hidden", "\"kernel\"" },
		{ "trav7", "manifest.json", "\"kernel\"" },
		{ "trav8", "a\\u0000b", "\\u0000 is not allowed" }, /* jansson refuses NULs */
		{ "trav9", "", "\"kernel\"" },
		{ "trav10", "v m", "\"kernel\"" },
	};
	char m[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fmt(m, sizeof(m),
		    "{\"name\": \"%s\", \"kernel\": \"%s\", \"sha256\": {\"vmlinuz\": \"" H64 "\"}}",
		    cases[i].image, cases[i].kernel);
		make_image(cases[i].image, m);
		expect_refused(cases[i].image, 500, cases[i].needle);
	}
	/* Two roles naming the same file. */
	make_image("same", "{\"name\": \"same\", \"kernel\": \"vmlinuz\", \"initrd\": \"vmlinuz\", "
			   "\"sha256\": {\"vmlinuz\": \"" H64 "\"}}");
	expect_refused("same", 500, "same file");
}

static void manifest_structure_refused(void **state)
{
	static const struct {
		const char *image, *manifest, *needle;
	} cases[] = {
		{ "unk", "{\"name\": \"unk\", \"kernel\": \"vmlinuz\", \"sha256\": {\"vmlinuz\": \"" H64
			 "\"}, \"extra\": 1}", "unknown key \"extra\"" },
		{ "dup", "{\"name\": \"dup\", \"kernel\": \"vmlinuz\", \"kernel\": \"initrd.gz\", "
			 "\"sha256\": {\"vmlinuz\": \"" H64 "\"}}", "invalid JSON" },
		{ "notobj", "[1, 2]", "must be a JSON object" },
		{ "badjson", "{\"name\": ", "invalid JSON" },
		{ "noname", "{\"kernel\": \"vmlinuz\", \"sha256\": {\"vmlinuz\": \"" H64 "\"}}",
		  "\"name\" is missing" },
		{ "nokernel", "{\"name\": \"nokernel\", \"sha256\": {}}", "\"kernel\" is missing" },
		{ "nohashes", "{\"name\": \"nohashes\", \"kernel\": \"vmlinuz\"}", "\"sha256\" is missing" },
		{ "wrongname", "{\"name\": \"good\", \"kernel\": \"vmlinuz\", \"sha256\": {\"vmlinuz\": \"" H64
			       "\"}}", "differs from the image directory" },
		{ "nametype", "{\"name\": 7, \"kernel\": \"vmlinuz\", \"sha256\": {}}",
		  "\"name\" must be a string" },
		{ "hashtype", "{\"name\": \"hashtype\", \"kernel\": \"vmlinuz\", \"sha256\": [\"" H64 "\"]}",
		  "\"sha256\" must be an object" },
		{ "hashmissing", "{\"name\": \"hashmissing\", \"kernel\": \"vmlinuz\", \"initrd\": "
				 "\"initrd.gz\", \"sha256\": {\"vmlinuz\": \"" H64 "\"}}",
		  "no hash for initrd" },
		{ "hashextra", "{\"name\": \"hashextra\", \"kernel\": \"vmlinuz\", \"sha256\": "
			       "{\"vmlinuz\": \"" H64 "\", \"other\": \"" H64 "\"}}",
		  "not the kernel, initrd or rootfs" },
		{ "hashupper", "{\"name\": \"hashupper\", \"kernel\": \"vmlinuz\", \"sha256\": "
			       "{\"vmlinuz\": \"" "ABCDEF0000000000000000000000000000000000000000000000000000000000" "\"}}",
		  "64 lowercase hex" },
		{ "hashshort", "{\"name\": \"hashshort\", \"kernel\": \"vmlinuz\", \"sha256\": "
			       "{\"vmlinuz\": \"abc\"}}", "64 lowercase hex" },
		{ "cmdctl", "{\"name\": \"cmdctl\", \"kernel\": \"vmlinuz\", \"sha256\": {\"vmlinuz\": \"" H64
			    "\"}, \"cmdline\": \"a\\nb\"}", "printable ASCII" },
		{ "cmdnul", "{\"name\": \"cmdnul\", \"kernel\": \"vmlinuz\", \"sha256\": {\"vmlinuz\": \"" H64
			    "\"}, \"cmdline\": \"a\\u0000b\"}", "NUL" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_image(cases[i].image, cases[i].manifest);
		expect_refused(cases[i].image, 500, cases[i].needle);
	}
}

static void oversize_manifest_refused(void **state)
{
	size_t n = IMAGE_MANIFEST_MAX + 1;
	char *big = malloc(n + 1);
	struct image_manifest m;
	struct vmlet_err err;

	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	make_image("big", big);
	expect_refused("big", 500, "more than the limit");
	assert_int_equal(image_parse_manifest(big, n, "big", &m, &err), -1);
	assert_non_null(strstr(err.msg, "more than"));
	free(big);
	/* A long cmdline. */
	big = malloc(IMAGE_CMDLINE_MAX + 200);
	assert_non_null(big);
	{
		char *p = big;

		p += sprintf(p, "{\"name\": \"x\", \"kernel\": \"k\", \"sha256\": {\"k\": \"" H64
				"\"}, \"cmdline\": \"");
		memset(p, 'a', IMAGE_CMDLINE_MAX + 1);
		strcpy(p + IMAGE_CMDLINE_MAX + 1, "\"}");
	}
	assert_int_equal(image_parse_manifest(big, strlen(big), "x", &m, &err), -1);
	assert_non_null(strstr(err.msg, "\"cmdline\" is longer than"));
	free(big);
}

/* ---- hostile files ---------------------------------------------------------------- */

static void hash_mismatch_refused(void **state)
{
	const char *dir = make_image("tampered", NULL);
	char kh[65], bad[65];
	struct image img;
	struct vmlet_err err;

	put(dir, "initrd.gz", "evil\n", 5, 0444);
	sha256_hex(initrd_data, strlen(initrd_data), kh);
	sha256_hex("evil\n", 5, bad);
	assert_int_equal(image_open(store, "tampered", &img, &err), -1);
	assert_int_equal(err.code, 500);
	assert_non_null(strstr(err.msg, "initrd.gz"));
	assert_non_null(strstr(err.msg, "sha256 mismatch"));
	assert_non_null(strstr(err.msg, kh));
	assert_non_null(strstr(err.msg, bad));
	/* The kernel, opened before, was closed again. */
	assert_int_equal(img.files[IMAGE_KERNEL].fd, -1);
}

/* The verified-hash cache must never hide a change: rewrite the kernel in
 * place (same inode, same size) and put its mtime back, as an attacker
 * would; only the ctime moves, and that alone must force a re-hash. */
static void cached_hash_sees_in_place_change(void **state)
{
	const char *dir = make_image("cached", NULL);
	char path[PATH_MAX];
	struct image img;
	struct vmlet_err err;
	struct stat before;
	int fd;

	image_hash_cache_clear();
	assert_int_equal(image_open(store, "cached", &img, &err), 0);
	image_close(&img);
	/* A second open is served from the cache and is still right. */
	assert_int_equal(image_open(store, "cached", &img, &err), 0);
	image_close(&img);

	fmt(path, sizeof(path), "%s/vmlinuz", dir);
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(chmod(path, 0644), 0);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char evil[sizeof(kernel_data)];
	memset(evil, 'X', sizeof(evil));
	assert_int_equal(pwrite(fd, evil, strlen(kernel_data), 0), (ssize_t)strlen(kernel_data));
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, 0444), 0);
	struct timespec times[2] = { before.st_atim, before.st_mtim };
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);

	assert_int_equal(image_open(store, "cached", &img, &err), -1);
	assert_int_equal(err.code, 500);
	assert_non_null(strstr(err.msg, "sha256 mismatch"));
	assert_non_null(strstr(err.msg, "vmlinuz"));
}

static void symlinks_refused(void **state)
{
	const char *dir = make_image("linked", NULL);
	char path[PATH_MAX], target[PATH_MAX], link[PATH_MAX];

	/* vmlinuz -> a file with the very content the manifest hashes. */
	fmt(target, sizeof(target), "%s/real-kernel", tmp);
	put(tmp, "real-kernel", kernel_data, strlen(kernel_data), 0444);
	fmt(path, sizeof(path), "%s/vmlinuz", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	expect_refused("linked", 500, "is a symlink");

	/* The manifest a symlink. */
	make_image("mlinked", NULL);
	fmt(path, sizeof(path), "%s/mlinked/manifest.json", store);
	fmt(target, sizeof(target), "%s/good/manifest.json", store);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	expect_refused("mlinked", 500, "is a symlink");

	/* The image dir a symlink to a good image. */
	make_image("target", NULL);
	fmt(link, sizeof(link), "%s/dirlink", store);
	fmt(target, sizeof(target), "%s/target", store);
	assert_int_equal(symlink(target, link), 0);
	expect_refused("dirlink", 500, "is a symlink");
}

static void odd_files_refused(void **state)
{
	const char *dir;
	char path[PATH_MAX];
	char kh[65], m[512];

	/* A FIFO as the kernel: refused without blocking. */
	dir = make_image("fifo", NULL);
	fmt(path, sizeof(path), "%s/vmlinuz", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0444), 0);
	expect_refused("fifo", 500, "not a regular file");

	/* An empty kernel. */
	sha256_hex("", 0, kh);
	fmt(m, sizeof(m), "{\"name\": \"empty\", \"kernel\": \"vmlinuz\", \"sha256\": {\"vmlinuz\": \"%s\"}}", kh);
	dir = make_image("empty", m);
	put(dir, "vmlinuz", "", 0, 0444);
	expect_refused("empty", 500, "is empty");

	/* A file named by the manifest that is not there. */
	make_image("gone", "{\"name\": \"gone\", \"kernel\": \"missing\", \"sha256\": {\"missing\": \"" H64 "\"}}");
	expect_refused("gone", 500, "missing");

	/* The image "dir" a regular file. */
	put(store, "plainfile", "x", 1, 0444);
	expect_refused("plainfile", 500, "not a directory");
}

static void untrusted_ownership_refused(void **state)
{
	const char *dir;
	char path[PATH_MAX];

	dir = make_image("gwdir", NULL);
	assert_int_equal(chmod(dir, 0775), 0);
	expect_refused("gwdir", 500, "group- or world-writable");

	dir = make_image("wwfile", NULL);
	fmt(path, sizeof(path), "%s/vmlinuz", dir);
	assert_int_equal(chmod(path, 0666), 0);
	expect_refused("wwfile", 500, "group- or world-writable");

	dir = make_image("wwmanifest", NULL);
	fmt(path, sizeof(path), "%s/manifest.json", dir);
	assert_int_equal(chmod(path, 0646), 0);
	expect_refused("wwmanifest", 500, "group- or world-writable");

	if (geteuid() == 0) {
		dir = make_image("foreign", NULL);
		fmt(path, sizeof(path), "%s/vmlinuz", dir);
		assert_int_equal(chown(path, 1000, 1000), 0);
		expect_refused("foreign", 500, "owned by uid 1000");
		assert_int_equal(chown(dir, 1000, 1000), 0);
		expect_refused("foreign", 500, "owned by uid 1000");
	} else {
		print_message("not root: foreign-owner case not checked\n");
	}

	/* The store itself world-writable: nothing in it is trusted. */
	make_image("instore", NULL);
	assert_int_equal(chmod(store, 0777), 0);
	expect_refused("instore", 500, "group- or world-writable");
	assert_int_equal(chmod(store, 0755), 0);
}

static void file_name_rule(void **state)
{
	assert_true(image_file_name_ok("vmlinuz"));
	assert_true(image_file_name_ok("initrd.gz"));
	assert_true(image_file_name_ok("rootfs-1_2.img"));
	assert_false(image_file_name_ok(NULL));
	assert_false(image_file_name_ok(""));
	assert_false(image_file_name_ok("."));
	assert_false(image_file_name_ok(".."));
	assert_false(image_file_name_ok("../x"));
	assert_false(image_file_name_ok("a/b"));
	assert_false(image_file_name_ok("manifest.json"));
	assert_false(image_file_name_ok("a:b"));
	assert_false(image_file_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_string_equal(image_role_name(IMAGE_KERNEL), "kernel");
	assert_string_equal(image_role_name(IMAGE_ROOTFS), "rootfs");
}

/* ---- deploy/install-image.sh ------------------------------------------------------- */

static void install_script_round_trip(void **state)
{
	const char *src = getenv("VMLET_SRC_DIR");
	char cmd[PATH_MAX * 3], srcdir[PATH_MAX], script[PATH_MAX], istore[PATH_MAX];
	struct image img;
	struct vmlet_err err;

	fmt(script, sizeof(script), "%s/deploy/install-image.sh", src ? src : ".");
	if (access(script, X_OK) != 0 || system("command -v sha256sum >/dev/null") != 0) {
		print_message("needs deploy/install-image.sh and sha256sum\n");
		skip();
	}
	fmt(srcdir, sizeof(srcdir), "%s/guest-src", tmp);
	fmt(istore, sizeof(istore), "%s/istore", tmp);
	assert_int_equal(mkdir(srcdir, 0755), 0);
	put(srcdir, "vmlinuz", kernel_data, strlen(kernel_data), 0644);
	put(srcdir, "initrd.gz", initrd_data, strlen(initrd_data), 0644);

	fmt(cmd, sizeof(cmd), "'%s' --cmdline 'console=ttyS0 quiet' guest '%s' '%s' >/dev/null",
	    script, srcdir, istore);
	assert_int_equal(system(cmd), 0);
	if (image_open(istore, "guest", &img, &err) < 0)
		fail_msg("image_open of an installed image: %s", err.msg);
	assert_true(img.files[IMAGE_INITRD].present);
	assert_false(img.files[IMAGE_ROOTFS].present);
	assert_string_equal(img.cmdline, "console=ttyS0 quiet");
	image_close(&img);

	/* Reinstalling replaces it (a new kernel, a new hash). */
	put(srcdir, "vmlinuz", "kernel v2\n", 10, 0644);
	fmt(cmd, sizeof(cmd), "'%s' guest '%s' '%s' >/dev/null", script, srcdir, istore);
	assert_int_equal(system(cmd), 0);
	if (image_open(istore, "guest", &img, &err) < 0)
		fail_msg("image_open after reinstall: %s", err.msg);
	assert_int_equal(img.files[IMAGE_KERNEL].size, 10);
	image_close(&img);

	/* Hostile arguments are refused by the script. */
	fmt(cmd, sizeof(cmd), "'%s' ../evil '%s' '%s' 2>/dev/null", script, srcdir, istore);
	assert_int_not_equal(system(cmd), 0);
	fmt(cmd, sizeof(cmd), "'%s' --cmdline 'a\"b' x '%s' '%s' 2>/dev/null", script, srcdir,
	    istore);
	assert_int_not_equal(system(cmd), 0);
	fmt(cmd, sizeof(cmd), "'%s' x '%s' relative/dir 2>/dev/null", script, srcdir);
	assert_int_not_equal(system(cmd), 0);
	fmt(cmd, sizeof(cmd), "'%s' x '%s/nowhere' '%s' 2>/dev/null", script, tmp, istore);
	assert_int_not_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_image_opens),
		cmocka_unit_test(kernel_only_image),
		cmocka_unit_test(bad_names_refused),
		cmocka_unit_test(missing_image_is_404),
		cmocka_unit_test(manifest_file_names_refused),
		cmocka_unit_test(manifest_structure_refused),
		cmocka_unit_test(oversize_manifest_refused),
		cmocka_unit_test(hash_mismatch_refused),
		cmocka_unit_test(cached_hash_sees_in_place_change),
		cmocka_unit_test(symlinks_refused),
		cmocka_unit_test(odd_files_refused),
		cmocka_unit_test(untrusted_ownership_refused),
		cmocka_unit_test(file_name_rule),
		cmocka_unit_test(install_script_round_trip),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
