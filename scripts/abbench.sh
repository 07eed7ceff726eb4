#!/usr/bin/env bash
# Compares the Go benchmarks of two commits on this machine, in one run, alternating, so that
# a refactor or an optimisation is judged against its own base rather than against a figure
# measured on another day (or another machine). Run from the repository:
#
#   scripts/abbench.sh OLD NEW [BENCH_REGEX] [PACKAGE...]
#
# OLD and NEW are commits (NEW may be "HEAD"). Defaults: the read path's benchmarks
# (SequentialRead, ImageRead, AzuriteChunkedRead, AzuriteOpenFirstByte, VerifyDecrypt1M) in
# ./fs ./blobio ./image. Each package's test binary is built once per commit from a temporary
# worktree; then AB_ROUNDS rounds (default 5) run OLD then NEW, AB_BENCHTIME each (default 3x).
# The benchstat comparison is printed and written to docs/bench/YYYY-MM-DD-HHMM-ab.md (or
# AB_OUT). Benchmarks that exist in only one commit are skipped by that commit's binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
[[ $# -ge 2 ]] || { sed -n '2,14p' "$0" >&2; exit 2; }
old=$(git rev-parse --short "$1") new=$(git rev-parse --short "$2")
regex="${3:-SequentialRead|ImageRead|AzuriteChunkedRead\$|AzuriteOpenFirstByte|VerifyDecrypt1M}"
shift $(($# < 3 ? $# : 3))
pkgs=("$@")
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./fs ./blobio ./image)
rounds="${AB_ROUNDS:-5}" benchtime="${AB_BENCHTIME:-3x}"
stamp=$(date -u +%Y-%m-%d-%H%M)
out="${AB_OUT:-docs/bench/$stamp-ab.md}"

work=$(mktemp -d /var/tmp/encfs-ab.XXXXXX)
cleanup() {
	for c in "$old" "$new"; do git worktree remove --force "$work/src-$c" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
if [[ -z "${ENCFS_AZURITE_BIN:-}" ]]; then
	ENCFS_AZURITE_BIN=$(scripts/azurite.sh)
	export ENCFS_AZURITE_BIN
fi
for c in "$old" "$new"; do
	git worktree add -q --detach "$work/src-$c" "$c"
	for p in "${pkgs[@]}"; do
		(cd "$work/src-$c" && go test -c -o "$work/$(basename "$p")-$c.test" "$p")
	done
done
for ((i = 1; i <= rounds; i++)); do
	echo "round $i of $rounds" >&2
	for c in "$old" "$new"; do
		for p in "${pkgs[@]}"; do
			# Each binary runs in its package directory, as go test would (testdata, relative paths).
			(cd "$work/src-$c/$p" && "$work/$(basename "$p")-$c.test" -test.run '^$' -test.bench "$regex" \
				-test.benchtime "$benchtime" -test.count 1 -test.benchmem) >>"$work/$c.txt"
		done
	done
done
benchstat=$(go env GOPATH)/bin/benchstat
[[ -x "$benchstat" ]] || go install golang.org/x/perf/cmd/benchstat@latest
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "# Go benchmarks, $old against $new ($(date -u '+%Y-%m-%d %H:%M') UTC)"
	echo
	echo "\`scripts/abbench.sh $old $new '$regex' ${pkgs[*]}\`: $rounds alternating rounds of"
	echo "\`-benchtime $benchtime\`, on \`$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\` ($(nproc) CPUs)."
	echo "Load average at the end: $load. \`~\` means no difference benchstat can tell from noise."
	echo
	echo '```'
	(cd "$work" && "$benchstat" "old=$old.txt" "new=$new.txt")
	echo '```'
} | tee "$out"
echo "written to $out" >&2
