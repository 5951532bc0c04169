# shellcheck shell=bash
# Sourced, not run: vmlet_ensure_users creates, where missing, what
# deploy/vmlet.sysusers.conf declares (for hosts without systemd-sysusers):
# the system user and group `vmlet` (agentd's user) and the group
# `vmlet-admin` (may use agentd's local socket). Returns 1 when a groupadd
# or useradd fails (it has said why on stderr). Used by deploy/install.sh,
# deploy/dev-run.sh and the integration tests (tests/integration/lib-env.sh).
vmlet_ensure_users() {
	getent group vmlet >/dev/null || groupadd --system vmlet || return 1
	getent passwd vmlet >/dev/null ||
		useradd --system --gid vmlet --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin vmlet || return 1
	getent group vmlet-admin >/dev/null || groupadd --system vmlet-admin || return 1
}
