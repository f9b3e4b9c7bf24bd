/* json.c - SAX events (jsonparse.c) -> yajl_val tree carved out of one bp_arena per document. */
#include "chain/json.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "chain/jsonparse.h"
#include "util/arena.h"

/* Children of the open containers wait here until their container closes; most documents
 * never outgrow the part that lives on the stack. */
#define BP_JSON_SCRATCH 256
/* Upper bound on one arena request once the first (sized from the text) is used up. */
#define BP_JSON_MAX_SLAB ((size_t)4 << 20)

/* A thread keeps the arena of the last tree it freed, emptied, for its next parse: fetch
 * workers parse answer after answer, and fresh multi-MB arenas cost a page fault per 4 KiB
 * (plus unmapping). Bounded like the rpc's answer buffer, so a huge block is given back. */
#define BP_JSON_KEEP_BYTES ((size_t)16 << 20)
/* First region of a streamed element (a transaction or receipt is a few KiB). */
#define BP_JSON_ELEM_SLAB ((size_t)64 << 10)

static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static bool spare_ok;

static void spare_destroy(void *a)
{
    bp_arena_free(a);
}

static void spare_init(void)
{
    spare_ok = pthread_key_create(&spare_key, spare_destroy) == 0;
}

/* This thread's spare arena (taken out of the slot), or NULL; *avail gets its free bytes. */
static bp_arena *spare_take(size_t *avail)
{
    *avail = 0;
    if (pthread_once(&spare_once, spare_init) != 0 || !spare_ok)
        return NULL;
    bp_arena *a = pthread_getspecific(spare_key);
    if (a && pthread_setspecific(spare_key, NULL) != 0)
        return NULL;
    if (a)
        *avail = bp_arena_recycle(a, BP_JSON_KEEP_BYTES);
    return a;
}

/* Keeps a (emptied later, by spare_take) when the slot is free, else frees it. */
static void spare_put(bp_arena *a)
{
    if (pthread_once(&spare_once, spare_init) != 0 || !spare_ok || pthread_getspecific(spare_key) ||
        pthread_setspecific(spare_key, a) != 0)
        bp_arena_free(a);
}

/* The root node sits right after the arena pointer: bp_json_free steps back from the root
 * to find the arena (container_of), so the tree needs no handle of its own. */
typedef struct json_root {
    bp_arena *arena;
    struct yajl_val_s node;
} json_root;

typedef struct json_item {
    const char *key; /* NULL in arrays */
    yajl_val val;
} json_item;

typedef struct json_frame {
    size_t start;     /* first item of this container in json_ctx.items */
    const char *key;  /* object key waiting for its value */
    const char *name; /* the key this container sits under, NULL in an array or at the top */
    size_t index;     /* its position in the parent array */
    size_t count;     /* children so far, handed-off elements included */
    bool array;
} json_frame;

/* The bump region nodes are carved from: the tree's, or an element's scratch (streaming). */
typedef struct json_region {
    bp_arena *arena;
    char *cur, *end; /* 8-byte aligned */
    size_t slab;     /* size of the next region taken from the arena */
} json_region;

typedef struct bp_json_stream {
    bp_arena *arena; /* the tree's */
    json_region r;   /* where nodes go now: the tree's arena, or elem_arena in an element */
    json_item *items;
    size_t n_items, cap_items;
    size_t depth;
    yajl_val root;
    const char *why; /* set when a callback stops the parse */
    char *text;      /* the text, when strings may stay in it (bp_json_parse_inplace) */
    size_t text_len;
    /* Streaming (bp_json_stream_*): the element being built, where its nodes go, and the
     * tree's region saved while they do. */
    const bp_json_stream_ops *ops;
    void *ud;
    size_t elem_depth; /* depth with the element open; 0 = none */
    size_t skip_depth; /* depth with a skipped container open (ops->skip); 0 = none */
    void *elem_target;
    bp_arena *elem_arena;
    json_region saved;
    bp_jp jp;
    size_t fed; /* bytes fed so far (NUL offsets, error excerpts) */
    char msg[256];
    json_frame frames[BP_JSON_MAX_DEPTH];
    json_item small[BP_JSON_SCRATCH];
} json_ctx;

static int stop(json_ctx *c, const char *why)
{
    c->why = why;
    return 0;
}

static void *bump_slow(json_ctx *c, size_t n)
{
    size_t want = n > c->r.slab ? n : c->r.slab;
    char *p = bp_arena_alloc(c->r.arena, want);
    if (!p)
        return NULL;
    if (c->r.slab < BP_JSON_MAX_SLAB)
        c->r.slab *= 2;
    if (want - n > (size_t)(c->r.end - c->r.cur)) {
        c->r.cur = p + n;
        c->r.end = p + want;
    }
    return p;
}

