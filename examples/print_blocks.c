/* print_blocks.c - prints each new block as it arrives, and a line per reverted block, of one
 * chain or of every chain of a config file's chains: list.
 *
 *   print_blocks RPC_URL [KEY=VALUE ...]
 *   print_blocks config=chains.yaml [KEY=VALUE ...]
 *   cc print_blocks.c $(pkg-config --cflags --libs blockpipe) -o print_blocks
 *
 * KEY=VALUE: any key of blockpipe's config file, e.g. confirmations=0 start_block=0 (see
 * docs/CLI.md), config=FILE (a file with a chains: list runs each of its chains), or
 * resume=N:HASH[,N-1:HASH...] - the last blocks this program printed before, newest first,
 * where it goes on from (a program would keep them in its own database; one chain: with
 * several, every chain would be given them). Ctrl-C stops it after the blocks being
 * delivered. */
#include <blockpipe/blockpipe.h>
#include <signal.h>
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

static bp_block_ref g_resume[8]; /* resume=N:HASH,... (newest first) */
static int g_resume_count;

static int resume(void *user, const char *chain, bp_block_ref *out, size_t max)
{
    (void)user;
    (void)chain;
    int n = 0;
    for (; n < g_resume_count && (size_t)n < max; n++)
        out[n] = g_resume[n];
    return n; /* 0: nothing printed before, start where the config says */
}

/* "N:HASH,N-1:HASH,..." into g_resume; 0 when malformed. */
static int parse_resume(char *list)
{
    for (char *item = strtok(list, ","); item; item = strtok(NULL, ",")) {
        bp_block_ref *b = &g_resume[g_resume_count];
        unsigned long long number;
        if (g_resume_count == 8 || sscanf(item, "%llu:%66s", &number, b->hash) != 2)
            return 0;
        b->number = number;
        g_resume_count++;
    }
    return g_resume_count > 0;
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
                fprintf(stderr, "%s: expected resume=N:HASH[,N-1:HASH...]\n", argv[i]);
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
