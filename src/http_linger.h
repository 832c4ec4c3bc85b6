/*
 * http_linger: connections the HTTP server has answered and closed, still
 * read from for a while so that a client that writes its whole body before
 * reading the answer is not reset. Closing a socket with unread data makes
 * the kernel reset it, and the client then sees "broken pipe" instead of the
 * answer (see http.c, "Refusing before the body"). One thread reads and drops
 * what each client still sends and closes its socket once it has been quiet
 * for a while, or after a maximum time in all.
 *
 * Threads: http_linger_add from libmicrohttpd's threads; start and stop from
 * the thread that starts and stops the server; the lingering thread itself.
 */
#ifndef FLUXRELAY_HTTP_LINGER_H
#define FLUXRELAY_HTTP_LINGER_H

#include <stddef.h>

struct http_linger;

/*
 * Start the lingering thread: a socket is closed max seconds after it was
 * added at the latest, and at most max_sockets linger at once. NULL with
 * errno set when the thread or its wake-up pipe cannot be created.
 */
struct http_linger *http_linger_start(double max, size_t max_sockets);
/*
 * Linger on fd, whose answer and FIN are sent (a duplicate of a descriptor
 * libmicrohttpd is closing). Takes fd: it is closed at once when max_sockets
 * already linger or the thread is stopping.
 */
void http_linger_add(struct http_linger *l, int fd);
/* Stop the thread and close every lingering socket. Accepts NULL. */
void http_linger_stop(struct http_linger *l);

#endif
