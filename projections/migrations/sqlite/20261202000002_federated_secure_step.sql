-- The step a securely aggregated round is in (advertising, sharing, masking,
-- unmasking), for dashboards watching a round that waits on hospitals.
ALTER TABLE federated_rounds ADD COLUMN secure_step VARCHAR(16) NULL;
