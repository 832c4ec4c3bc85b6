/*
 * mhd_bare: the ceiling of fluxrelay's HTTP layer. The same libmicrohttpd
 * layout as src/http.c (HTTP_DAEMONS_PER_CPU epoll daemons per core, each
 * with its own thread and SO_REUSEPORT socket: bench/run sets NDAEMONS to
 * match; body read in full) answering 202 {"status":"ignored"} from a
 * constant without parsing, matching or anything else. Optionally parses the
 * body with jansson (argv[2] = "json") to show what JSON parsing alone costs.
 * With MHD_BARE_FR_OPTIONS=1 the daemons also get the options fluxrelay's
 * main listener sets (suspend/resume allowed, the idle timeout, the memory
 * and connection limits of the defaults), to tell libmicrohttpd's cost of
 * those from fluxrelay's own code (bench/README.md, "Tail latency").
 *   NDAEMONS=N [MHD_BARE_FR_OPTIONS=1] mhd_bare PORT [json]
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct req {
	char *body;
	size_t len;
};

static int parse_json;
static const char answer[] = "{\"status\":\"ignored\"}\n";

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **ctx)
{
	(void)cls; (void)url; (void)method; (void)version;
	struct req *r = *ctx;
	if (r == NULL) {
		*ctx = calloc(1, sizeof(*r));
		return MHD_YES;
	}
	if (*size > 0) {
		r->body = realloc(r->body, r->len + *size + 1);
		memcpy(r->body + r->len, data, *size);
		r->len += *size;
		*size = 0;
		return MHD_YES;
	}
	if (parse_json) {
		json_error_t e;
		json_t *doc = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &e);
		json_decref(doc);
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(sizeof(answer) - 1,
	    (void *)answer, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 202, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
	(void)cls; (void)c; (void)t;
	struct req *r = *ctx;
	if (r) {
		free(r->body);
		free(r);
	}
	*ctx = NULL;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	parse_json = argc > 2 && strcmp(argv[2], "json") == 0;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	/* NDAEMONS: how many daemons (fluxrelay runs 4 per core). */
	long n = getenv("NDAEMONS") ? atol(getenv("NDAEMONS")) : 4 * sysconf(_SC_NPROCESSORS_ONLN);
	int fr_options = getenv("MHD_BARE_FR_OPTIONS") != NULL;
	struct MHD_Daemon *d[16];
	for (long i = 0; i < n && i < 16; i++) {
		if (fr_options)
			d[i] = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			    MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, handler, NULL,
			    MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
			    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
			    MHD_OPTION_CONNECTION_LIMIT, 2048u,
			    MHD_OPTION_CONNECTION_TIMEOUT, 10u,
			    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
		else
			d[i] = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL,
			    NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sin,
			    MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_NOTIFY_COMPLETED, completed,
			    NULL, MHD_OPTION_END);
		if (d[i] == NULL) {
			fprintf(stderr, "mhd_bare: cannot listen\n");
			return 1;
		}
	}
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	sigprocmask(SIG_BLOCK, &s, NULL);
	int sig;
	sigwait(&s, &sig);
	return 0;
}
