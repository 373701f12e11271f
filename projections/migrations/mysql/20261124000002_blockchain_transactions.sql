-- The seed's BlockchainTransactions: where each signed tree head of the Merkle log
-- was anchored, and whether it is final. Written by the anchor worker and the
-- relayer (anchors are facts of the ledgers, not of the event log); rebuildable
-- from the ledgers themselves.
CREATE TABLE blockchain_transactions (
    ledger           VARCHAR(64)     NOT NULL,
    transaction_hash VARCHAR(80)     NOT NULL,
    block_number     BIGINT UNSIGNED NOT NULL,
    operation_type   VARCHAR(32)     NOT NULL,
    tree_size        BIGINT UNSIGNED NOT NULL,
    root             CHAR(64)        NOT NULL,
    last_position    BIGINT UNSIGNED NOT NULL,
    status           VARCHAR(16)     NOT NULL,
    created_at       DATETIME(6)     NOT NULL,
    confirmed_at     DATETIME(6)     NULL,
    PRIMARY KEY (ledger, transaction_hash),
    KEY transactions_by_size (tree_size),
    KEY transactions_by_status (status, created_at)
);
