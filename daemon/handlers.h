/*
 * handlers.h: the request handlers, one per request type (HELLO, LOAD, CANCEL,
 * STATUS, INFO, LIST, EVICT, STATS), dispatched from a table. The server registers
 * handlers_dispatch() as every connection's dispatch callback.
 */
#pragma once

struct client;
struct dl_msg;

/* Answers the well-formed request @m of @c; takes the @nfds @fds that came with it,
 * whatever the request. */
void handlers_dispatch(struct client *c, const struct dl_msg *m, int *fds, int nfds);
