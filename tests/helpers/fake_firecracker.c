/* A FIRECRACKER TEST DOUBLE (not Firecracker): an executable that hostd
 * runs as `firecracker_binary` in tests/integration/runtime_firecracker.sh,
 * because Firecracker is not installable on the build machines. Whatever
 * passes against it was NOT run against a real Firecracker.
 *
 *   fake_firecracker --api-sock PATH --id ID
 *
 * It serves Firecracker's API on PATH the way tests/unit/hostd_fc_double.h
 * does (micro_http's answers byte for byte, the same state machine:
 * pre-boot configuration only while "Not started", InstanceStart, PATCH
 * /vm Paused/Resumed, snapshot create only while Paused, snapshot load
 * only on a fresh process, which exits when the load fails), and it does
 * on disk what Firecracker does: snapshot/create writes the vmstate and
 * memory files at the given paths, snapshot/load reads both (keeping the
 * memory file open, as Firecracker maps it), boot-source opens the kernel
 * and initrd. No guest runs: InstanceStart prints a boot line with a
 * random boot id that the vmstate carries, so a test can tell a restore
 * from a reboot. SendCtrlAltDel is answered and ignored (a guest that does
 * not power off), unless the boot args held "fakefc.poweroff": then the
 * "guest" powers off and the process exits 0, as Firecracker does. Like Firecracker, it writes the "serial console" to its
 * stdout (hostd makes that the console FIFO): a readiness line, then one
 * line per request ("FAKE-FC-REQ METHOD PATH BODY"), so the test reads the
 * request sequence from the instance's console log. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#define BUF_MAX 65536
#define MEM_FILE_BYTES (256 * 1024)

static char state[16] = "Not started";
static bool configured, have_machine, have_boot, poweroff_on_cad;
static char boot_id[33];
static const char *vm_id;
static int mem_fd = -1; /* the restored "guest memory", kept open */

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdprintf(STDOUT_FILENO, fmt, ap);
	va_end(ap);
}

static void send_all(int fd, const char *b, size_t len)
{
	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		b += n;
		len -= (size_t)n;
	}
}

static void reply(int fd, int status, const char *body)
{
	char head[256];
	int n;

	if (!body)
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n",
			     status);
	else
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     status, strlen(body));
	send_all(fd, head, (size_t)n);
	if (body)
		send_all(fd, body, strlen(body));
}

static void fault(int fd, const char *msg)
{
	json_t *j = json_pack("{s:s}", "fault_message", msg);
	char *s = json_dumps(j, JSON_COMPACT);

	reply(fd, 400, s);
	free(s);
	json_decref(j);
}

