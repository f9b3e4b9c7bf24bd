/* budget.c - the memory budget: a byte counter under a lock, and the per-block cost estimate. */
#define _GNU_SOURCE /* dl_iterate_phdr (link.h) */
#include "core/budget.h"

#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "util/arena.h"

/* Per block on top of its arena's bytes: the bp_block, the arena's header and chunk
 * headers, malloc's rounding. */
#define BLOCK_OVERHEAD 4096

void bp_budget_init(bp_budget *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cv, NULL);
}

void bp_budget_pool_init(bp_budget_pool *p, size_t limit)
{
    memset(p, 0, sizeof(*p));
    p->limit = limit;
    pthread_mutex_init(&p->lock, NULL);
}

void bp_budget_pool_release(bp_budget_pool *p)
{
    pthread_mutex_destroy(&p->lock);
}

void bp_budget_share(bp_budget *b, bp_budget_pool *pool, size_t reserved)
{
    b->pool = pool;
    b->reserved = reserved;
}

void bp_budget_release(bp_budget *b)
{
    if (b->limit == 0)
        return; /* never initialised */
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cv);
}

/* What b holds beyond its reserve when it holds `held` bytes. */
static size_t over_of(const bp_budget *b, size_t held)
{
    return held > b->reserved ? held - b->reserved : 0;
}

/* Under b's lock, after used / promised changed from holding `before` bytes: the pool's
 * count follows. */
static void pool_follow(bp_budget *b, size_t before)
{
    if (!b->pool)
        return;
    size_t was = over_of(b, before), now = over_of(b, b->used + b->promised);
    if (was == now)
        return;
    pthread_mutex_lock(&b->pool->lock);
    b->pool->over = b->pool->over + now - was; /* unsigned wrap cancels: over >= was */
    pthread_mutex_unlock(&b->pool->lock);
}

/* Under b's lock: the pool's room for more beyond the reserves, given that this budget
 * counts `mine` in it now. */
static size_t pool_room(const bp_budget *b, size_t mine)
{
    pthread_mutex_lock(&b->pool->lock);
    size_t others = b->pool->over - mine;
    size_t room = others < b->pool->limit ? b->pool->limit - others : 0;
    pthread_mutex_unlock(&b->pool->lock);
    return room;
}

/* Under the lock. */
static void add_used(bp_budget *b, size_t n)
{
    size_t before = b->used + b->promised;
    b->used += n;
    if (b->used > b->peak)
        b->peak = b->used;
    pool_follow(b, before);
}

/* Under the lock: what `held` bytes leave free (with a pool: the room of the reserve plus
 * what the pool has beyond what the others hold). */
static size_t free_at(const bp_budget *b, size_t held)
{
    size_t n = held < b->limit ? b->limit - held : 0;
    if (!b->pool)
        return n;
    size_t mine = over_of(b, b->used + b->promised);
    size_t room = pool_room(b, mine);
    size_t within = b->reserved > held ? b->reserved - held : 0;
    size_t beyond = room > over_of(b, held) ? room - over_of(b, held) : 0;
    return within + beyond < n ? within + beyond : n;
}

/* Under the lock. */
static size_t free_bytes(const bp_budget *b)
{
    return free_at(b, b->used + b->promised);
}

bool bp_budget_try_charge(bp_budget *b, size_t n)
{
    pthread_mutex_lock(&b->lock);
    bool ok = n <= free_bytes(b);
    if (ok)
        add_used(b, n);
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void bp_budget_charge(bp_budget *b, size_t n)
{
    pthread_mutex_lock(&b->lock);
    add_used(b, n);
    pthread_mutex_unlock(&b->lock);
}

void bp_budget_follow(bp_budget *b, size_t *charged, size_t now)
{
    if (now > *charged)
        bp_budget_charge(b, now - *charged);
    else if (now < *charged)
        bp_budget_refund(b, *charged - now);
    *charged = now;
}

void bp_budget_refund(bp_budget *b, size_t n)
{
    pthread_mutex_lock(&b->lock);
    size_t before = b->used + b->promised;
    b->used = b->used > n ? b->used - n : 0; /* more back than taken would be a caller's bug */
    pool_follow(b, before);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->lock);
}

