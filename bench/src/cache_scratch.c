/* cache-scratch: passive false sharing. The main thread allocates one small
 * object per thread (likely adjacent), each thread frees its object and then
 * works on objects it allocates itself; an allocator that hands the freed
 * neighbouring slots back to these threads keeps them sharing a cache line. */
#include "cache_common.h"
int main(int argc, char **argv) { return cache_main(argc, argv, 1, "cache-scratch"); }
