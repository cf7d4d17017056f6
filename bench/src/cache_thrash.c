/* cache-thrash: active false sharing. Threads allocate small objects
 * concurrently and write them; an allocator that carves objects for different
 * threads from one cache line makes the writes thrash that line. */
#include "cache_common.h"
int main(int argc, char **argv) { return cache_main(argc, argv, 0, "cache-thrash"); }
