/* auth.h - how an endpoint (HTTP or WebSocket) is reached besides its URL: credentials in
 * headers and the files of a private node's TLS. */
#ifndef BP_CHAIN_AUTH_H
#define BP_CHAIN_AUTH_H

#include <stddef.h>

/* The strings are the caller's and must outlive every connection made from them. */
typedef struct bp_endpoint_auth {
    const char *const *headers; /* "Name: value", sent with every request / the handshake */
    size_t header_count;
    const char *ca_file;   /* PEM bundle the node's certificate is checked against (HTTP:
                              instead of the system store; WebSocket: besides it); NULL: system */
    const char *cert_file; /* our client certificate (PEM); NULL: none */
    const char *key_file;  /* its private key (PEM); NULL: in cert_file */
} bp_endpoint_auth;

#endif
