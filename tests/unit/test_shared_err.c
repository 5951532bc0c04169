#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/log.h"

static void set_fills_code_and_message(void **state)
{
	struct vmlet_err e;
	assert_int_equal(vmlet_err_set(&e, VMLET_E_INVALID, 0, "field %s bad", "x"), -1);
	assert_int_equal(e.code, 400);
	assert_string_equal(e.msg, "field x bad");
}

static void sys_appends_strerror(void **state)
{
	struct vmlet_err e;
	errno = ENOENT;
	vmlet_err_sys(&e, VMLET_E_INTERNAL, "open %s", "/nope");
	assert_int_equal(e.sys_errno, ENOENT);
	assert_string_equal(e.msg, "open /nope: No such file or directory");
}

static void prefix_keeps_code(void **state)
{
	struct vmlet_err e;
	vmlet_err_set(&e, VMLET_E_FORBIDDEN, 0, "denied");
	vmlet_err_prefix(&e, "peer uid=%d: ", 1000);
	assert_int_equal(e.code, 403);
	assert_string_equal(e.msg, "peer uid=1000: denied");
}

static void null_err_is_safe(void **state)
{
	assert_int_equal(vmlet_err_set(NULL, 400, 0, "x"), -1);
	assert_int_equal(vmlet_err_prefix(NULL, "y"), -1);
}

static void long_message_truncates(void **state)
{
	struct vmlet_err e;
	char big[2000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	vmlet_err_set(&e, 400, 0, "%s", big);
	assert_int_equal(strlen(e.msg), VMLET_ERR_MSG_MAX - 1);
}

static void log_str_escapes_hostile_values(void **state)
{
	char buf[64];
	assert_string_equal(vlog_str("a\"b\\c\nd", buf, sizeof(buf)), "\"a\\\"b\\\\c\\x0ad\"");
	assert_string_equal(vlog_str(NULL, buf, sizeof(buf)), "\"\"");
	char lng[200];
	memset(lng, 'x', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = 0;
	vlog_str(lng, buf, sizeof(buf));
	assert_true(strlen(buf) < sizeof(buf));
	assert_non_null(strstr(buf, "...\""));
}

static void code_names(void **state)
{
	assert_string_equal(vmlet_code_name(413), "too large");
	assert_string_equal(vmlet_code_name(999), "error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(set_fills_code_and_message),
		cmocka_unit_test(sys_appends_strerror),
		cmocka_unit_test(prefix_keeps_code),
		cmocka_unit_test(null_err_is_safe),
		cmocka_unit_test(long_message_truncates),
		cmocka_unit_test(log_str_escapes_hostile_values),
		cmocka_unit_test(code_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
