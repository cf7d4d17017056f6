// larson-sized: the larson server simulation (see larson.c) in C++, with
// the blocks allocated by operator new[] and released by the sized
// operator delete[](void *, size_t) (C++14 sized deallocation, on by
// default in g++), as the classic larson benchmark built with
// -fsized-deallocation does: an allocator may use the size it is given
// instead of looking the block up. Threads keep swapping new blocks of
// random size (24-1024 B) into random slots of one shared array, so most
// deletes are of blocks another thread allocated. Each block carries its
// size and a tag in its first two words, a pattern in the other words of
// its first 64 bytes and the tag in its last byte, checked before the
// delete.
// Figure: replacements per second (millions).
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <pthread.h>
#include <string>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace {

uint64_t splitmix(uint64_t &x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(splitmix(seed) | 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint64_t below(uint64_t n) { return (uint64_t)(((unsigned __int128)next() * n) >> 64); }
};

[[noreturn]] void fail(const char *what, const void *p) {
  std::printf("FAIL: larson-sized: %s at %p\n", what, p);
  std::fflush(stdout);
  _exit(2);
}

const size_t kMin = 24, kMax = 1024, kHead = 64;

uint64_t pat(uint64_t tag, size_t i) { return (tag + i) * 0x9E3779B97F4A7C15ull ^ (tag >> 7); }

// Words 2.. of the first 64 bytes (whole words below the last byte) carry
// the pattern; the last byte carries the tag's low byte.
size_t head_words(size_t size) { return (size - 1 < kHead ? size - 1 : kHead) / 8; }

char *block_new(size_t size, uint64_t tag) {
  char *b = new char[size];
  std::memcpy(b, &size, sizeof size);
  std::memcpy(b + 8, &tag, sizeof tag);
  for (size_t i = 2; i < head_words(size); i++) {
    uint64_t w = pat(tag, i);
    std::memcpy(b + 8 * i, &w, sizeof w);
  }
  b[size - 1] = (char)tag;
  return b;
}

void block_delete(char *b) {
  size_t size;
  uint64_t tag;
  std::memcpy(&size, b, sizeof size);
  std::memcpy(&tag, b + 8, sizeof tag);
  if (size < kMin || size > kMax) fail("block header overwritten", b);
  for (size_t i = 2; i < head_words(size); i++) {
    uint64_t w;
    std::memcpy(&w, b + 8 * i, sizeof w);
    if (w != pat(tag, i)) fail("block contents overwritten", b);
  }
  if (b[size - 1] != (char)tag) fail("block tail overwritten", b);
  ::operator delete[](b, size);  // the sized form
}

std::atomic<char *> *slots;
size_t nslots;
uint64_t ops_per_thread;

void *worker(void *arg) {
  uint64_t id = (uint64_t)(uintptr_t)arg;
  Rng r(0x51ed + id * 7919);
  for (uint64_t i = 0; i < ops_per_thread; i++) {
    size_t idx = (size_t)r.below(nslots);
    size_t sz = kMin + (size_t)r.below(kMax - kMin + 1);
    char *nb = block_new(sz, id << 32 | i);
    char *old = slots[idx].exchange(nb, std::memory_order_acq_rel);
    block_delete(old);
  }
  return nullptr;
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// As report_maps in common.h: the allocator libraries mapped here.
void report_maps() {
  FILE *f = std::fopen("/proc/self/maps", "r");
  if (!f) return;
  char line[512];
  std::vector<std::string> seen;
  while (std::fgets(line, sizeof line, f)) {
    char *slash = std::strrchr(line, '/');
    if (!slash) continue;
    std::string name(slash + 1);
    if (!name.empty() && name.back() == '\n') name.pop_back();
    if (name.compare(0, 3, "lib") == 0 && name.find("malloc") != std::string::npos) {
      bool dup = false;
      for (auto &s : seen) dup |= s == name;
      if (!dup) seen.push_back(name);
    }
  }
  std::fclose(f);
  std::printf("maps:");
  if (seen.empty()) std::printf(" none");
  for (auto &s : seen) std::printf(" %s", s.c_str());
  std::printf("\n");
}

}  // namespace

int main(int argc, char **argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  double scale = argc > 2 ? std::atof(argv[2]) : 1.0;
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  if (!(scale > 0)) scale = 1.0;
  nslots = 10000 * (size_t)threads;
  uint64_t total = (uint64_t)(5000000 * scale);
  if (total < 1000) total = 1000;
  ops_per_thread = total / (uint64_t)threads;
  slots = new std::atomic<char *>[nslots];
  Rng r(42);
  for (size_t i = 0; i < nslots; i++) slots[i].store(block_new(kMin + (size_t)r.below(kMax - kMin + 1), i));
  std::vector<pthread_t> th((size_t)threads);
  double t0 = now();
  for (int i = 0; i < threads; i++)
    if (pthread_create(&th[(size_t)i], nullptr, worker, (void *)(uintptr_t)i) != 0) fail("pthread_create", nullptr);
  for (int i = 0; i < threads; i++) pthread_join(th[(size_t)i], nullptr);
  double t = now() - t0;
  for (size_t i = 0; i < nslots; i++) block_delete(slots[i].load());
  delete[] slots;
  std::printf("threads %d, %" PRIu64 " replacements in %.3f s\n", threads, ops_per_thread * (uint64_t)threads, t);
  report_maps();
  std::printf("result: %.6g Mops/s\n", (double)(ops_per_thread * (uint64_t)threads) / t / 1e6);
  return 0;
}
