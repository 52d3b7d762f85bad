/*
 * sec_auth: users, system identities and sessions on top of sec_db.
 *
 * Users log in with a password (Argon2id, libargon2's encoded form, costs
 * from config security.argon2_*) and a TOTP code (sec_crypto.h); after
 * lockout_attempts failures in a row the account is locked for lockout (a
 * success resets the count). A login returns a session token, and API
 * tokens are made for system identities; both are 256 random bits shown
 * once, as "ternses_" or "ternapi_" and 64 hex digits, and stored only as
 * the SHA-256 of that text. A session ends session_idle after its last use
 * or session_max after login, whichever comes first.
 *
 * These functions decide and write the identities; they do not audit (the
 * caller knows where the request came from: sec_ctx in sec.h does both).
 * Times are ms since the epoch, passed in. err is never NULL.
 */
#ifndef TERN_SEC_AUTH_H
#define TERN_SEC_AUTH_H

#include "base/tbuf.h"
#include "engine/config.h"
#include "sec/sec_db.h"

#define SEC_TOKEN_TEXT 73 /* "ternapi_" + 64 hex + NUL */
#define SEC_PASSWORD_MIN 10

/* Hashes password with Argon2id at the configured costs into out. */
sec_status sec_password_hash(const config_security *cfg, const char *password, char *out,
                             size_t size, sec_error *err);
/* True when password matches the encoded Argon2id hash. */
bool sec_password_check(const char *encoded, const char *password);

/* A new user with role and a fresh TOTP secret (base32, written to secret,
 * 64 bytes). SEC_ERR_EXISTS when the name is taken; SEC_ERR_ARG for a name
 * outside [A-Za-z0-9._@-]{1,63}, a password shorter than SEC_PASSWORD_MIN or
 * no role. */
sec_status sec_user_create(sec_db *db, const config_security *cfg, const char *name, sec_role role,
                           const char *password, int64_t now, char secret[64], sec_error *err);
sec_status sec_user_set_password(sec_db *db, const config_security *cfg, const char *name,
                                 const char *password, sec_error *err);
/* Disables (ending every session) or enables; enabling also lifts a lockout. */
sec_status sec_user_set_disabled(sec_db *db, const char *name, bool disabled, sec_error *err);
/* A new TOTP secret (written to secret); the old one stops working. */
sec_status sec_user_reset_mfa(sec_db *db, const char *name, char secret[64], sec_error *err);
/* The otpauth:// URI an authenticator app reads (as a QR code or typed). */
void sec_otpauth_uri(const char *user, const char *secret, tbuf *out);

/* Password and TOTP check with lockout. On success writes a new session
 * token to token and the user's principal to p; SEC_ERR_DENIED for a wrong
 * or unknown user, password or code (one message for all, on purpose),
 * SEC_ERR_LOCKED while locked out or disabled. */
sec_status sec_login(sec_db *db, const config_security *cfg, const char *name,
                     const char *password, const char *totp, int64_t now,
                     char token[SEC_TOKEN_TEXT], sec_principal *p, sec_error *err);

/* A new API token for a system identity bound to channels (comma-separated,
 * required for role system). The token is written to token, once. */
sec_status sec_token_create(sec_db *db, const char *name, sec_role role, const char *channels,
                            int64_t now, char token[SEC_TOKEN_TEXT], sec_error *err);
/* A client certificate identity: its SHA-256 fingerprint (hex, colons
 * allowed) and subject, bound to channels. */
sec_status sec_cert_create(sec_db *db, const char *name, const char *fingerprint,
                           const char *subject, const char *channels, int64_t now, sec_error *err);

/* Who holds token (an API or session token); touches its last use.
 * SEC_ERR_DENIED for an unknown, revoked or expired token, or a disabled
 * user. */
sec_status sec_authenticate(sec_db *db, const config_security *cfg, const char *token, int64_t now,
                            sec_principal *p, sec_error *err);
/* Who presents the client certificate with this SHA-256 fingerprint. */
sec_status sec_authenticate_cert(sec_db *db, const char *fingerprint, sec_principal *p,
                                 sec_error *err);

#endif
