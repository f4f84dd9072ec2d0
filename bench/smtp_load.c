/*
 * SMTP load generator that measures each message's latency: CONCURRENCY
 * sessions at once, one message per connection (connect, EHLO, MAIL, RCPT,
 * DATA, text, ".", read the reply, QUIT, read 221, close), then the next
 * connection in that slot. No pipelining: each command waits for its reply,
 * as Postfix's smtp-source does.
 *
 *   smtp_load [options] HOST PORT
 *     -c N      sessions at once (default 1)
 *     -n N      messages to send at most (default 1000)
 *     -t SECS   no new connection after SECS seconds (default 20)
 *     -T SECS   a session that waits longer than this for the server is
 *               abandoned and counted as a timeout (default 30)
 *     -s BYTES  message size, header and body, before dot-stuffing (default 1024)
 *     -f ADDR   envelope sender (default load@bench.test)
 *     -r ADDR   recipient (default bench@bench.test)
 *     -H NAME   EHLO name (default load.bench.test)
 *     -P PID    sample /proc/PID/status every 50 ms; report the largest VmRSS
 *               and the final VmHWM (the server's memory during the run)
 *
 * A message counts as accepted only when the reply to its end of data is
 * 250. Any other reply at any step (or none, or a closed connection) is a
 * failure, reported by step and reply code with the first reply text seen,
 * never as a success. Latencies are measured with CLOCK_MONOTONIC from just
 * before connect() to the arrival of that 250 ("connect to 250"), and from
 * the last byte of the text sent to the 250 ("dot to 250", which is the
 * server's commit time plus one round trip).
 *
 * Output: "RESULT key=value ..." on one line (accepted, failed, elapsed, rate
 * of accepted messages per second, latency percentiles in milliseconds,
 * memory in KiB), then one "FAIL" line per kind of failure. Exit status 0
 * when at least one message was accepted and none failed, 1 otherwise, 2 on
 * a usage or setup error.
 *
 * Bounded: at most -n connections are ever opened, none after -t seconds,
 * and no session lives longer than -T seconds without progress, so a run
 * ends after at most -t + -T seconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum step {
	S_CONNECT,
	S_GREETING,
	S_EHLO,
	S_MAIL,
	S_RCPT,
	S_DATA,
	S_DOT,
	S_QUIT,
	S_NSTEPS
};

static const char *const step_names[S_NSTEPS] = {
	"connect", "greeting", "EHLO", "MAIL", "RCPT", "DATA", "end-of-data", "QUIT",
};

/* What a step must be answered with. */
static const int step_expect[S_NSTEPS] = { 0, 220, 250, 250, 250, 354, 250, 221 };

#define RBUF_SIZE 8192
#define MAX_FAIL_KINDS 64

struct conn {
	int fd;               /* -1 when the slot is idle */
	enum step step;
	double t_connect;     /* before connect() */
	double t_dot;         /* after the last byte of the text */
	double t_progress;    /* last byte in or out, for the timeout */
	unsigned long seq;    /* message number, for the Message-ID */
	struct iovec iov[2];  /* output not yet written */
	int iovcnt;
	char hdr[512];        /* this message's header block */
	char cmd[600];        /* the command being sent */
	char rbuf[RBUF_SIZE];
	size_t rlen;
};

struct fail_kind {
	enum step step;
	int code; /* reply code, 0 = no reply (closed, reset, timeout) */
	const char *why; /* for code 0 */
	unsigned long count;
	char first[160]; /* the first reply text or error seen */
};

static struct {
	const char *host;
	int port;
	int conc;
	unsigned long max_msgs;
	double max_secs;
	double io_timeout;
	size_t size;
	const char *from, *rcpt, *helo;
	long pid;
} opt = {
	.conc = 1,
	.max_msgs = 1000,
	.max_secs = 20,
	.io_timeout = 30,
	.size = 1024,
	.from = "load@bench.test",
	.rcpt = "bench@bench.test",
	.helo = "load.bench.test",
	.pid = 0,
};

static struct sockaddr_in server;
static char *body;        /* shared body text, ending in CRLF . CRLF */
static size_t body_len;
static size_t hdr_target; /* bytes of header wanted, so that header + body = size */
static char date_hdr[64];

static unsigned long started, accepted, failed;
static double *lat_total, *lat_dot; /* milliseconds, one per accepted message */
static struct fail_kind fails[MAX_FAIL_KINDS];
static int nfails;
static long rss_max_kb, hwm_kb;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: smtp_load [-c conc] [-n msgs] [-t secs] [-T timeout] [-s size]\n"
			"                 [-f from] [-r rcpt] [-H helo] [-P pid] HOST PORT\n");
	exit(2);
}

static unsigned long parse_num(const char *s, unsigned long min, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "smtp_load: bad number \"%s\" (%lu-%lu)\n", s, min, max);
		exit(2);
	}
	return v;
}

