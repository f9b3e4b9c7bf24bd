/* manpage.c - blockpipe(1) in roff (man(7) macros), from the tables --help is made from. */
#include "cli/manpage.h"

#include <string.h>

#include "blockpipe/sink.h"
#include "chain/presets.h"

/* Text escaped for roff: a backslash is \e, every '-' is \- (an ASCII minus in the output, so
 * that a flag copied from the rendered page works; a plain '-' may render as a hyphen), and a
 * line may not start with a control character ('.' or '\''). breaks: break points in long
 * words, e.g. a JSON object (not in .nf text, whose lines are kept as they are). */
static void esc_text(FILE *out, const char *s, bool bol, bool breaks)
{
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (bol && (c == '.' || c == '\''))
            fputs("\\&", out);
        bol = c == '\n';
        if (c == '\\')
            fputs("\\e", out);
        else if (c == '-')
            fputs("\\-", out);
        else
            fputc(c, out);
        if ((c == ',' || c == '|' || c == '/') && breaks && s[i + 1] && s[i + 1] != ' ')
            fputs("\\:", out);
    }
}

static void text(FILE *out, const char *s)
{
    esc_text(out, s, false, true);
}

/* A line of its own. */
static void line(FILE *out, const char *s)
{
    esc_text(out, s, true, true);
    fputc('\n', out);
}

/* Text shown as it is (a --help of its own, examples): no filling, no adjusting. */
static void verbatim(FILE *out, const char *s)
{
    fputs(".sp\n.nf\n", out);
    esc_text(out, s, true, false);
    if (*s && s[strlen(s) - 1] != '\n')
        fputc('\n', out);
    fputs(".fi\n", out);
}

/* ".TP" with "\fB--flag\fR \fIARG\fR" as its tag. */
static void tag(FILE *out, const char *prefix, const char *flag, const char *arg)
{
    fputs(".TP\n\\fB", out);
    text(out, prefix);
    text(out, flag);
    fputs("\\fR", out);
    if (arg) {
        fputs(" \\fI", out);
        text(out, arg);
        fputs("\\fR", out);
    }
    fputc('\n', out);
}

static void commands_of(FILE *out, unsigned bits)
{
    static const enum bp_command order[] = {BP_CMD_RUN, BP_CMD_BACKFILL, BP_CMD_VERIFY,
                                            BP_CMD_MIGRATE, BP_CMD_SERVE};
    static const char *const names[] = {[BP_CMD_RUN] = "run",
                                        [BP_CMD_BACKFILL] = "backfill",
                                        [BP_CMD_VERIFY] = "verify",
                                        [BP_CMD_MIGRATE] = "migrate",
                                        [BP_CMD_SERVE] = "serve"};
    const char *sep = "; commands ";
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        if (bits & (1u << order[i])) {
            text(out, sep);
            text(out, names[order[i]]);
            sep = ", ";
        }
}

/* The help sentence and, in parentheses, what --help puts there: alias, environment, config
 * key, commands, default. */
static void option_body(FILE *out, const bp_option_doc *o, const char *url_param)
{
    esc_text(out, o->help, true, true);
    fputs(" (", out);
    if (o->alias) {
        text(out, "also --");
        text(out, o->alias);
        text(out, "; ");
    }
    if (o->env) {
        fputs("env \\fB", out);
        text(out, o->env);
        for (const char *const *e = (const char *const[]){o->env2, o->env3, NULL}; *e; e++) {
            fputs("\\fR or \\fB", out);
            text(out, *e);
        }
        fputs("\\fR; ", out);
    }
    if (url_param) {
        text(out, "URL parameter ");
        text(out, url_param);
        text(out, "; ");
    }
    if (o->key) {
        text(out, "config key ");
        text(out, o->key);
    }
    if (!o->backend)
        commands_of(out, o->commands);
    text(out, o->def && strcmp(o->def, "required") == 0 ? "; required" : "; default ");
    if (!o->def || strcmp(o->def, "required") != 0)
        text(out, o->def ? o->def : "none");
    fputs(")\n", out);
}

static void section_commands(FILE *out, const bp_cli_command *cmds, size_t n)
{
    fputs(".SH COMMANDS\n", out);
    for (size_t i = 0; i < n; i++) {
        tag(out, "", cmds[i].name, cmds[i].args);
        if (cmds[i].cmd) {
            const char *title, *synopsis, *examples;
            bp_config_command_doc(cmds[i].cmd, &title, &synopsis, &examples);
            const char *dash = strstr(title, " - ");
            esc_text(out, dash ? dash + 3 : title, true, true);
            fputs(". Its options are under \\fBOPTIONS\\fR and \\fBOUTPUTS\\fR.\n", out);
        } else {
            line(out, cmds[i].summary);
            if (cmds[i].help)
                verbatim(out, cmds[i].help());
        }
    }
}

static void section_options(FILE *out)
{
    fputs(".SH OPTIONS\n", out);
    line(out, "The options of run, backfill, verify, migrate and serve: a flag wins over the "
              "environment, which wins over the config file (--config), which wins over the "
              "default. --name VALUE or --name=VALUE.");
    bp_option_doc o;
    for (size_t i = 0; bp_config_option_doc(i, &o); i++) {
        if (o.backend)
            continue; /* under OUTPUTS, with the output they belong to */
        tag(out, "--", o.flag, o.arg);
        option_body(out, &o, NULL);
    }
    tag(out, "--", "help", NULL);
    line(out, "print the options of the command and exit");
}

/* An output's own option as its settings' entry in the option table shows it (a shared key is
 * one setting for every output having it). */