/* n bytes, 8-byte aligned (every node and pointer array needs no more). */
static inline void *bump(json_ctx *c, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if ((size_t)(c->r.end - c->r.cur) < n)
        return bump_slow(c, n);
    void *p = c->r.cur;
    c->r.cur += n;
    return p;
}

/* A node with `extra` bytes right after it (string text, child arrays). The document's
 * outermost value gets the json_root header in front. */
static yajl_val node_new(json_ctx *c, yajl_type type, size_t extra)
{
    yajl_val v;
    if (c->depth == 0) {
        json_root *r = bump(c, sizeof(json_root) + extra);
        if (!r)
            return NULL;
        r->arena = c->arena;
        v = &r->node;
    } else {
        v = bump(c, sizeof(*v) + extra);
        if (!v)
            return NULL;
    }
    v->type = type;
    return v;
}

static char *text_after(yajl_val v, const void *s, size_t len)
{
    char *p = (char *)(v + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* s[0..len) in place when it lies in the text of an in-place parse, NUL-terminated over its
 * closing quote; else NULL (copy it). jsonparse passes a string without escapes that lies in
 * one piece as a pointer into that piece, closing quote right after it, and never reads bytes
 * it has consumed again (run_parser builds the error excerpt from the restored text). The
 * range and quote checks keep anything else (an unescaped copy in the parser's buffer, a
 * token cut at the end of the text) on the copying path. */
static char *in_text(const json_ctx *c, const unsigned char *s, size_t len)
{
    uintptr_t p = (uintptr_t)s, lo = (uintptr_t)c->text;
    if (!c->text || p < lo || p - lo >= c->text_len || len >= c->text_len - (p - lo))
        return NULL;
    char *w = c->text + (p - lo);
    if (w[len] != '"')
        return NULL;
    w[len] = '\0';
    return w;
}

static int push_item(json_ctx *c, const char *key, yajl_val v)
{
    if (c->n_items == c->cap_items) {
        size_t cap = c->cap_items * 2;
        json_item *p =
            c->items == c->small ? malloc(cap * sizeof(*p)) : realloc(c->items, cap * sizeof(*p));
        if (!p)
            return stop(c, "out of memory");
        if (c->items == c->small)
            memcpy(p, c->small, sizeof(c->small));
        c->items = p;
        c->cap_items = cap;
    }
    c->items[c->n_items++] = (json_item){key, v};
    return 1;
}

static int add_value(json_ctx *c, yajl_val v)
{
    if (c->skip_depth)
        return 1;
    if (!v)
        return stop(c, "out of memory");
    if (c->depth == 0) {
        c->root = v;
        return 1;
    }
    json_frame *f = &c->frames[c->depth - 1];
    const char *key = f->key;
    f->key = NULL;
    f->count++;
    return push_item(c, key, v);
}

static int on_null(void *ctx)
{
    json_ctx *c = ctx;
    if (c->skip_depth)
        return 1;
    return add_value(c, node_new(c, yajl_t_null, 0));
}

static int on_boolean(void *ctx, int b)
{
    json_ctx *c = ctx;
    if (c->skip_depth)
        return 1;
    return add_value(c, node_new(c, b ? yajl_t_true : yajl_t_false, 0));
}

/* yajl_tree's integer rule (yajl_parse_integer): an optional '-', digits only, magnitude
 * at most LLONG_MAX (so LLONG_MIN itself is out of range). Anything else is not valid and
 * reads as LLONG_MAX or LLONG_MIN by sign, as yajl stores it. */
static long long number_int(const char *s, size_t len, bool *ok)
{
    bool neg = len > 0 && s[0] == '-';
    size_t i = neg;
    unsigned long long acc = 0;
    if (i < len && s[i] == '+')
        i++;
    *ok = false;
    for (; i < len; i++) {
        unsigned d = (unsigned)((unsigned char)s[i] - '0');
        if (d > 9 || acc > (unsigned long long)(LLONG_MAX - d) / 10)
            return neg ? LLONG_MIN : LLONG_MAX;
        acc = acc * 10 + d;
    }
    *ok = true;
    return neg ? -(long long)acc : (long long)acc;
}

static int on_number(void *ctx, const char *s, size_t len)
{
    json_ctx *c = ctx;
    if (c->skip_depth)
        return 1;
    yajl_val v = node_new(c, yajl_t_number, len + 1);
    if (!v)
        return stop(c, "out of memory");
    char *r = text_after(v, s, len);
    bool ok;
    char *end = NULL;
    v->u.number.r = r;
    v->u.number.flags = 0;
    v->u.number.i = number_int(r, len, &ok);
    if (ok)
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    errno = 0;
    v->u.number.d = strtod(r, &end);
    if (errno == 0 && end && *end == '\0')
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    return add_value(c, v);
}

/* String nodes: [node][size_t length][text + NUL, unless the text stays in place]. The
 * length spares the decoder a strlen per value (bp_json_strlen). */
static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    json_ctx *c = ctx;
    if (c->skip_depth)
        return 1;
    char *in = in_text(c, s, len);
    yajl_val v = node_new(c, yajl_t_string, sizeof(size_t) + (in ? 0 : len + 1));
    if (!v)
        return stop(c, "out of memory");
    memcpy(v + 1, &len, sizeof(len));
    if (in) {
        v->u.string = in;
    } else {
        char *p = (char *)(v + 1) + sizeof(size_t);
        memcpy(p, s, len);
        p[len] = '\0';
        v->u.string = p;
    }
    return add_value(c, v);
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    json_ctx *c = ctx;
    if (c->skip_depth)
        return 1;
    char *k = in_text(c, s, len);
    if (!k) {
        k = bump(c, len + 1);
        if (!k)
            return stop(c, "out of memory");
        memcpy(k, s, len);
        k[len] = '\0';
    }
    c->frames[c->depth - 1].key = k;
    return 1;
}

/* Streaming: the nodes of an element go to its own arena, emptied when it is handed off. */
static void enter_elem(json_ctx *c, void *target)
{
    c->saved = c->r;
    c->r = (json_region){c->elem_arena, NULL, NULL, BP_JSON_ELEM_SLAB};
    c->elem_depth = c->depth;
    c->elem_target = target;
}

static void leave_elem(json_ctx *c)
{
    bp_arena_recycle(c->elem_arena, BP_JSON_KEEP_BYTES);
    c->r = c->saved;
    c->elem_depth = 0;
}

static int open_container(json_ctx *c, bool array)
{
    if (c->depth == BP_JSON_MAX_DEPTH)
        return stop(c, "nested deeper than 512 levels");
    json_frame *parent = c->depth ? &c->frames[c->depth - 1] : NULL;
    c->frames[c->depth++] = (json_frame){.start = c->n_items,
                                         .name = parent ? parent->key : NULL,
                                         .index = parent ? parent->count : 0,
                                         .array = array};
    if (!c->ops || c->elem_depth || c->skip_depth)
        return 1;
    if (c->ops->skip && c->ops->skip(c->ud, c)) {
        c->skip_depth = c->depth;
    } else if (c->ops->want && parent && parent->array) {
        void *target = c->ops->want(c->ud, c);
        if (target)
            enter_elem(c, target);
    }
    return 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, false);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, true);
}

