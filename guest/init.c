/* vmlet test guest: PID 1 of a tiny initramfs.
 *
 * What the host-side tests need from a guest, and nothing more:
 *  - a readiness marker on the serial console ("VMLET-GUEST-READY"),
 *  - eth0 configured from the kernel command line
 *    (vmlet.ip=A.B.C.D/N vmlet.gw=A.B.C.D), so the gateway can ping it,
 *  - a tick line every second with the boot id and the CLOCK_BOOTTIME uptime,
 *    so a test can tell a restore (same boot id, uptime continues) from a
 *    reboot (new boot id),
 *  - read-only mounts of the secrets (/dev/vdb -> /run/secrets) and data
 *    (/dev/vdc -> /data) drives when present,
 *  - a clean power-off on request: "poweroff" on the console, the ACPI power
 *    button (QMP system_powerdown; seen as KEY_POWER on /dev/input/event*),
 *    or SIGPWR / SIGTERM / SIGINT (ctrl-alt-del).
 * Built statically; the kernel modules it loads come from the same Debian
 * kernel package as the kernel (see guest/build.sh). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/input.h>
#include <linux/reboot.h>
#include <net/if.h>
#include <net/route.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t poweroff_requested;

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	/* console writes are small; a short write is not worth retrying */
	if (write(1, buf, (size_t)n) < 0)
		return;
}

static void on_signal(int sig)
{
	(void)sig;
	poweroff_requested = 1;
}

/* Modules in dependency order; absent ones are skipped (built-in kernels). */
static const char *const modules[] = {
	"virtio_ring", "virtio", "virtio_mmio", "failover", "net_failover",
	"virtio_net", "virtio_blk", "button", "evdev",
};

static void load_modules(void)
{
	char path[128];

	for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
		snprintf(path, sizeof(path), "/lib/modules/%s.ko", modules[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
			say("vmlet-guest: module %s: %s\n", modules[i], strerror(errno));
		close(fd);
	}
}

/* Value of key=... on the kernel command line, or NULL. */
static const char *cmdline_get(const char *cmdline, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);
	const char *p = cmdline;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == cmdline || p[-1] == ' ') && p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t n = strcspn(v, " \n");
			if (n >= len)
				return NULL;
			memcpy(out, v, n);
			out[n] = '\0';
			return out;
		}
		p += klen;
	}
	return NULL;
}

static int set_addr(int s, unsigned long req, const char *ifname, in_addr_t a)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = a;
	return ioctl(s, req, &ifr);
}

