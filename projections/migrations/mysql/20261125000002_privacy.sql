-- The privacy officer's reports: break-glass justifications on the access log,
-- and refused accesses (attempts without a valid basis).
ALTER TABLE access_log ADD COLUMN justified_at DATETIME(6) NULL;

CREATE TABLE access_denials (
    denial_id   CHAR(36)        NOT NULL PRIMARY KEY,
    actor_id    CHAR(36)        NOT NULL,
    actor_role  VARCHAR(16)     NOT NULL,
    action      VARCHAR(32)     NOT NULL,
    patient_id  CHAR(36)        NULL,
    reason      VARCHAR(32)     NOT NULL,
    denied_at   DATETIME(6)     NOT NULL,
    position    BIGINT UNSIGNED NOT NULL,
    KEY denials_by_time (denied_at),
    KEY denials_by_actor (actor_id, denied_at)
);