/* The element is complete: it goes to the caller instead of into its parent. */
static int hand_off(json_ctx *c, yajl_val v, size_t index)
{
    int rc = c->ops->on_elem(c->ud, c->elem_target, index, v);
    leave_elem(c);
    c->frames[c->depth - 1].count++;
    return rc == 0 ? 1 : stop(c, "stopped by the element handler");
}

/* Closes the innermost container: its children move from the scratch stack into arrays
 * allocated right after the container's node, in one piece. */
static int close_container(json_ctx *c, yajl_type type)
{
    if (c->skip_depth) { /* no node: the skipped container counts as a child of its parent */
        if (c->depth-- == c->skip_depth) {
            c->skip_depth = 0;
            if (c->depth) {
                c->frames[c->depth - 1].key = NULL;
                c->frames[c->depth - 1].count++;
            }
        }
        return 1;
    }
    bool elem = c->elem_depth && c->elem_depth == c->depth;
    size_t index = c->frames[c->depth - 1].index;
    size_t start = c->frames[--c->depth].start;
    size_t n = c->n_items - start;
    size_t per = type == yajl_t_object ? sizeof(char *) + sizeof(yajl_val) : sizeof(yajl_val);
    yajl_val v = node_new(c, type, n * per);
    if (!v)
        return stop(c, "out of memory");
    const json_item *it = c->items + start;
    yajl_val *vals = n ? (yajl_val *)(void *)(v + 1) : NULL;
    if (type == yajl_t_object) {
        const char **keys = n ? (const char **)(void *)(v + 1) : NULL;
        vals = n ? (yajl_val *)(void *)(keys + n) : NULL;
        for (size_t i = 0; i < n; i++)
            keys[i] = it[i].key;
        v->u.object.keys = keys;
        v->u.object.values = vals;
        v->u.object.len = n;
    } else {
        v->u.array.values = vals;
        v->u.array.len = n;
    }
    for (size_t i = 0; i < n; i++)
        vals[i] = it[i].val;
    c->n_items = start;
    return elem ? hand_off(c, v, index) : add_value(c, v);
}

