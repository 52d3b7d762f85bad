/*
 * sec_auth: see sec_auth.h. Argon2id through libargon2's
 * argon2id_hash_encoded / argon2id_verify, with a 16-byte random salt.
 * Session touches are written at most once a minute per session, so a busy
 * API client does not turn every request into a database write.
 */
#include "sec/sec_auth.h"

#include <argon2.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/mem.h"

#define SALT_BYTES 16
#define HASH_BYTES 32
#define TOUCH_EVERY_MS 60000

static bool valid_user_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._@-", s[i])) return false;
    return true;
}

sec_status sec_password_hash(const config_security *cfg, const char *password, char *out,
                             size_t size, sec_error *err)
{
    uint8_t salt[SALT_BYTES];
    if (!sec_random(salt, sizeof salt))
        return sec_fail(err, SEC_ERR_CRYPTO, "the random generator failed");
    int rc = argon2id_hash_encoded(cfg->argon2_iterations, cfg->argon2_memory_kib,
                                   cfg->argon2_parallelism, password, strlen(password), salt,
                                   sizeof salt, HASH_BYTES, out, size);
    if (rc != ARGON2_OK)
        return sec_fail(err, SEC_ERR_CRYPTO, "hashing the password: %s", argon2_error_message(rc));
    return SEC_OK;
}

bool sec_password_check(const char *encoded, const char *password)
{
    return encoded && *encoded && argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
}

static sec_status new_totp_secret(char secret[64], sec_error *err)
{
    uint8_t raw[SEC_TOTP_SECRET_BYTES];
    if (!sec_random(raw, sizeof raw))
        return sec_fail(err, SEC_ERR_CRYPTO, "the random generator failed");
    sec_base32(raw, sizeof raw, secret);
    OPENSSL_cleanse(raw, sizeof raw);
    return SEC_OK;
}

static sec_status check_password_rules(const char *password, sec_error *err)
{
    if (!password || strlen(password) < SEC_PASSWORD_MIN)
        return sec_fail(err, SEC_ERR_ARG, "the password must have at least %d characters",
                        SEC_PASSWORD_MIN);
    return SEC_OK;
}

sec_status sec_user_create(sec_db *db, const config_security *cfg, const char *name, sec_role role,
                           const char *password, int64_t now, char secret[64], sec_error *err)
{
    if (!name || !valid_user_name(name))
        return sec_fail(err, SEC_ERR_ARG,
                        "a user name has 1 to 63 letters, digits, '.', '_', '@' or '-'");
    if (role <= SEC_ROLE_NONE || role >= SEC_ROLE_COUNT)
        return sec_fail(err, SEC_ERR_ARG, "a user needs a role");
    sec_status st = check_password_rules(password, err);
    if (st != SEC_OK) return st;
    sec_user u = {.role = role, .created_at = now};
    snprintf(u.name, sizeof u.name, "%s", name);
    if ((st = sec_password_hash(cfg, password, u.pw_hash, sizeof u.pw_hash, err)) != SEC_OK ||
        (st = new_totp_secret(u.totp_secret, err)) != SEC_OK)
        return st;
    st = db->ops->user_add(db, &u, err);
    if (st == SEC_ERR_EXISTS) sec_fail(err, st, "there is already a user named '%s'", name);
    if (st == SEC_OK) memcpy(secret, u.totp_secret, sizeof u.totp_secret);
    return st;
}

sec_status sec_user_set_password(sec_db *db, const config_security *cfg, const char *name,
                                 const char *password, sec_error *err)
{
    sec_user u;
    sec_status st = check_password_rules(password, err);
    if (st == SEC_OK) st = db->ops->user_get(db, name, &u, err);
    if (st == SEC_OK) st = sec_password_hash(cfg, password, u.pw_hash, sizeof u.pw_hash, err);
    if (st == SEC_OK) {
        u.failed = 0;
        u.locked_until = 0;
        st = db->ops->user_update(db, &u, err);
    }
    if (st == SEC_OK) st = db->ops->session_delete(db, NULL, name, err);
    return st;
}

