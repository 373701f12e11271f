-- The account directory (see the MySQL migration).
CREATE TABLE account_directory_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO account_directory_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE accounts (
    user_id       TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    mfa_enabled   INTEGER NOT NULL,
    locked_until  TEXT,
    suspended     INTEGER NOT NULL,
    registered_at TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    position      INTEGER NOT NULL
);
CREATE INDEX accounts_by_username ON accounts (username);
CREATE INDEX accounts_by_role ON accounts (role, status, username);