static int on_end_map(void *ctx)
{
    return close_container(ctx, yajl_t_object);
}

static int on_end_array(void *ctx)
{
    return close_container(ctx, yajl_t_array);
}

static const bp_jp_callbacks callbacks = {
    .null = on_null,
    .boolean = on_boolean,
    .number = on_number,
    .string = on_string,
    .map_key = on_map_key,
    .start_map = on_start_map,
    .end_map = on_end_map,
    .start_array = on_start_array,
    .end_array = on_end_array,
};

static void set_error(char *errbuf, size_t errlen, const char *msg)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", msg);
}

/* The tree of a block answer is about 2.1 times its text (hex strings copied, 40-byte nodes,
 * keys, child arrays); starting at 2.5 times makes most documents one arena chunk. With the
 * strings left in the text it is about 0.6 times: start at 0.75. Pages are touched only as
 * they are used. */
static size_t first_slab(size_t len, bool inplace)
{
    size_t want = len >= SIZE_MAX / 4 ? SIZE_MAX / 2
                  : inplace           ? len - len / 4 + 1024
                                      : len * 2 + len / 2 + 1024;
    return want < 1024 ? 1024 : want;
}

/* Undoes in_text: the text held no NUL before the parse, so each NUL now is a closing quote. */
static void restore_quotes(json_ctx *c)
{
    if (!c->text)
        return;
    char *p = c->text, *end = c->text + c->text_len;
    while ((p = memchr(p, '\0', (size_t)(end - p))) != NULL)
        *p++ = '"';
}

/* Parses the whole text; on failure leaves the reason in errbuf. */
static bool run_parser(json_ctx *c, const char *text, size_t len, char *errbuf, size_t errlen)
{
    bp_jp_init(&c->jp, &callbacks, c);
    bool ok = bp_jp_feed(&c->jp, text, len) == 0 && bp_jp_finish(&c->jp) == 0 && c->root;
    if (!ok)
        restore_quotes(c); /* the caller's text as given, and the excerpt of it intact */
    if (!ok && c->why)
        set_error(errbuf, errlen, c->why);
    else if (!ok)
        bp_jp_message(&c->jp, text, len, 0, errbuf, errlen);
    bp_jp_release(&c->jp);
    return ok;
}

/* text is writable when inplace (strings then stay in it). */
static yajl_val parse(char *text, size_t len, bool inplace, char *errbuf, size_t errlen)
{
    set_error(errbuf, errlen, "");
    if (!text && len) {
        set_error(errbuf, errlen, "no text");
        return NULL;
    }
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "NUL byte at offset %zu", (size_t)(nul - text));
        return NULL;
    }
    json_ctx *c = malloc(sizeof(*c));
    if (!c) {
        set_error(errbuf, errlen, "out of memory");
        return NULL;
    }
    size_t avail;
    c->arena = spare_take(&avail);
    c->r.slab = first_slab(len, inplace);
    if (c->arena && avail > c->r.slab)
        c->r.slab = avail; /* the first region is all of the kept chunk */
    c->text = inplace ? text : NULL;
    c->text_len = len;
    if (!c->arena)
        c->arena = bp_arena_new(c->r.slab);
    c->r.arena = c->arena;
    c->ops = NULL;
    c->elem_depth = c->skip_depth = 0;
    c->r.cur = c->r.end = NULL;
    c->items = c->small;
    c->n_items = 0;
    c->cap_items = BP_JSON_SCRATCH;
    c->depth = 0;
    c->root = NULL;
    c->why = NULL;
    bool ok = c->arena && run_parser(c, text ? text : "", len, errbuf, errlen);
    if (!c->arena)
        set_error(errbuf, errlen, "out of memory");
    yajl_val root = ok ? c->root : NULL;
    if (!ok && c->arena)
        spare_put(c->arena);
    if (c->items != c->small)
        free(c->items);
    free(c);
    return root;
}

