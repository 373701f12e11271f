-- A practitioner's own access requests (`GET /v1/accounts/{user_id}/grants`);
-- their grants are found through idx_active_permissions (grantee first).
CREATE INDEX requests_by_requester ON access_requests (requester, status);
