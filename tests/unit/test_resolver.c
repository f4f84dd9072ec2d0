/*
 * The resolver against a private dnsmasq on loopback (started once per
 * test case with --no-resolv and --local=/test/, so no query ever leaves
 * the machine: names outside the test zone are REFUSED), a UDP socket
 * that never answers, and a fake server on the loop that answers
 * SERVFAIL. Every resolver here names its servers: the system's resolver
 * is never used. When dnsmasq cannot be started the cases that need it
 * print SKIP and why, and pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <uv.h>

#include "core/log.h"
#include "mta/resolver.h"
#include "testutil.h"

/* ---- The private DNS servers ---- */

static pid_t dnsmasq_pid = -1;
static char dns4[64];           /* "127.0.0.1:PORT" of dnsmasq */
static char dns6[64];           /* "[::1]:PORT", or "" without IPv6 loopback */
static char silent[64];         /* a bound UDP socket nobody reads */
static int silent_fd = -1;
static char skip_reason[512];
static char dnsmasq_log[64];

#define MANY_MX 40
#define MANY_ADDRS 40

static int free_port(int family, const char *addr)
{
	/* A port free for both UDP and TCP on addr. */
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_storage ss;
		socklen_t len;
		memset(&ss, 0, sizeof(ss));
		if (family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			sin->sin_family = AF_INET;
			inet_pton(AF_INET, addr, &sin->sin_addr);
			len = sizeof(*sin);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			sin6->sin6_family = AF_INET6;
			inet_pton(AF_INET6, addr, &sin6->sin6_addr);
			len = sizeof(*sin6);
		}
		int u = socket(family, SOCK_DGRAM, 0);
		if (u < 0)
			return -1;
		if (bind(u, (struct sockaddr *)&ss, len) < 0 || getsockname(u, (struct sockaddr *)&ss, &len) < 0) {
			close(u);
			return -1;
		}
		int t = socket(family, SOCK_STREAM, 0);
		int ok = t >= 0 && bind(t, (struct sockaddr *)&ss, len) == 0;
		int port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						   : ((struct sockaddr_in6 *)&ss)->sin6_port);
		if (t >= 0)
			close(t);
		close(u);
		if (ok && port >= 1024)
			return port;
	}
	return -1;
}

static bool port_free_on(int family, const char *addr, int port)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	if (family != AF_INET6 || inet_pton(AF_INET6, addr, &sin6.sin6_addr) != 1)
		return false;
	int u = socket(AF_INET6, SOCK_DGRAM, 0), t = socket(AF_INET6, SOCK_STREAM, 0);
	bool ok = u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&sin6, sizeof(sin6)) == 0 &&
		  bind(t, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	if (u >= 0)
		close(u);
	if (t >= 0)
		close(t);
	return ok;
}

static const char *find_dnsmasq(void)
{
	static char path[256];
	const char *bin = getenv("POSTBOTE_DNSMASQ"); /* to test the skip path, or a local build */
	if (bin != NULL && *bin != '\0')
		return access(bin, X_OK) == 0 ? bin : NULL;
	const char *env = getenv("PATH");
	char dirs[1024];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/local/sbin", env ? env : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/dnsmasq", d);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

/* Send one A query for "ready.test" and wait up to 100 ms for any answer. */
static bool dns_answers(int port)
{
	static const unsigned char query[] = {
		0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		5, 'r', 'e', 'a', 'd', 'y', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
	};
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	unsigned char buf[512];
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	bool ok = false;

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(s, query, sizeof(query), 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)sizeof(query))
		ok = recv(s, buf, sizeof(buf), 0) >= 12 && buf[0] == 0x12 && buf[1] == 0x34;
	close(s);
	return ok;
}