sec_status sec_user_set_disabled(sec_db *db, const char *name, bool disabled, sec_error *err)
{
    sec_user u;
    sec_status st = db->ops->user_get(db, name, &u, err);
    if (st != SEC_OK) return st;
    u.disabled = disabled;
    if (!disabled) {
        u.failed = 0;
        u.locked_until = 0;
    }
    st = db->ops->user_update(db, &u, err);
    if (st == SEC_OK && disabled) st = db->ops->session_delete(db, NULL, name, err);
    return st;
}

sec_status sec_user_reset_mfa(sec_db *db, const char *name, char secret[64], sec_error *err)
{
    sec_user u;
    sec_status st = db->ops->user_get(db, name, &u, err);
    if (st == SEC_OK) st = new_totp_secret(u.totp_secret, err);
    if (st == SEC_OK) {
        u.last_totp_step = 0;
        st = db->ops->user_update(db, &u, err);
    }
    if (st == SEC_OK) {
        memcpy(secret, u.totp_secret, sizeof u.totp_secret);
        st = db->ops->session_delete(db, NULL, name, err);
    }
    return st;
}

static void put_uri_escaped(tbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~", c))
            tbuf_putc(out, (char)c);
        else
            tbuf_printf(out, "%%%02X", c);
    }
}

void sec_otpauth_uri(const char *user, const char *secret, tbuf *out)
{
    tbuf_puts(out, "otpauth://totp/Tern:");
    put_uri_escaped(out, user);
    tbuf_printf(out, "?secret=%s&issuer=Tern&algorithm=SHA1&digits=%d&period=%d", secret,
                SEC_TOTP_DIGITS, SEC_TOTP_STEP_SECONDS);
}

/* A new random token with prefix, and its stored hash. */
static sec_status new_token(const char *prefix, char token[SEC_TOKEN_TEXT],
                            char hash[SEC_SHA256_HEX], sec_error *err)
{
    uint8_t raw[SEC_TOKEN_BYTES];
    char hex[2 * SEC_TOKEN_BYTES + 1];
    if (!sec_random(raw, sizeof raw))
        return sec_fail(err, SEC_ERR_CRYPTO, "the random generator failed");
    snprintf(token, SEC_TOKEN_TEXT, "%s%s", prefix, sec_hex(raw, sizeof raw, hex));
    sec_sha256_hex(token, hash);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(hex, sizeof hex);
    return SEC_OK;
}

static void user_principal(const sec_user *u, sec_principal *p)
{
    sec_principal_clear(p);
    p->kind = SEC_KIND_USER;
    p->role = u->role;
    snprintf(p->name, sizeof p->name, "%s", u->name);
}

