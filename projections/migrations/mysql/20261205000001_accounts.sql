-- The account directory (the seed's Users table, without secrets): who may sign
-- in, in which role, with MFA or not, locked or not. Password hashes and TOTP
-- secrets stay sealed in the log.
CREATE TABLE account_directory_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO account_directory_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE accounts (
    user_id       CHAR(36)    NOT NULL PRIMARY KEY,
    username      VARCHAR(64) NOT NULL,
    role          VARCHAR(16) NOT NULL,
    -- active or deactivated
    status        VARCHAR(16) NOT NULL,
    mfa_enabled   TINYINT     NOT NULL,
    locked_until  DATETIME(6) NULL,
    suspended     TINYINT     NOT NULL,
    registered_at DATETIME(6) NOT NULL,
    updated_at    DATETIME(6) NOT NULL,
    version       BIGINT UNSIGNED NOT NULL,
    position      BIGINT UNSIGNED NOT NULL,
    KEY accounts_by_username (username),
    KEY accounts_by_role (role, status, username)
);
