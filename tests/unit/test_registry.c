/* test_registry.c - output URLs: schemes and aliases, the backends' own options (URL
 * parameter > flag/env/file setting > default, each validated), what the backend is given,
 * and that every backend's options are well formed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/sink.h"
#include "sink/registry.h"

static void test_schemes_and_aliases(void **state)
{
    (void)state;
    const bp_sink_ops *pg = bp_sink_find("postgres://h/db");
    assert_non_null(pg);
    assert_string_equal(pg->scheme, "postgres");
    assert_ptr_equal(bp_sink_find("postgresql://h/db"), pg);
    assert_ptr_equal(bp_sink_find("PostgreSQL://h/db"), pg);
    assert_string_equal(bp_sink_find("sqlite:x.db")->scheme, "sqlite");
    assert_string_equal(bp_sink_find("etl-csv:out/")->scheme, "etl-csv");
    assert_null(bp_sink_find("mysql://h/db"));
    assert_null(bp_sink_find("no-colon"));
}

static void test_unknown_scheme_lists_known(void **state)
{
    bp_sink *s = NULL;
    bp_error err = {0};
    (void)state;
    assert_int_equal(bp_sink_open_url("mysql://u:hunter2@h/db", &s, &err), BP_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "unknown kind"));
    assert_non_null(strstr(err.msg, "postgresql:"));
    assert_non_null(strstr(err.msg, "jsonl:"));
    assert_null(strstr(err.msg, "hunter2")); /* never the password */
}

static void test_target_and_defaults(void **state)
{
    bp_sink_resolved r;
    bp_error err = {0};
    (void)state;
    assert_int_equal(bp_sink_resolve("postgres://u:p@h:5/db?sslmode=disable&schema=s1"
                                     "&connect_timeout=3",
                                     NULL, &r, &err),
                     0);
    /* ours taken out, libpq's kept in their order */
    assert_string_equal(r.target.data, "u:p@h:5/db?sslmode=disable&connect_timeout=3");
    assert_string_equal(bp_sink_opt(&r.opts, "schema"), "s1");
    assert_string_equal(bp_sink_opt(&r.opts, "wait_for_db"), "30"); /* the default */
    assert_int_equal(bp_sink_opt_int(&r.opts, "wait_for_db"), 30);
    assert_string_equal(bp_sink_opt(&r.opts, "checkpoint"), "postgres");
    bp_sink_resolved_release(&r);

    assert_int_equal(bp_sink_resolve("sqlite://dir/x.db", NULL, &r, &err), 0);
    assert_string_equal(r.target.data, "dir/x.db");
    bp_sink_resolved_release(&r);
    assert_int_equal(bp_sink_resolve("etl-csv:out/", NULL, &r, &err), 0);
    assert_string_equal(r.target.data, "out/");
    bp_sink_resolved_release(&r);
}

static void test_url_beats_settings_beats_default(void **state)
{
    bp_sink_setting items[] = {
        {"pg_schema", "from_flag"}, {"wait_for_db", "7"}, {"unrelated_key", "x"}};
    bp_sink_settings set = {items, 3, NULL};
    bp_sink_resolved r;
    bp_error err = {0};
    (void)state;
    assert_int_equal(bp_sink_resolve("postgresql://h/db?wait_for_db=0", &set, &r, &err), 0);
    assert_string_equal(bp_sink_opt(&r.opts, "schema"), "from_flag");
    assert_string_equal(bp_sink_opt(&r.opts, "wait_for_db"), "0");
    assert_string_equal(bp_sink_opt(&r.opts, "checkpoint"), "postgres");
    assert_string_equal(r.target.data, "h/db");
    bp_sink_resolved_release(&r);
    /* percent-decoding of our values */
    assert_int_equal(bp_sink_resolve("postgres://h/db?checkpoint=a%20b", &set, &r, &err), 0);
    assert_string_equal(bp_sink_opt(&r.opts, "checkpoint"), "a b");
    bp_sink_resolved_release(&r);
}