void bp_budget_promise(bp_budget *b, size_t n)
{
    pthread_mutex_lock(&b->lock);
    size_t before = b->used + b->promised;
    b->promised += n;
    pool_follow(b, before);
    pthread_mutex_unlock(&b->lock);
}

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int bp_budget_take_promised(bp_budget *b, size_t n, long wait_ms, const volatile sig_atomic_t *stop)
{
    struct timespec end, step;
    deadline_in(&end, wait_ms > 0 ? wait_ms : 0);
    int rc = BP_ETIMEOUT;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        /* The promised bytes are this caller's: only what is used counts against them. */
        if (n <= free_at(b, b->used)) {
            size_t before = b->used + b->promised;
            b->used += n;
            b->peak = b->used > b->peak ? b->used : b->peak;
            b->promised -= n < b->promised ? n : b->promised;
            pool_follow(b, before);
            rc = 0;
            break;
        }
        if (stop && *stop) {
            rc = BP_ESTOPPED;
            break;
        }
        deadline_in(&step, 100); /* a stop is seen within 100 ms */
        bool last =
            step.tv_sec > end.tv_sec || (step.tv_sec == end.tv_sec && step.tv_nsec >= end.tv_nsec);
        if (pthread_cond_timedwait(&b->cv, &b->lock, last ? &end : &step) != 0 && last)
            break;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void bp_budget_drop_promise(bp_budget *b, size_t n)
{
    pthread_mutex_lock(&b->lock);
    size_t before = b->used + b->promised;
    b->promised -= n < b->promised ? n : b->promised;
    pool_follow(b, before);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->lock);
}

static size_t read_locked(bp_budget *b, const size_t *field)
{
    pthread_mutex_lock(&b->lock);
    size_t v = *field;
    pthread_mutex_unlock(&b->lock);
    return v;
}

size_t bp_budget_used(bp_budget *b)
{
    return read_locked(b, &b->used);
}

size_t bp_budget_promised(bp_budget *b)
{
    return read_locked(b, &b->promised);
}

size_t bp_budget_peak(bp_budget *b)
{
    return read_locked(b, &b->peak);
}