static void record_fail(enum step step, int code, const char *why, const char *text)
{
	failed++;
	for (int i = 0; i < nfails; i++) {
		if (fails[i].step == step && fails[i].code == code &&
		    (code != 0 || strcmp(fails[i].why, why) == 0)) {
			fails[i].count++;
			return;
		}
	}
	if (nfails == MAX_FAIL_KINDS)
		return; /* still counted in failed */
	struct fail_kind *f = &fails[nfails++];
	f->step = step;
	f->code = code;
	f->why = why;
	f->count = 1;
	snprintf(f->first, sizeof(f->first), "%s", text);
	for (char *p = f->first; *p; p++)
		if (*p == '\r' || *p == '\n' || (unsigned char)*p < 0x20)
			*p = ' ';
	size_t len = strlen(f->first);
	while (len > 0 && f->first[len - 1] == ' ')
		f->first[--len] = '\0';
}

static void sample_memory(void)
{
	if (opt.pid <= 0)
		return;
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%ld/status", opt.pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		long kb;
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1 && kb > rss_max_kb)
			rss_max_kb = kb;
		else if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			hwm_kb = kb;
	}
	fclose(f);
}

/* The body: lines of 76 printable characters (none starts with '.'), padded
 * so that a header of hdr_target bytes plus the body make opt.size bytes,
 * then the end-of-data line. */
static void make_body(void)
{
	hdr_target = 300;
	size_t want = opt.size > hdr_target + 2 ? opt.size - hdr_target : 2;
	if (opt.size <= hdr_target + 2)
		hdr_target = opt.size > 2 ? opt.size - 2 : 0;
	body = malloc(want + 8);
	if (!body) {
		perror("malloc");
		exit(2);
	}
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
	size_t n = 0, col = 0;
	unsigned r = 12345;
	while (n + 2 < want) {
		if (col >= 76 && want - n >= 4) {
			body[n++] = '\r';
			body[n++] = '\n';
			col = 0;
			continue;
		}
		r = r * 1103515245u + 12345u;
		char ch = alpha[(r >> 16) % (sizeof(alpha) - 1)];
		if (col == 0 && ch == ' ')
			ch = 'x';
		body[n++] = ch;
		col++;
	}
	body[n++] = '\r';
	body[n++] = '\n';
	memcpy(body + n, ".\r\n", 3);
	body_len = n + 3;
}

/* A header block of about hdr_target bytes, unique per message. */
static size_t make_header(struct conn *c)
{
	int n = snprintf(c->hdr, sizeof(c->hdr),
			 "From: Load <%s>\r\nTo: Bench <%s>\r\nDate: %s\r\n"
			 "Message-ID: <%lu.%ld.%lu@load.bench.test>\r\n"
			 "Subject: smtp_load message %lu\r\nX-Pad: ",
			 opt.from, opt.rcpt, date_hdr, c->seq, (long)getpid(), (unsigned long)time(NULL),
			 c->seq);
	size_t len = (size_t)n;
	while (len + 4 < hdr_target && len + 4 < sizeof(c->hdr))
		c->hdr[len++] = 'p';
	memcpy(c->hdr + len, "\r\n\r\n", 4); /* end of X-Pad, then the blank line */
	return len + 4;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->iovcnt = 0;
	c->rlen = 0;
}

__attribute__((format(printf, 3, 4))) static void send_cmd(struct conn *c, enum step step,
							     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(c->cmd, sizeof(c->cmd), fmt, ap);
	va_end(ap);
	c->step = step;
	c->iov[0].iov_base = c->cmd;
	c->iov[0].iov_len = (size_t)n;
	c->iovcnt = 1;
}

static void conn_start(struct conn *c, double now)
{
	c->seq = ++started;
	c->rlen = 0;
	c->iovcnt = 0;
	c->step = S_CONNECT;
	c->t_connect = now;
	c->t_progress = now;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		record_fail(S_CONNECT, 0, "socket", strerror(errno));
		return;
	}
	int one = 1;
	/* Every command and the whole text go out in one writev(), so Nagle's
	 * algorithm could only add delayed-ACK stalls to the measurement. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&server, sizeof(server)) < 0 && errno != EINPROGRESS) {
		record_fail(S_CONNECT, 0, "connect", strerror(errno));
		conn_close(c);
	}
}

/* Flush pending output. Returns 0 when all written or would block, -1 on error. */
static int conn_write(struct conn *c)
{
	while (c->iovcnt > 0) {
		ssize_t w = writev(c->fd, c->iov, c->iovcnt);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			return -1;
		}
		size_t left = (size_t)w;
		while (left > 0 && c->iovcnt > 0) {
			if (left >= c->iov[0].iov_len) {
				left -= c->iov[0].iov_len;
				c->iov[0] = c->iov[1];
				c->iovcnt--;
			} else {
				c->iov[0].iov_base = (char *)c->iov[0].iov_base + left;
				c->iov[0].iov_len -= left;
				left = 0;
			}
		}
		if (c->iovcnt == 0 && c->step == S_DOT)
			c->t_dot = now_s();
	}
	return 0;
}