static void test_bad_values_are_named(void **state)
{
    bp_sink_setting items[] = {{"wait_for_db", "90000"}};
    bp_sink_settings set = {items, 1, NULL};
    bp_sink_resolved r;
    bp_error err = {0};
    (void)state;
    assert_int_equal(bp_sink_resolve("postgres://h/db?wait_for_db=soon", NULL, &r, &err),
                     BP_EINVAL);
    assert_non_null(strstr(err.msg, "parameter wait_for_db: 'soon' is not valid"));
    assert_non_null(strstr(err.msg, "0 to 86400"));
    assert_int_equal(bp_sink_resolve("postgres://h/db", &set, &r, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "wait_for_db (PostgreSQL outputs): '90000'"));
    assert_int_equal(bp_sink_resolve("postgres://h/db?mode=fast", NULL, &r, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "expected one of auto|staging"));
    assert_int_equal(bp_sink_resolve("postgres://h/db?schema=", NULL, &r, &err), BP_EINVAL);
    assert_int_equal(bp_sink_resolve("sqlite:", NULL, &r, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "missing the path"));
    assert_int_equal(bp_sink_resolve("postgres://?schema=x", NULL, &r, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "missing the address"));
}

static void test_option_check(void **state)
{
    bp_sink_option b = {.name = "tls", .type = BP_SINK_OPT_BOOL};
    bp_sink_option i = {.name = "n", .type = BP_SINK_OPT_INT, .min = -5, .max = 5};
    const char *canon;
    bp_error err = {0};
    (void)state;
    assert_int_equal(bp_sink_option_check(&b, "Yes", "w", &canon, &err), 0);
    assert_string_equal(canon, "1");
    assert_int_equal(bp_sink_option_check(&b, "off", "w", &canon, &err), 0);
    assert_string_equal(canon, "0");
    assert_int_equal(bp_sink_option_check(&b, "maybe", "w", &canon, &err), BP_EINVAL);
    assert_int_equal(bp_sink_option_check(&i, "5", "w", NULL, &err), 0);
    assert_int_equal(bp_sink_option_check(&i, "6", "w", NULL, &err), BP_EINVAL);
    assert_int_equal(bp_sink_option_check(&i, "-1", "w", NULL, &err), BP_EINVAL); /* digits only */
    assert_int_equal(bp_sink_option_check(&i, "3x", "w", NULL, &err), BP_EINVAL);
}

/* What --help, the config loader and the registry assume of every backend's descriptor. */
static void test_descriptors_well_formed(void **state)
{
    (void)state;
    for (const bp_sink_ops *const *b = bp_sink_backends(); *b; b++) {
        const bp_sink_ops *o = *b;
        assert_non_null(o->scheme);
        assert_non_null(o->title);
        assert_non_null(o->usage);
        assert_non_null(o->description);
        assert_true(o->option_count <= BP_SINK_MAX_OPTIONS);
        if (!o->missing) {
            assert_non_null(o->open);
            assert_non_null(o->checkpoint);
            assert_non_null(o->write);
            assert_non_null(o->close);
        }
        for (size_t i = 0; i < o->option_count; i++) {
            const bp_sink_option *so = &o->options[i];
            assert_non_null(so->name);
            assert_non_null(so->help);
            /* flag, env and key name one setting: all or none */
            assert_true((so->flag && so->env && so->key) || (!so->flag && !so->env && !so->key));
            const char *canon;
            bp_error err;
            if (so->def && bp_sink_option_check(so, so->def, so->name, &canon, &err) != 0)
                fail_msg("%s: default of %s is not valid: %s", o->scheme, so->name, err.msg);
        }
        /* no scheme is claimed twice */
        for (const bp_sink_ops *const *c = bp_sink_backends(); *c; c++) {
            char url[64];
            snprintf(url, sizeof(url), "%s:x", o->scheme);
            assert_ptr_equal(bp_sink_find(url), o);
            for (const char *const *a = (*c)->aliases; a && *a; a++)
                assert_true(*c == o || strcmp(*a, o->scheme) != 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemes_and_aliases),
        cmocka_unit_test(test_unknown_scheme_lists_known),
        cmocka_unit_test(test_target_and_defaults),
        cmocka_unit_test(test_url_beats_settings_beats_default),
        cmocka_unit_test(test_bad_values_are_named),
        cmocka_unit_test(test_option_check),
        cmocka_unit_test(test_descriptors_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
