-- Dashboard sign-outs. The session cookie is stateless (an expiry signed with
-- the admin token), so signing out alone left a copied cookie working for its
-- 12 hours. A sign-out now records the cookie (its SHA-256, never the value)
-- until it would have expired; every dashboard request checks it.
CREATE TABLE dashboard_sign_outs (
    cookie_sha256 bytea PRIMARY KEY,
    expires_at    timestamptz NOT NULL
);
