# Shared helpers for integration test scripts (sourced).
# Each check calls t_pass/t_fail/t_skip; the script ends with t_done, which
# prints "RESULT passed=N failed=N skipped=N" for tests/run.sh to sum.
T_PASSED=0; T_FAILED=0; T_SKIPPED=0
T_NAME=$(basename "$0" .sh)

t_pass() { T_PASSED=$((T_PASSED+1)); echo "PASS $T_NAME: $1"; }
t_fail() { T_FAILED=$((T_FAILED+1)); echo "FAIL $T_NAME: $1${2:+ -- $2}"; }
t_skip() { T_SKIPPED=$((T_SKIPPED+1)); echo "SKIP $T_NAME: $1${2:+ -- $2}"; }
# t_check NAME CMD... : pass if CMD succeeds
t_check() { local n=$1; shift; if "$@"; then t_pass "$n"; else t_fail "$n" "command failed: $*"; fi; }
t_done() { echo "RESULT passed=$T_PASSED failed=$T_FAILED skipped=$T_SKIPPED"; [ "$T_FAILED" = 0 ]; }
# Skip the whole script (with a reason) when a requirement is missing.
t_require_root() { if [ "$(id -u)" != 0 ]; then t_skip "all" "needs root"; t_done; exit 0; fi; }

# Repo root and build dir, wherever the script is run from.
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T_BUILD=${O:-build}
case "$T_BUILD" in /*) ;; *) T_BUILD="$T_ROOT/$T_BUILD" ;; esac
