/* print_blocks.c - prints each new block as it arrives, and a line per reverted block, of one
 * chain or of every chain of a config file's chains: list.
 *
 *   print_blocks RPC_URL [KEY=VALUE ...]
 *   print_blocks config=chains.yaml [KEY=VALUE ...]
 *   cc print_blocks.c $(pkg-config --cflags --libs blockpipe) -o print_blocks
 *
 * KEY=VALUE: any key of blockpipe's config file, e.g. confirmations=0 start_block=0 (see
 * docs/CLI.md), config=FILE (a file with a chains: list runs each of its chains), or
 * resume=[CHAIN@]N:HASH[,N-1:HASH...] - the last blocks this program printed of a chain,
 * newest first, where that chain goes on from (a program would keep them in its own
 * database). CHAIN@ names the chain and is needed when the pipe runs several; give one
 * resume= per chain, or several chains in one (resume=eth@9:0x..,8:0x..,op@5:0x..). A chain
 * without a list starts where its config says. Ctrl-C stops it after the blocks being
 * delivered. */
#include <blockpipe/blockpipe.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bp_pipe *g_pipe;

static void on_signal(int sig)
{
    (void)sig;
    bp_pipe_stop(g_pipe); /* only sets a flag: fine in a signal handler */
}

static int applied(void *user, const char *chain, const bp_block *b)
{
    (void)user;
    size_t logs = 0;
    for (size_t i = 0; i < b->tx_count; i++)
        logs += b->txs[i].log_count; /* every tx's receipt logs, as a consumer would walk them */
    printf("applied %s %llu %s txs=%zu logs=%zu\n", chain, (unsigned long long)b->number, b->hash,
           b->tx_count, logs);
    fflush(stdout);
    return 0;
}

/* resume=: per chain ("" = the pipe's only chain), the blocks printed last, newest first */
static struct {
    char chain[64];
    bp_block_ref blocks[8];
    int count;
    bool used; /* its chain asked */
} g_resume[8];
static int g_resumes;
static size_t g_chains;              /* bp_pipe_chains: set before the pipe starts */
static atomic_size_t g_resume_calls; /* each chain calls resume from its own thread */

static int resume(void *user, const char *chain, bp_block_ref *out, size_t max)
{
    (void)user;
    int mine = -1, n = 0; /* the chain's own list, else the nameless one */
    for (int i = 0; i < g_resumes; i++)
        if (strcmp(g_resume[i].chain, chain) == 0 || (!g_resume[i].chain[0] && mine < 0))
            mine = i;
    if (mine >= 0) {
        g_resume[mine].used = true;
        for (; n < g_resume[mine].count && (size_t)n < max; n++)
            out[n] = g_resume[mine].blocks[n];
    }
    /* the last chain to start: a list no chain took names a chain the pipe does not run */
    if (atomic_fetch_add(&g_resume_calls, 1) + 1 == g_chains)
        for (int i = 0; i < g_resumes; i++)
            if (!g_resume[i].used) {
                fprintf(stderr, "print_blocks: resume=%s%s...: no chain of the pipe is named so\n",
                        g_resume[i].chain, g_resume[i].chain[0] ? "@" : "");
                bp_pipe_stop(g_pipe);
                return -1;
            }
    return n; /* 0: nothing printed before, start where the config says */
}

/* "[CHAIN@]N:HASH,N-1:HASH,...[,CHAIN@N:HASH,...]" into g_resume; 0 when malformed. */
static int parse_resume(char *list)
{
    int cur = -1;
    for (char *item = strtok(list, ","); item; item = strtok(NULL, ",")) {
        char *at = strchr(item, '@');
        if (at || cur < 0) { /* a new chain's list (the first one may be nameless) */
            if (g_resumes == 8)
                return 0;
            cur = g_resumes++;
            if (at) {
                snprintf(g_resume[cur].chain, sizeof(g_resume[cur].chain), "%.*s", (int)(at - item),
                         item);
                item = at + 1;
            }
            for (int i = 0; i < cur; i++)
                if (strcmp(g_resume[i].chain, g_resume[cur].chain) == 0)
                    return 0; /* a chain given twice */
        }
        bp_block_ref *b = &g_resume[cur].blocks[g_resume[cur].count];
        unsigned long long number;
        if (g_resume[cur].count == 8 || sscanf(item, "%llu:%66s", &number, b->hash) != 2)
            return 0;
        b->number = number;
        g_resume[cur].count++;
    }
    return cur >= 0;
}

static int reverted(void *user, const char *chain, const bp_block *b)
{
    (void)user;
    printf("reverted %s %llu %s\n", chain, (unsigned long long)b->number, b->hash);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s RPC_URL|KEY=VALUE [KEY=VALUE ...]\n", argv[0]);
        return 2;
    }
    bp_option opts[64] = {{"rpc", argv[1]}};
    char kv[64][256];
    /* the first argument is the endpoint unless it is a KEY=VALUE (e.g. config=FILE) */
    int first = strchr(argv[1], '=') && !strstr(argv[1], "://") ? 1 : 2;
    size_t n = (size_t)(first - 1);
    for (int i = first; i < argc && n < 64; i++, n++) {
        snprintf(kv[n], sizeof(kv[n]), "%s", argv[i]);
        char *eq = strchr(kv[n], '=');
        if (!eq) {
            fprintf(stderr, "%s: expected KEY=VALUE\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        if (strcmp(kv[n], "resume") == 0) { /* ours, not a config key */
            if (!parse_resume(eq + 1)) {
                fprintf(stderr,
                        "%s: expected resume=[CHAIN@]N:HASH[,N-1:HASH...], each chain once\n",
                        argv[i]);
                return 2;
            }
            n--;
            continue;
        }
        opts[n] = (bp_option){kv[n], eq + 1};
    }
    bp_callbacks cb = {.applied = applied, .reverted = reverted, .resume = resume};
    bp_error err;
    if (bp_pipe_open(opts, n, &cb, &g_pipe, &err) != 0) {
        fprintf(stderr, "print_blocks: %s\n", err.msg);
        return 2;
    }
    g_chains = bp_pipe_chains(g_pipe);
    for (int i = 0; i < g_resumes && g_chains > 1; i++)
        if (!g_resume[i].chain[0]) {
            fprintf(stderr,
                    "print_blocks: resume=N:HASH names no chain and the pipe runs %zu: give "
                    "resume=CHAIN@N:HASH,... for each\n",
                    g_chains);
            bp_pipe_close(g_pipe);
            return 2;
        }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = bp_pipe_start(g_pipe, &err);
    if (rc == 0)
        rc = bp_pipe_wait(g_pipe, &err);
    if (rc != 0)
        fprintf(stderr, "print_blocks: %s\n", err.msg);
    for (size_t i = 0; i < bp_pipe_chains(g_pipe); i++) {
        bp_stats st;
        bp_pipe_chain_stats(g_pipe, i, &st);
        fprintf(stderr, "print_blocks: stopped; chain %s: %llu txs delivered, %llu reorgs\n",
                st.chain, (unsigned long long)st.txs, (unsigned long long)st.reorgs);
    }
    bp_pipe_close(g_pipe);
    return rc == 0 ? 0 : 1;
}