sec_status sec_login(sec_db *db, const config_security *cfg, const char *name,
                     const char *password, const char *totp, int64_t now,
                     char token[SEC_TOKEN_TEXT], sec_principal *p, sec_error *err)
{
    sec_user u;
    sec_status st = db->ops->user_get(db, name ? name : "", &u, err);
    if (st == SEC_ERR_NOT_FOUND) {
        /* the same work and answer as a wrong password: names stay secret */
        sec_password_check("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                           password ? password : "");
        return sec_fail(err, SEC_ERR_DENIED, "wrong user name, password or code");
    }
    if (st != SEC_OK) return st;
    if (u.disabled) return sec_fail(err, SEC_ERR_LOCKED, "the account '%s' is disabled", name);
    if (u.locked_until > now)
        return sec_fail(err, SEC_ERR_LOCKED,
                        "the account '%s' is locked after %d failed logins; try again in %lld s "
                        "or ask an admin (tern user enable)",
                        name, u.failed, (long long)((u.locked_until - now + 999) / 1000));
    uint64_t step = 0;
    bool ok = sec_password_check(u.pw_hash, password ? password : "");
    ok = sec_totp_check(u.totp_secret, totp, now / 1000, &step) && ok;
    if (ok && (int64_t)step <= u.last_totp_step) ok = false; /* a code works once */
    if (!ok) {
        u.failed++;
        if ((uint32_t)u.failed >= cfg->lockout_attempts)
            u.locked_until = now + (int64_t)cfg->lockout_ms;
        sec_error uerr;
        if (db->ops->user_update(db, &u, &uerr) != SEC_OK) {
            *err = uerr;
            return uerr.code;
        }
        return sec_fail(err, SEC_ERR_DENIED, "wrong user name, password or code");
    }
    u.failed = 0;
    u.locked_until = 0;
    u.last_totp_step = (int64_t)step;
    if ((st = db->ops->user_update(db, &u, err)) != SEC_OK) return st;
    sec_session s = {.created_at = now,
                     .last_used_at = now,
                     .expires_at = now + (int64_t)cfg->session_max_ms};
    snprintf(s.user, sizeof s.user, "%s", u.name);
    if ((st = new_token("ternses_", token, s.hash, err)) != SEC_OK) return st;
    if ((st = db->ops->session_add(db, &s, err)) != SEC_OK) return st;
    user_principal(&u, p);
    return SEC_OK;
}

static sec_status check_channels(sec_role role, const char *channels, sec_error *err)
{
    if (role == SEC_ROLE_SYSTEM && (!channels || !*channels))
        return sec_fail(err, SEC_ERR_ARG, "a system identity needs at least one channel");
    if (channels && strlen(channels) >= sizeof(((sec_ident *)0)->channels))
        return sec_fail(err, SEC_ERR_ARG, "too many channels for one identity");
    return SEC_OK;
}

sec_status sec_token_create(sec_db *db, const char *name, sec_role role, const char *channels,
                            int64_t now, char token[SEC_TOKEN_TEXT], sec_error *err)
{
    if (!name || !valid_user_name(name))
        return sec_fail(err, SEC_ERR_ARG,
                        "a token name has 1 to 63 letters, digits, '.', '_', '@' or '-'");
    if (role <= SEC_ROLE_NONE || role >= SEC_ROLE_COUNT)
        return sec_fail(err, SEC_ERR_ARG, "a token needs a role");
    sec_status st = check_channels(role, channels, err);
    if (st != SEC_OK) return st;
    sec_ident t = {.kind = SEC_IDENT_TOKEN, .role = role, .created_at = now};
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.channels, sizeof t.channels, "%s", channels ? channels : "");
    if ((st = new_token("ternapi_", token, t.hash, err)) != SEC_OK) return st;
    st = db->ops->ident_add(db, &t, err);
    if (st == SEC_ERR_EXISTS) sec_fail(err, st, "there is already an identity named '%s'", name);
    return st;
}

/* Lower-case hex without colons into out (65 bytes); false if not SHA-256. */
static bool normal_fingerprint(const char *fp, char out[SEC_SHA256_HEX])
{
    size_t n = 0;
    for (; *fp; fp++) {
        if (*fp == ':') continue;
        if (!isxdigit((unsigned char)*fp) || n == SEC_SHA256_HEX - 1) return false;
        out[n++] = (char)tolower((unsigned char)*fp);
    }
    out[n] = '\0';
    return n == SEC_SHA256_HEX - 1;
}

sec_status sec_cert_create(sec_db *db, const char *name, const char *fingerprint,
                           const char *subject, const char *channels, int64_t now, sec_error *err)
{
    if (!name || !valid_user_name(name))
        return sec_fail(err, SEC_ERR_ARG,
                        "an identity name has 1 to 63 letters, digits, '.', '_', '@' or '-'");
    sec_status st = check_channels(SEC_ROLE_SYSTEM, channels, err);
    if (st != SEC_OK) return st;
    sec_ident t = {.kind = SEC_IDENT_CERT, .role = SEC_ROLE_SYSTEM, .created_at = now};
    if (!fingerprint || !normal_fingerprint(fingerprint, t.hash))
        return sec_fail(err, SEC_ERR_ARG,
                        "the certificate fingerprint must be a SHA-256 in hex (openssl x509 "
                        "-noout -fingerprint -sha256)");
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.channels, sizeof t.channels, "%s", channels);
    snprintf(t.subject, sizeof t.subject, "%s", subject ? subject : "");
    st = db->ops->ident_add(db, &t, err);
    if (st == SEC_ERR_EXISTS) sec_fail(err, st, "there is already an identity named '%s'", name);
    return st;
}

