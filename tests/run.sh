#!/usr/bin/env bash
# Runs unit test binaries (cmocka), integration scripts and fuzz smoke runs,
# and sums their results. Usage: run.sh UNIT... -- SCRIPT... -- FUZZ...
# Last line: "N passed, N failed, N skipped". Exit 1 if anything failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGDIR=${O:-build}/test-logs
mkdir -p "$LOGDIR"
P=0; F=0; S=0
phase=unit
FAILED_NAMES=()

add() { P=$((P+$1)); F=$((F+$2)); S=$((S+$3)); }

run_unit() {
	local b=$1 n log out rc
	n=$(basename "$b"); log=$LOGDIR/$n.log
	timeout 300 "$b" >"$log" 2>&1; rc=$?
	local p f s
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	p=${p:-0}; f=${f:-0}; s=${s:-0}
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi   # crashed / timed out
	add "$p" "$f" "$s"
	printf '%-40s %3d passed %3d failed %3d skipped\n' "$n" "$p" "$f" "$s"
	if [ "$f" != 0 ]; then FAILED_NAMES+=("$n"); grep -E '^\[  (FAILED|ERROR)|^\[  ERROR|Failure|error:' "$log" | head -20 | sed 's/^/    /'; fi
}

run_script() {
	local sc=$1 n log rc line p f s
	n=$(basename "$sc" .sh); log=$LOGDIR/$n.log
	timeout 600 bash "$sc" >"$log" 2>&1; rc=$?
	line=$(grep '^RESULT ' "$log" | tail -1)
	p=$(echo "$line" | sed -n 's/.*passed=\([0-9]*\).*/\1/p'); p=${p:-0}
	f=$(echo "$line" | sed -n 's/.*failed=\([0-9]*\).*/\1/p'); f=${f:-0}
	s=$(echo "$line" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p'); s=${s:-0}
	if [ -z "$line" ] || { [ "$rc" != 0 ] && [ "$f" = 0 ]; }; then f=$((f+1)); echo "    $n: exited $rc without a clean RESULT line"; fi
	add "$p" "$f" "$s"
	printf '%-40s %3d passed %3d failed %3d skipped\n' "$n" "$p" "$f" "$s"
	grep -E '^(FAIL|SKIP) ' "$log" | sed 's/^/    /'
	if [ "$f" != 0 ]; then FAILED_NAMES+=("$n"); tail -15 "$log" | sed 's/^/    | /'; fi
}

run_fuzz() {
	local b=$1 n log rc corpus
	n=$(basename "$b"); log=$LOGDIR/$n.log
	corpus=$ROOT/tests/fuzz/corpus/$n
	mkdir -p "$corpus"
	# Smoke: the checked-in corpus, then a short bounded run on a scratch dir.
	local scratch; scratch=$(mktemp -d)
	timeout 120 "$b" -max_total_time="${FUZZ_SMOKE_TIME:-5}" -max_len=65536 -timeout=10 "$scratch" "$corpus" >"$log" 2>&1; rc=$?
	rm -rf "$scratch"
	if [ "$rc" = 0 ]; then add 1 0 0; r=ok; else add 0 1 0; r=FAILED; FAILED_NAMES+=("$n"); tail -30 "$log" | sed 's/^/    | /'; fi
	printf '%-40s fuzz smoke %s\n' "$n" "$r"
}

for a in "$@"; do
	if [ "$a" = "--" ]; then
		if [ $phase = unit ]; then phase=script; else phase=fuzz; fi
		continue
	fi
	[ -e "$a" ] || continue
	case $phase in
		unit) run_unit "$a" ;;
		script) run_script "$a" ;;
		fuzz) run_fuzz "$a" ;;
	esac
done
if [ ${#FAILED_NAMES[@]} -gt 0 ]; then echo "failed: ${FAILED_NAMES[*]} (logs in $LOGDIR)"; fi
echo "$P passed, $F failed, $S skipped"
[ "$F" = 0 ]