/* A complete reply has arrived: its code and last line. Moves the session on. */
static void on_reply(struct conn *c, int code, const char *line, double now)
{
	enum step step = c->step;
	if (code != step_expect[step]) {
		if (step == S_QUIT) { /* the message was accepted already */
			conn_close(c);
			return;
		}
		record_fail(step, code, "", line);
		/* Leave politely; the reply to QUIT is not waited for. */
		(void)!write(c->fd, "QUIT\r\n", 6);
		conn_close(c);
		return;
	}
	switch (step) {
	case S_GREETING:
		send_cmd(c, S_EHLO, "EHLO %s\r\n", opt.helo);
		break;
	case S_EHLO:
		send_cmd(c, S_MAIL, "MAIL FROM:<%s>\r\n", opt.from);
		break;
	case S_MAIL:
		send_cmd(c, S_RCPT, "RCPT TO:<%s>\r\n", opt.rcpt);
		break;
	case S_RCPT:
		send_cmd(c, S_DATA, "DATA\r\n");
		break;
	case S_DATA:
		c->step = S_DOT;
		c->iov[0].iov_base = c->hdr;
		c->iov[0].iov_len = make_header(c);
		c->iov[1].iov_base = body;
		c->iov[1].iov_len = body_len;
		c->iovcnt = 2;
		break;
	case S_DOT:
		lat_total[accepted] = (now - c->t_connect) * 1e3;
		lat_dot[accepted] = (now - c->t_dot) * 1e3;
		accepted++;
		send_cmd(c, S_QUIT, "QUIT\r\n");
		break;
	case S_QUIT:
		conn_close(c);
		return;
	default:
		break;
	}
	if (c->fd >= 0 && conn_write(c) < 0) {
		record_fail(c->step, 0, "write", strerror(errno));
		conn_close(c);
	}
}

/* Parse complete replies out of the read buffer. */
static void conn_parse(struct conn *c, double now)
{
	size_t pos = 0;
	while (c->fd >= 0) {
		char *start = c->rbuf + pos;
		char *nl = memchr(start, '\n', c->rlen - pos);
		if (!nl)
			break;
		size_t len = (size_t)(nl - start) + 1;
		char line[200];
		size_t copy = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
		memcpy(line, start, copy);
		line[copy] = '\0';
		pos += len;
		if (len < 4 || start[0] < '1' || start[0] > '5' || start[1] < '0' || start[1] > '9' ||
		    start[2] < '0' || start[2] > '9') {
			record_fail(c->step, 0, "malformed reply", line);
			conn_close(c);
			return;
		}
		if (start[3] == '-')
			continue; /* more lines of a multiline reply follow */
		int code = (start[0] - '0') * 100 + (start[1] - '0') * 10 + (start[2] - '0');
		on_reply(c, code, line, now);
	}
	if (c->fd < 0)
		return;
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
	if (c->rlen == sizeof(c->rbuf)) {
		record_fail(c->step, 0, "reply line too long", "");
		conn_close(c);
	}
}

