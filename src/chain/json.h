/* json.h - JSON text -> yajl_val tree, every node of one document in one arena.
 *
 * A drop-in for yajl_tree_parse / yajl_tree_free on the hot path: the tree is the public
 * `struct yajl_val_s` (YAJL_IS_*, YAJL_GET_*, yajl_tree_get work unchanged) and accepts and
 * rejects exactly what yajl_tree_parse does (jsonparse.c speaks yajl 2.1's language: comments
 * allowed, UTF-8 checked, one value and nothing after it; strings unescaped as yajl does;
 * numbers keep their text in u.number.r and set i / d with the same YAJL_NUMBER_*_VALID
 * rules), except:
 *   - text is (pointer, length): it need not end with a NUL and may not contain one;
 *   - nesting deeper than BP_JSON_MAX_DEPTH is refused (bounds the parser's memory);
 *   - empty objects / arrays have NULL key and value arrays (as yajl_tree's).
 * Building costs a few mallocs per document instead of several per node.
 *
 * Ownership: the whole tree belongs to the root. Free it with bp_json_free(root), never with
 * yajl_tree_free, and never free or keep a subtree past its root. Not thread-safe per tree;
 * parsing several documents on several threads at once is fine. */
#ifndef BP_CHAIN_JSON_H
#define BP_CHAIN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define BP_JSON_MAX_DEPTH 512

/* The tree, or NULL with a one-line message in errbuf (errbuf may be NULL): for syntax errors
 * yajl's kind of words ("lexical error: invalid char in json text", "parse error: premature
 * EOF", "parse error: trailing garbage"), the offset and an excerpt of the text around it. */
yajl_val bp_json_parse(const char *text, size_t len, char *errbuf, size_t errlen);

/* Same, but strings and keys without escapes stay in text: the node points into it and the
 * closing quote is overwritten by a NUL (the rest of text is unchanged; strings with escapes
 * and numbers are copied as usual). text must outlive the tree and may be written through the
 * tree's strings (the decoder lower-cases hex in place). On failure text is left as given. */
yajl_val bp_json_parse_inplace(char *text, size_t len, char *errbuf, size_t errlen);

/* Length of a string node of a bp_json tree (either parser), so no strlen is needed: the
 * unescaped length, which exceeds strlen when the JSON had "\u0000" (in-place strings have no
 * escapes, so there it is strlen). Only for trees built here, never for yajl_tree_parse's. */
static inline size_t bp_json_strlen(yajl_val v)
{
    size_t n; /* stored right after the node by json.c (on_string) */
    memcpy(&n, v + 1, sizeof(n));
    return n;
}

/* "null", "a string", "a number", "an object", "an array" or "a boolean": for messages
 * naming what a value was instead of what was expected. */
const char *bp_json_type_name(yajl_val v);

/* Frees a tree from bp_json_parse / bp_json_parse_inplace (root as returned; NULL is a
 * no-op). Text an in-place tree points into is the caller's to free, after the tree. */
void bp_json_free(yajl_val root);

/* ---- Streaming: the text arrives in pieces and big arrays never become a tree ----
 *
 * The same parser fed chunk by chunk (an HTTP answer as it is received; a token may be split
 * anywhere and is buffered only while it is cut, so memory is bounded by the largest token
 * and the open elements, not the document; strings never stay in the pieces). The caller picks
 * elements: when a container opens inside an array, ops->want is asked (it may look at the
 * open containers with the functions below); a non-NULL answer makes that container an
 * element: when it closes, ops->on_elem gets its tree (valid during the call only; strings
 * are copies, with bp_json_strlen lengths) and the element is left out of the document's
 * tree (its parent array holds the other children only). Element nodes live in a scratch
 * arena emptied after each hand-off, so memory stays at one element, not one document. */
typedef struct bp_json_stream bp_json_stream;

typedef struct bp_json_stream_ops {
    /* The opening container is at level bp_json_stream_depth(s) - 1; its parent is an array. */
    void *(*want)(void *ud, const bp_json_stream *s);
    /* index: the element's position in its parent array. Non-zero stops the parse. */
    int (*on_elem)(void *ud, void *target, size_t index, yajl_val elem);
    /* Optional: asked when any container opens (outside an element or a skipped one); true
     * leaves it out whole: no node is made for it or anything in it, and its parent does not
     * hold it (an object loses that key). A 50,000-tx block's header answer is 3.4 MB of
     * transaction hashes nobody reads. */
    bool (*skip)(void *ud, const bp_json_stream *s);
} bp_json_stream_ops;

/* NULL when out of memory. ops may be NULL (no elements: a plain incremental parse). */
bp_json_stream *bp_json_stream_new(const bp_json_stream_ops *ops, void *ud);
/* 0, or -1 once the text is known bad (then every later call is -1 too). */
int bp_json_stream_feed(bp_json_stream *s, const char *text, size_t len);
/* The tree (free with bp_json_free; it outlives s), or NULL with the reason in errbuf (as
 * bp_json_parse's; the excerpt comes from the piece the error was found in). */
yajl_val bp_json_stream_finish(bp_json_stream *s, char *errbuf, size_t errlen);
void bp_json_stream_free(bp_json_stream *s);

/* Open containers, outermost at level 0 (for want). */
size_t bp_json_stream_depth(const bp_json_stream *s);
bool bp_json_stream_is_array(const bp_json_stream *s, size_t level);
/* The key the container at level sits under; NULL in an array or at the top. */
const char *bp_json_stream_name(const bp_json_stream *s, size_t level);
/* The position of the container at level in its parent array. */
size_t bp_json_stream_index(const bp_json_stream *s, size_t level);
/* A complete value already read in the open object at level (first match), else NULL. */
yajl_val bp_json_stream_member(const bp_json_stream *s, size_t level, const char *key);

#endif
