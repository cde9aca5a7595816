// tests/test_http.c — section 14 (http): the request parser against a table of bad and good
// requests, each fed whole and byte by byte; then the server and the client on loopback (port 0),
// every server scenario once with epoll and once with poll. Every wait is bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

// -- the parser

// Feeds len bytes in pieces of step (0: whole) until a feed completes or fails; *used: bytes taken.
static lf_http_parse_result http_feed(lf_http_parser *p, const char *req, size_t len, size_t step, size_t *used) {
    lf_http_parse_result r = LF_HTTP_PARSE_MORE;
    size_t at = 0;
    while (at < len) {
        size_t n = step && step < len - at ? step : len - at, u = 0;
        r = lf_http_parser_feed(p, req + at, n, &u);
        at += u;
        if (r != LF_HTTP_PARSE_MORE) break;
    }
    *used = at;
    return r;
}

static const char http_nul_value[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
static const char http_nul_line[] = "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n";

static int test_http_parser_bad(void) {
    static const struct {
        const char *req;
        size_t len;  // 0: strlen
        int status;
        const char *reason;
    } cases[] = {
        {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "bad method"},
        {"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 501, "not implemented"},
        {"get / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 501, "not implemented"},
        {"GET / HTTP/1.x\r\nHost: a\r\n\r\n", 0, 400, "bad HTTP version"},
        {"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 0, 400, "bad HTTP version"},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, 505, "not supported"},
        {"GET /\r\n\r\n", 0, 400, "malformed request line"},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "malformed request line"},
        {"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "absolute path"},
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "absolute path"},
        {"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, "request target"},
        {http_nul_line, sizeof http_nul_line - 1, 400, "NUL"},
        {"GET / HTTP/1.1\r\n\r\n", 0, 400, "Host"},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400, "Host"},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400, "bad header name"},
        {"GET / HTTP/1.1\r\nHost a\r\n\r\n", 0, 400, "bad header name"},
        {"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 0, 400, "bad header name"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 0, 400, "folding"},
        {http_nul_value, sizeof http_nul_value - 1, 400, "NUL"},
        {"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 0, 400, "bare CR"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 0, 400, "control character"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 0, 400,
         "duplicate Content-Length"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 0, 400, "bad Content-Length"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 0, 400, "bad Content-Length"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 0, 400, "bad Content-Length"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0, 400, "bad Content-Length"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400,
         "with Transfer-Encoding"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 501, "other than chunked"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, 501, "other than chunked"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 501,
         "other than chunked"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400, "HTTP/1.0"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n", 0, 413, "body too large"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 400, "bad chunk size"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 0, 400, "bad chunk size"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 0, 400, "bad chunk size"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 0, 400, "overflow"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 0, 400,
         "no CRLF after chunk"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\rabc", 0, 400, "bare CR"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n", 0, 431, "header section too large"},  // %s: 300 bytes
        {"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", 0, 414, "request line too long"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: %s\r\n\r\n", 0, 431,
         "trailers too large"},
        {"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n", 0, 431,
         "too many headers"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
         "chunked\r\n\r\n20\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n21\r\n",
         0, 413, "body too large"},  // 32 + 33 > 64
    };
    lf_http_limits lim = {256, 64, 8};
    char filler[301], big[512];
    memset(filler, 'a', 300), filler[300] = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *req = cases[c].req;
        if (strstr(req, "%s")) snprintf(big, sizeof big, req, filler), req = big;
        size_t len = cases[c].len ? cases[c].len : strlen(req);
        int want = cases[c].status;
        const char *why = cases[c].reason;
        for (size_t step = 0; step <= 1; step++) {  // whole, then byte by byte
            lf_http_parser *p;
            CHECK_OK(lf_http_parser_create(&p, &lim));
            size_t used;
            lf_http_parse_result r = http_feed(p, req, len, step, &used);
            const char *reason = NULL;
            int status = lf_http_parser_error(p, &reason);
            if (r != LF_HTTP_PARSE_ERROR || status != want || !strstr(reason, why)) {
                fprintf(stderr, "    case %zu (step %zu): result %d status %d '%s', expected %d '%s'\n", c, step,
                        (int)r, status, reason, want, why);
                lf_http_parser_destroy(p);
                return 1;
            }
            CHECK(lf_http_parser_feed(p, "x", 1, &used) == LF_HTTP_PARSE_ERROR &&
                  lf_http_parser_request(p) == NULL);  // sticky
            lf_http_parser_destroy(p);
        }
    }
    lf_http_limits neg = {0, 0, -1};
    lf_http_parser *p;
    CHECK_ERR(lf_http_parser_create(&p, &neg), LF_ERR_CONFIG, "max_headers");
    return 0;
}

// A request's every field as one string, to compare feeds cut differently.
static void http_digest(const lf_http_request *r, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s|%d|%s|%s|%s|%d|%d|%zu|", r->method_name, (int)r->method, r->target, r->path,
                     r->query, r->minor, (int)r->keep_alive, r->body_len);
    for (int i = 0; i < r->n_headers && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%s=%s;", r->headers[i].name, r->headers[i].value);
    if (n > 0 && (size_t)n < cap) snprintf(out + n, cap - (size_t)n, "|%.*s", (int)r->body_len, r->body);
}

static int test_http_parser_good(void) {
    static const struct {
        const char *req;
        const char *digest;  // of the first request
    } cases[] = {
        {"GET /v1/models?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Thing:  spaced value \t\r\n\r\n",
         "GET|1|/v1/models?a=1&b=2|/v1/models|a=1&b=2|1|1|0|host=x;x-thing=spaced value;|"},
        {"\r\n\nGET / HTTP/1.0\r\n\r\n", "GET|1|/|/||0|0|0||"},
        {"GET /x? HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET|1|/x?|/x||0|1|0|connection=Keep-Alive;|"},
        {"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n",
         "HEAD|2|/|/||1|0|0|host=x;connection=upgrade, close;|"},
        {"DELETE /a HTTP/1.2\nHost: x\n\n", "DELETE|5|/a|/a||1|1|0|host=x;|"},  // bare LF; 1.2 reads as 1.1
        {"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
         "POST|3|/e|/e||1|1|5|host=x;content-length=5;|hello"},
        {"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n4;ext=1\r\nWiki\r\n5 ; a=\"b\"\r\npedia\r\n"
         "E\r\n in\r\n\r\nchunks.\r\n000\r\nTrailer-One: 1\r\nT2: x\r\n\r\n",
         "PUT|4|/c|/c||1|1|23|host=x;transfer-encoding=Chunked;|Wikipedia in\r\n\r\nchunks."},
        {"OPTIONS /o HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\n!\n0\n\n",
         "OPTIONS|6|/o|/o||1|1|1|host=x;transfer-encoding=chunked;|!"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char first[1024] = "";
        static const size_t steps[3] = {0, 1, 7};  // whole, byte by byte, 7 bytes at a time
        for (size_t k = 0; k < 3; k++) {
            size_t step = steps[k];
            lf_http_parser *p;
            CHECK_OK(lf_http_parser_create(&p, NULL));
            size_t used, len = strlen(cases[c].req);
            lf_http_parse_result r = http_feed(p, cases[c].req, len, step, &used);
            char d[1024];
            if (r == LF_HTTP_PARSE_DONE) http_digest(lf_http_parser_request(p), d, sizeof d);
            if (r != LF_HTTP_PARSE_DONE || used != len || strcmp(d, cases[c].digest) != 0) {
                const char *why = "";
                lf_http_parser_error(p, &why);
                fprintf(stderr, "    case %zu step %zu: result %d (%s) used %zu of %zu\n    got  %s\n    want %s\n", c,
                        step, (int)r, why, used, len, r == LF_HTTP_PARSE_DONE ? d : "", cases[c].digest);
                lf_http_parser_destroy(p);
                return 1;
            }
            CHECK(strcmp(lf_http_parser_request(p)->peer, "") == 0);
            if (!step) snprintf(first, sizeof first, "%s", d);
            lf_http_parser_destroy(p);
        }
    }
    // two pipelined requests in one buffer, then a third cut in the middle
    const char *pipe2 =
        "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HT";
    lf_http_parser *p;
    CHECK_OK(lf_http_parser_create(&p, NULL));
    size_t used, len = strlen(pipe2), at = 0;
    CHECK(lf_http_parser_feed(p, pipe2, len, &used) == LF_HTTP_PARSE_DONE);
    CHECK(strcmp(lf_http_parser_request(p)->path, "/1") == 0 && strcmp(lf_http_parser_request(p)->body, "abc") == 0);
    at += used;
    CHECK(lf_http_parser_feed(p, pipe2 + at, len - at, &used) == LF_HTTP_PARSE_DONE);
    CHECK(strcmp(lf_http_parser_request(p)->path, "/2") == 0 && lf_http_parser_request(p)->body_len == 0);
    at += used;
    CHECK(lf_http_parser_feed(p, pipe2 + at, len - at, &used) == LF_HTTP_PARSE_MORE && used == len - at);
    CHECK(lf_http_parser_request(p) == NULL);
    CHECK(lf_http_parser_feed(p, "TP/1.1\r\nHost: x\r\n\r\n", 19, &used) == LF_HTTP_PARSE_DONE && used == 19);
    CHECK(strcmp(lf_http_parser_request(p)->path, "/3") == 0);
    lf_http_parser_destroy(p);
    CHECK(lf_http_header_get(NULL, 0, "x") == NULL);
    return 0;
}

static int test_http_helpers(void) {
    char buf[64];
    CHECK(lf_http_sse_event(buf, sizeof buf, "a\nb\r\nc") == 25 && strcmp(buf, "data: a\ndata: b\ndata: c\n\n") == 0);
    CHECK(lf_http_sse_event(buf, sizeof buf, "") == 8 && strcmp(buf, "data: \n\n") == 0);
    CHECK(lf_http_sse_event(buf, sizeof buf, "x\r") == 16 && strcmp(buf, "data: x\ndata: \n\n") == 0);
    CHECK(lf_http_sse_event(buf, 5, "hello") == 13 && strcmp(buf, "data") == 0);
    CHECK(lf_http_sse_event(NULL, 0, "{\"a\":1}") == 15);
    CHECK(strcmp(lf_http_status_text(404), "Not Found") == 0 && strcmp(lf_http_status_text(999), "Unknown") == 0);
    lf_http_header h[2] = {{"content-type", "a"}, {"X-Y", "b"}};
    CHECK(strcmp(lf_http_header_get(h, 2, "Content-Type"), "a") == 0 &&
          strcmp(lf_http_header_get(h, 2, "x-y"), "b") == 0);
    return 0;
}

// -- the server: a test handler, routed by path

typedef struct http_srv {
    lf_http_server *s;
    pthread_t io;
    int port, run_done;  // run_done: atomic
    lf_status run_st;
    pthread_mutex_t mu;   // guards what follows
    uint64_t closed[64];  // ids given to on_close
    int n_closed;
    uint64_t last_id;  // the last request's
    pthread_t workers[32];
    int n_workers;
    uint64_t last_write_ns;  // when a stream worker last wrote
    lf_status stream_st;     // how the last stream worker ended
    int streams_done;
} http_srv;

typedef struct http_job {
    http_srv *h;
    uint64_t id;
    int n, ms, size;  // n chunks (0: until cancelled, at most 5 s), ms between them, size bytes each (0: "chunk i\n")
} http_job;

static int http_qint(const char *query, const char *key, int def) {
    const char *at = strstr(query, key);
    return at ? atoi(at + strlen(key)) : def;
}

static void http_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *http_stream_worker(void *arg) {
    http_job *j = (http_job *)arg;
    lf_status st = lf_http_stream_begin(j->h->s, j->id, 200, NULL, 0, "text/plain");
    uint64_t t_end = lf_time_ns() + 5000000000ull;
    char *chunk = (char *)calloc(1, (size_t)j->size + 32);
    for (int i = 0; st == LF_OK && (j->n ? i < j->n : lf_time_ns() < t_end); i++) {
        size_t len = j->size ? (size_t)j->size : (size_t)snprintf(chunk, 32, "chunk %d\n", i);
        if (j->size) memset(chunk, 'x', len);
        st = lf_http_stream_write(j->h->s, j->id, chunk, len);
        pthread_mutex_lock(&j->h->mu);
        j->h->last_write_ns = lf_time_ns();
        pthread_mutex_unlock(&j->h->mu);
        if (j->ms) http_sleep_ms(j->ms);
    }
    if (st == LF_OK) st = lf_http_stream_end(j->h->s, j->id);
    free(chunk);
    pthread_mutex_lock(&j->h->mu);
    j->h->stream_st = st, j->h->streams_done++;
    pthread_mutex_unlock(&j->h->mu);
    free(j);
    return NULL;
}

static void http_handler(void *user, lf_http_server *s, uint64_t id, const lf_http_request *req) {
    http_srv *h = (http_srv *)user;
    pthread_mutex_lock(&h->mu);
    h->last_id = id;
    pthread_mutex_unlock(&h->mu);
    if (strcmp(req->path, "/echo") == 0) {
        char body[8192];
        int n = snprintf(body, sizeof body, "%s %s?%s %.*s", req->method_name, req->path, req->query,
                         (int)LF__MIN(req->body_len, 4096), req->body);
        lf_http_header extra[1] = {{"X-Peer", req->peer}};
        lf_http_respond(s, id, 200, extra, 1, "text/plain", body, (size_t)n);
    } else if (strcmp(req->path, "/stream") == 0) {
        http_job *j = (http_job *)calloc(1, sizeof *j);
        j->h = h, j->id = id, j->n = http_qint(req->query, "n=", 3), j->ms = http_qint(req->query, "ms=", 0);
        j->size = http_qint(req->query, "size=", 0);
        pthread_mutex_lock(&h->mu);
        if (h->n_workers < 32 && pthread_create(&h->workers[h->n_workers], NULL, http_stream_worker, j) == 0)
            h->n_workers++;
        else free(j);
        pthread_mutex_unlock(&h->mu);
    } else if (strcmp(req->path, "/never") != 0) {
        lf_http_respond(s, id, 404, NULL, 0, "text/plain", "no\n", 3);
    }
}

static void http_on_close(void *user, uint64_t id) {
    http_srv *h = (http_srv *)user;
    pthread_mutex_lock(&h->mu);
    if (h->n_closed < 64) h->closed[h->n_closed++] = id;
    pthread_mutex_unlock(&h->mu);
}

static int http_closes(http_srv *h, uint64_t id) {  // how often on_close got id
    int k = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_closed; i++) k += h->closed[i] == id;
    pthread_mutex_unlock(&h->mu);
    return k;
}

static uint64_t http_last_id(http_srv *h) {
    pthread_mutex_lock(&h->mu);
    uint64_t id = h->last_id;
    pthread_mutex_unlock(&h->mu);
    return id;
}

static void *http_io(void *arg) {
    http_srv *h = (http_srv *)arg;
    h->run_st = lf_http_server_run(h->s);
    __atomic_store_n(&h->run_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int http_start(http_srv *h, lf_http_server_desc *d, lf_http_backend be) {
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    d->on_request = http_handler, d->on_close = http_on_close, d->user = h, d->backend = be;
    CHECK_OK(lf_http_server_open(&h->s, d));
    h->port = lf_http_server_port(h->s);
    CHECK(h->port > 0 && pthread_create(&h->io, NULL, http_io, h) == 0);
    return 0;
}

// Waits up to ms for *flag to become nonzero.
static bool http_wait_flag(const int *flag, int ms) {
    for (int t = 0; t < ms && !__atomic_load_n(flag, __ATOMIC_ACQUIRE); t += 2) http_sleep_ms(2);
    return __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 0;
}

// Stops the server (grace_ms), joins everything and frees it; fails when run does not return.
// h->mu stays usable: checks that follow read what the threads left.
static int http_stop(http_srv *h, int grace_ms) {
    lf_http_server_stop(h->s, grace_ms);
    CHECK(http_wait_flag(&h->run_done, grace_ms + 3000));  // never join a thread that may hang
    pthread_join(h->io, NULL);
    for (int i = 0; i < h->n_workers; i++) pthread_join(h->workers[i], NULL);
    lf_http_server_close(h->s);
    CHECK_OK(h->run_st);
    return 0;
}

// -- raw sockets

static int raw_connect(int port, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET, a.sin_port = htons((uint16_t)port), a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return close(fd), -1;
    return fd;
}

static bool raw_send(int fd, const char *s) {
    size_t n = strlen(s);
    return send(fd, s, n, MSG_NOSIGNAL) == (ssize_t)n;
}

// Reads into buf (NUL-terminated) until until appears (NULL: until the end), the end, or
// timeout_ms; returns the length; *eof tells whether the peer closed.
static size_t raw_read(int fd, char *buf, size_t cap, int timeout_ms, const char *until, bool *eof) {
    size_t len = 0;
    uint64_t end = lf_time_ns() + (uint64_t)timeout_ms * 1000000u;
    *eof = false;
    buf[0] = 0;
    while (len + 1 < cap && !(until && strstr(buf, until))) {
        uint64_t now = lf_time_ns();
        struct pollfd pf = {fd, POLLIN, 0};
        if (now >= end || poll(&pf, 1, (int)((end - now) / 1000000u) + 1) <= 0) break;
        ssize_t r = recv(fd, buf + len, until ? 1 : cap - 1 - len, 0);  // one byte at a time: stop right after until
        if (r <= 0) {
            *eof = true;
            break;
        }
        len += (size_t)r, buf[len] = 0;
    }
    return len;
}

// One echo exchange on fd; checks the answer's status line and body end.
static int raw_echo(int fd, const char *path, const char *want_body) {
    char req[256], buf[4096];
    bool eof;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    CHECK(raw_send(fd, req));
    raw_read(fd, buf, sizeof buf, 2000, want_body, &eof);
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(buf, want_body));
    return 0;
}

// -- server scenarios, each run with both backends

static int http_case_echo(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    if (http_start(&h, &d, be)) return 1;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo?q=1#frag", h.port);
    lf_http_header extra[1] = {{"X-Test", "yes"}};
    lf_http_fetch_desc f;
    memset(&f, 0, sizeof f);
    f.url = url, f.body = "hello", f.body_len = 5, f.headers = extra, f.n_headers = 1, f.content_type = "text/plain",
    f.timeout_ms = 3000;
    lf_http_response r;
    CHECK_OK(lf_http_fetch(&f, &r));
    CHECK(r.status == 200 && strcmp(r.body, "POST /echo?q=1 hello") == 0 && r.body_len == 20);
    CHECK(strcmp(lf_http_header_get(r.headers, r.n_headers, "Server"), "largeforge") == 0);
    const char *date = lf_http_header_get(r.headers, r.n_headers, "date"),
               *peer = lf_http_header_get(r.headers, r.n_headers, "x-peer");
    CHECK(date && strlen(date) == 29 && strstr(date, " GMT") && peer && strncmp(peer, "127.0.0.1:", 10) == 0);
    CHECK(strcmp(lf_http_header_get(r.headers, r.n_headers, "content-length"), "20") == 0);
    lf_http_response_deinit(&r);
    lf_http_response_deinit(&r);  // safe twice
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nothing", h.port);
    memset(&f, 0, sizeof f);
    f.url = url, f.timeout_ms = 3000;
    CHECK_OK(lf_http_fetch(&f, &r));
    CHECK(r.status == 404 && strcmp(r.body, "no\n") == 0);
    lf_http_response_deinit(&r);
    // HEAD: the length of the body that GET would get, no body (the next answer proves the framing)
    int fd = raw_connect(h.port, 0);
    char buf[2048];
    bool eof;
    CHECK(fd >= 0 && raw_send(fd, "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, "\r\n\r\n", &eof);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, "Content-Length: 12\r\n"));
    if (raw_echo(fd, "/echo?after-head", "GET /echo?after-head ")) return 1;
    close(fd);
    // a bad request gets its status and the connection closes
    fd = raw_connect(h.port, 0);
    CHECK(fd >= 0 && raw_send(fd, "GET / HTTP/2.0\r\nHost: t\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, NULL, &eof);
    CHECK(eof && strstr(buf, "HTTP/1.1 505 HTTP Version Not Supported\r\n") == buf && strstr(buf, "Connection: close"));
    close(fd);
    // too large a body: 413 at the head, readable although the client is still sending
    fd = raw_connect(h.port, 0);
    CHECK(fd >= 0 && raw_send(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\nsome of it"));
    raw_read(fd, buf, sizeof buf, 2000, NULL, &eof);
    CHECK(eof && strstr(buf, "HTTP/1.1 413 ") == buf && strstr(buf, "body too large"));
    close(fd);
    return http_stop(&h, 0);
}

static int http_case_keepalive(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    if (http_start(&h, &d, be)) return 1;
    int fd = raw_connect(h.port, 0);
    char buf[4096];
    bool eof;
    CHECK(fd >= 0);
    if (raw_echo(fd, "/echo?one", "GET /echo?one ") || raw_echo(fd, "/echo?two", "GET /echo?two ")) return 1;
    // pipelined: three requests in one write, answered in order
    CHECK(raw_send(
        fd,
        "GET /echo?a HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo?b HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
        "GET /echo?c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, NULL, &eof);
    const char *a = strstr(buf, "GET /echo?a "), *b = strstr(buf, "POST /echo?b hi"), *c = strstr(buf, "GET /echo?c ");
    CHECK(eof && a && b && c && a < b && b < c && strstr(buf, "Connection: close"));
    close(fd);
    // HTTP/1.0 with keep-alive stays open; without it closes
    fd = raw_connect(h.port, 0);
    CHECK(fd >= 0 && raw_send(fd, "GET /echo?k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, "GET /echo?k ", &eof);
    CHECK(strstr(buf, "Connection: keep-alive"));
    CHECK(raw_send(fd, "GET /echo?l HTTP/1.0\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, NULL, &eof);
    CHECK(eof && strstr(buf, "GET /echo?l "));
    close(fd);
    return http_stop(&h, 0);
}

static int http_case_upload(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    if (http_start(&h, &d, be)) return 1;
    int fd = raw_connect(h.port, 0);
    char buf[4096];
    bool eof;
    CHECK(fd >= 0 &&
          raw_send(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n"));
    http_sleep_ms(20);
    CHECK(raw_send(fd, "6\r\n world\r\n"));
    http_sleep_ms(20);
    CHECK(raw_send(fd, "0\r\nX-Trailer: 1\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, "hello world", &eof);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, "POST /echo? hello world"));
    // Expect: 100-continue gets its interim answer before the body is sent
    CHECK(raw_send(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, "\r\n\r\n", &eof);
    CHECK(strcmp(buf, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    CHECK(raw_send(fd, "abcd"));
    raw_read(fd, buf, sizeof buf, 2000, "abcd", &eof);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, "POST /echo? abcd"));
    close(fd);
    return http_stop(&h, 0);
}

typedef struct http_sink {
    char buf[8192];
    size_t len;
    uint64_t first_ns;  // atomic
    int calls, stop_after;
} http_sink;

static bool http_on_data(void *user, const void *data, size_t len) {
    http_sink *k = (http_sink *)user;
    if (!__atomic_load_n(&k->first_ns, __ATOMIC_ACQUIRE))
        __atomic_store_n(&k->first_ns, lf_time_ns(), __ATOMIC_RELEASE);
    size_t take = LF__MIN(len, sizeof k->buf - 1 - k->len);
    memcpy(k->buf + k->len, data, take);
    k->len += take, k->buf[k->len] = 0;
    return ++k->calls != k->stop_after;
}

typedef struct http_bg {
    lf_http_fetch_desc d;
    lf_http_response r;
    lf_status st;
    int done;                  // atomic
    char url[128], err[1024];  // err: the fetching thread's lf_last_error()
    http_sink sink;
} http_bg;

static void *http_bg_fetch(void *arg) {
    http_bg *b = (http_bg *)arg;
    b->st = lf_http_fetch(&b->d, &b->r);
    snprintf(b->err, sizeof b->err, "%s", b->st ? lf_last_error() : "");
    __atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void http_bg_init(http_bg *b, int port, const char *path) {
    memset(b, 0, sizeof *b);
    snprintf(b->url, sizeof b->url, "http://127.0.0.1:%d%s", port, path);
    b->d.url = b->url, b->d.timeout_ms = 5000, b->d.on_data = http_on_data, b->d.user = &b->sink;
}

static int http_case_stream(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    if (http_start(&h, &d, be)) return 1;
    http_bg b;
    http_bg_init(&b, h.port, "/stream?n=5&ms=15");
    http_bg_fetch(&b);
    CHECK_OK(b.st);
    CHECK(b.r.status == 200 && b.r.body == NULL &&
          strcmp(lf_http_header_get(b.r.headers, b.r.n_headers, "transfer-encoding"), "chunked") == 0);
    CHECK(strcmp(b.sink.buf, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n") == 0 && b.sink.calls >= 2);
    pthread_mutex_lock(&h.mu);
    uint64_t last_write = h.last_write_ns;
    pthread_mutex_unlock(&h.mu);
    CHECK(b.sink.first_ns < last_write);  // the first chunk came before the last was sent
    lf_http_response_deinit(&b.r);
    // on_data stopping the transfer
    http_bg_init(&b, h.port, "/stream?n=50&ms=2");
    b.sink.stop_after = 2;
    http_bg_fetch(&b);
    CHECK_ERR(b.st, LF_ERR_CANCELLED, "on_data");
    // HTTP/1.0: no chunks, the end is the connection's
    int fd = raw_connect(h.port, 0);
    char buf[4096];
    bool eof;
    CHECK(fd >= 0 && raw_send(fd, "GET /stream?n=3 HTTP/1.0\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, NULL, &eof);
    CHECK(eof && !strstr(buf, "Transfer-Encoding") && strstr(buf, "\r\n\r\nchunk 0\nchunk 1\nchunk 2\n") &&
          strstr(buf, "Connection: close"));
    close(fd);
    // a client that leaves mid-stream: on_close once, and the writer is told
    fd = raw_connect(h.port, 0);
    CHECK(fd >= 0 && raw_send(fd, "GET /stream?n=0&ms=5 HTTP/1.1\r\nHost: t\r\n\r\n"));
    raw_read(fd, buf, sizeof buf, 2000, "chunk 1", &eof);
    CHECK(strstr(buf, "chunk 1"));
    uint64_t id = http_last_id(&h);
    close(fd);
    int done = 0;
    for (int t = 0; t < 2000 && !done; t += 5) {
        http_sleep_ms(5);
        pthread_mutex_lock(&h.mu);
        done = h.streams_done == 3;
        pthread_mutex_unlock(&h.mu);
    }
    CHECK(done && h.stream_st == LF_ERR_CANCELLED && http_closes(&h, id) == 1);
    CHECK_ERR(lf_http_stream_write(h.s, id, "x", 1), LF_ERR_CANCELLED, "gone");
    CHECK_ERR(lf_http_respond(h.s, id, 200, NULL, 0, NULL, NULL, 0), LF_ERR_CANCELLED, "gone");
    CHECK_ERR(lf_http_stream_end(h.s, id + (1000ull << 20)), LF_ERR_ARG, "no request");
    http_sleep_ms(20);
    CHECK(http_closes(&h, id) == 1);
    return http_stop(&h, 0);
}

static int http_case_misuse(lf_http_backend be) {  // answers the API refuses, on a request kept open
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    if (http_start(&h, &d, be)) return 1;
    int fd = raw_connect(h.port, 0);
    char buf[2048];
    bool eof;
    CHECK(fd >= 0 && raw_send(fd, "GET /never HTTP/1.1\r\nHost: t\r\n\r\n"));
    uint64_t id = 0;
    for (int t = 0; t < 2000 && !id; t += 2) http_sleep_ms(2), id = http_last_id(&h);
    CHECK(id);
    lf_http_header bad[2] = {{"X-A", "1\r\nInjected: 1"}, {"Content-Length", "5"}};
    CHECK_ERR(lf_http_respond(h.s, id, 200, bad, 1, NULL, NULL, 0), LF_ERR_ARG, "control character");
    CHECK_ERR(lf_http_respond(h.s, id, 200, bad + 1, 1, NULL, NULL, 0), LF_ERR_ARG, "set by LargeForge");
    CHECK_ERR(lf_http_respond(h.s, id, 99, NULL, 0, NULL, NULL, 0), LF_ERR_ARG, "200..599");
    CHECK_ERR(lf_http_respond(h.s, id, 204, NULL, 0, NULL, "x", 1), LF_ERR_ARG, "no body");
    CHECK_ERR(lf_http_stream_write(h.s, id, "x", 1), LF_ERR_ARG, "no stream");
    CHECK_OK(lf_http_stream_begin(h.s, id, 201, NULL, 0, "text/event-stream"));
    CHECK_ERR(lf_http_respond(h.s, id, 200, NULL, 0, NULL, NULL, 0), LF_ERR_ARG, "stream was begun");
    char ev[64];
    lf_http_sse_event(ev, sizeof ev, "{\"x\":1}");
    CHECK_OK(lf_http_stream_write(h.s, id, ev, strlen(ev)));
    CHECK_OK(lf_http_stream_write(h.s, id, NULL, 0));
    CHECK_OK(lf_http_stream_end(h.s, id));
    CHECK_ERR(lf_http_stream_end(h.s, id), LF_ERR_CANCELLED, "gone");
    raw_read(fd, buf, sizeof buf, 2000, "0\r\n\r\n", &eof);
    CHECK(strstr(buf, "HTTP/1.1 201 Created\r\n") == buf &&
          strstr(buf, "\r\n\r\nf\r\ndata: {\"x\":1}\n\n\r\n0\r\n\r\n"));
    close(fd);
    http_sleep_ms(10);
    CHECK(http_closes(&h, id) == 0);
    return http_stop(&h, 0);
}

static int http_case_timeouts(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    d.header_timeout_ms = 300, d.idle_timeout_ms = 250, d.body_timeout_ms = 300;
    if (http_start(&h, &d, be)) return 1;
    // slowloris: a header byte every 100 ms never completes; 408 (or a close) by the header timeout
    int fd = raw_connect(h.port, 0);
    char buf[2048];
    bool eof = false;
    CHECK(fd >= 0 && raw_send(fd, "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "));
    uint64_t t0 = lf_time_ns();
    size_t got = 0;
    while (!got && !eof && lf_time_ns() - t0 < 2000000000ull) {
        got = raw_read(fd, buf, sizeof buf, 100, NULL, &eof);
        if (!got && !eof) raw_send(fd, "a");
    }
    double ms = (double)(lf_time_ns() - t0) * 1e-6;
    CHECK((eof || strstr(buf, "HTTP/1.1 408 ") == buf) && ms >= 250 && ms < 1000);
    close(fd);
    // a body that stops coming
    fd = raw_connect(h.port, 0);
    CHECK(fd >= 0 && raw_send(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
    t0 = lf_time_ns();
    raw_read(fd, buf, sizeof buf, 2000, NULL, &eof);
    ms = (double)(lf_time_ns() - t0) * 1e-6;
    CHECK(eof && strstr(buf, "HTTP/1.1 408 ") == buf && ms >= 250 && ms < 1000);
    close(fd);
    // idle keep-alive: closed silently
    fd = raw_connect(h.port, 0);
    CHECK(fd >= 0);
    if (raw_echo(fd, "/echo", "GET /echo? ")) return 1;
    t0 = lf_time_ns();
    got = raw_read(fd, buf, sizeof buf, 2000, NULL, &eof);
    ms = (double)(lf_time_ns() - t0) * 1e-6;
    CHECK(eof && got == 0 && ms >= 200 && ms < 1000);
    close(fd);
    return http_stop(&h, 0);
}

static int http_case_limit(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    d.max_connections = 2;
    if (http_start(&h, &d, be)) return 1;
    int a = raw_connect(h.port, 0), b = raw_connect(h.port, 0);
    CHECK(a >= 0 && b >= 0);
    if (raw_echo(a, "/echo?a", "GET /echo?a ") || raw_echo(b, "/echo?b", "GET /echo?b ")) return 1;
    int c = raw_connect(h.port, 0);
    char buf[1024];
    bool eof;
    CHECK(c >= 0);
    raw_read(c, buf, sizeof buf, 2000, NULL, &eof);
    CHECK(eof && strstr(buf, "HTTP/1.1 503 Service Unavailable\r\n") == buf);
    close(c);
    close(a);
    int e = -1;  // a slot frees once the server has seen a go
    for (int t = 0; t < 20 && e < 0; t++) {
        http_sleep_ms(20);
        e = raw_connect(h.port, 0);
        if (e >= 0 && raw_read(e, buf, sizeof buf, 30, NULL, &eof) == 0 && !eof) break;
        if (e >= 0) close(e), e = -1;
    }
    CHECK(e >= 0);
    if (raw_echo(e, "/echo?e", "GET /echo?e ")) return 1;
    close(b);
    close(e);
    return http_stop(&h, 0);
}

static int http_case_slow_reader(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    d.max_output_bytes = 64 << 10;
    if (http_start(&h, &d, be)) return 1;
    int fd = raw_connect(h.port, 4096);  // reads nothing, with a small window
    CHECK(fd >= 0 && raw_send(fd, "GET /stream?n=0&size=65536&ms=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
    uint64_t id = 0;
    for (int t = 0; t < 2000 && !id; t += 2) http_sleep_ms(2), id = http_last_id(&h);
    CHECK(id);
    http_bg b;  // another client is served meanwhile
    http_bg_init(&b, h.port, "/echo?other");
    b.d.on_data = NULL, b.d.timeout_ms = 1000;
    http_bg_fetch(&b);
    CHECK_OK(b.st);
    CHECK(b.r.status == 200 && strcmp(b.r.body, "GET /echo?other ") == 0);
    lf_http_response_deinit(&b.r);
    int done = 0;
    for (int t = 0; t < 4000 && !done; t += 5) {
        http_sleep_ms(5);
        pthread_mutex_lock(&h.mu);
        done = h.streams_done;
        pthread_mutex_unlock(&h.mu);
    }
    CHECK(done && h.stream_st == LF_ERR_CANCELLED && http_closes(&h, id) == 1);
    close(fd);
    return http_stop(&h, 0);
}

static int http_case_stop_graceful(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    if (http_start(&h, &d, be)) return 1;
    http_bg b;
    pthread_t t;
    http_bg_init(&b, h.port, "/stream?n=6&ms=30");
    CHECK(pthread_create(&t, NULL, http_bg_fetch, &b) == 0);
    for (int w = 0; w < 2000 && !__atomic_load_n(&b.sink.first_ns, __ATOMIC_ACQUIRE); w += 2) http_sleep_ms(2);
    uint64_t t0 = lf_time_ns();
    lf_http_server_stop(h.s, 3000);
    bool ran_out = http_wait_flag(&h.run_done, 4000);
    double ms = (double)(lf_time_ns() - t0) * 1e-6;
    pthread_join(t, NULL);
    CHECK(ran_out && ms < 1500);
    if (b.st != LF_OK) fprintf(stderr, "    fetch: %s\n", b.err);
    CHECK(b.st == LF_OK);
    CHECK(strcmp(b.sink.buf, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n") == 0);
    lf_http_response_deinit(&b.r);
    int fd = raw_connect(h.port, 0);  // the listener is gone
    CHECK(fd < 0);
    if (http_stop(&h, 0)) return 1;
    return h.n_closed == 0 ? 0 : 1;
}

static int http_case_stop_cut(lf_http_backend be) {
    http_srv h;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    if (http_start(&h, &d, be)) return 1;
    http_bg b;
    pthread_t t;
    http_bg_init(&b, h.port, "/stream?n=0&ms=20");
    CHECK(pthread_create(&t, NULL, http_bg_fetch, &b) == 0);
    for (int w = 0; w < 2000 && !__atomic_load_n(&b.sink.first_ns, __ATOMIC_ACQUIRE); w += 2) http_sleep_ms(2);
    uint64_t id = http_last_id(&h), t0 = lf_time_ns();
    lf_http_server_stop(h.s, 200);
    bool ran_out = http_wait_flag(&h.run_done, 3000);
    double ms = (double)(lf_time_ns() - t0) * 1e-6;
    CHECK(ran_out && ms >= 150 && ms < 1000 && http_closes(&h, id) == 1);
    CHECK(http_wait_flag(&b.done, 3000));
    pthread_join(t, NULL);
    CHECK(b.st == LF_ERR_NET && strstr(b.err, "closed inside the body"));
    CHECK(strncmp(b.sink.buf, "chunk 0\n", 8) == 0);
    if (http_stop(&h, 0)) return 1;
    return h.stream_st == LF_ERR_CANCELLED && http_closes(&h, id) == 1 ? 0 : 1;
}

static const struct {
    const char *name;
    int (*fn)(lf_http_backend be);
} http_cases[] = {
    {"echo", http_case_echo},
    {"keepalive", http_case_keepalive},
    {"upload", http_case_upload},
    {"stream", http_case_stream},
    {"misuse", http_case_misuse},
    {"timeouts", http_case_timeouts},
    {"limit", http_case_limit},
    {"slow_reader", http_case_slow_reader},
    {"stop_graceful", http_case_stop_graceful},
    {"stop_cut", http_case_stop_cut},
};

static int http_server_cases(lf_http_backend be) {
    for (size_t i = 0; i < sizeof http_cases / sizeof *http_cases; i++) {
        uint64_t t0 = lf_time_ns();
        int r = http_cases[i].fn(be);
        if (getenv("LF_TEST_VERBOSE"))
            fprintf(stderr, "    %s: %s (%.0f ms)\n", http_cases[i].name, r ? "FAIL" : "ok",
                    (double)(lf_time_ns() - t0) * 1e-6);
        if (r) {
            fprintf(stderr, "    in server case '%s'\n", http_cases[i].name);
            return r;
        }
    }
    return 0;
}

static int test_http_server_epoll(void) {
#if !defined(__linux__) || defined(LF_HTTP_POLL)
    SKIP("no epoll in this build (not Linux, or LF_HTTP_POLL)");
#else
    return http_server_cases(LF_HTTP_BACKEND_EPOLL);
#endif
}
static int test_http_server_poll(void) { return http_server_cases(LF_HTTP_BACKEND_POLL); }

// -- the client against a server that says what the test wants

typedef struct http_fake {
    int lfd, port;
    const char *answer;  // sent after the request's head, then the connection closes
    pthread_t t;
} http_fake;

static void *http_fake_run(void *arg) {
    http_fake *f = (http_fake *)arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    char buf[4096];
    bool eof;
    raw_read(fd, buf, sizeof buf, 2000, "\r\n\r\n", &eof);
    if (f->answer) send(fd, f->answer, strlen(f->answer), MSG_NOSIGNAL);
    else http_sleep_ms(400);  // no answer: the client must time out
    close(fd);
    return NULL;
}

static int http_fake_fetch(const char *answer, lf_http_fetch_desc *d, lf_http_response *r, lf_status *st) {
    http_fake f;
    memset(&f, 0, sizeof f);
    f.answer = answer;
    f.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET, a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CHECK(f.lfd >= 0 && bind(f.lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(f.lfd, 4) == 0);
    CHECK(getsockname(f.lfd, (struct sockaddr *)&a, &al) == 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    CHECK(pthread_create(&f.t, NULL, http_fake_run, &f) == 0);
    d->url = url;
    if (!d->timeout_ms) d->timeout_ms = 2000;
    *st = lf_http_fetch(d, r);
    pthread_join(f.t, NULL);
    close(f.lfd);
    return 0;
}

static int test_http_client(void) {
    lf_http_fetch_desc d;
    lf_http_response r;
    lf_status st;
    memset(&d, 0, sizeof d);
    const char *chunked =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b \r\n\r\n"
        "5;e=1\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n";
    if (http_fake_fetch(chunked, &d, &r, &st)) return 1;
    CHECK_OK(st);
    CHECK(r.status == 200 && strcmp(r.body, "hello!") == 0 &&
          strcmp(lf_http_header_get(r.headers, r.n_headers, "x-a"), "b") == 0);
    lf_http_response_deinit(&r);
    memset(&d, 0, sizeof d);
    if (http_fake_fetch("HTTP/1.0 200 OK\r\n\r\nuntil the end", &d, &r, &st)) return 1;
    CHECK(st == LF_OK && strcmp(r.body, "until the end") == 0);
    lf_http_response_deinit(&r);
    // bad responses name the byte
    memset(&d, 0, sizeof d);
    if (http_fake_fetch("HTTX/1.1 200 OK\r\n\r\n", &d, &r, &st)) return 1;
    CHECK_ERR(st, LF_ERR_NET, "bad response at byte 0: malformed status line");
    CHECK(r.headers == NULL && r.body == NULL && r.mem_ == NULL);
    memset(&d, 0, sizeof d);
    const char *bad_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    if (http_fake_fetch(bad_chunk, &d, &r, &st)) return 1;
    char want[96];
    snprintf(want, sizeof want, "bad response at byte %zu: bad chunk size", strlen(bad_chunk) - 4);
    CHECK_ERR(st, LF_ERR_NET, want);
    memset(&d, 0, sizeof d);
    if (http_fake_fetch("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &d, &r, &st)) return 1;
    CHECK_ERR(st, LF_ERR_NET, "closed inside the body");
    memset(&d, 0, sizeof d);
    if (http_fake_fetch("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", &d, &r, &st)) return 1;
    CHECK_ERR(st, LF_ERR_NET, "bad response at byte 17: malformed header line");
    memset(&d, 0, sizeof d);
    if (http_fake_fetch("", &d, &r, &st)) return 1;
    CHECK_ERR(st, LF_ERR_NET, "before any response");
    memset(&d, 0, sizeof d);
    d.max_body_bytes = 4;
    if (http_fake_fetch("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", &d, &r, &st)) return 1;
    CHECK_ERR(st, LF_ERR_CAPACITY, "max_body_bytes");
    memset(&d, 0, sizeof d);
    d.timeout_ms = 150;
    uint64_t t0 = lf_time_ns();
    if (http_fake_fetch(NULL, &d, &r, &st)) return 1;
    CHECK_ERR(st, LF_ERR_NET, "timed out after 150 ms");
    CHECK(lf_time_ns() - t0 < 1000000000ull);
    // urls and arguments
    memset(&d, 0, sizeof d);
    d.url = "https://example.com/";
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_UNSUPPORTED, "https");
    d.url = "ftp://example.com/";
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_ARG, "only http://");
    d.url = "http://:80/";
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_ARG, "bad host");
    d.url = "http://a:99999/";
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_ARG, "bad port");
    d.url = "http://a/b c";
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_ARG, "space");
    d.url = "http://a/", d.method = "G T";
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_ARG, "bad method");
    // connection refused names host:port
    lf_http_server *s;
    lf_http_server_desc sd;
    memset(&sd, 0, sizeof sd);
    sd.on_request = http_handler;
    CHECK_OK(lf_http_server_open(&s, &sd));
    int port = lf_http_server_port(s);
    lf_http_server_close(s);
    char url[64], where[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    snprintf(where, sizeof where, "connect to 127.0.0.1:%d: Connection refused", port);
    memset(&d, 0, sizeof d);
    d.url = url;
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_NET, where);
    // a request whose client times out gets on_close
    http_srv h;
    memset(&sd, 0, sizeof sd);
    if (http_start(&h, &sd, LF_HTTP_BACKEND_DEFAULT)) return 1;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/never", h.port);
    d.url = url, d.timeout_ms = 100;
    CHECK_ERR(lf_http_fetch(&d, &r), LF_ERR_NET, "timed out");
    uint64_t id = http_last_id(&h);
    for (int t = 0; t < 1000 && !http_closes(&h, id); t += 5) http_sleep_ms(5);
    CHECK(id && http_closes(&h, id) == 1);
    return http_stop(&h, 0);
}

static int test_http_server_config(void) {
    lf_http_server *s;
    lf_http_server_desc d;
    memset(&d, 0, sizeof d);
    CHECK_ERR(lf_http_server_open(&s, &d), LF_ERR_CONFIG, "on_request");
    d.on_request = http_handler, d.port = 70000;
    CHECK_ERR(lf_http_server_open(&s, &d), LF_ERR_CONFIG, "port");
    d.port = 0, d.max_connections = -1;
    CHECK_ERR(lf_http_server_open(&s, &d), LF_ERR_CONFIG, "max_connections");
    d.max_connections = 0, d.idle_timeout_ms = -5;
    CHECK_ERR(lf_http_server_open(&s, &d), LF_ERR_CONFIG, "idle_timeout_ms");
    d.idle_timeout_ms = 0, d.host = "203.0.113.7";  // TEST-NET-3: not an address of this machine
    CHECK_ERR(lf_http_server_open(&s, &d), LF_ERR_NET, "bind 203.0.113.7:0");
    d.host = NULL;
    CHECK_OK(lf_http_server_open(&s, &d));
    lf_http_server_stop(s, 0);  // before run: run returns at once
    CHECK_OK(lf_http_server_run(s));
    CHECK_ERR(lf_http_server_run(s), LF_ERR_ARG, "has run");
    lf_http_server_close(s);
    lf_http_server_close(NULL);
    return 0;
}

static const lf_test tests_http[] = {
    {"http/parser_bad", test_http_parser_bad},
    {"http/parser_good", test_http_parser_good},
    {"http/helpers", test_http_helpers},
    {"http/server_config", test_http_server_config},
    {"http/server_epoll", test_http_server_epoll},
    {"http/server_poll", test_http_server_poll},
    {"http/client", test_http_client},
};