static void output_option(FILE *out, const bp_sink_option *so)
{
    bp_option_doc o;
    for (size_t i = 0; so->key && bp_config_option_doc(i, &o); i++)
        if (o.backend && o.key && strcmp(o.key, so->key) == 0) {
            tag(out, "--", so->flag, so->arg);
            option_body(out, &o, so->name);
            return;
        }
    char head[96];
    snprintf(head, sizeof(head), "?%s=%s", so->name, so->arg ? so->arg : "VALUE");
    tag(out, "", head, NULL);
    esc_text(out, so->help, true, true);
    text(out, " (URL only");
    if (so->choices) {
        text(out, ": ");
        text(out, so->choices);
    }
    if (so->def) {
        text(out, "; default ");
        text(out, so->def);
    }
    fputs(")\n", out);
}

static void section_outputs(FILE *out)
{
    fputs(".SH OUTPUTS\n", out);
    line(out, "--output URL, repeatable: each output keeps its own checkpoint. An output's own "
              "options apply to every output of that kind; a parameter in the output's URL wins "
              "over them.");
    for (const bp_sink_ops *const *b = bp_sink_backends(); *b; b++) {
        const bp_sink_ops *o = *b;
        fputs(".SS \"", out);
        text(out, o->title);
        fputs("\"\n.B ", out);
        text(out, o->usage);
        fputc('\n', out);
        fputs(".br\n", out);
        esc_text(out, o->description, true, true);
        for (const char *const *a = o->aliases; a && *a; a++) {
            text(out, a == o->aliases ? " (also " : ", ");
            text(out, *a);
            text(out, ":");
        }
        fputs(o->aliases && o->aliases[0] ? ")\n" : "\n", out);
        for (size_t i = 0; i < o->option_count; i++)
            output_option(out, &o->options[i]);
    }
}

static void section_files(FILE *out)
{
    fputs(".SH \"CONFIG FILE\"\n", out);
    line(out, "--config FILE (env BLOCKPIPE_CONFIG) reads a YAML or JSON file whose keys are "
              "the config keys above; unknown keys are refused. rpcs and outputs are lists "
              "(rpc and output take one value or a list). A chains: list runs many chains in "
              "one process, each item {name, chain_id, rpcs, ...} with its own keys; --chain "
              "NAME runs one of them.");
    fputs(".PP\nKeys:\n", out);
    bp_option_doc o;
    const char *sep = "";
    for (size_t i = 0; bp_config_option_doc(i, &o); i++)
        if (o.key) {
            text(out, sep);
            fprintf(out, "\\fB");
            text(out, o.key);
            fprintf(out, "\\fR");
            sep = ",\n";
        }
    fputs(".\n.SH \"CHAIN PRESETS\"\n", out);
    line(out, "--chain-preset NAME sets a known chain's id, name and extra columns:");
    line(out, bp_chain_preset_names());
}

void bp_manpage(FILE *out, const bp_cli_command *cmds, size_t n_cmds, const bp_cli_flag *flags,
                size_t n_flags)
{
    fprintf(out,
            ".\\\" Made by `blockpipe --help-man` from the tables --help is made from; the "
            "build writes it.\n"
            ".TH BLOCKPIPE 1 \"\" \"blockpipe %s\" \"User Commands\"\n.nh\n.ad l\n"
            ".SH NAME\nblockpipe \\- EVM blockchain data, in order and reorg\\-safe, into "
            "databases and files\n.SH SYNOPSIS\n",
            BP_VERSION);
    for (size_t i = 0; i < n_cmds; i++) {
        fputs(".B blockpipe\n", out);
        line(out, cmds[i].name);
        if (cmds[i].args)
            line(out, cmds[i].args);
        fputs(".br\n", out);
    }
    for (size_t i = 0; i < n_flags; i++) {
        fputs(".B blockpipe\n", out);
        line(out, flags[i].flag);
        fputs(".br\n", out);
    }
    fputs(".SH DESCRIPTION\n", out);
    line(out, "blockpipe fetches the blocks, transactions, receipts and logs of EVM chains from "
              "JSON-RPC nodes, in order, follows reorganisations, and writes them exactly once "
              "into SQLite, PostgreSQL, ClickHouse, Redis, Kafka, CSV or JSON lines, with "
              "derived analytics tables and an HTTP API. Many chains run in one process.");
    section_commands(out, cmds, n_cmds);
    fputs(".SS \"Flags of blockpipe itself\"\n", out);
    for (size_t i = 0; i < n_flags; i++) {
        tag(out, "", flags[i].flag, NULL);
        line(out, flags[i].summary);
    }
    section_options(out);
    section_outputs(out);
    section_files(out);
    fputs(".SH \"EXIT STATUS\"\n", out);
    line(out, "0 on success (backfill: every block committed; run: stopped by SIGINT or "
              "SIGTERM after a clean shutdown), 1 on an error, 2 on bad usage; verify: 3 when "
              "something differs, 4 when --repair wrote the differing blocks again and found "
              "them equal. A second SIGINT exits at once (130): outputs are transactional.");
    fputs(".SH EXAMPLES\n", out);
    for (size_t i = 0; i < n_cmds; i++)
        if (cmds[i].cmd) {
            const char *title, *synopsis, *examples;
            bp_config_command_doc(cmds[i].cmd, &title, &synopsis, &examples);
            verbatim(out, examples);
        }
    fputs(".SH \"SEE ALSO\"\n", out);
    line(out, "README.md and docs/ (CLI.md: every option; SCHEMA.md: the tables) in the "
              "sources; the systemd unit blockpipe.service and the sample config "
              "blockpipe.yaml that make install puts beside this page.");
}
