# C++: a program built with g++ -O2 -pthread (the compiler itself preloaded)
# whose 4 worker threads churn std::vector, std::map, std::unordered_map,
# std::string, std::shared_ptr and std::deque, and hand shared_ptr-owned
# objects to each other through a locked queue so that objects die in a
# thread other than the one that allocated them. The deterministic checksums
# must equal those of the same binary run without the preload.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need g++
lz_assert_preload_works

cat >prog.cc <<'EOF_CC'
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static uint64_t mix(uint64_t h, uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); return h; }
static uint64_t mixs(uint64_t h, const std::string &s) { for (unsigned char c : s) h = mix(h, c); return h; }

struct Rng { uint64_t s; uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; } };

struct Item {
  std::string name;
  std::vector<int> data;
  Item(std::string n, size_t k) : name(std::move(n)), data(k) { for (size_t i = 0; i < k; i++) data[i] = int(i * 7 + name.size()); }
};

// A multi-producer multi-consumer queue of shared_ptr<Item> (unbounded:
// every thread drains it after each round, and at the end until all are done).
struct Queue {
  std::mutex m; std::condition_variable cv_get;
  std::deque<std::shared_ptr<Item>> q; int producers_left;
  explicit Queue(int p) : producers_left(p) {}
  void put(std::shared_ptr<Item> it) {
    std::lock_guard<std::mutex> l(m);
    q.push_back(std::move(it)); cv_get.notify_one();
  }
  bool try_get(std::shared_ptr<Item> &out) {
    std::lock_guard<std::mutex> l(m);
    if (q.empty()) return false;
    out = std::move(q.front()); q.pop_front();
    return true;
  }
  void done() { std::lock_guard<std::mutex> l(m); producers_left--; cv_get.notify_all(); }
  bool get(std::shared_ptr<Item> &out) {
    std::unique_lock<std::mutex> l(m);
    cv_get.wait(l, [&] { return !q.empty() || producers_left == 0; });
    if (q.empty()) return false;
    out = std::move(q.front()); q.pop_front();
    return true;
  }
};

static void worker(int tid, int rounds, uint64_t *result, Queue *queue, uint64_t *consumed) {
  Rng r{0x1234567ULL * (tid + 1)};
  uint64_t h = tid, c = 0;
  std::shared_ptr<Item> it;
  auto consume = [&] { uint64_t x = it->name.size(); for (int d : it->data) x += uint32_t(d); c += x; it.reset(); };
  for (int round = 0; round < rounds; round++) {
    std::map<std::string, std::vector<uint32_t>> m;
    std::unordered_map<uint64_t, std::string> um;
    std::vector<std::shared_ptr<Item>> keep;
    for (int i = 0; i < 20000; i++) {
      uint64_t v = r.next();
      std::string k = "k" + std::to_string(v % 5000) + "_" + std::to_string(i % 7);
      m[k].push_back(uint32_t(v));
      um[v % 30011] = std::string(v % 100, char('a' + v % 26));
      if (i % 10 == 0) keep.push_back(std::make_shared<Item>(k, v % 300));
      if (i % 3 == 0) um.erase((v >> 7) % 30011);
    }
    for (auto &e : m) { h = mixs(h, e.first); h = mix(h, e.second.size()); }
    for (uint64_t k = 0; k < 30011; k += 97) { auto it = um.find(k); h = mix(h, it == um.end() ? 1 : it->second.size()); }
    // vector growth and big blocks
    std::vector<std::vector<char>> big;
    for (int i = 0; i < 64; i++) big.emplace_back(size_t(1) << (8 + (i + tid) % 12), char(i));
    for (auto &b : big) h = mix(h, b.size() + uint8_t(b.back()));
    // string building
    std::string s;
    for (int i = 0; i < 20000; i++) { s += std::to_string(i); if (i % 100 == 0) s.shrink_to_fit(); }
    h = mix(h, s.size()); h = mixs(h, s.substr(s.size() / 2, 64));
    // hand over half of the shared items to other threads
    for (size_t i = 0; i < keep.size(); i += 2) queue->put(keep[i]);
    keep.erase(keep.begin(), keep.begin() + keep.size() / 2);
    for (auto &p : keep) h = mix(h, p->data.size());
    keep.clear();
    // consume what others handed over (an order-independent sum)
    while (queue->try_get(it)) consume();
  }
  queue->done();
  while (queue->get(it)) consume();
  *consumed = c;
  *result = h;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    std::ifstream maps("/proc/self/maps"); std::string line; int found = 0;
    while (std::getline(maps, line)) { auto p = line.rfind('/'); if (p != std::string::npos && line.substr(p + 1) == argv[1]) found = 1; }
    std::printf("loaded %d\n", found);
  }
  const int T = 4, rounds = 6;
  uint64_t res[T], cons[T];
  Queue q(T);
  std::vector<std::thread> ts;
  for (int t = 0; t < T; t++) ts.emplace_back(worker, t, rounds, &res[t], &q, &cons[t]);
  for (auto &t : ts) t.join();
  uint64_t total = 0;
  for (int t = 0; t < T; t++) { std::printf("thread %d %016llx\n", t, (unsigned long long)res[t]); total += cons[t]; }
  std::printf("handed-over total %llu\n", (unsigned long long)total);
  return 0;
}
EOF_CC

lz_log "g++: $(g++ --version | head -1)"
"${LZ_PRE[@]}" g++ -O2 -pthread -o prog prog.cc
./prog >ref.txt
"${LZ_PRE[@]}" ./prog "$LZ_LIB_BASE" >out.txt
lz_expect_eq "program sees $LZ_LIB_BASE in /proc/self/maps" "loaded 1" "$(head -1 out.txt)"
tail -n +2 out.txt >out.body
lz_expect_same_file "per-thread checksums and hand-over total" ref.txt out.body
sed 's/^/    /' out.body
# Again, a few times: thread interleavings differ from run to run.
for i in 1 2 3; do
  "${LZ_PRE[@]}" ./prog >again.txt
  cmp -s ref.txt again.txt || lz_fail "run $((i + 1)) under the preload gave different checksums"
done
lz_log "ok: 3 more preloaded runs identical"
lz_done
