/*
 * crc32c: the CRC-32C (Castagnoli) checksum, as used by iSCSI, ext4 and
 * SCTP. The store's body log (store_blob.c) seals every record with it.
 *
 * On x86-64 CPUs with SSE4.2 the crc32 instruction does 8 bytes a cycle or
 * so; elsewhere a bitwise loop gives the same answer, slowly. The choice is
 * made per call from a CPU feature bit, so there is no state to initialise.
 */
#ifndef TERN_CRC32C_H
#define TERN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over p[0..n); start with crc = 0. crc32c("123456789", 9)
 * is 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

#endif
