/* export.h - BP_EXPORT marks what libblockpipe.so exports: the functions and data of the
 * installed headers (blockpipe.h and what it includes). The library is built with
 * -fvisibility=hidden, so everything else stays inside it. */
#ifndef BLOCKPIPE_EXPORT_H
#define BLOCKPIPE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define BP_EXPORT __attribute__((visibility("default")))
#else
#define BP_EXPORT
#endif

#endif