static bool readable(const char *path)
{
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static int write_file(const char *path, const char *data, size_t len, char *why, size_t wl)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0) {
		snprintf(why, wl, "open %s: %s", path, strerror(errno));
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n <= 0) {
			snprintf(why, wl, "write %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	fsync(fd);
	close(fd);
	return 0;
}

static void snapshot_create(int fd, json_t *body)
{
	const char *sp = json_string_value(json_object_get(body, "snapshot_path"));
	const char *mp = json_string_value(json_object_get(body, "mem_file_path"));
	char vmstate[128], why[512];
	static char mem[MEM_FILE_BYTES];

	if (strcmp(state, "Paused") != 0) {
		fault(fd, "Cannot create snapshot: the microVM is not paused.");
		return;
	}
	if (!sp || !mp) {
		fault(fd, "An error occurred when deserializing the json body of a request: missing "
			  "field.");
		return;
	}
	snprintf(vmstate, sizeof(vmstate), "fake-firecracker-vmstate boot_id=%s\n", boot_id);
	memset(mem, 0x5a, sizeof(mem));
	if (write_file(sp, vmstate, strlen(vmstate), why, sizeof(why)) < 0 ||
	    write_file(mp, mem, sizeof(mem), why, sizeof(why)) < 0) {
		char msg[600];

		snprintf(msg, sizeof(msg), "Create snapshot error: %s", why);
		fault(fd, msg);
		return;
	}
	reply(fd, 204, NULL);
}

/* false: the "process" exits (a failed load ends Firecracker). */
static bool snapshot_load(int fd, json_t *body)
{
	const char *sp = json_string_value(json_object_get(body, "snapshot_path"));
	json_t *mb = json_object_get(body, "mem_backend");
	const char *mp = json_string_value(json_object_get(mb, "backend_path"));
	char buf[128] = "";
	const char *id;
	int sfd;
	ssize_t n;

	if (strcmp(state, "Not started") != 0 || configured) {
		fault(fd, "Loading a microVM snapshot not allowed after configuring boot-specific "
			  "resources.");
		return true;
	}
	sfd = sp ? open(sp, O_RDONLY | O_CLOEXEC) : -1;
	n = sfd >= 0 ? read(sfd, buf, sizeof(buf) - 1) : -1;
	if (sfd >= 0)
		close(sfd);
	mem_fd = mp ? open(mp, O_RDONLY | O_CLOEXEC) : -1;
	id = n > 0 ? strstr(buf, "boot_id=") : NULL;
	if (!id || mem_fd < 0) {
		fault(fd, "Load snapshot error: Failed to restore from snapshot: Cannot deserialize "
			  "the microVM state.");
		return false;
	}
	snprintf(boot_id, sizeof(boot_id), "%.32s", id + 8);
	boot_id[strcspn(boot_id, "\n")] = '\0';
	snprintf(state, sizeof(state), "%s",
		 json_is_true(json_object_get(body, "resume_vm")) ? "Running" : "Paused");
	reply(fd, 204, NULL);
	out("FAKE-FC-RESTORED boot_id=%s\n", boot_id);
	return true;
}

/* One request; false when the process exits after answering. */
static bool handle(int fd, const char *method, const char *path, json_t *body)
{
	bool fresh = strcmp(state, "Not started") == 0;

	if (!strcmp(method, "GET") && !strcmp(path, "/")) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", vm_id, "state", state,
				      "vmm_version", "1.7.0-fake", "app_name", "Firecracker");
		char *s = json_dumps(j, JSON_COMPACT);

		reply(fd, 200, s);
		free(s);
		json_decref(j);
		return true;
	}
	if (!strcmp(method, "PUT") &&
	    (!strcmp(path, "/machine-config") || !strcmp(path, "/boot-source") ||
	     !strncmp(path, "/drives/", 8) || !strncmp(path, "/network-interfaces/", 20))) {
		if (!fresh) {
			fault(fd, "The requested operation is not supported after starting the "
				  "microVM.");
			return true;
		}
		if (!json_is_object(body)) {
			fault(fd, "An error occurred when deserializing the json body of a request: "
				  "expected an object.");
			return true;
		}
		if (!strcmp(path, "/boot-source")) {
			const char *k = json_string_value(json_object_get(body, "kernel_image_path"));
			json_t *ird = json_object_get(body, "initrd_path");

			/* Firecracker opens them itself, inside its jail. */
			if (!readable(k) || (ird && !readable(json_string_value(ird)))) {
				fault(fd, "Boot source error: Failed to open the kernel or initrd "
					  "image.");
				return true;
			}
			have_boot = true;
			const char *args = json_string_value(json_object_get(body, "boot_args"));

			poweroff_on_cad = args && strstr(args, "fakefc.poweroff");
		}
		if (!strcmp(path, "/machine-config"))
			have_machine = true;
		configured = true;
		reply(fd, 204, NULL);
		return true;
	}
	if (!strcmp(method, "PUT") && !strcmp(path, "/actions")) {
		const char *a = json_string_value(json_object_get(body, "action_type"));
		unsigned char rnd[16];

		if (a && !strcmp(a, "InstanceStart") && fresh && have_machine && have_boot) {
			if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
				memset(rnd, 0x42, sizeof(rnd));
			for (int i = 0; i < 16; i++)
				snprintf(boot_id + 2 * i, 3, "%02x", rnd[i]);
			snprintf(state, sizeof(state), "Running");
			reply(fd, 204, NULL);
			out("FAKE-FC-GUEST-BOOTED boot_id=%s\n", boot_id);
		} else if (a && !strcmp(a, "SendCtrlAltDel") && !fresh) {
			reply(fd, 204, NULL);
			if (poweroff_on_cad) {
				out("FAKE-FC-GUEST-POWEROFF\n");
				exit(0);
			}
			/* else this "guest" ignores it */
		} else {
			fault(fd, "The requested operation is not supported in this state.");
		}
		return true;
	}
	if (!strcmp(method, "PATCH") && !strcmp(path, "/vm")) {
		const char *s = json_string_value(json_object_get(body, "state"));

		if (fresh)
			fault(fd, "The requested operation is not supported before starting the "
				  "microVM.");
		else if (s && (!strcmp(s, "Paused") || !strcmp(s, "Resumed"))) {
			snprintf(state, sizeof(state), "%s", !strcmp(s, "Paused") ? "Paused" : "Running");
			reply(fd, 204, NULL);
		} else
			fault(fd, "An error occurred when deserializing the json body of a request: "
				  "unknown variant.");
		return true;
	}
	if (!strcmp(method, "PUT") && !strcmp(path, "/snapshot/create")) {
		snapshot_create(fd, body);
		return true;
	}
	if (!strcmp(method, "PUT") && !strcmp(path, "/snapshot/load"))
		return snapshot_load(fd, body);
	{
		char msg[300];

		snprintf(msg, sizeof(msg), "Invalid request method and/or path: %s %s.", method, path);
		fault(fd, msg);
	}
	return true;
}

