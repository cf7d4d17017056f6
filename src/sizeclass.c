/* sizeclass.c: size classes and slab geometry (tables generated once,
 * checked by tests/test_sizeclass.c and the sweep tests).
 *
 * Classes: 16-byte steps up to 128 B (classes 1..8), then four classes per
 * power of two up to 32 KiB (classes 9..40): internal waste <= 25 %.
 * Slab pages per class: at least 16 pages (64 KiB) and 8 blocks, with the
 * tail left over by the last block at most 1/64 of the slab where possible
 * (worst case here: 1.6 %).
 */
#include "internal.h"

const uint32_t lz_class_size[LZ_CLASSES] = {
    0, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768};

const uint8_t lz_direct_class[LZ_DIRECT_SLOTS] = {
    1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19, 20, 20, 20, 20, 20, 20, 20, 20};

static const uint8_t slab_pages[LZ_CLASSES] = {
    0, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 17, 16, 16, 16, 19, 18, 16, 16, 20, 24, 28, 32, 40, 48, 56, 64};

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
