/* SPDX-License-Identifier: Apache-2.0 */
#include "internal.h"

const char *ossuary_strerror(int err)
{
	switch (err) {
	case OSSUARY_OK: return "success";
	case OSSUARY_ERR_INVALID: return "invalid argument";
	case OSSUARY_ERR_BUFFER_TOO_SMALL: return "buffer too small for the next record";
	case OSSUARY_ERR_PROTOCOL: return "protocol error: malformed or unexpected record";
	case OSSUARY_ERR_DECRYPT: return "a record failed to open";
	case OSSUARY_ERR_AUTH: return "peer authentication failed or key not authorized";
	case OSSUARY_ERR_STATE: return "call not valid in the connection's current stage";
	case OSSUARY_ERR_RESET: return "channel reset: back to the handshake";
	case OSSUARY_ERR_EOF: return "peer closed its direction (end of file)";
	case OSSUARY_ERR_TRUNCATED: return "stream truncated: transport ended without DISCONNECT";
	case OSSUARY_ERR_DISCONNECTED: return "peer ended the connection";
	case OSSUARY_ERR_REFUSED: return "peer refused our authentication";
	case OSSUARY_ERR_TOO_MANY_RESETS: return "too many reset exchanges; connection failed";
	case OSSUARY_ERR_NO_MEMORY: return "out of memory";
	case OSSUARY_ERR_IO: return "transport I/O error";
	case OSSUARY_ERR_TIMEOUT: return "timed out";
	case OSSUARY_ERR_NO_KERNEL: return "the ossuary kernel module is not available";
	case OSSUARY_ERR_KEY_FILE: return "key file unreadable, malformed or too open";
	case OSSUARY_ERR_KEY_CHANGED: return "known host presented a different key";
	case OSSUARY_ERR_CRYPTO: return "crypto library failure";
	case OSSUARY_ERR_HANDSHAKE_FAILED: return "handshake failed: the server could not open our CLIENT_AUTH";
	case OSSUARY_ERR_NOT_OSSUARY: return "the peer does not speak Ossuary (wrong port?)";
	case OSSUARY_ERR_WOULD_BLOCK: return "would block: more input or output room needed";
	case OSSUARY_ERR_UNTRUSTED_SERVER: return "untrusted server key: approve or refuse";
	default: return "unknown error";
	}
}
