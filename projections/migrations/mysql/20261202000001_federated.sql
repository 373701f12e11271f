-- Federated-learning tasks for dashboards (the seed's FederatedTasks table): each
-- task's state, each round (the model it trained from and made, ε, the
-- coordinator's held-out figures) and each hospital's update with the figures it
-- reported on its own validation rows.
CREATE TABLE federated_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO federated_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE federated_tasks (
    task_id            CHAR(36)        NOT NULL PRIMARY KEY,
    name               VARCHAR(200)    NOT NULL,
    strategy           VARCHAR(16)     NOT NULL,
    status             VARCHAR(16)     NOT NULL,
    hospitals          INT UNSIGNED    NOT NULL,
    rounds             INT UNSIGNED    NOT NULL,
    rounds_aggregated  INT UNSIGNED    NOT NULL,
    open_round         INT UNSIGNED    NULL,
    epsilon_budget     DOUBLE          NULL,
    epsilon_spent      DOUBLE          NULL,
    secure_aggregation BIGINT          NOT NULL,
    model_sha256       CHAR(64)        NOT NULL,
    created_at         DATETIME(6)     NOT NULL,
    updated_at         DATETIME(6)     NOT NULL,
    position           BIGINT UNSIGNED NOT NULL,
    KEY federated_by_status (status, updated_at)
);

CREATE TABLE federated_rounds (
    task_id       CHAR(36)        NOT NULL,
    round         INT UNSIGNED    NOT NULL,
    -- open, aggregated or refused (over the ε budget).
    status        VARCHAR(16)     NOT NULL,
    trained_from  CHAR(64)        NULL,
    deadline      DATETIME(6)     NULL,
    updates       BIGINT UNSIGNED NOT NULL,
    model_sha256  CHAR(64)        NULL,
    -- ε after the round (for a refused round: what it would have reached).
    epsilon       DOUBLE          NULL,
    loss          DOUBLE          NULL,
    accuracy      DOUBLE          NULL,
    auc           DOUBLE          NULL,
    opened_at     DATETIME(6)     NOT NULL,
    aggregated_at DATETIME(6)     NULL,
    position      BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (task_id, round)
);

CREATE TABLE federated_updates (
    task_id      CHAR(36)        NOT NULL,
    round        INT UNSIGNED    NOT NULL,
    hospital     VARCHAR(64)     NOT NULL,
    samples      BIGINT UNSIGNED NOT NULL,
    sha256       CHAR(64)        NOT NULL,
    loss         DOUBLE          NULL,
    accuracy     DOUBLE          NULL,
    auc          DOUBLE          NULL,
    submitted_at DATETIME(6)     NOT NULL,
    position     BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (task_id, round, hospital)
);
