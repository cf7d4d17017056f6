/* sizeclass.c: size classes and slab geometry (tables generated once,
 * checked by tests/test_sizeclass.c and the sweep tests).
 *
 * Classes: 16-byte steps up to 128 B (classes 1..8), four classes per power
 * of two up to 256 B (classes 9..12: 1.25, 1.5, 1.75 and 2 times the power
 * below), eight from 256 B to 1 KiB (classes 13..28: 32 B steps, then
 * 64 B), then five (classes 29..53). Eight where programs keep hundreds
 * of thousands of small records: bench realprog's jq holds 350,000 values
 * of 392 B and 150,000 of 272 B at its peak, which classes of 448 and
 * 320 B held with 12 % and 15 % of their bytes lost (peak RSS 1.095 times
 * glibc's, whose chunks are 400 and 288 B: 8 B more rounded up to 16);
 * 416 and 288 B now, 1.03 times. These blocks are a multiple of 32 B,
 * half a cache line (foreign lists: internal.h, LZ_FOREIGN_OK). Five per power of two
 * above 1 KiB: one more just above the power of
 * two, for a power of two plus a small header, which programs keep many
 * of: 1.125 times, except 1040 B (1024 + 16) and 4416 B (4096 + 320),
 * sized for sqlite's 1024 + 8 B records and 4096 + 272 B cache pages
 * (1280 and 5120 B took 24 % and 17 % of their memory; 1152 and 4608 B
 * still 12 % and 5 %, 2.4 MB more than now of a 50 MB peak in bench
 * sqlite; 1088 B 5 %, the 22,000 records live at its peak 1.0 MB more
 * than glibc's 1040 B chunks; now 0.8 % and 1 %). 1040 B is the direct
 * table's last class (LZ_DIRECT_MAX), so the 64 B steps of the table
 * above need not hold it. Internal
 * waste <= 25 %. Not eight a power of two above 1 KiB: a program that
 * grows buffers by an eighth at a time (python's lists) would leave a
 * freed block in every class on the way (eight above 512 B cost git log
 * -p and python threads 0.4 to 0.9 MB).
 * Slab pages per class: at least 16 pages (64 KiB) and 8 blocks, with the
 * tail left over by the last block at most 1/64 of the slab where possible
 * (worst case here: 1.6 %). 4416 B, a class programs keep tens of
 * thousands of (sqlite's cache pages), takes 55 pages: 51 blocks and a
 * 64 B tail (24 pages left 1152 B of each slab, 1.2 %: 270 KiB of bench
 * sqlite's 23 MB of them); a heap's slabs of a class double from its first
 * (8 blocks) up to this, so only a class in heavy use gets it.
 */
#include "internal.h"
#include "sizeclass.h"

lz_ro_hot const uint32_t lz_class_size[LZ_CLASSES] = {
    0, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 288, 320, 352,
    384, 416, 448, 480, 512, 576, 640, 704, 768, 832, 896, 960, 1024, 1040, 1280, 1536,
    1792, 2048, 2304, 2560, 3072, 3584, 4096, 4416, 5120, 6144, 7168, 8192, 9216, 10240, 12288, 14336,
    16384, 18432, 20480, 24576, 28672, 32768};

lz_ro_hot const uint8_t lz_direct_class[LZ_DIRECT_SLOTS] = {
    1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15,
    15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 21, 21, 22, 22, 22, 22, 23, 23, 23,
    23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27, 27, 28, 28, 28, 28, 29};

/* Sizes above LZ_DIRECT_MAX: entry (size - 1) / 64 (every class boundary
 * there is a multiple of 64 B; 1040, the one that is not, is the last
 * class of the direct table, so entry 16 serves only 1041 to 1088 B).
 * Written once as a list (sizeclass.h, LZ_CLASS_HIGH_SLAB): lz_class_high,
 * and up to LZ_SLAB_MAX malloc's queue slots (heap.c, lz_tls). */
#define CLASS_ID(c) c,
lz_ro_hot const uint8_t lz_class_high[LZ_SMALL_MAX / 64] = {LZ_CLASS_HIGH_SLAB(CLASS_ID) LZ_CLASS_HIGH_ABOVE(CLASS_ID)};
#undef CLASS_ID
_Static_assert(LZ_SLAB_MAX / 64 == 256, "LZ_CLASS_HIGH_SLAB: the 256 entries up to LZ_SLAB_MAX");


lz_ro_hot static const uint8_t slab_pages[LZ_CLASSES] = {
    0, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 17, 16, 16, 16, 55, 19, 18, 16, 16, 18, 20, 24, 28,
    32, 36, 40, 48, 56, 64};

uint32_t class_slab_pages(unsigned cls) { return slab_pages[cls]; }

/* The first slab of a class in a heap: just enough pages for 8 blocks.
 * A heap's later slabs of the class double from there up to
 * class_slab_pages (slab.c), so a class used a little costs a page or two
 * (and its span descriptor sits among the first few of the chunk header,
 * so a small process or a forked child touches few header pages), while a
 * class in heavy use gets the full slab. */
uint32_t class_first_slab_pages(unsigned cls) {
  uint32_t need = (uint32_t)((8 * (size_t)lz_class_size[cls] + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT);
  return need < slab_pages[cls] ? need : slab_pages[cls];
}

/* The fewest pages a slab of the class may have: one block's. A slab
 * placed in a short run of free dirty pages (span.c, span_alloc_fit) may
 * be smaller than the doubling asked for, down to this. */
uint32_t class_min_slab_pages(unsigned cls) {
  return (uint32_t)((lz_class_size[cls] + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT);
}
