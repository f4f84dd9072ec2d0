/* transport and smarthost lines, and which route a message takes. */
#include <stdlib.h>
#include <string.h>

#include "smtp/route.h"
#include "testutil.h"

START_TEST(parse_good)
{
	struct route r;
	char *err = NULL;

	ck_assert_int_eq(route_parse("Lab.Example.ORG 10.0.0.5 tls=none", false, &r, &err), 0);
	ck_assert_str_eq(r.match, "lab.example.org");
	ck_assert_str_eq(r.host, "10.0.0.5");
	ck_assert_int_eq(r.port, 25);
	ck_assert_int_eq(r.tls, ROUTE_TLS_NONE);
	route_free(&r);

	ck_assert_int_eq(route_parse("smtp.provider.example:465 tls=implicit verify=yes user=me@x.org "
				     "password_file=/etc/pw", true, &r, &err), 0);
	ck_assert_ptr_null(r.match);
	ck_assert_str_eq(r.host, "smtp.provider.example");
	ck_assert_int_eq(r.port, 465);
	ck_assert_int_eq(r.tls, ROUTE_TLS_IMPLICIT);
	ck_assert(r.verify);
	ck_assert_str_eq(r.user, "me@x.org");
	ck_assert_str_eq(r.password_file, "/etc/pw");
	route_free(&r);

	ck_assert_int_eq(route_parse("[::1]:2525 sender_domain=Example.ORG", true, &r, &err), 0);
	ck_assert_str_eq(r.host, "::1");
	ck_assert_int_eq(r.port, 2525);
	ck_assert_str_eq(r.match, "example.org");
	ck_assert_int_eq(r.tls, ROUTE_TLS_OPPORTUNISTIC);
	route_free(&r);

	ck_assert_int_eq(route_parse("relay.example tls=implicit", true, &r, &err), 0);
	ck_assert_int_eq(r.port, 465);
	route_free(&r);
	ck_assert_int_eq(route_parse("relay.example", true, &r, &err), 0);
	ck_assert_int_eq(r.port, 587);
	route_free(&r);
}
END_TEST

START_TEST(parse_bad)
{
	static const char *const bad[] = {
		"", "onlydomain", "d host:0", "d host:70000", "d host:", "d [::1", "d [::1]x",
		"d host tls=maybe", "d host verify=perhaps", "d host user=x", "d host password_file=/p",
		"d host frob=1", "d host sender_domain=x", "d host tls",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct route r;
		char *err = NULL;
		ck_assert_msg(route_parse(bad[i], false, &r, &err) == -1, "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(err);
		free(err);
	}
}
END_TEST

START_TEST(choose)
{
	struct route t[1], s[2];
	char *err = NULL;

	ck_assert_int_eq(route_parse("lab.example 10.0.0.5", false, &t[0], &err), 0);
	ck_assert_int_eq(route_parse("relay-a.example sender_domain=a.example", true, &s[0], &err), 0);
	ck_assert_int_eq(route_parse("relay-all.example", true, &s[1], &err), 0);
	ck_assert_ptr_eq(route_choose(t, 1, s, 2, "x@b.example", "LAB.example"), &t[0]);
	ck_assert_ptr_eq(route_choose(t, 1, s, 2, "x@A.example", "other.example"), &s[0]);
	ck_assert_ptr_eq(route_choose(t, 1, s, 2, "x@b.example", "other.example"), &s[1]);
	ck_assert_ptr_eq(route_choose(t, 1, s, 2, "", "other.example"), &s[1]);
	ck_assert_ptr_null(route_choose(t, 1, s, 1, "x@b.example", "other.example"));
	ck_assert_ptr_null(route_choose(NULL, 0, NULL, 0, "x@b.example", "other.example"));
	route_free(&t[0]);
	route_free(&s[0]);
	route_free(&s[1]);
}
END_TEST

static Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("route");
	tcase_add_test(tc, parse_good);
	tcase_add_test(tc, parse_bad);
	tcase_add_test(tc, choose);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(route_suite());
}