/* Serve one connection; false when the process should exit. */
static bool serve(int fd)
{
	static char buf[BUF_MAX];
	size_t have = 0;

	for (;;) {
		char *end, method[8], path[128], ver[16], line[256];
		size_t head_len, clen = 0, ll;
		json_t *body = NULL;
		char *dump = NULL;
		bool alive;

		while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
			ssize_t n;

			if (have == sizeof(buf))
				return true;
			n = recv(fd, buf + have, sizeof(buf) - have, 0);
			if (n <= 0)
				return true;
			have += (size_t)n;
		}
		head_len = (size_t)(end - buf) + 4;
		ll = (size_t)((char *)memmem(buf, head_len, "\r\n", 2) - buf);
		if (ll >= sizeof(line))
			return true;
		memcpy(line, buf, ll);
		line[ll] = '\0';
		if (sscanf(line, "%7s %127s %15s", method, path, ver) != 3 || strcmp(ver, "HTTP/1.1"))
			return true;
		for (char *h = buf + ll + 2; h < buf + head_len - 2;) {
			char *e = memmem(h, (size_t)(buf + head_len - h), "\r\n", 2);

			if ((size_t)(e - h) > 16 && !strncasecmp(h, "Content-Length: ", 16))
				clen = strtoul(h + 16, NULL, 10);
			h = e + 2;
		}
		if (head_len + clen > sizeof(buf))
			return true;
		while (have < head_len + clen) {
			ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);

			if (n <= 0)
				return true;
			have += (size_t)n;
		}
		if (clen) {
			json_error_t jerr;

			body = json_loadb(buf + head_len, clen, JSON_REJECT_DUPLICATES, &jerr);
			dump = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		}
		out("FAKE-FC-REQ %s %s %s\n", method, path, dump ? dump : "-");
		free(dump);
		alive = handle(fd, method, path, body);
		json_decref(body);
		memmove(buf, buf + head_len + clen, have - head_len - clen);
		have -= head_len + clen;
		if (!alive)
			return false;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *sock = NULL;
	int lfd;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--api-sock"))
			sock = argv[i + 1];
		else if (!strcmp(argv[i], "--id"))
			vm_id = argv[i + 1];
		else
			break;
	}
	if (argc != 5 || !sock || !vm_id || strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: %s --api-sock PATH --id ID\n", argv[0]);
		return 2;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0) {
		out("FAKE-FC-ERROR cannot listen on %s: %s\n", sock, strerror(errno));
		return 1;
	}
	out("FAKE-FIRECRACKER-READY id=%s uid=%u gid=%u\n", vm_id, (unsigned)getuid(),
	    (unsigned)getgid());
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (!serve(fd)) {
			close(fd);
			return 1;
		}
		close(fd);
	}
}
