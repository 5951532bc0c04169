#include "hostd/child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"

/* The probes need nothing from hostd's environment; passing a fixed one
 * keeps whatever root's shell exported (LD_PRELOAD, ...) out of them. */
static char *const clean_env[] = {
	"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	"LC_ALL=C",
	NULL,
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* In the child: undo what hostd set for itself (blocked SIGINT/SIGTERM,
 * ignored SIGPIPE) so the probe behaves like a normal process. */
static void child_reset_signals(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
}

/* Wait for pid until deadline (CLOCK_MONOTONIC ms); SIGKILL it after.
 * Returns the waitpid status, or -1 if it had to be killed. */
static int reap_by(pid_t pid, int pidfd, int64_t deadline)
{
	int status = 0;
	bool killed = false;

	if (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		int r;

		do
			r = poll(&p, 1, left > 0 ? (int)left : 0);
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			kill(pid, SIGKILL);
			killed = true;
		}
	} else {
		/* No bounded wait without a pidfd: end it rather than block. */
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return killed ? -1 : status;
}

int hostd_child_capture(const char *binary, char *const argv[], int timeout_ms, char *buf,
			size_t cap, size_t *len, int *status, struct vmlet_err *err)
{
	_cleanup_close_ int rfd = -1;
	_cleanup_close_ int pidfd = -1;
	int pipefd[2];
	int64_t deadline = now_ms() + timeout_ms;
	size_t used = 0;
	bool overflow = false, timed_out = false;
	pid_t pid;

	if (cap == 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "capture buffer is empty");
	buf[0] = '\0';
	*len = 0;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "pipe2");
	rfd = pipefd[0];
	pid = fork();
	if (pid < 0) {
		close(pipefd[1]);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "fork for %s", binary);
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		child_reset_signals();
		if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
		    dup2(pipefd[1], STDOUT_FILENO) < 0 || dup2(devnull, STDERR_FILENO) < 0)
			_exit(126);
		/* fds 0-2 are the only ones the probe gets. */
		syscall(SYS_close_range, 3U, ~0U, 0U);
		execve(binary, argv, clean_env);
		_exit(127);
	}
	close(pipefd[1]);
	pidfd = pidfd_open_(pid);

	for (;;) {
		struct pollfd p = { .fd = rfd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;
		int r;

		if (left <= 0) {
			timed_out = true;
			break;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			timed_out = r == 0;
			break;
		}
		if (used + 1 >= cap) {
			overflow = true;
			break;
		}
		n = read(rfd, buf + used, cap - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	*len = used;
	if (timed_out || overflow) {
		/* SIGKILL cannot be ignored: the wait below is short. */
		kill(pid, SIGKILL);
		while (waitpid(pid, status, 0) < 0 && errno == EINTR)
			;
		if (timed_out)
			*status = -1;
		return 0;
	}
	/* stdout closed: the probe normally exits now; bound the wait anyway. */
	*status = reap_by(pid, pidfd, deadline);
	return 0;
}

int hostd_child_run(int (*fn)(void *arg), void *arg, int timeout_ms, struct vmlet_err *err)
{
	_cleanup_close_ int pidfd = -1;
	int64_t deadline = now_ms() + timeout_ms;
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "fork");
	if (pid == 0) {
		child_reset_signals();
		_exit(fn(arg) & 0x7f);
	}
	pidfd = pidfd_open_(pid);
	if (pidfd < 0) {
		/* Without a pidfd there is no bounded wait: do not risk hanging. */
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "pidfd_open");
	}
	status = reap_by(pid, pidfd, deadline);
	if (status == -1)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "probe timed out after %d ms",
				     timeout_ms);
	if (WIFSIGNALED(status))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "probe killed by signal %d",
				     WTERMSIG(status));
	return WEXITSTATUS(status);
}