static void log_tail(char *out, size_t size)
{
	out[0] = '\0';
	int fd = open(dnsmasq_log, O_RDONLY);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, size - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

static bool dnsmasq_try_start(const char *bin)
{
	char *argv[160];
	size_t argc = 0;
	static char args[160][128];
	int port = free_port(AF_INET, "127.0.0.1");
	bool with6;

	if (port < 0) {
		snprintf(skip_reason, sizeof(skip_reason), "no free port on 127.0.0.1");
		return false;
	}
	with6 = port_free_on(AF_INET6, "::1", port);
#define ARG(...) do { snprintf(args[argc], sizeof(args[0]), __VA_ARGS__); argv[argc] = args[argc]; argc++; } while (0)
	ARG("dnsmasq");
	ARG("--keep-in-foreground");
	ARG("--no-resolv");
	ARG("--no-hosts");
	ARG("--no-poll");
	ARG("--conf-file=/dev/null");
	ARG("--pid-file");
	ARG("--bind-interfaces");
	ARG("--listen-address=127.0.0.1");
	if (with6)
		ARG("--listen-address=::1");
	ARG("--port=%d", port);
	/* Answer everything under .test from the records below, NXDOMAIN for
	 * the rest of .test, never forward (there is no upstream at all). */
	ARG("--local=/test/");
	if (geteuid() == 0) {
		ARG("--user=root");
		ARG("--group=root");
	}
	ARG("--mx-host=mx.test,mx-b.test,20");
	ARG("--mx-host=mx.test,mx-a.test,10");
	ARG("--mx-host=mx.test,mx-c.test,10");
	ARG("--host-record=mx-a.test,192.0.2.10");
	ARG("--mx-host=nullmx.test,.,0");
	ARG("--host-record=nomx.test,192.0.2.20");
	ARG("--host-record=dual.test,192.0.2.30,2001:db8::30");
	ARG("--host-record=v6only.test,2001:db8::40");
	ARG("--cname=alias.test,mx-a.test");
	for (int i = 1; i <= MANY_MX; i++)
		ARG("--mx-host=many.test,mx%02d.many.test,%d", i, 100 - i);
	for (int i = 1; i <= MANY_ADDRS; i++)
		ARG("--host-record=manyaddr.test,192.0.2.%d,2001:db8::%d", 100 + i, 100 + i);
	argv[argc] = NULL;
#undef ARG

	snprintf(dnsmasq_log, sizeof(dnsmasq_log), "/tmp/postbote-dnsmasq-%d.log", (int)getpid());
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(skip_reason, sizeof(skip_reason), "fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0) {
		/* Die with the test runner, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		int fd = open(dnsmasq_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(bin, argv);
		_exit(127);
	}
	for (int i = 0; i < 50; i++) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			char tail[400];
			log_tail(tail, sizeof(tail));
			snprintf(skip_reason, sizeof(skip_reason), "dnsmasq exited (%s %d): %s",
				 WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
			unlink(dnsmasq_log);
			return false;
		}
		if (dns_answers(port)) {
			dnsmasq_pid = pid;
			snprintf(dns4, sizeof(dns4), "127.0.0.1:%d", port);
			if (with6)
				snprintf(dns6, sizeof(dns6), "[::1]:%d", port);
			else
				dns6[0] = '\0';
			return true;
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	snprintf(skip_reason, sizeof(skip_reason), "dnsmasq did not answer within 5 s");
	unlink(dnsmasq_log);
	return false;
}

static void servers_start(void)
{
	/* The silent server: bound, never read. */
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(silent_fd, 0);
	ck_assert_int_eq(bind(silent_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(silent_fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(silent, sizeof(silent), "127.0.0.1:%d", ntohs(sin.sin_port));

	skip_reason[0] = '\0';
	const char *bin = find_dnsmasq();
	if (bin == NULL) {
		snprintf(skip_reason, sizeof(skip_reason),
			 "dnsmasq not found (apt-get install dnsmasq-base)");
		return;
	}
	/* Another process may take the port between the probe and dnsmasq's bind. */
	for (int attempt = 0; attempt < 3 && dnsmasq_pid < 0; attempt++)
		dnsmasq_try_start(bin);
}

static void servers_stop(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
		unlink(dnsmasq_log);
	}
	if (silent_fd >= 0) {
		close(silent_fd);
		silent_fd = -1;
	}
}

#define NEED_DNSMASQ()                                                                  \
	do {                                                                            \
		if (dnsmasq_pid < 0) {                                                  \
			printf("SKIP %s: %s\n", __func__, skip_reason);                 \
			fflush(stdout);                                                 \
			return;                                                         \
		}                                                                       \
	} while (0)

/* ---- Loop and resolver ---- */

static uv_loop_t loop;
static struct resolver *res;

static void setup(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	log_setup(LOG_LEVEL_WARN, false, NULL);
	res = NULL;
}

static void teardown(void)
{
	if (res != NULL) {
		struct resolver_stats s;
		resolver_get_stats(res, &s);
		ck_assert_uint_eq(s.pending, 0);
		resolver_free(&res);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static void start_resolver(const char *const *servers, size_t n, unsigned timeout_ms, unsigned tries)
{
	char *error = NULL;
	if (resolver_new(&loop, servers, n, timeout_ms, tries, &res, &error) < 0)
		ck_abort_msg("resolver_new: %s", error);
}

static void start_local(void)
{
	const char *servers[] = { dns4 };
	start_resolver(servers, 1, 1000, 2);
}

struct tmx {
	int called;
	struct resolver_mx_result r;
	uint64_t at;
};

struct taddrs {
	int called;
	struct resolver_addrs_result r;
	uint64_t at;
};

static void mx_done(void *arg, const struct resolver_mx_result *r)
{
	struct tmx *t = arg;
	t->called++;
	t->r = *r;
	t->at = uv_now(&loop);
}

static void addrs_done(void *arg, const struct resolver_addrs_result *r)
{
	struct taddrs *t = arg;
	t->called++;
	t->r = *r;
	t->at = uv_now(&loop);
}

static struct resolver_query *mx(const char *domain, struct tmx *t)
{
	memset(t, 0, sizeof(*t));
	struct resolver_query *q = resolver_mx(res, domain, mx_done, t);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(t->called, 0); /* never from inside the call */
	return q;
}

static struct resolver_query *addrs(const char *host, bool want_ipv6, struct taddrs *t)
{
	memset(t, 0, sizeof(*t));
	struct resolver_query *q = resolver_addrs(res, host, want_ipv6, addrs_done, t);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(t->called, 0);
	return q;
}

static void guard_tick(uv_timer_t *t)
{
	(void)t;
}

/* Run the loop until *flag is set, for at most limit_ms. */
static void run_until(const int *flag, uint64_t limit_ms)
{
	uint64_t start = uv_now(&loop);
	uv_timer_t guard;
	uv_timer_init(&loop, &guard);
	/* Wake up now and then even when nothing else happens. */
	uv_timer_start(&guard, guard_tick, 50, 50);
	while (*flag == 0 && uv_now(&loop) - start < limit_ms)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_msg(*flag != 0, "no callback within %llu ms", (unsigned long long)limit_ms);
}

static bool has_addr(const struct resolver_addrs_result *r, const char *text)
{
	char buf[INET6_ADDRSTRLEN];
	for (size_t i = 0; i < r->n_a; i++)
		if (strcmp(inet_ntop(AF_INET, &r->a[i], buf, sizeof(buf)), text) == 0)
			return true;
	for (size_t i = 0; i < r->n_aaaa; i++)
		if (strcmp(inet_ntop(AF_INET6, &r->aaaa[i], buf, sizeof(buf)), text) == 0)
			return true;
	return false;
}

/* ---- Cases ---- */

START_TEST(server_syntax)
{
	char *error = NULL;
	const char *good[] = { "127.0.0.1", "127.0.0.1:5353", "[::1]:53", "[::1]", "::1", "2001:db8::1" };
	const char *bad[] = { "", "localhost", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "[::1",
			      "[::1]x", "[127.0.0.1]:53", "1.2.3.4:53x", "::1:53:" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(resolver_new(&loop, &good[i], 1, 100, 1, &res, &error) == 0, "%s: %s", good[i],
			      error);
		resolver_free(&res);
		ck_assert_ptr_null(res);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		ck_assert_msg(resolver_new(&loop, &bad[i], 1, 100, 1, &res, &error) == -1, "%s accepted", bad[i]);
		ck_assert_ptr_nonnull(error);
		free(error);
	}
	const char *nine[9] = { "127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1",
				"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1" };
	ck_assert_int_eq(resolver_new(&loop, nine, 9, 100, 1, &res, &error), -1);
	free(error);
	res = NULL;
}
END_TEST

START_TEST(bad_names)
{
	const char *servers[] = { silent };
	char long_label[80], long_name[300];

	start_resolver(servers, 1, 100, 1);
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".test");
	for (size_t i = 0; i < 254; i += 2) {
		long_name[i] = 'a';
		long_name[i + 1] = '.';
	}
	long_name[253] = '\0'; /* 127 labels, 253 octets: fine */
	const char *bad[] = { "", ".", "a..test", ".a.test", "a b.test", "a\\.test", "a.test..", long_label,
			      "exa\xc3\xa9mple.test" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_ptr_null(resolver_mx(res, bad[i], mx_done, NULL));
		ck_assert_ptr_null(resolver_addrs(res, bad[i], true, addrs_done, NULL));
	}
	ck_assert_ptr_null(resolver_mx(res, "mx.test", NULL, NULL));

	struct tmx t;
	struct resolver_query *q = mx(long_name, &t);
	resolver_cancel(&q);
	ck_assert_ptr_null(q);
	long_name[252] = 'a';
	long_name[253] = 'a';
	long_name[254] = '\0';
	ck_assert_ptr_null(resolver_mx(res, long_name, mx_done, NULL));
	q = mx("Mx.Test.", &t); /* a trailing dot and capitals are fine */
	resolver_cancel(&q);
}
END_TEST

START_TEST(mx_ordered)
{
	struct tmx t;

	NEED_DNSMASQ();
	start_local();
	mx("mx.test", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.called, 1);
	ck_assert_int_eq(t.r.status, RESOLVER_OK);
	ck_assert_ptr_null(t.r.error);
	ck_assert(!t.r.null_mx);
	ck_assert(!t.r.truncated);
	ck_assert_uint_eq(t.r.count, 3);
	ck_assert_uint_eq(t.r.mx[0].preference, 10);
	ck_assert_uint_eq(t.r.mx[1].preference, 10);
	ck_assert_uint_eq(t.r.mx[2].preference, 20);
	ck_assert((strcmp(t.r.mx[0].host, "mx-a.test") == 0 && strcmp(t.r.mx[1].host, "mx-c.test") == 0) ||
		  (strcmp(t.r.mx[0].host, "mx-c.test") == 0 && strcmp(t.r.mx[1].host, "mx-a.test") == 0));
	ck_assert_str_eq(t.r.mx[2].host, "mx-b.test");

	/* Then the exchange's address, as the queue would go on. */
	struct taddrs a;
	addrs(t.r.mx[0].host[3] == 'a' ? t.r.mx[0].host : t.r.mx[1].host, true, &a);
	run_until(&a.called, 5000);
	ck_assert_int_eq(a.r.status, RESOLVER_OK);
	ck_assert_uint_eq(a.r.n_a, 1);
	ck_assert_uint_eq(a.r.n_aaaa, 0);
	ck_assert(has_addr(&a.r, "192.0.2.10"));
}
END_TEST

START_TEST(mx_nodata_then_a)
{
	struct tmx t;
	struct taddrs a;

	NEED_DNSMASQ();
	start_local();
	/* RFC 5321 5.1: no MX but an address: the implicit MX. */
	mx("nomx.test", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_NODATA);
	ck_assert_uint_eq(t.r.count, 0);
	ck_assert_ptr_null(t.r.error);

	addrs("nomx.test", true, &a);
	run_until(&a.called, 5000);
	ck_assert_int_eq(a.r.status, RESOLVER_OK);
	ck_assert_uint_eq(a.r.n_a, 1);
	ck_assert_uint_eq(a.r.n_aaaa, 0);
	ck_assert(has_addr(&a.r, "192.0.2.20"));

	/* A name that has only MX records: no address. */
	addrs("mx.test", true, &a);
	run_until(&a.called, 5000);
	ck_assert_int_eq(a.r.status, RESOLVER_NODATA);
	ck_assert_uint_eq(a.r.n_a + a.r.n_aaaa, 0);
}
END_TEST

START_TEST(nxdomain)
{
	struct tmx t;
	struct taddrs a, a4;

	NEED_DNSMASQ();
	start_local();
	mx("nosuch.test", &t);
	addrs("nosuch.test", true, &a);
	addrs("also-nosuch.test", false, &a4);
	run_until(&t.called, 5000);
	run_until(&a.called, 5000);
	run_until(&a4.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_NXDOMAIN);
	ck_assert_ptr_nonnull(t.r.error);
	ck_assert_int_eq(a.r.status, RESOLVER_NXDOMAIN);
	ck_assert_int_eq(a4.r.status, RESOLVER_NXDOMAIN);
	ck_assert_uint_eq(a.r.n_a + a.r.n_aaaa, 0);
}
END_TEST

START_TEST(null_mx)
{
	struct tmx t;

	NEED_DNSMASQ();
	start_local();
	mx("nullmx.test", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_OK);
	ck_assert_uint_eq(t.r.count, 1);
	ck_assert_uint_eq(t.r.mx[0].preference, 0);
	ck_assert_str_eq(t.r.mx[0].host, ".");
	ck_assert(t.r.null_mx);
}
END_TEST

START_TEST(aaaa_and_a)
{
	struct taddrs a, a4, v6, v6only4, cname;

	NEED_DNSMASQ();
	start_local();
	addrs("dual.test", true, &a);
	addrs("dual.test", false, &a4);
	addrs("v6only.test", true, &v6);
	addrs("v6only.test", false, &v6only4);
	addrs("alias.test", true, &cname);
	run_until(&a.called, 5000);
	run_until(&a4.called, 5000);
	run_until(&v6.called, 5000);
	run_until(&v6only4.called, 5000);
	run_until(&cname.called, 5000);

	ck_assert_int_eq(a.r.status, RESOLVER_OK);
	ck_assert_uint_eq(a.r.n_a, 1);
	ck_assert_uint_eq(a.r.n_aaaa, 1);
	ck_assert(has_addr(&a.r, "2001:db8::30"));
	ck_assert(has_addr(&a.r, "192.0.2.30"));

	ck_assert_int_eq(a4.r.status, RESOLVER_OK);
	ck_assert_uint_eq(a4.r.n_a, 1);
	ck_assert_uint_eq(a4.r.n_aaaa, 0);
	ck_assert(has_addr(&a4.r, "192.0.2.30"));

	ck_assert_int_eq(v6.r.status, RESOLVER_OK);
	ck_assert_uint_eq(v6.r.n_a, 0);
	ck_assert_uint_eq(v6.r.n_aaaa, 1);
	ck_assert(has_addr(&v6.r, "2001:db8::40"));
	ck_assert_int_eq(v6only4.r.status, RESOLVER_NODATA);

	/* Through a CNAME. */
	ck_assert_int_eq(cname.r.status, RESOLVER_OK);
	ck_assert_uint_eq(cname.r.n_a, 1);
	ck_assert_uint_eq(cname.r.n_aaaa, 0);
	ck_assert(has_addr(&cname.r, "192.0.2.10"));
}
END_TEST

START_TEST(ipv6_server)
{
	struct tmx t;

	NEED_DNSMASQ();
	if (dns6[0] == '\0') {
		printf("SKIP %s: no IPv6 loopback\n", __func__);
		return;
	}
	const char *servers[] = { dns6 };
	start_resolver(servers, 1, 1000, 2);
	mx("mx.test", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_OK);
	ck_assert_uint_eq(t.r.count, 3);
}
END_TEST

START_TEST(caps)
{
	struct tmx t;
	struct taddrs a, a4;

	NEED_DNSMASQ();
	start_local();
	/* 40 MX records do not fit 512 octets: c-ares goes on over TCP. */
	mx("many.test", &t);
	addrs("manyaddr.test", true, &a);
	addrs("manyaddr.test", false, &a4);
	run_until(&t.called, 5000);
	run_until(&a.called, 5000);
	run_until(&a4.called, 5000);

	ck_assert_int_eq(t.r.status, RESOLVER_OK);
	ck_assert(t.r.truncated);
	ck_assert_uint_eq(t.r.count, RESOLVER_MAX_MX);
	/* The lowest preferences (mx40 has 60, mx09 has 91) in order. */
	for (size_t i = 0; i < t.r.count; i++) {
		char want[32];
		snprintf(want, sizeof(want), "mx%02zu.many.test", (size_t)MANY_MX - i);
		ck_assert_uint_eq(t.r.mx[i].preference, 100 - (MANY_MX - i));
		ck_assert_str_eq(t.r.mx[i].host, want);
	}

	ck_assert_int_eq(a.r.status, RESOLVER_OK);
	ck_assert(a.r.truncated);
	ck_assert_uint_eq(a.r.n_a, RESOLVER_MAX_ADDRS);
	ck_assert_uint_eq(a.r.n_aaaa, RESOLVER_MAX_ADDRS);
	ck_assert_int_eq(a4.r.status, RESOLVER_OK);
	ck_assert(a4.r.truncated);
	ck_assert_uint_eq(a4.r.n_a, RESOLVER_MAX_ADDRS);
	ck_assert_uint_eq(a4.r.n_aaaa, 0);
}
END_TEST

START_TEST(timeout_tempfail)
{
	const char *servers[] = { silent };
	struct tmx t;
	struct taddrs a;

	/* One try of 200 ms. */
	start_resolver(servers, 1, 200, 1);
	uint64_t max = resolver_max_wait_ms(res);
	ck_assert_uint_le(max, 400);
	uv_update_time(&loop);
	uint64_t start = uv_now(&loop);
	mx("mx.test", &t);
	addrs("dual.test", true, &a);
	run_until(&t.called, 5000);
	run_until(&a.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_TEMPFAIL);
	ck_assert_ptr_nonnull(t.r.error);
	ck_assert_int_eq(a.r.status, RESOLVER_TEMPFAIL);
	ck_assert_uint_ge(t.at - start, 190);
	ck_assert_msg(t.at - start <= max, "took %llu ms", (unsigned long long)(t.at - start));
	ck_assert_msg(a.at - start <= max, "took %llu ms", (unsigned long long)(a.at - start));
	resolver_free(&res);

	/* Two tries of 100 ms: c-ares waits 100 then 200. */
	start_resolver(servers, 1, 100, 2);
	max = resolver_max_wait_ms(res);
	uv_update_time(&loop);
	start = uv_now(&loop);
	mx("mx.test", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_TEMPFAIL);
	ck_assert_uint_ge(t.at - start, 290);
	ck_assert_msg(t.at - start <= max, "took %llu ms, max %llu", (unsigned long long)(t.at - start),
		      (unsigned long long)max);
}
END_TEST

START_TEST(failover)
{
	struct tmx t;

	NEED_DNSMASQ();
	/* The silent server first: its try times out, dnsmasq answers. */
	const char *servers[] = { silent, dns4 };
	start_resolver(servers, 2, 150, 1);
	uv_update_time(&loop);
	uint64_t start = uv_now(&loop);
	mx("mx.test", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_OK);
	ck_assert_uint_eq(t.r.count, 3);
	ck_assert_uint_ge(t.at - start, 140);
}
END_TEST

/* A server on the loop that answers every query SERVFAIL. */
static unsigned servfail_seen;

static void sf_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char space[1024];
	buf->base = space;
	buf->len = sizeof(space);
}

static void sf_sent(uv_udp_send_t *req, int status)
{
	free(req);
}

static void sf_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
	if (nread < 12 || addr == NULL)
		return;
	servfail_seen++;
	struct {
		uv_udp_send_t req;
		char data[1024];
	} *s = malloc(sizeof(*s));
	memcpy(s->data, buf->base, (size_t)nread);
	s->data[2] = (char)0x81;               /* QR, RD */
	s->data[3] = (char)0x82;               /* RA, RCODE 2 = SERVFAIL */
	memset(s->data + 6, 0, 6);             /* no answer, authority, additional */
	uv_buf_t out = uv_buf_init(s->data, (unsigned)nread);
	ck_assert_int_eq(uv_udp_send(&s->req, udp, &out, 1, addr, sf_sent), 0);
}

START_TEST(servfail_and_refused)
{
	uv_udp_t udp;
	struct sockaddr_in sin;
	int len = sizeof(sin);
	char server[64];
	struct tmx t;

	uv_ip4_addr("127.0.0.1", 0, &sin);
	ck_assert_int_eq(uv_udp_init(&loop, &udp), 0);
	ck_assert_int_eq(uv_udp_bind(&udp, (struct sockaddr *)&sin, 0), 0);
	ck_assert_int_eq(uv_udp_getsockname(&udp, (struct sockaddr *)&sin, &len), 0);
	ck_assert_int_eq(uv_udp_recv_start(&udp, sf_alloc, sf_recv), 0);
	snprintf(server, sizeof(server), "127.0.0.1:%d", ntohs(sin.sin_port));

	const char *servers[] = { server };
	start_resolver(servers, 1, 2000, 2);
	uv_update_time(&loop);
	uint64_t start = uv_now(&loop);
	servfail_seen = 0;
	mx("mx.test", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_TEMPFAIL);
	ck_assert_ptr_nonnull(t.r.error);
	ck_assert_uint_ge(servfail_seen, 1);
	ck_assert_uint_lt(t.at - start, 1000); /* answered, not timed out */
	uv_close((uv_handle_t *)&udp, NULL);

	if (dnsmasq_pid < 0) {
		printf("SKIP %s (REFUSED part): %s\n", __func__, skip_reason);
		return;
	}
	/* dnsmasq has no upstream: a name outside .test is REFUSED. */
	resolver_free(&res);
	start_local();
	mx("refused.invalid", &t);
	run_until(&t.called, 5000);
	ck_assert_int_eq(t.r.status, RESOLVER_TEMPFAIL);
}
END_TEST

START_TEST(literals)
{
	const char *servers[] = { silent };
	struct taddrs a4, a6, a6no;

	start_resolver(servers, 1, 100, 1);
	addrs("192.0.2.5", false, &a4);
	addrs("2001:db8::5", true, &a6);
	addrs("2001:db8::5", false, &a6no);
	run_until(&a6no.called, 1000);
	ck_assert_int_eq(a4.called, 1);
	ck_assert_int_eq(a4.r.status, RESOLVER_OK);
	ck_assert(has_addr(&a4.r, "192.0.2.5"));
	ck_assert_uint_eq(a4.r.n_a, 1);
	ck_assert_uint_eq(a4.r.n_aaaa, 0);
	ck_assert_int_eq(a6.r.status, RESOLVER_OK);
	ck_assert(has_addr(&a6.r, "2001:db8::5"));
	ck_assert_uint_eq(a6.r.n_a, 0);
	ck_assert_uint_eq(a6.r.n_aaaa, 1);
	ck_assert_int_eq(a6no.r.status, RESOLVER_NODATA);
	struct resolver_stats s;
	resolver_get_stats(res, &s);
	ck_assert_uint_eq(s.queries, 0); /* no DNS at all */
}
END_TEST

START_TEST(cancel)
{
	const char *servers[] = { silent };
	struct tmx t1, t2, t3, t4;
	struct taddrs lit;
	struct resolver_stats s;

	/* Silent server: nothing ever completes on its own before 200 ms. */
	start_resolver(servers, 1, 200, 1);
	resolver_set_max_running(res, 1);
	struct resolver_query *q1 = mx("mx.test", &t1);   /* running */
	struct resolver_query *q2 = mx("nomx.test", &t2); /* waiting */
	struct resolver_query *q3 = mx("dual.test", &t3); /* waiting, runs once q1's slot frees */
	struct resolver_query *ql = addrs("192.0.2.1", true, &lit); /* done, not yet delivered */
	resolver_get_stats(res, &s);
	ck_assert_uint_eq(s.running, 1);
	ck_assert_uint_eq(s.waiting, 2);
	ck_assert_uint_eq(s.pending, 4);

	resolver_cancel(&q1);
	resolver_cancel(&q2);
	resolver_cancel(&ql);
	ck_assert_ptr_null(q1);
	ck_assert_ptr_null(q2);
	ck_assert_ptr_null(ql);
	resolver_cancel(&q1); /* NULL: a no-op */
	resolver_get_stats(res, &s);
	ck_assert_uint_eq(s.pending, 1);
	ck_assert_uint_eq(s.running, 1); /* q1 keeps its slot until c-ares lets go */

	run_until(&t3.called, 5000);
	ck_assert_int_eq(t3.r.status, RESOLVER_TEMPFAIL);
	(void)q3;
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(t1.called, 0);
	ck_assert_int_eq(t2.called, 0);
	ck_assert_int_eq(lit.called, 0);
	ck_assert_int_eq(t3.called, 1);

	/* Cancel against a server that answers. */
	if (dnsmasq_pid < 0) {
		printf("SKIP %s (dnsmasq part): %s\n", __func__, skip_reason);
		return;
	}
	resolver_free(&res);
	start_local();
	q1 = mx("mx.test", &t1);
	mx("nullmx.test", &t4);
	resolver_cancel(&q1);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(t1.called, 0);
	ck_assert_int_eq(t4.called, 1);
	resolver_get_stats(res, &s);
	ck_assert_uint_eq(s.pending, 0);
	ck_assert_uint_eq(s.running, 0);
}
END_TEST

#define MANY 600

static struct tmx many_mx[MANY];
static struct taddrs many_addrs[MANY];
static unsigned many_max_running, many_done;

static void many_mx_done(void *arg, const struct resolver_mx_result *r)
{
	struct resolver_stats s;
	resolver_get_stats(res, &s);
	if (s.running > many_max_running)
		many_max_running = s.running;
	many_done++;
	mx_done(arg, r);
}

static void many_addrs_done(void *arg, const struct resolver_addrs_result *r)
{
	many_done++;
	addrs_done(arg, r);
}

START_TEST(many_concurrent)
{
	static const char *names[] = { "mx.test", "nomx.test", "nosuch.test", "nullmx.test" };
	static const enum resolver_status want[] = { RESOLVER_OK, RESOLVER_NODATA, RESOLVER_NXDOMAIN, RESOLVER_OK };

	NEED_DNSMASQ();
	start_local();
	resolver_set_max_running(res, 16);
	many_max_running = many_done = 0;
	for (int i = 0; i < MANY; i++) {
		memset(&many_mx[i], 0, sizeof(many_mx[i]));
		memset(&many_addrs[i], 0, sizeof(many_addrs[i]));
		ck_assert_ptr_nonnull(resolver_mx(res, names[i % 4], many_mx_done, &many_mx[i]));
		ck_assert_ptr_nonnull(resolver_addrs(res, i % 2 ? "dual.test" : "nosuch.test", true,
						     many_addrs_done, &many_addrs[i]));
	}
	ck_assert_uint_eq(many_done, 0);
	struct resolver_stats s;
	resolver_get_stats(res, &s);
	ck_assert_uint_eq(s.running, 16);
	ck_assert_uint_eq(s.waiting, 2 * MANY - 16);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(many_done, 2 * MANY);
	for (int i = 0; i < MANY; i++) {
		ck_assert_int_eq(many_mx[i].called, 1);
		ck_assert_int_eq(many_mx[i].r.status, want[i % 4]);
		ck_assert_int_eq(many_addrs[i].called, 1);
		ck_assert_int_eq(many_addrs[i].r.status, i % 2 ? RESOLVER_OK : RESOLVER_NXDOMAIN);
		if (i % 2)
			ck_assert_uint_eq(many_addrs[i].r.n_a + many_addrs[i].r.n_aaaa, 2);
	}
	resolver_get_stats(res, &s);
	ck_assert_uint_le(s.peak_running, 16);
	ck_assert_uint_eq(s.peak_running, 16);
	ck_assert_uint_eq(s.queries, MANY + 2 * MANY);
	ck_assert_uint_eq(s.pending, 0);
}
END_TEST

START_TEST(free_with_outstanding)
{
	struct tmx t[4];
	struct taddrs a, lit;

	/* Running on the silent server, waiting, done but not delivered. */
	const char *servers[] = { silent };
	start_resolver(servers, 1, 5000, 3);
	resolver_set_max_running(res, 2);
	for (int i = 0; i < 4; i++)
		mx("mx.test", &t[i]);
	addrs("dual.test", true, &a);
	addrs("192.0.2.9", true, &lit);
	resolver_free(&res);
	ck_assert_ptr_null(res);
	uv_run(&loop, UV_RUN_DEFAULT); /* returns at once: nothing left open */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(t[i].called, 0);
	ck_assert_int_eq(a.called, 0);
	ck_assert_int_eq(lit.called, 0);

	if (dnsmasq_pid < 0) {
		printf("SKIP %s (dnsmasq part): %s\n", __func__, skip_reason);
		return;
	}
	/* With answers in flight from a server that replies. */
	start_local();
	for (int i = 0; i < 4; i++)
		mx("many.test", &t[i]);
	uv_run(&loop, UV_RUN_NOWAIT);
	resolver_free(&res);
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(t[i].called, 0);
}
END_TEST

/* A callback that frees the resolver, with other answers still to come. */
static void free_in_cb(void *arg, const struct resolver_addrs_result *r)
{
	addrs_done(arg, r);
	resolver_free(&res);
}

START_TEST(free_from_callback)
{
	struct tmx t;
	struct taddrs lit1, lit2;

	const char *servers[] = { silent };
	start_resolver(servers, 1, 5000, 1);
	/* Two literals are done in the same turn of the loop: the first
	 * callback frees the resolver, the second never runs. */
	memset(&lit1, 0, sizeof(lit1));
	ck_assert_ptr_nonnull(resolver_addrs(res, "192.0.2.1", true, free_in_cb, &lit1));
	addrs("192.0.2.2", true, &lit2);
	mx("mx.test", &t); /* running on the silent server */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(lit1.called, 1);
	ck_assert_int_eq(lit2.called, 0);
	ck_assert_int_eq(t.called, 0);
}
END_TEST

static Suite *resolver_suite(void)
{
	Suite *s = suite_create("resolver");
	TCase *tc = tcase_create("resolver");
	tcase_add_unchecked_fixture(tc, servers_start, servers_stop);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, server_syntax);
	tcase_add_test(tc, bad_names);
	tcase_add_test(tc, mx_ordered);
	tcase_add_test(tc, mx_nodata_then_a);
	tcase_add_test(tc, nxdomain);
	tcase_add_test(tc, null_mx);
	tcase_add_test(tc, aaaa_and_a);
	tcase_add_test(tc, ipv6_server);
	tcase_add_test(tc, caps);
	tcase_add_test(tc, timeout_tempfail);
	tcase_add_test(tc, failover);
	tcase_add_test(tc, servfail_and_refused);
	tcase_add_test(tc, literals);
	tcase_add_test(tc, cancel);
	tcase_add_test(tc, many_concurrent);
	tcase_add_test(tc, free_with_outstanding);
	tcase_add_test(tc, free_from_callback);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(resolver_suite());
}
