-- Federated-learning tasks for dashboards (see the MySQL migration).
CREATE TABLE federated_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO federated_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE federated_tasks (
    task_id            TEXT    NOT NULL PRIMARY KEY,
    name               TEXT    NOT NULL,
    strategy           TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    hospitals          INTEGER NOT NULL,
    rounds             INTEGER NOT NULL,
    rounds_aggregated  INTEGER NOT NULL,
    open_round         INTEGER NULL,
    epsilon_budget     REAL    NULL,
    epsilon_spent      REAL    NULL,
    secure_aggregation INTEGER NOT NULL,
    model_sha256       TEXT    NOT NULL,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    position           INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX federated_by_status ON federated_tasks (status, updated_at);

CREATE TABLE federated_rounds (
    task_id       TEXT    NOT NULL,
    round         INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    trained_from  TEXT    NULL,
    deadline      TEXT    NULL,
    updates       INTEGER NOT NULL,
    model_sha256  TEXT    NULL,
    epsilon       REAL    NULL,
    loss          REAL    NULL,
    accuracy      REAL    NULL,
    auc           REAL    NULL,
    opened_at     TEXT    NOT NULL,
    aggregated_at TEXT    NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (task_id, round)
) WITHOUT ROWID;

CREATE TABLE federated_updates (
    task_id      TEXT    NOT NULL,
    round        INTEGER NOT NULL,
    hospital     TEXT    NOT NULL,
    samples      INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    loss         REAL    NULL,
    accuracy     REAL    NULL,
    auc          REAL    NULL,
    submitted_at TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (task_id, round, hospital)
) WITHOUT ROWID;
