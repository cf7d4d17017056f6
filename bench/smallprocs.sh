#!/bin/bash
# smallprocs.sh NAME=LIB ...: page faults and CPU of small processes and
# fork storms, side by side, each allocator preloaded in turn (an empty LIB:
# glibc's malloc). Figures from `perf stat -e page-faults,task-clock -r N`
# (children included): minor faults and CPU milliseconds per run, means of
# N runs. Page faults do not depend on other load; CPU a little; wall time
# is not shown (a shared machine makes it meaningless).
#   /bin/true, sh -c true, git --version, cat FILE   start-up alone (R runs)
#   subst   bash, 1,500 command substitutions $(echo x | cat): a subshell,
#           a pipeline child and an exec'd cat each (3 runs)
#   pool    /usr/bin/python3 multiprocessing Pool(4) (fork start method),
#           10 pools of 200 small tasks (3 runs)
# Where their resident pages are (per mapping, at exit): bench/filepages.
# Example:
#   bench/smallprocs.sh glibc= lzmalloc=build/release/liblzmalloc.so \
#       mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
set -u
R=${R:-30}
command -v perf >/dev/null || { echo "perf not installed (linux-perf)"; exit 2; }
[ $# -gt 0 ] || { echo "usage: $0 NAME=LIB ..."; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo x > "$tmp/x"
cat > "$tmp/subst.sh" <<'EOF'
n=${1:-1500}
s=0
for ((i = 0; i < n; i++)); do
  x=$(echo x | cat)
  [ "$x" = x ] && s=$((s + 1))
done
[ "$s" = "$n" ] || { echo "FAIL: $s of $n"; exit 1; }
EOF
cat > "$tmp/pool.py" <<'EOF'
import multiprocessing as mp, sys
def work(n):
    d = {i: str(i) * 3 for i in range(n)}
    return sum(len(v) for v in d.values())
if __name__ == "__main__":
    mp.set_start_method("fork")
    total = 0
    for r in range(10):
        with mp.Pool(4) as p:
            total += sum(p.map(work, [1000] * 200, chunksize=1))
    if total != 10 * 200 * sum(len(str(i) * 3) for i in range(1000)):
        print("FAIL", total)
        sys.exit(1)
EOF
names=("/bin/true" "sh -c true" "git --version" "cat FILE" "subst" "pool")
cmds=("/bin/true" "sh -c true" "git --version" "cat $tmp/x" "bash $tmp/subst.sh 1500" "/usr/bin/python3 $tmp/pool.py")
reps=($R $R $R $R 3 3)
printf "%-16s" "faults / CPU ms"
for a in "$@"; do printf " %22s" "${a%%=*}"; done
echo
for i in "${!cmds[@]}"; do
  printf "%-16s" "${names[$i]}"
  for a in "$@"; do
    lib=${a#*=}
    out=$(LD_PRELOAD=$lib perf stat -x, -e page-faults,task-clock -r "${reps[$i]}" ${cmds[$i]} 2>&1 >/dev/null)
    f=$(echo "$out" | grep page-faults | cut -d, -f1)
    c=$(echo "$out" | grep task-clock | cut -d, -f1)
    if [ -z "$f" ] || [ -z "$c" ]; then printf " %22s" FAIL; else printf " %10s %9.2fms" "$f" "$c"; fi
  done
  echo
done