static void ident_principal(const sec_ident *t, sec_principal *p)
{
    sec_principal_clear(p);
    p->kind = t->kind == SEC_IDENT_CERT ? SEC_KIND_CERT : SEC_KIND_TOKEN;
    p->role = t->role;
    snprintf(p->name, sizeof p->name, "%s:%s", t->kind == SEC_IDENT_CERT ? "cert" : "token",
             t->name);
    if (*t->channels) p->channels = xstrdup(t->channels);
}

sec_status sec_authenticate(sec_db *db, const config_security *cfg, const char *token, int64_t now,
                            sec_principal *p, sec_error *err)
{
    char hash[SEC_SHA256_HEX];
    if (!token || strlen(token) != SEC_TOKEN_TEXT - 1)
        return sec_fail(err, SEC_ERR_DENIED, "not a Tern token");
    sec_sha256_hex(token, hash);
    sec_status st;
    if (!strncmp(token, "ternapi_", 8)) {
        sec_ident t;
        st = db->ops->ident_find(db, SEC_IDENT_TOKEN, hash, &t, err);
        if (st == SEC_ERR_NOT_FOUND) return sec_fail(err, SEC_ERR_DENIED, "unknown or revoked token");
        if (st != SEC_OK) return st;
        if (now - t.last_used_at >= TOUCH_EVERY_MS &&
            (st = db->ops->ident_touch(db, t.id, now, err)) != SEC_OK)
            return st;
        ident_principal(&t, p);
        return SEC_OK;
    }
    if (strncmp(token, "ternses_", 8)) return sec_fail(err, SEC_ERR_DENIED, "not a Tern token");
    sec_session s;
    st = db->ops->session_get(db, hash, &s, err);
    if (st == SEC_ERR_NOT_FOUND)
        return sec_fail(err, SEC_ERR_DENIED, "unknown or expired session; log in again");
    if (st != SEC_OK) return st;
    if (now >= s.expires_at || now - s.last_used_at >= (int64_t)cfg->session_idle_ms) {
        db->ops->session_delete(db, hash, NULL, err);
        return sec_fail(err, SEC_ERR_DENIED, "the session has expired; log in again");
    }
    sec_user u;
    st = db->ops->user_get(db, s.user, &u, err);
    if (st == SEC_ERR_NOT_FOUND || (st == SEC_OK && u.disabled))
        return sec_fail(err, SEC_ERR_DENIED, "the session's user is disabled or gone");
    if (st != SEC_OK) return st;
    int64_t every = (int64_t)cfg->session_idle_ms / 4;
    if (every > TOUCH_EVERY_MS) every = TOUCH_EVERY_MS;
    if (now - s.last_used_at >= every &&
        (st = db->ops->session_touch(db, hash, now, err)) != SEC_OK)
        return st;
    user_principal(&u, p);
    return SEC_OK;
}

sec_status sec_authenticate_cert(sec_db *db, const char *fingerprint, sec_principal *p,
                                 sec_error *err)
{
    char fp[SEC_SHA256_HEX];
    if (!fingerprint || !normal_fingerprint(fingerprint, fp))
        return sec_fail(err, SEC_ERR_DENIED, "not a SHA-256 certificate fingerprint");
    sec_ident t;
    sec_status st = db->ops->ident_find(db, SEC_IDENT_CERT, fp, &t, err);
    if (st == SEC_ERR_NOT_FOUND) return sec_fail(err, SEC_ERR_DENIED, "unknown certificate");
    if (st != SEC_OK) return st;
    ident_principal(&t, p);
    return SEC_OK;
}