static int link_up(int s, const char *ifname)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static void configure_net(const char *cmdline)
{
	char ipbuf[64], gwbuf[64];
	const char *ip = cmdline_get(cmdline, "vmlet.ip", ipbuf, sizeof(ipbuf));
	const char *gw = cmdline_get(cmdline, "vmlet.gw", gwbuf, sizeof(gwbuf));
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	link_up(s, "lo");
	if (ip) {
		char *slash = strchr(ipbuf, '/');
		unsigned prefix = 24;
		struct in_addr addr;
		if (slash) {
			*slash = '\0';
			prefix = (unsigned)strtoul(slash + 1, NULL, 10);
		}
		if (prefix < 1 || prefix > 32 || inet_pton(AF_INET, ipbuf, &addr) != 1) {
			say("vmlet-guest: bad vmlet.ip\n");
		} else {
			in_addr_t mask = htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix));
			if (set_addr(s, SIOCSIFADDR, "eth0", addr.s_addr) < 0 ||
			    set_addr(s, SIOCSIFNETMASK, "eth0", mask) < 0 || link_up(s, "eth0") < 0)
				say("vmlet-guest: eth0: %s\n", strerror(errno));
			else
				say("vmlet-guest: eth0 %s/%u\n", ipbuf, prefix);
		}
	}
	if (gw) {
		struct rtentry rt;
		struct in_addr g;
		memset(&rt, 0, sizeof(rt));
		if (inet_pton(AF_INET, gw, &g) == 1) {
			((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
			((struct sockaddr_in *)&rt.rt_gateway)->sin_addr = g;
			((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
			((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
			rt.rt_flags = RTF_UP | RTF_GATEWAY;
			if (ioctl(s, SIOCADDRT, &rt) < 0)
				say("vmlet-guest: default route: %s\n", strerror(errno));
		}
	}
	close(s);
}

static void mount_drive(const char *dev, const char *dir)
{
	static const char *const fstypes[] = { "ext4", "vfat", "squashfs" };

	if (access(dev, F_OK) != 0)
		return;
	mkdir(dir, 0755);
	for (size_t i = 0; i < sizeof(fstypes) / sizeof(fstypes[0]); i++)
		if (mount(dev, dir, fstypes[i], MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
			say("vmlet-guest: mounted %s on %s ro\n", dev, dir);
			return;
		}
	say("vmlet-guest: %s present, not mountable\n", dev);
}

#define MAX_INPUTS 4

/* Input devices that can report KEY_POWER (the ACPI power button). */
static size_t open_power_buttons(int *fds)
{
	size_t n = 0;
	DIR *d = opendir("/dev/input");
	struct dirent *de;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL && n < MAX_INPUTS) {
		if (strncmp(de->d_name, "event", 5) != 0)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			fds[n++] = fd;
	}
	closedir(d);
	return n;
}

static int power_key_pressed(int fd)
{
	struct input_event ev[8];
	ssize_t r = read(fd, ev, sizeof(ev));

	for (ssize_t i = 0; r > 0 && i < r / (ssize_t)sizeof(ev[0]); i++)
		if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
			return 1;
	return 0;
}

static void power_off(void)
{
	say("vmlet-guest: powering off\n");
	sync();
	umount2("/data", MNT_DETACH);
	umount2("/run/secrets", MNT_DETACH);
	reboot(RB_POWER_OFF);
	_exit(0);
}

int main(void)
{
	char cmdline[4096] = "";
	char boot_id[64] = "unknown";
	struct sigaction sa;
	int fd;

	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
	mkdir("/run", 0755);
	mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m");

	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGPWR, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	reboot(RB_DISABLE_CAD); /* ctrl-alt-del -> SIGINT to us */

	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
		cmdline[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, boot_id, sizeof(boot_id) - 1);
		boot_id[n > 0 ? n : 0] = '\0';
		boot_id[strcspn(boot_id, "\n")] = '\0';
		close(fd);
	}

	load_modules();
	configure_net(cmdline);
	mount_drive("/dev/vdb", "/run/secrets");
	mount_drive("/dev/vdc", "/data");

	int inputs[MAX_INPUTS];
	size_t n_inputs = open_power_buttons(inputs);

	say("VMLET-GUEST-READY boot_id=%s\n", boot_id);

	char line[128];
	size_t have = 0;
	for (;;) {
		struct pollfd pfd[1 + MAX_INPUTS];
		struct timespec ts;

		pfd[0].fd = 0;
		pfd[0].events = POLLIN;
		for (size_t i = 0; i < n_inputs; i++) {
			pfd[1 + i].fd = inputs[i];
			pfd[1 + i].events = POLLIN;
		}
		if (poweroff_requested)
			power_off();
		int r = poll(pfd, 1 + n_inputs, 1000);
		for (size_t i = 0; r > 0 && i < n_inputs; i++)
			if ((pfd[1 + i].revents & POLLIN) && power_key_pressed(inputs[i]))
				power_off();
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			ssize_t n = read(0, line + have, sizeof(line) - 1 - have);
			if (n > 0) {
				have += (size_t)n;
				line[have] = '\0';
				if (strstr(line, "poweroff"))
					power_off();
				if (strchr(line, '\n') || have >= sizeof(line) - 1)
					have = 0;
			}
			continue;
		}
		clock_gettime(CLOCK_BOOTTIME, &ts);
		say("vmlet-tick boot_id=%s uptime_ms=%lld\n", boot_id,
		    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	}
}
