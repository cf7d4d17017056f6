# git: init, 200 commits of generated files, a side branch merged back with
# --no-ff, `git gc --aggressive` (threaded delta search), `git fsck --full`.
# Author/committer names and dates are fixed, so every object id is
# deterministic: HEAD, HEAD^{tree}, the full object list, the log and a
# `git archive` of HEAD must equal those of the same run without the preload.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need git
lz_assert_preload_works

export HOME=$T/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
mkdir -p "$HOME"
export GIT_AUTHOR_NAME=lzmalloc GIT_AUTHOR_EMAIL=lz@example.invalid
export GIT_COMMITTER_NAME=lzmalloc GIT_COMMITTER_EMAIL=lz@example.invalid
export TZ=UTC LC_ALL=C

NCOMMITS=200

# gen FILE SEED LINES [FILE SEED LINES]...: deterministic text, one awk for all.
gen() {
  awk 'BEGIN {
    for (a = 1; a < ARGC; a += 3) {
      f = ARGV[a]; x = ARGV[a + 1]; n = ARGV[a + 2]
      for (i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) % 2147483648
        printf "line %d of seed %d: value %d %s\n", i, ARGV[a + 1], x, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, x % 17) >f
      }
      close(f)
    }
  }' "$@"
}

commit() { # commit N MESSAGE
  export GIT_AUTHOR_DATE="$((1700000000 + $1 * 60)) +0000" GIT_COMMITTER_DATE="$((1700000000 + $1 * 60)) +0000"
  git add -A
  git commit -q -m "$2"
}

# build_repo DIR: the whole scenario; prints the facts that must match.
build_repo() {
  mkdir -p "$1" && cd "$1"
  git init -q -b main .
  git config gc.auto 0
  # No `git maintenance run --auto` child after every commit (with gc.auto
  # 0 it does nothing but start): a fifth of the run's processes.
  git config maintenance.auto false
  git config pack.threads 2
  git config gc.aggressiveWindow 100
  mkdir -p src doc
  local i f
  local args=()
  for ((i = 0; i < 40; i++)); do args+=("src/f$i.txt" "$i" 100); done
  gen "${args[@]}"
  commit 0 "initial"
  for ((i = 1; i <= NCOMMITS; i++)); do
    # each commit rewrites three files and appends to a log; every 10th adds a file
    gen "src/f$((i % 40)).txt" "$((i * 7))" $((60 + i % 90)) \
        "src/f$(((i * 13) % 40)).txt" "$((i * 11))" $((80 + i % 50)) \
        "doc/d$((i % 25)).md" "$i" 40
    printf 'commit %d\n' "$i" >>ChangeLog
    if ((i % 10 == 0)); then gen "src/new$i.txt" "$((i + 5000))" 60; fi
    if ((i % 50 == 0)); then git rm -q "src/new$((i - 40)).txt"; fi
    commit "$i" "change $i"
    if ((i == 120)); then
      git checkout -q -b feature
      for f in 1 2 3 4 5 6 7 8 9 10; do
        gen "feature$f.txt" "$((f * 31))" 80
        commit "$((1000 + f))" "feature $f"
      done
      git checkout -q main
    fi
  done
  export GIT_AUTHOR_DATE="1800000000 +0000" GIT_COMMITTER_DATE="1800000000 +0000"
  git merge -q --no-ff -m "merge feature" feature
  git tag -a -m "release" v1
  git gc -q --aggressive --prune=now
  git fsck --full --strict --no-progress >fsck.out 2>&1 || { cat fsck.out >&2; echo "FSCK FAILED"; }
  echo "head $(git rev-parse HEAD)"
  echo "tree $(git rev-parse 'HEAD^{tree}')"
  echo "tag $(git rev-parse v1)"
  echo "commits $(git rev-list --count HEAD)"
  echo "objects $(git rev-list --all --objects | sort | sha256sum | cut -d' ' -f1)"
  echo "log $(git log --format='%H %P %s' | sha256sum | cut -d' ' -f1)"
  echo "archive $(git archive --format=tar HEAD | sha256sum | cut -d' ' -f1)"
  echo "packs $(ls .git/objects/pack/*.pack | wc -l) loose $(git count-objects | cut -d' ' -f1)"
  echo "fsck-output $(wc -l <fsck.out)"
  rm -f fsck.out
}

lz_log "git: $(git --version)"
# The reference and the preloaded run side by side: each starts some 700
# short processes, and its time goes in waiting for a CPU for each of them
# when the machine is busy (one after the other they took 218 s of wall
# time, over the 180 s timeout, at a load of 28, for 9 s of CPU time).
(build_repo "$T/ref") >ref.txt &
ref_pid=$!
(
  export LD_PRELOAD=$LZ_LIB
  # A git alias runs `sh -c` as a child of git: its $PPID is the git process.
  git -c 'alias.lzmaps=!cat /proc/$PPID/maps' lzmaps >"$T/git.maps"
  build_repo "$T/pre"
) >out.txt
wait "$ref_pid" || lz_fail "the reference run without the preload failed"
lz_maps_has_lib git.maps || lz_fail "$LZ_LIB_BASE is not mapped into the git process"
lz_log "ok: $LZ_LIB_BASE is mapped into git (seen through an alias's \$PPID)"
grep -q 'FSCK FAILED' ref.txt && lz_fail "git fsck failed even without the preload"
grep -q 'FSCK FAILED' out.txt && lz_fail "git fsck --full failed under the preload"
lz_expect_eq "commit count (200 + 10 feature + merge + initial)" "commits $((NCOMMITS + 12))" "$(grep ^commits out.txt)"
lz_expect_eq "one pack, no loose objects after gc" "packs 1 loose 0" "$(grep ^packs out.txt)"
lz_expect_same_file "HEAD, tree, tag, object list, log, archive" ref.txt out.txt
sed 's/^/    /' out.txt
lz_done
