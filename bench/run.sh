#!/usr/bin/env bash
# `make bench`: runs every benchmark binary given on the command line, one
# after the other, and prints their `name: value unit` and `ratio:` lines.
# Benchmarks need root (they start vmlet-hostd and vmlet-agentd on temp
# dirs); a benchmark's stderr goes to $O/bench-logs/<name>.log and its tail
# is shown only when it fails. Benchmarks are not tests: a missed goal is
# printed in the ratio line, not turned into a failure.
set -u
O=${O:-build}
LOGDIR=$O/bench-logs
mkdir -p "$LOGDIR"
if [ "$#" = 0 ]; then echo "usage: $0 BENCH_BINARY..." >&2; exit 2; fi
if [ "$(id -u)" != 0 ]; then echo "bench: needs root (the benchmarks start vmlet-hostd)" >&2; exit 1; fi
export VMLET_BIN_DIR=${VMLET_BIN_DIR:-$(cd "$O" && pwd)}
rc=0
for b in "$@"; do
	n=$(basename "$b")
	echo "== $n"
	if ! timeout 600 "$b" 2>"$LOGDIR/$n.log"; then
		echo "$n: FAILED (exit status $?); last lines of $LOGDIR/$n.log:"
		tail -5 "$LOGDIR/$n.log" | sed 's/^/    /'
		rc=1
	fi
done
exit $rc