size_t bp_budget_free(bp_budget *b)
{
    pthread_mutex_lock(&b->lock);
    size_t n = free_bytes(b);
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* What the arena holds (its chunks whole, the transaction and log vectors at their capacity,
 * a mapped chunk's touched pages) and 1/BP_BLOCK_MARGIN more: what a decoded block adds to
 * the resident set beyond that, measured with `bench_decode FILE --resident K` (simnode
 * blocks with receipts, streamed as a fetch worker decodes them, K of them kept, blockpipe's
 * malloc settings, twice: on a fresh heap and on the heap the first K left): a 200-tx block
 * (512 KiB held) added 2.4 % and 1.6 % beyond its held bytes and BLOCK_OVERHEAD, a 2,000-tx
 * one 3 to 6 % less than it holds (its big chunks' untouched pages), a 50,000-tx one (116 MiB
 * held) at most 1.2 % more; nothing outside the arena is kept per block (the decoder's
 * vectors are adopted by it, its parser's state is the worker's fixed part). An eighth was
 * charged until then (set when the arena was counted by the bytes it handed out, before its
 * chunks were counted whole): 10-19 % more than a block added, 14.5 MiB of every 50,000-tx
 * block (docs/PERFORMANCE.md "memory", notes). */
static size_t variable_cost(size_t arena_bytes)
{
    return arena_bytes + arena_bytes / BP_BLOCK_MARGIN;
}

size_t bp_budget_block_cost(const bp_block *blk)
{
    return variable_cost(blk && blk->arena ? bp_arena_held(blk->arena) : 0) + BLOCK_OVERHEAD;
}

void bp_budget_free_block(bp_budget *b, bp_block *blk)
{
    if (!blk)
        return;
    if (b)
        bp_budget_refund(b, bp_budget_block_cost(blk));
    bp_block_free(blk);
}

void bp_budget_learn(bp_budget *b, const bp_block *blk)
{
    b->recent[b->next] = bp_budget_block_cost(blk);
    b->next = (b->next + 1) % BP_BUDGET_RECENT;
    b->seen++;
}

void bp_budget_learn_wire(bp_budget *b, size_t arena_bytes, size_t wire)
{
    if (wire < BP_BUDGET_RATIO_MIN_WIRE)
        return;
    b->ratio[b->next_ratio] = (double)variable_cost(arena_bytes) / (double)wire;
    b->next_ratio = (b->next_ratio + 1) % BP_BUDGET_RATIOS;
    b->ratios++;
}

size_t bp_budget_estimate(const bp_budget *b)
{
    size_t n = b->seen < BP_BUDGET_RECENT ? b->seen : BP_BUDGET_RECENT, max = 0;
    for (size_t i = 0; i < n; i++)
        if (b->recent[i] > max)
            max = b->recent[i];
    return max;
}

double bp_budget_per_wire(const bp_budget *b)
{
    size_t n = b->ratios < BP_BUDGET_RATIOS ? b->ratios : BP_BUDGET_RATIOS;
    double max = 0;
    for (size_t i = 0; i < n; i++)
        if (b->ratio[i] > max)
            max = b->ratio[i];
    return max > 0 ? max : 1.0;
}

void bp_budget_tune_malloc(void)
{
#ifdef __GLIBC__
    /* glibc gives threads up to 8 arenas per core, and each keeps what its threads freed: 30
     * chains (120 threads) under a 256 MiB budget peaked at 244-272 MiB resident, against
     * 193 MiB with 2 arenas and 176 MiB with 1, as fast; one chain's backfill under 96 MiB
     * peaked at 103-107 MiB, against 93-96 with 2 and 88 with 1, and one chain at its head
     * kept 31 MiB resident, against 23 with 1 (docs/PERFORMANCE.md "memory"). */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, cores > 2 ? (int)cores : 2);
    /* A freed block must give its memory back, or the budget counts what the process no
     * longer holds while the resident size stays up. glibc raises its mmap threshold to the
     * size of the last mapped chunk freed (up to 32 MiB): after one big block, the arenas'
     * chunks came from the heaps, whose freed pages stayed resident (measured: 160 MiB
     * resident with 36 MiB in use, 281 MiB peak for a 256 MiB budget). A fixed threshold
     * keeps every chunk of 1 MiB and more mapped, and unmapped when freed. Setting it fixes
     * the trim threshold too, at 128 KiB: the heaps were then given back and faulted in again
     * all the time (20 % more page faults, 10 % more CPU on 200-tx blocks); at 2 MiB the
     * page faults are the default's again. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 2 << 20);
#endif
}

bool bp_budget_head_batch(const bp_batch *b)
{
    size_t txs = 0;
    for (size_t i = 0; i < b->count && txs <= BP_HEAD_BATCH_TXS; i++)
        txs += b->events[i].block->transaction_count;
    return txs <= BP_HEAD_BATCH_TXS;
}

/* The loaded objects' read-only PT_LOAD segments (code, constants): file pages no write made
 * private. Enumerated with dl_iterate_phdr and dropped inside its callback, which runs under
 * the loader's lock: a dlopen on another thread (getaddrinfo's NSS module, a TLS trust module)
 * first maps a library whole and read-only, then its data over part of it, so a list of
 * mappings read before the drop (/proc/self/smaps) could name a range whose relocated data a
 * drop would wipe. Each range is shrunk to whole pages inside the segment, so no page of a
 * neighbouring writable segment is touched; the vDSO is the kernel's, not a file's. */
static int drop_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t page = *(const uintptr_t *)data, vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    if ((vdso && info->dlpi_addr == vdso) || strstr(info->dlpi_name, "linux-vdso"))
        return 0;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        lo = (lo + page - 1) & ~(page - 1);
        hi &= ~(page - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    return 0;
}

void bp_budget_drop_file_pages(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    pthread_mutex_lock(&lock);
    dl_iterate_phdr(drop_object, &page);
    pthread_mutex_unlock(&lock);
}
