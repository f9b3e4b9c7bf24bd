/* url.h - URLs, headers and messages as they may be shown: a key never reaches a log line,
 * a stats line, the stats snapshot, a state file or an error message.
 *
 * What bp_url_redact masks (each replaced by "***"):
 *   - the password of "scheme://user:pass@host" (a bare "scheme://token@host" entirely);
 *   - every query value ("?apikey=K&n=1" -> "?apikey=***&n=***"), a bare "?K" too, and any
 *     "#fragment";
 *   - key-like path segments: at least 10 characters of letters, digits and "-_.~+=%" with
 *     both a letter and a digit (Infura, Alchemy, QuickNode, Ankr, Chainstack, UUIDs, and
 *     "SECRETKEY123"), any such segment of 32 characters or more, 20 or more letters of both
 *     cases, 16 or more digits, and ";name=value" path parameters of that shape. Words ("v2",
 *     "rpc", "eth-mainnet", "polygon-zkevm") are kept.
 * The scheme, host and port are always kept: they say which endpoint it is.
 *
 * Besides, every secret the configuration names (passwords, key-like path segments, query
 * values, header values, values read from the environment or files) is registered once at
 * start with bp_secret_add; bp_secret_scrub masks any of them in free text (a node's error
 * body echoing the key, a curl message quoting the URL). The logger, the stats snapshot and
 * the state file scrub every text they write. */
#ifndef BP_UTIL_URL_H
#define BP_UTIL_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Copies url into out (truncated to outsz) with the parts above masked. */
void bp_url_redact(const char *url, char *out, size_t outsz);

/* "Name: value" -> "Name: ***" (a value that is empty stays empty). */
void bp_header_redact(const char *header, char *out, size_t outsz);

/* True when a path segment of n bytes is key-like (the rule above). */
bool bp_url_key_like(const char *seg, size_t n);

/* Registers what must never be shown: s itself (when at least BP_SECRET_MIN bytes long:
 * shorter text would mask ordinary words) and, for a URL, its password, key-like path
 * segments and query values; for a header "Name: value", its value and the value's last
 * word ("Bearer K" -> K). Process-wide, append-only, safe from any thread. */
#define BP_SECRET_MIN 6
void bp_secret_add(const char *s);
void bp_secret_add_url(const char *url);
/* A database or broker URL (an output's): its password and the values of its secret-named
 * settings (bp_secret_name), not its path or its other settings, which say which database. */
void bp_secret_add_dsn(const char *url);
/* The values of the secret-named pieces of "name=value" text split at any of seps
 * (librdkafka's "k=v;k=v", a URL's query). */
void bp_secret_add_settings(const char *s, const char *seps);
/* True when a setting named name[0..len) holds a secret (password, secret, token, key...). */
bool bp_secret_name(const char *name, size_t len);
void bp_secret_add_header(const char *header);
/* Replaces every registered secret in the NUL-terminated text by "***", in place. */
void bp_secret_scrub(char *text);
/* Forgets every registered secret (tests). */
void bp_secret_clear(void);

#endif