yajl_val bp_json_parse(const char *text, size_t len, char *errbuf, size_t errlen)
{
    /* Never written through: text is only stored for in-place parses. */
    return parse((char *)(uintptr_t)text, len, false, errbuf, errlen);
}

yajl_val bp_json_parse_inplace(char *text, size_t len, char *errbuf, size_t errlen)
{
    return parse(text, len, true, errbuf, errlen);
}

void bp_json_free(yajl_val root)
{
    if (!root)
        return;
    json_root *r = (json_root *)(void *)((char *)root - offsetof(json_root, node));
    spare_put(r->arena);
}

/* ---- streaming ---- */

bp_json_stream *bp_json_stream_new(const bp_json_stream_ops *ops, void *ud)
{
    json_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    size_t avail;
    c->arena = spare_take(&avail);
    c->r.slab = avail > 1024 ? avail : (size_t)64 << 10;
    if (!c->arena)
        c->arena = bp_arena_new(c->r.slab);
    c->elem_arena = bp_arena_new(BP_JSON_ELEM_SLAB);
    bp_jp_init(&c->jp, &callbacks, c);
    if (!c->arena || !c->elem_arena) {
        bp_json_stream_free(c);
        return NULL;
    }
    c->r.arena = c->arena;
    c->items = c->small;
    c->cap_items = BP_JSON_SCRATCH;
    c->ops = ops;
    c->ud = ud;
    return c;
}

/* Keeps the first failure's message; the excerpt is taken from the piece at hand, which
 * starts at document offset at. */
static int stream_fail(json_ctx *c, const char *text, size_t len, size_t at)
{
    if (c->msg[0])
        return -1;
    if (c->why)
        set_error(c->msg, sizeof(c->msg), c->why);
    else
        bp_jp_message(&c->jp, text, len, at, c->msg, sizeof(c->msg));
    return -1;
}

int bp_json_stream_feed(bp_json_stream *c, const char *text, size_t len)
{
    if (c->msg[0])
        return -1;
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        snprintf(c->msg, sizeof(c->msg), "NUL byte at offset %zu", c->fed + (size_t)(nul - text));
        return -1;
    }
    c->fed += len;
    if (bp_jp_feed(&c->jp, text, len) != 0)
        return stream_fail(c, text, len, c->fed - len);
    return 0;
}

yajl_val bp_json_stream_finish(bp_json_stream *c, char *errbuf, size_t errlen)
{
    set_error(errbuf, errlen, "");
    if (!c->msg[0] && bp_jp_finish(&c->jp) != 0)
        stream_fail(c, "", 0, c->fed);
    if (!c->msg[0] && !c->root)
        set_error(c->msg, sizeof(c->msg), "no JSON value");
    if (c->msg[0]) {
        set_error(errbuf, errlen, c->msg);
        return NULL;
    }
    yajl_val root = c->root;
    c->root = NULL;
    c->arena = NULL; /* the tree's now: bp_json_free */
    return root;
}

void bp_json_stream_free(bp_json_stream *c)
{
    if (!c)
        return;
    bp_jp_release(&c->jp);
    if (c->arena)
        spare_put(c->arena);
    bp_arena_free(c->elem_arena);
    if (c->items != c->small)
        free(c->items);
    free(c);
}

size_t bp_json_stream_depth(const bp_json_stream *c)
{
    return c->depth;
}

bool bp_json_stream_is_array(const bp_json_stream *c, size_t level)
{
    return level < c->depth && c->frames[level].array;
}

const char *bp_json_stream_name(const bp_json_stream *c, size_t level)
{
    return level < c->depth ? c->frames[level].name : NULL;
}

size_t bp_json_stream_index(const bp_json_stream *c, size_t level)
{
    return level < c->depth ? c->frames[level].index : 0;
}

yajl_val bp_json_stream_member(const bp_json_stream *c, size_t level, const char *key)
{
    if (level >= c->depth || c->frames[level].array)
        return NULL;
    size_t end = level + 1 < c->depth ? c->frames[level + 1].start : c->n_items;
    for (size_t i = c->frames[level].start; i < end; i++)
        if (c->items[i].key && strcmp(c->items[i].key, key) == 0)
            return c->items[i].val;
    return NULL;
}

const char *bp_json_type_name(yajl_val v)
{
    if (!v || YAJL_IS_NULL(v))
        return "null";
    if (YAJL_IS_STRING(v))
        return "a string";
    if (YAJL_IS_NUMBER(v))
        return "a number";
    if (YAJL_IS_OBJECT(v))
        return "an object";
    if (YAJL_IS_ARRAY(v))
        return "an array";
    return "a boolean";
}