static void conn_event(struct conn *c, short revents, double now)
{
	if (c->step == S_CONNECT) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			record_fail(S_CONNECT, 0, "connect", strerror(err));
			conn_close(c);
			return;
		}
		c->step = S_GREETING;
		c->t_progress = now;
		return;
	}
	if (revents & POLLOUT) {
		if (conn_write(c) < 0) {
			record_fail(c->step, 0, "write", strerror(errno));
			conn_close(c);
			return;
		}
		c->t_progress = now;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t r = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			if (c->step == S_QUIT) { /* closed without 221: the message is in */
				conn_close(c);
				return;
			}
			record_fail(c->step, 0, r == 0 ? "closed by server" : "read",
				    r == 0 ? "connection closed" : strerror(errno));
			conn_close(c);
			return;
		}
		c->rlen += (size_t)r;
		c->t_progress = now;
		conn_parse(c, now);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, unsigned long n, double p)
{
	if (n == 0)
		return 0;
	unsigned long rank = (unsigned long)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

int main(int argc, char **argv)
{
	int ch;
	while ((ch = getopt(argc, argv, "c:n:t:T:s:f:r:H:P:")) != -1) {
		switch (ch) {
		case 'c': opt.conc = (int)parse_num(optarg, 1, 10000); break;
		case 'n': opt.max_msgs = parse_num(optarg, 1, 10000000); break;
		case 't': opt.max_secs = (double)parse_num(optarg, 1, 86400); break;
		case 'T': opt.io_timeout = (double)parse_num(optarg, 1, 3600); break;
		case 's': opt.size = parse_num(optarg, 16, 100u << 20); break;
		case 'f': opt.from = optarg; break;
		case 'r': opt.rcpt = optarg; break;
		case 'H': opt.helo = optarg; break;
		case 'P': opt.pid = (long)parse_num(optarg, 1, LONG_MAX); break;
		default: usage();
		}
	}
	if (argc - optind != 2)
		usage();
	opt.host = argv[optind];
	opt.port = (int)parse_num(argv[optind + 1], 1, 65535);
	if (strlen(opt.from) > 400 || strlen(opt.rcpt) > 400 || strlen(opt.helo) > 255) {
		fprintf(stderr, "smtp_load: address or EHLO name too long\n");
		return 2;
	}
	memset(&server, 0, sizeof(server));
	server.sin_family = AF_INET;
	server.sin_port = htons((uint16_t)opt.port);
	if (inet_pton(AF_INET, opt.host, &server.sin_addr) != 1) {
		fprintf(stderr, "smtp_load: %s: need a numeric IPv4 address (no DNS)\n", opt.host);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(date_hdr, sizeof(date_hdr), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	make_body();

	lat_total = calloc(opt.max_msgs, sizeof(double));
	lat_dot = calloc(opt.max_msgs, sizeof(double));
	struct conn *conns = calloc((size_t)opt.conc, sizeof(struct conn));
	struct pollfd *pfds = calloc((size_t)opt.conc, sizeof(struct pollfd));
	if (!lat_total || !lat_dot || !conns || !pfds) {
		perror("calloc");
		return 2;
	}
	for (int i = 0; i < opt.conc; i++)
		conns[i].fd = -1;

	double t0 = now_s(), stop_new = t0 + opt.max_secs, next_sample = t0;
	sample_memory();
	for (;;) {
		double now = now_s();
		int active = 0;
		for (int i = 0; i < opt.conc; i++) {
			struct conn *c = &conns[i];
			/* Start a new message in an idle slot while allowed. Failed
			 * connects leave the slot idle, so loop (bounded by -n). */
			while (c->fd < 0 && started < opt.max_msgs && now < stop_new)
				conn_start(c, now);
			if (c->fd >= 0 && now - c->t_progress > opt.io_timeout) {
				record_fail(c->step, 0, "timeout", "no progress within -T seconds");
				conn_close(c);
			}
			pfds[i].fd = c->fd;
			pfds[i].revents = 0;
			if (c->fd < 0) {
				pfds[i].events = 0;
				continue;
			}
			active++;
			pfds[i].events = (c->step == S_CONNECT || c->iovcnt > 0) ? POLLOUT : POLLIN;
		}
		if (active == 0)
			break;
		if (now >= next_sample) {
			sample_memory();
			next_sample = now + 0.05;
		}
		int n = poll(pfds, (nfds_t)opt.conc, 50);
		if (n < 0 && errno != EINTR) {
			perror("poll");
			return 2;
		}
		now = now_s();
		for (int i = 0; n > 0 && i < opt.conc; i++) {
			if (pfds[i].fd >= 0 && pfds[i].revents)
				conn_event(&conns[i], pfds[i].revents, now);
		}
	}
	double elapsed = now_s() - t0;
	sample_memory();

	qsort(lat_total, accepted, sizeof(double), cmp_double);
	qsort(lat_dot, accepted, sizeof(double), cmp_double);
	printf("RESULT conc=%d size=%zu started=%lu accepted=%lu failed=%lu elapsed=%.3f rate=%.1f "
	       "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f dot_p50_ms=%.2f dot_p99_ms=%.2f "
	       "rss_max_kb=%ld hwm_kb=%ld\n",
	       opt.conc, opt.size, started, accepted, failed, elapsed,
	       elapsed > 0 ? (double)accepted / elapsed : 0.0, pct(lat_total, accepted, 50),
	       pct(lat_total, accepted, 90), pct(lat_total, accepted, 99),
	       accepted ? lat_total[accepted - 1] : 0.0, pct(lat_dot, accepted, 50),
	       pct(lat_dot, accepted, 99), rss_max_kb, hwm_kb);
	for (int i = 0; i < nfails; i++) {
		struct fail_kind *f = &fails[i];
		if (f->code)
			printf("FAIL step=%s reply=%d count=%lu first=\"%s\"\n", step_names[f->step], f->code,
			       f->count, f->first);
		else
			printf("FAIL step=%s error=\"%s\" count=%lu first=\"%s\"\n", step_names[f->step],
			       f->why, f->count, f->first);
	}
	return (accepted > 0 && failed == 0) ? 0 : 1;
}
